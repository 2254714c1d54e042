//! The cgroup interception method for real: the guard's kernel programs attached to a pods'
//! cgroup this test made, pods that are network namespaces *and* cgroups named as kubelet names
//! them, and the metadata service (the emulator) in its own namespace at 169.254.169.254.
//!
//! ```text
//!  pod-a 10.200.1.2 ─ pod0 ┐ node  lo 10.199.0.1 (the guard: 10.199.0.1:8181)  ┌ up0 ─ imds 169.254.169.254
//!  pod-b 10.200.2.2 ─ pod1 ┘       admin 127.0.0.1:8182                       ┘     (imds-guard emulate)
//!  cgroups: <v2>/ig<pid>-<n>/kubepods/{burstable,besteffort}/pod<uid>/c0ffee    (cgroupfs driver)
//!           <v2>/ig<pid>-<n>/kubepods.slice/kubepods-<qos>.slice/…-pod<uid>.slice/… (systemd)
//! ```
//! The node forwards (ip_forward=1) and has no netfilter rule: without the hooks, every pod
//! reaches the service directly — which each test shows where it matters.
//!
//! Needs root, cgroup v2, `ip`, `nsenter`, `curl`, `python3` (with botocore for one check), a
//! bpffs; fails (never skips) naming what is missing. Programs are attached only to the test's
//! own cgroups and interfaces; every namespace, cgroup, bpffs mount and process is removed when a
//! test ends, panics included.

use crate::bypass_model;
use crate::cgroup_hooks;
use crate::netfilter_netns;

use std::path::{Path, PathBuf};
use std::time::Duration;

use bypass_model::attach_redirect;
use cgroup_hooks::{cgroupfs_pod, curl, run, spawn, systemd_pod, Bpffs, Cgroups, BIN};
use netfilter_netns::http::Got;
use netfilter_netns::{link, preflight, wait_until, Ns, Proc};

const INSTANCE_ID: &str = "i-0123456789abcdef0";
const UID_A: &str = "aaaaaaaa-0000-4000-8000-00000000000a";
const UID_B: &str = "bbbbbbbb-0000-4000-8000-00000000000b";
/// In a kubepods cgroup, in no inventory.
const UID_X: &str = "eeeeeeee-0000-4000-8000-00000000000e";
/// hostNetwork pods.
const UID_H: &str = "cccccccc-0000-4000-8000-00000000000c";
const UID_K: &str = "dddddddd-0000-4000-8000-00000000000d";
/// The guard's own pod.
const UID_G: &str = "99999999-0000-4000-8000-000000000009";

const IMDS: &str = "http://169.254.169.254/latest/meta-data/instance-id";

/// The seed recipe's rule (AWS paths).
const SEED: &str = r#"
[[rules]]
name = "seed"
pod_labels = { "allow-node-metadata-lookup" = "true" }
allow = ["/latest/**"]
"#;

/// The namespaces; dropped (deleted) last.
struct Topology {
    node: Ns,
    imds: Ns,
    pod_a: Ns,
    pod_b: Ns,
}

