//! Sidecar mode end to end, with real netfilter: one "pod" network namespace holds a client and
//! the guard (running as its own UID, 1337), installed the way the init container installs it; an
//! "imds" namespace holds the metadata service (the emulator) on IPv4 and IPv6.
//!
//! ```text
//!  pod  10.201.0.2, fd00:1::2            ─ eth0 ═ eth0 ─  imds 10.201.0.1, fd00:1::1
//!       client (root, uid 1000)                             169.254.169.254:80, [fd00:ec2::254]:80
//!       sidecar (uid 1337) 127.0.0.1:8181, admin :8182      (imds-guard emulate)
//! ```
//!
//! Needs root, `ip`, `iptables`, `ip6tables`, `conntrack`, `curl` and `setpriv`; fails (never
//! skips) naming what is missing. Every command runs inside a namespace this test created, and
//! every namespace is deleted when the test ends, panics included.

use crate::netfilter_netns;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use netfilter_netns::http::{curl, curl_as, Got};
use netfilter_netns::{preflight, wait_until, Ns, Proc};

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");
const INSTANCE_ID: &str = "i-0123456789abcdef0";
const SIDECAR_UID: u32 = 1337;
const IMDS6: &str = "http://[fd00:ec2::254]";

/// The workload's policy: `app=web` may read instance metadata but not credentials; pods labelled
/// `allow-node-metadata-lookup=true` may read everything.
const CONFIG: &str = r#"
[server]
listen = "127.0.0.1:8181"
admin_listen = "127.0.0.1:8182"

[upstream]
url = "http://169.254.169.254"
connect_timeout_ms = 500
timeout_ms = 2000

[inventory]
source = "self"
labels_file = "{podinfo}/labels"
labels_poll_ms = 100

[netfilter]
sidecar_uid = 1337

[[rules]]
name = "web: instance metadata, no credentials"
pod_labels = { app = "web" }
allow = ["/latest/api/token", "/latest/meta-data/**"]
deny = ["/latest/meta-data/iam/**"]

[[rules]]
name = "labelled pods"
pod_labels = { "allow-node-metadata-lookup" = "true" }
allow = ["/latest/**"]
"#;

fn topology() -> (Ns, Ns) {
    let (pod, imds) = (Ns::new("pod"), Ns::new("imds"));
    pod.sh(&format!(
        "ip link add eth0 type veth peer name eth0 netns {}",
        imds.name
    ));
    for (ns, v4, v6) in [
        (&pod, "10.201.0.2/24", "fd00:1::2/64"),
        (&imds, "10.201.0.1/24", "fd00:1::1/64"),
    ] {
        ns.sh(&format!("ip addr add {v4} dev eth0"));
        ns.sh(&format!("ip addr add {v6} dev eth0 nodad"));
        ns.sh("ip link set eth0 up");
    }
    imds.sh("ip addr add 169.254.169.254/32 dev eth0");
    imds.sh("ip addr add fd00:ec2::254/128 dev eth0 nodad");
    pod.sh("ip route add 169.254.169.254/32 via 10.201.0.1");
    pod.sh("ip route add fd00:ec2::254/128 via fd00:1::1");
    (pod, imds)
}

/// A downward-API volume as the kubelet keeps it: `labels -> ..data/labels`, `..data -> ..vN`,
/// and an update swaps `..data` to a new directory in one rename.
struct Podinfo {
    dir: PathBuf,
    version: usize,
}

impl Podinfo {
    fn new(dir: PathBuf, labels: &str) -> Podinfo {
        std::fs::create_dir(&dir).expect("podinfo dir");
        let mut podinfo = Podinfo { dir, version: 0 };
        podinfo.write(labels);
        std::os::unix::fs::symlink("..data/labels", podinfo.dir.join("labels")).expect("symlink");
        podinfo
    }

    fn write(&mut self, labels: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        std::fs::create_dir(self.dir.join(&version)).expect("version dir");
        std::fs::write(self.dir.join(&version).join("labels"), labels).expect("labels");
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).expect("symlink");
        std::fs::rename(&tmp, self.dir.join("..data")).expect("swap ..data");
    }
}

/// The binary, where the sidecar's UID can run it: the build's own when every directory on the
/// way lets others through, else a copy in `dir`.
fn binary_for_others(dir: &Path) -> String {
    let reachable = |path: &Path, bits: u32| {
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & bits == bits)
    };
    let bin = Path::new(BIN);
    let dirs_ok = bin
        .ancestors()
        .skip(1)
        .all(|d| d.as_os_str().is_empty() || reachable(d, 0o001));
    if dirs_ok && reachable(bin, 0o005) {
        return BIN.to_owned();
    }
    let copy = dir.join("imds-guard");
    std::fs::copy(bin, &copy).expect("copy the binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy.to_string_lossy().into_owned()
}