impl Topology {
    fn build() -> Topology {
        preflight(&[
            ("ip", "iproute2"),
            ("nsenter", "util-linux"),
            ("curl", "curl"),
            ("python3", "python3"),
            ("tc", "iproute2"),
        ]);
        let t = Topology {
            node: Ns::new("cg-node"),
            imds: Ns::new("cg-imds"),
            pod_a: Ns::new("cg-a"),
            pod_b: Ns::new("cg-b"),
        };
        link(
            &t.node,
            "up0 169.254.0.1/16",
            &t.imds,
            "eth0 169.254.169.254/16",
        );
        link(
            &t.node,
            "pod0 10.200.1.1/24",
            &t.pod_a,
            "eth0 10.200.1.2/24",
        );
        link(
            &t.node,
            "pod1 10.200.2.1/24",
            &t.pod_b,
            "eth0 10.200.2.2/24",
        );
        t.imds.sh("ip route add default via 169.254.0.1");
        t.pod_a.sh("ip route add default via 10.200.1.1");
        t.pod_b.sh("ip route add default via 10.200.2.1");
        t.node.sh("ip addr add 10.199.0.1/32 dev lo");
        t.node
            .ok(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
        t
    }

    fn start_imds(&self) -> Proc {
        let mut emulator = self
            .imds
            .spawn(&[BIN, "emulate", "--listen", "169.254.169.254:80"]);
        let up = wait_until(Duration::from_secs(10), || {
            curl(&self.imds, None, &[IMDS]).status == 200 || emulator.exited()
        });
        assert!(up && !emulator.exited(), "emulator:\n{}", emulator.output());
        emulator
    }
}

/// One test's node: its namespaces, the emulator, its pods' cgroups, its bpffs and a directory
/// for configs. Fields drop in order: the emulator first, the namespaces last.
struct Lab {
    _emulator: Option<Proc>,
    cgroups: Cgroups,
    bpf: Bpffs,
    dir: tempfile::TempDir,
    topology: Topology,
}

impl Lab {
    /// The topology, with the metadata service running when `imds`.
    fn new(imds: bool) -> Lab {
        let topology = Topology::build();
        Lab {
            _emulator: imds.then(|| topology.start_imds()),
            cgroups: Cgroups::new(),
            bpf: Bpffs::mount(),
            dir: tempfile::tempdir().unwrap(),
            topology,
        }
    }
}

/// The guard's config: the cgroup method on `pods_cgroup`, pins in `pins`, with `interception`
/// keys added to `[interception]` and `rest` after.
fn config(dir: &Path, pods_cgroup: &str, pins: &Path, interception: &str, rest: &str) -> PathBuf {
    let text = format!(
        r#"
[server]
listen = "10.199.0.1:8181"
admin_listen = "127.0.0.1:8182"

[upstream]
url = "http://169.254.169.254"
connect_timeout_ms = 500
timeout_ms = 2000

[interception]
method = "cgroup"
pods_cgroup = "{pods_cgroup}"
bpf_pin_dir = "{pins}/imds-guard"
interfaces = ["pod+"]
{interception}

[[inventory.pods]]
ip = "10.200.1.2"
namespace = "imds"
name = "prod-5c7b9"
uid = "{UID_A}"
labels = {{ "allow-node-metadata-lookup" = "true" }}

[[inventory.pods]]
ip = "10.200.2.2"
namespace = "imds"
name = "test-6d8f"
uid = "{UID_B}"

{SEED}{rest}
"#,
        pins = pins.display()
    );
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("guard-{n}.toml"));
    std::fs::write(&path, text).expect("write config");
    path
}

/// `run` in the node namespace (in `cgroup` when given, with `env`), once `/readyz` answers 200.
fn start_guard(t: &Topology, config: &Path, cgroup: Option<&Path>, env: &[&str]) -> Proc {
    let mut args: Vec<&str> = vec!["env"];
    args.extend_from_slice(env);
    let config = config.to_string_lossy();
    args.extend([BIN, "run", "--config", &config]);
    let mut guard = spawn(Some(&t.node), cgroup, &args);
    let ready = wait_until(Duration::from_secs(15), || {
        guard.exited() || curl(&t.node, None, &["http://127.0.0.1:8182/readyz"]).status == 200
    });
    assert!(
        ready && !guard.exited(),
        "the guard did not start:\n{}",
        guard.output()
    );
    guard
}

/// The audit lines the guard printed so far, parsed.
fn audit(guard: &Proc) -> Vec<serde_json::Value> {
    guard
        .output()
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The number of audit lines once no new one has come for 300 ms.
fn settled(guard: &Proc) -> usize {
    let mut last = audit(guard).len();
    loop {
        std::thread::sleep(Duration::from_millis(300));
        let now = audit(guard).len();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// Waits for the `n`th audit line and returns it.
fn audit_line(guard: &Proc, n: usize) -> serde_json::Value {
    assert!(
        wait_until(Duration::from_secs(3), || audit(guard).len() > n),
        "no audit line #{n}:\n{}",
        guard.output()
    );
    audit(guard)[n].clone()
}

fn interception(t: &Topology, action: &str, config: &Path) -> (Option<i32>, String) {
    let (code, out, err) = run(
        Some(&t.node),
        None,
        &[
            BIN,
            "interception",
            action,
            "--config",
            &config.to_string_lossy(),
        ],
    );
    (code, format!("{out}{err}"))
}

fn assert_guard_answered(got: &Got, status: u16, reason: &str) {
    assert_eq!(got.status, status, "{got:?}");
    assert!(
        got.body.contains(&format!("\"reason\":\"{reason}\"")),
        "{got:?}"
    );
}

#[test]
fn pods_are_redirected_at_connect_and_known_by_their_cgroup() {
    let lab = Lab::new(true);
    let (t, cgroups, bpf, dir) = (&lab.topology, &lab.cgroups, &lab.bpf, &lab.dir);
    let a = cgroups.make(&cgroupfs_pod("burstable", UID_A));
    let b = cgroups.make(&cgroupfs_pod("besteffort", UID_B));
    let x = cgroups.make(&cgroupfs_pod("guaranteed", UID_X));
    let pods = cgroups.rel("kubepods");

    // Before the guard: nothing stands between the pods and the service.
    let direct = curl(&t.pod_b, Some(&b), &[IMDS]);
    assert_eq!((direct.status, direct.body.as_str()), (200, INSTANCE_ID));

    let cfg = config(dir.path(), &pods, bpf.path(), "", "");
    let mut guard = start_guard(t, &cfg, None, &[]);

    // The seed scenario, IPv4: prod reads, test is refused — both by the guard.
    let got = curl(&t.pod_a, Some(&a), &[IMDS]);
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, INSTANCE_ID),
        "{}",
        guard.output()
    );
    let line = audit_line(&guard, 0);
    assert_eq!(line["pod"], "imds/prod-5c7b9");
    assert_eq!(line["identity"], "cgroup");
    assert_eq!(line["decision"], "allow");
    let got = curl(&t.pod_b, Some(&b), &[IMDS]);
    assert_guard_answered(&got, 403, "no-rule");
    assert_eq!(audit_line(&guard, 1)["pod"], "imds/test-6d8f");

    // The IPv4-mapped and IPv6 spellings go through the IPv6 hook to the same guard.
    for url in [
        "http://[::ffff:169.254.169.254]/latest/meta-data/instance-id",
        "http://[fd00:ec2::254]/latest/meta-data/instance-id",
    ] {
        let got = curl(&t.pod_a, Some(&a), &["-g", url]);
        assert_eq!(
            (got.status, got.body.as_str()),
            (200, INSTANCE_ID),
            "{url}: {got:?}"
        );
        let got = curl(&t.pod_b, Some(&b), &["-g", url]);
        assert_guard_answered(&got, 403, "no-rule");
    }
    audit_line(&guard, 5);
    assert!(audit(&guard).iter().all(|l| l["identity"] == "cgroup"));

    // The client sees the address it dialled, not the guard's.
    let script = "import socket\n\
        s = socket.create_connection(('169.254.169.254', 80), timeout=3)\n\
        print(*s.getpeername())\n\
        s6 = socket.socket(socket.AF_INET6); s6.settimeout(3)\n\
        s6.connect(('::ffff:169.254.169.254', 80)); print(s6.getpeername()[0], s6.getpeername()[1])\n\
        s6 = socket.socket(socket.AF_INET6); s6.settimeout(3)\n\
        s6.connect(('fd00:ec2::254', 80)); print(s6.getpeername()[0], s6.getpeername()[1])\n";
    let (code, out, err) = run(Some(&t.pod_a), Some(&a), &["python3", "-c", script]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert_eq!(
        out,
        "169.254.169.254 80\n::ffff:169.254.169.254 80\nfd00:ec2::254 80\n"
    );

    // botocore, the Python SDK's own IMDSv2 client, from the allowed pod.
    let sdk = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/botocore_imds.py");
    let (code, out, err) = run(
        Some(&t.pod_a),
        Some(&a),
        &[
            "sh",
            "-c",
            &format!("echo credentials | HOME=/nonexistent python3 {sdk}"),
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(!out.contains("\"error\""), "botocore: {out}");
    assert!(
        out.contains("\"has_secret\": true"),
        "botocore got no credentials: {out}{err}"
    );

    // A pod's cgroup with another pod's address: refused as identity-mismatch, naming the pod
    // the kernel named. (pod-b's cgroup, pod-a's network namespace and address.)
    let got = curl(&t.pod_a, Some(&b), &[IMDS]);
    assert_guard_answered(&got, 403, "identity-mismatch");
    assert!(got.body.contains("imds/test-6d8f"), "{got:?}");
    // A pod's cgroup the inventory does not know, and a connection that did not come through
    // the hooks (straight to the guard's listener): unknown sources.
    let got = curl(&t.pod_a, Some(&x), &[IMDS]);
    assert_guard_answered(&got, 403, "unknown-source");
    let got = curl(
        &t.pod_a,
        Some(&a),
        &["http://10.199.0.1:8181/latest/meta-data/instance-id"],
    );
    assert_guard_answered(&got, 403, "unknown-source");

    // A node process outside the pods' cgroup reaches the service directly; so does the guard's
    // own upstream traffic (the allowed reads above were forwarded to it).
    let before = settled(&guard);
    let got = curl(&t.node, None, &[IMDS]);
    assert_eq!((got.status, got.body.as_str()), (200, INSTANCE_ID));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(audit(&guard).len(), before, "a node process was redirected");

    // The guard crashes: the pinned programs stay, pods are refused, never served.
    guard.kill();
    let (code, out) = interception(t, "status", &cfg);
    assert_eq!(code, Some(0), "{out}");
    for hook in [
        "imds_connect4",
        "imds_connect6",
        "imds_getpeername4",
        "imds_getpeername6",
        "imds_sockops",
    ] {
        assert!(out.contains(&format!("link {hook} generation")), "{out}");
    }
    for (ns, cg) in [(&t.pod_a, &a), (&t.pod_b, &b)] {
        let got = curl(ns, Some(cg), &[IMDS]);
        assert_eq!((got.exit, got.status), (Some(7), 0), "not refused: {got:?}");
    }
    // Restarted: the same programs are found in place and serve again.
    let guard = start_guard(t, &cfg, None, &[]);
    let got = curl(&t.pod_a, Some(&a), &[IMDS]);
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, INSTANCE_ID),
        "{}",
        guard.output()
    );
    assert!(!guard.output().contains("replaced an older kernel program"));
    drop(guard);

    // `interception remove` is the only way out: every pin goes, and the pods reach the service
    // directly again.
    let (code, out) = interception(t, "remove", &cfg);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(bpf.files(), Vec::<PathBuf>::new());
    let (code, out) = interception(t, "status", &cfg);
    assert_eq!(code, Some(1), "{out}");
    let got = curl(&t.pod_b, Some(&b), &[IMDS]);
    assert_eq!((got.status, got.body.as_str()), (200, INSTANCE_ID));
}

#[test]
fn every_clouds_addresses_and_ports_are_intercepted() {
    let lab = Lab::new(false);
    let (t, cgroups, bpf, dir) = (&lab.topology, &lab.cgroups, &lab.bpf, &lab.dir);
    let b = cgroups.make(&cgroupfs_pod("burstable", UID_B));
    let pods = cgroups.rel("kubepods");
    let mut last = None;
    for cloud in imds_guard::cloud::ALL.map(|c| c.as_str()) {
        let cfg = config(dir.path(), &pods, bpf.path(), "", "");
        // The cloud goes in [upstream]; no rule: AWS's paths are no other cloud's, and no pod
        // is to be allowed anything here.
        let text = std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(
                "[upstream]\n",
                &format!("[upstream]\ncloud = \"{cloud}\"\n"),
            )
            .replace(SEED, "");
        std::fs::write(&cfg, text).unwrap();
        let guard = start_guard(t, &cfg, None, &[]);
        let cloud: imds_guard::cloud::Cloud = cloud.parse().unwrap();
        let targets = imds_guard::cgroup::targets(cloud);
        assert!(!targets.is_empty());
        for target in targets {
            let ip = target.addr.to_canonical();
            let host = match ip {
                std::net::IpAddr::V4(v4) => v4.to_string(),
                std::net::IpAddr::V6(v6) => format!("[{v6}]"),
            };
            let url = format!("http://{host}:{}/", target.port);
            let got = curl(&t.pod_b, Some(&b), &["-g", &url]);
            match target.action {
                // The guard answers (pod-b is allowed nothing): nothing else listens there.
                imds_guard::cgroup::Action::Redirect => {
                    assert!(
                        got.body.contains("\"reason\""),
                        "{cloud} {url}: {got:?}\n{}",
                        guard.output()
                    );
                }
                // Refused at connect (EPERM): curl cannot connect.
                imds_guard::cgroup::Action::Refuse => {
                    assert_eq!(
                        (got.exit, got.status),
                        (Some(7), 0),
                        "{cloud} {url}: {got:?}"
                    );
                }
            }
            // The IPv4-mapped spelling of an IPv4 target, from an IPv6 socket.
            if let std::net::IpAddr::V4(v4) = ip {
                let mapped = format!("http://[::ffff:{v4}]:{}/", target.port);
                let again = curl(&t.pod_b, Some(&b), &["-g", &mapped]);
                assert_eq!(
                    (again.exit, again.status),
                    (got.exit, got.status),
                    "{cloud} {mapped}"
                );
            }
        }
        drop(guard);
        last = Some(cfg);
    }
    let (code, out) = interception(t, "remove", &last.unwrap());
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(bpf.files(), Vec::<PathBuf>::new());
}

#[test]
fn host_network_pods_pass_by_default_and_are_guarded_on_request() {
    let lab = Lab::new(true);
    let (t, cgroups, bpf, dir) = (&lab.topology, &lab.cgroups, &lab.bpf, &lab.dir);
    // The systemd driver's layout this time.
    let h = cgroups.make(&systemd_pod("besteffort", UID_H));
    let k = cgroups.make(&systemd_pod("burstable", UID_K));
    let g = cgroups.make(&systemd_pod("guaranteed", UID_G));
    let b = cgroups.make(&systemd_pod("burstable", UID_B));
    let pods = cgroups.rel("kubepods.slice");
    let host_pods = format!(
        r#"
[[inventory.pods]]
host_network = true
namespace = "kube-system"
name = "cloud-agent"
uid = "{UID_H}"
labels = {{ "allow-node-metadata-lookup" = "true" }}

[[inventory.pods]]
host_network = true
namespace = "kube-system"
name = "cni-agent"
uid = "{UID_K}"
"#
    );

    // Off (the default): hostNetwork pods' connects are left alone, though they are in the
    // pods' cgroup; ordinary pods are guarded.
    let cfg = config(dir.path(), &pods, bpf.path(), "", &host_pods);
    let guard = start_guard(t, &cfg, None, &[]);
    let got = curl(&t.node, Some(&h), &[IMDS]);
    assert_eq!((got.status, got.body.as_str()), (200, INSTANCE_ID));
    let got = curl(&t.pod_b, Some(&b), &[IMDS]);
    assert_guard_answered(&got, 403, "no-rule");
    audit_line(&guard, 0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(audit(&guard).len(), 1, "{}", guard.output());
    drop(guard);

    // On: they are redirected and known by their cgroup alone (their address is the node's).
    // The guard itself runs in a pod cgroup with the hooks on it, as a hostNetwork DaemonSet
    // pod does: its own upstream connections must not come back to it.
    let cfg = config(
        dir.path(),
        &pods,
        bpf.path(),
        "host_network_pods = true",
        &host_pods,
    );
    let pod_uid = format!("POD_UID={UID_G}");
    let guard = start_guard(t, &cfg, Some(&g), &[&pod_uid]);
    let got = curl(&t.node, Some(&h), &[IMDS]);
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, INSTANCE_ID),
        "{}",
        guard.output()
    );
    let line = audit_line(&guard, 0);
    assert_eq!(
        (
            line["pod"].as_str(),
            line["identity"].as_str(),
            line["src"].as_str()
        ),
        (
            Some("kube-system/cloud-agent"),
            Some("cgroup"),
            Some("10.199.0.1")
        )
    );
    let got = curl(&t.node, Some(&k), &[IMDS]);
    assert_guard_answered(&got, 403, "no-rule");
    // Node processes outside the pods' cgroup still pass.
    let got = curl(&t.node, None, &[IMDS]);
    assert_eq!((got.status, got.body.as_str()), (200, INSTANCE_ID));
    audit_line(&guard, 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(audit(&guard).len(), 2, "{}", guard.output());
    drop(guard);
    let (code, out) = interception(t, "remove", &cfg);
    assert_eq!(code, Some(0), "{out}");
}

/// Tcp InSegs of the imds namespace: segments that reached the service's stack.
fn tcp_in_segs(imds: &Ns) -> u64 {
    let snmp = imds.ok(&["cat", "/proc/net/snmp"]);
    let mut tcp = snmp.lines().filter(|l| l.starts_with("Tcp:"));
    let (names, values) = (tcp.next().unwrap(), tcp.next().unwrap());
    let at = names.split(' ').position(|n| n == "InSegs").unwrap();
    values.split(' ').nth(at).unwrap().parse().unwrap()
}

/// Five hand-made TCP SYNs from a raw socket to 169.254.169.254:80: no connect() is made, so
/// the connect hooks never see them.
const RAW_SYN: &str = r#"
import socket, struct
src, dst = "10.200.1.2", "169.254.169.254"
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for _ in range(5):
    s.sendto(tcp, (dst, 0))
"#;

#[test]
fn the_backstop_drops_raw_packets_to_the_service() {
    let lab = Lab::new(true);
    let (t, cgroups, bpf, dir) = (&lab.topology, &lab.cgroups, &lab.bpf, &lab.dir);
    let a = cgroups.make(&cgroupfs_pod("burstable", UID_A));
    let pods = cgroups.rel("kubepods");
    let raw_syns_arriving = || {
        let before = tcp_in_segs(&t.imds);
        let (code, out, err) = run(Some(&t.pod_a), Some(&a), &["python3", "-c", RAW_SYN]);
        assert_eq!(code, Some(0), "{out}{err}");
        std::thread::sleep(Duration::from_millis(300));
        tcp_in_segs(&t.imds) - before
    };

    // Without the backstop, a raw socket goes around the connect hooks.
    let cfg = config(dir.path(), &pods, bpf.path(), "backstop = false", "");
    let guard = start_guard(t, &cfg, None, &[]);
    assert!(
        raw_syns_arriving() >= 5,
        "the raw SYNs did not reach the service"
    );
    drop(guard);

    // With it (the default), they die on the pod's interface; redirected connects still work.
    let cfg = config(dir.path(), &pods, bpf.path(), "", "");
    let guard = start_guard(t, &cfg, None, &[]);
    let (code, out) = interception(t, "status", &cfg);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("backstop pod0@"), "{out}");
    assert_eq!(
        raw_syns_arriving(),
        0,
        "raw SYNs reached the service past the backstop"
    );
    let got = curl(&t.pod_a, Some(&a), &[IMDS]);
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, INSTANCE_ID),
        "{}",
        guard.output()
    );
    drop(guard);
    let (code, out) = interception(t, "remove", &cfg);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(bpf.files(), Vec::<PathBuf>::new());
    assert!(
        raw_syns_arriving() >= 5,
        "remove left the backstop in place"
    );
}