fn iptables(pod: &Ns, bin: &str, action: &str, config: &str) -> (Option<i32>, String) {
    let out = pod.exec(&[bin, "iptables", action, "--sidecar", "--config", config]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// The sidecar, as the pod runs it: its own UID and group, no others, the downward API's env.
fn start_sidecar(pod: &Ns, bin: &str, config: &str) -> Proc {
    let (uid, gid) = (
        format!("--reuid={SIDECAR_UID}"),
        format!("--regid={SIDECAR_UID}"),
    );
    let mut sidecar = pod.spawn(&[
        "env",
        "POD_NAMESPACE=shop",
        "POD_NAME=web-0",
        "POD_UID=6f1c-0001",
        "setpriv",
        &uid,
        &gid,
        "--clear-groups",
        bin,
        "run",
        "--config",
        config,
        "--watch-config-ms",
        "0",
    ]);
    let ready = wait_until(Duration::from_secs(10), || {
        curl(pod, 1, &["http://127.0.0.1:8182/readyz"]).status == 200 || sidecar.exited()
    });
    assert!(
        ready && !sidecar.exited(),
        "sidecar did not start:\n{}",
        sidecar.output()
    );
    sidecar
}

fn get(pod: &Ns, uid: Option<u32>, path: &str) -> Got {
    curl_as(pod, uid, 3, &[&format!("http://169.254.169.254{path}")])
}

#[test]
fn a_sidecar_guards_its_own_pod() {
    preflight(&[
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("ip6tables", "iptables"),
        ("conntrack", "conntrack"),
        ("curl", "curl"),
        ("setpriv", "util-linux"),
    ]);
    let started = Instant::now();
    let (pod, imds) = topology();
    let dir = tempfile::tempdir().expect("tempdir");
    // The sidecar's UID reads its config and labels from here.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = binary_for_others(dir.path());
    let mut podinfo = Podinfo::new(dir.path().join("podinfo"), "app=\"web\"\ntier=\"front\"");
    let config = dir.path().join("sidecar.toml");
    let text = CONFIG.replace("{podinfo}", &podinfo.dir.to_string_lossy());
    std::fs::write(&config, text).expect("config");
    let config = config.to_string_lossy().into_owned();

    // Someone else's rules in the pod (a service mesh's, say).
    pod.sh("iptables -t nat -A OUTPUT -p udp --dport 53 -j RETURN");
    pod.sh("ip6tables -A OUTPUT -p udp --dport 53 -j ACCEPT");
    let foreign_only = pod.rules();

    let _emulator = imds.spawn(&[&bin, "emulate", "--listen", "169.254.169.254:80"]);
    let _emulator6 = imds.spawn(&[&bin, "emulate", "--listen", "[fd00:ec2::254]:80"]);
    assert!(
        wait_until(Duration::from_secs(10), || {
            get(&pod, None, "/latest/meta-data/instance-id").status == 200
                && curl(&pod, 2, &[&format!("{IMDS6}/latest/meta-data/instance-id")]).status == 200
        }),
        "the pod does not reach the emulators before the rules"
    );

    // 1. The init container: install twice, the same rules; status 0; the foreign rules stay.
    let (code, out) = iptables(&pod, &bin, "install", &config);
    assert_eq!(code, Some(0), "{out}");
    let once = pod.rules();
    let (code, out) = iptables(&pod, &bin, "install", &config);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(once, pod.rules(), "a second install changed the rules");
    assert!(
        once.contains("--uid-owner 1337 -j DNAT --to-destination 127.0.0.1:8181"),
        "{once}"
    );
    for line in foreign_only.lines().filter(|l| l.starts_with("-A ")) {
        assert!(once.contains(line), "install lost {line}:\n{once}");
    }
    let (code, out) = iptables(&pod, &bin, "status", &config);
    assert_eq!(code, Some(0), "{out}");

    // 2. Before the sidecar runs, the client already fails closed: nothing listens.
    let early = get(&pod, None, "/latest/meta-data/instance-id");
    assert_eq!((early.status, early.exit), (0, Some(7)), "{early:?}");

    // 3. The sidecar runs as its own UID and decides the client's requests, whatever the
    //    client's UID; its own upstream requests go out (were they redirected, they would come
    //    back to it and never reach the emulator).
    let mut sidecar = start_sidecar(&pod, &bin, &config);
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", sidecar.id())).unwrap_or_default();
    let uid_line = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .unwrap_or_default();
    assert_eq!(uid_line.split_whitespace().nth(1), Some("1337"), "{status}");
    for uid in [None, Some(1000)] {
        let read = get(&pod, uid, "/latest/meta-data/instance-id");
        assert_eq!(
            (read.status, read.body.as_str()),
            (200, INSTANCE_ID),
            "uid {uid:?}: {read:?}\n{}",
            sidecar.output()
        );
        let denied = get(&pod, uid, "/latest/meta-data/iam/security-credentials/");
        assert_eq!(denied.status, 403, "uid {uid:?}: {denied:?}");
        assert!(
            denied
                .body
                .contains(r#""reason":"denied-by-rule","pod":"shop/web-0""#),
            "{denied:?}"
        );
    }
    let token = curl(
        &pod,
        3,
        &[
            "-X",
            "PUT",
            "-H",
            "X-aws-ec2-metadata-token-ttl-seconds: 60",
            "http://169.254.169.254/latest/api/token",
        ],
    );
    assert_eq!(token.status, 200, "{token:?}");
    assert!(
        wait_until(Duration::from_secs(2), || sidecar
            .output()
            .contains(r#""pod":"shop/web-0","pod_uid":"6f1c-0001""#)),
        "no audit line naming the pod:\n{}",
        sidecar.output()
    );
    // The sidecar's UID itself is not redirected: it reads what the policy denies the pod.
    let own = get(&pod, Some(SIDECAR_UID), "/latest/user-data");
    assert_eq!(own.status, 200, "the sidecar's UID was redirected: {own:?}");
    assert_eq!(get(&pod, None, "/latest/user-data").status, 403);
    // IPv6: the endpoint is refused to the pod, open to the sidecar's UID.
    let v6 = format!("{IMDS6}/latest/meta-data/instance-id");
    let refused = curl(&pod, 2, &[&v6]);
    assert_eq!((refused.status, refused.exit), (0, Some(7)), "{refused:?}");
    assert_eq!(curl_as(&pod, Some(SIDECAR_UID), 2, &[&v6]).status, 200);

    // 4. Labels change in the downward-API file: the decision follows; a malformed file keeps
    //    the last good labels.
    podinfo.write("allow-node-metadata-lookup=\"true\"");
    let creds = "/latest/meta-data/iam/security-credentials/";
    let changed = wait_until(Duration::from_secs(5), || {
        get(&pod, None, creds).status == 200
    });
    assert!(
        changed,
        "the label change was not seen:\n{}",
        sidecar.output()
    );
    assert_eq!(get(&pod, None, creds).body, "imds-guard-node-role");
    podinfo.write("allow-node-metadata-lookup=true");
    assert!(
        wait_until(Duration::from_secs(5), || sidecar
            .output()
            .contains("malformed labels file")),
        "{}",
        sidecar.output()
    );
    assert_eq!(
        get(&pod, None, creds).status,
        200,
        "a malformed file changed the labels"
    );
    podinfo.write("");
    let unlabelled = wait_until(Duration::from_secs(5), || {
        let got = get(&pod, None, "/latest/meta-data/instance-id");
        got.status == 403 && got.body.contains(r#""reason":"no-rule""#)
    });
    assert!(
        unlabelled,
        "removing the labels did not take the access away"
    );

    // 5. The sidecar dies: the client gets connection refused, never the service; rules stay.
    sidecar.kill();
    for uid in [None, Some(1000)] {
        let closed = get(&pod, uid, "/latest/meta-data/instance-id");
        assert_eq!(
            (closed.status, closed.exit),
            (0, Some(7)),
            "uid {uid:?}: {closed:?}"
        );
    }
    let (code, out) = iptables(&pod, &bin, "status", &config);
    assert_eq!(code, Some(0), "rules gone after the sidecar stopped: {out}");

    // 6. remove: nothing of ours is left, everything else is as it was.
    let (code, out) = iptables(&pod, &bin, "remove", &config);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(
        pod.rules(),
        foreign_only,
        "remove changed rules that are not ours"
    );
    let (code, out) = iptables(&pod, &bin, "status", &config);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(
        get(&pod, None, "/latest/user-data").status,
        200,
        "still intercepted after remove"
    );

    let elapsed = started.elapsed();
    eprintln!("sidecar end-to-end test took {elapsed:.1?}");
    assert!(elapsed < Duration::from_secs(30), "took {elapsed:?}");
}