#[test]
fn a_bpf_dataplane_that_skips_netfilter_cannot_skip_the_hooks() {
    bypass_model::check_prerequisites(&[("nsenter", "util-linux")]);
    let lab = Lab::new(true);
    let (t, cgroups, bpf, dir) = (&lab.topology, &lab.cgroups, &lab.bpf, &lab.dir);
    let a = cgroups.make(&cgroupfs_pod("burstable", UID_A));
    let b = cgroups.make(&cgroupfs_pod("burstable", UID_B));
    let pods = cgroups.rel("kubepods");

    // The pods' packets to the service leave through the uplink from tc, as Cilium's BPF host
    // routing sends them: nothing in the node's netfilter could catch them.
    let redirect = attach_redirect(&t.node, "pod1", "up0");
    let got = curl(&t.pod_b, Some(&b), &[IMDS]);
    assert_eq!(
        (got.status, got.body.as_str()),
        (200, INSTANCE_ID),
        "the model does not bypass"
    );

    let cfg = config(dir.path(), &pods, bpf.path(), "", "");
    let guard = start_guard(t, &cfg, None, &[]);
    let got = curl(&t.pod_b, Some(&b), &[IMDS]);
    assert_guard_answered(&got, 403, "no-rule");
    assert_eq!(audit_line(&guard, 0)["identity"], "cgroup");
    // The canary, as a pod on that node: the guard answered it.
    let (code, out, err) = run(Some(&t.pod_b), Some(&b), &[BIN, "canary", "--once"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let got = curl(&t.pod_a, Some(&a), &[IMDS]);
    assert_eq!((got.status, got.body.as_str()), (200, INSTANCE_ID));
    drop(guard);
    redirect.detach();
    let (code, out) = interception(t, "remove", &cfg);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn an_upgrade_swaps_the_programs_without_a_window() {
    let lab = Lab::new(true);
    let (t, cgroups, bpf, dir) = (&lab.topology, &lab.cgroups, &lab.bpf, &lab.dir);
    let b = cgroups.make(&cgroupfs_pod("burstable", UID_B));
    let pods = cgroups.rel("kubepods");
    let cfg = config(dir.path(), &pods, bpf.path(), "", "");

    // An older guard's programs in place: the same maps, another generation of links.
    let config = imds_guard::config::load(&cfg).unwrap();
    let plan = imds_guard::interception::plan(&config).unwrap();
    let kernel = &plan.pin_dir;
    let mut ebpf = imds_guard::interception::kernel::load(kernel).unwrap();
    imds_guard::interception::kernel::configure(&mut ebpf, &plan.settings, &plan.targets, &[])
        .unwrap();
    imds_guard::interception::kernel::attach(&mut ebpf, kernel, &plan.pods_dir, "0-older").unwrap();
    drop(ebpf);
    let (code, out) = interception(t, "status", &cfg);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("generation 0-older"), "{out}");

    // A pod dials the service all along (nothing listens yet: refused), while the new guard
    // starts and swaps the programs. Not one of its connects may reach the service.
    let mut pod_loop = spawn(
        Some(&t.pod_b),
        Some(&b),
        &[
            "sh",
            "-c",
            "end=$(($(date +%s) + 4)); while [ $(date +%s) -lt $end ]; do \
             curl -s -m 1 http://169.254.169.254/latest/meta-data/instance-id; echo; done",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    let guard = start_guard(t, &cfg, None, &[]);
    assert!(
        guard.output().contains("replaced an older kernel program"),
        "{}",
        guard.output()
    );
    let (code, out) = interception(t, "status", &cfg);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("0-older"), "{out}");
    assert!(wait_until(Duration::from_secs(6), || pod_loop.exited()));
    let seen = pod_loop.output();
    assert!(
        !seen.contains(INSTANCE_ID),
        "a connect reached the service during the upgrade:\n{seen}"
    );
    assert!(
        seen.contains("\"reason\":\"no-rule\""),
        "the new guard never answered:\n{seen}"
    );
    drop(guard);
    let (code, out) = interception(t, "remove", &cfg);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn run_refuses_a_node_where_the_method_cannot_work() {
    // A namespace with the listener's address, so that the guard gets as far as the checks.
    let node = Ns::new("cg-refuse");
    node.sh("ip addr add 10.199.0.1/32 dev lo");
    let dir = tempfile::tempdir().unwrap();
    let bpf = Bpffs::mount();
    let not_cgroup = dir.path().join("not-cgroup");
    std::fs::create_dir(&not_cgroup).unwrap();
    let base = |interception: &str| {
        format!(
            "[server]\nlisten = \"10.199.0.1:8181\"\n[interception]\nmethod = \"cgroup\"\n\
             bpf_pin_dir = \"{}/imds-guard\"\n{interception}\n",
            bpf.path().display()
        )
    };
    let v2 = cgroup_hooks::v2_mount();
    let hybrid = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - cgroup cgroup ");
    let mut cases = vec![
        (
            base(&format!("cgroup_root = \"{}\"", not_cgroup.display())),
            "is not a cgroup v2 hierarchy".to_owned(),
        ),
        (
            base("pods_cgroup = \"no-such-kubepods\""),
            "the pods' cgroup".to_owned(),
        ),
    ];
    // This machine has no kubelet: with nothing set, no pods' cgroup is found, and a hybrid
    // v1/v2 node is named as the reason.
    if v2.join("kubepods.slice").exists() || v2.join("kubepods").exists() {
        panic!("this machine runs kubelet's pods: the test needs a node without them");
    }
    cases.push((
        base(""),
        if hybrid {
            "hybrid cgroup v1/v2 node".to_owned()
        } else {
            "set [interception] pods_cgroup".to_owned()
        },
    ));
    for (text, want) in cases {
        let path = dir.path().join("c.toml");
        std::fs::write(&path, &text).unwrap();
        let (code, out, err) = run(
            Some(&node),
            None,
            &[BIN, "run", "--config", &path.to_string_lossy()],
        );
        assert_eq!(code, Some(1), "{text}\n{out}{err}");
        assert!(
            err.contains("[interception] method = \"cgroup\": "),
            "{err}"
        );
        assert!(err.contains(&want), "{text}: want {want:?} in\n{err}");
        // Refused before anything was loaded or pinned, and never served by another method.
        assert_eq!(bpf.files(), Vec::<PathBuf>::new());
        assert!(!err.contains("imds-guard serving"), "{err}");
    }
}
