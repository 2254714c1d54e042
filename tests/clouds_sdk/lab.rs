//! The harness of `tests/clouds_sdk.rs`: a namespace with a cloud's emulator and the real guard
//! ([`Lab`]), client scripts run in it with an environment of their own, and the guard's config.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;

use super::checks::{briefs, Report};
use crate::support::netns::{Daemon, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");
/// The emulator, inside each namespace.
pub const EMULATOR: &str = "127.0.0.1:8080";
/// The guard's admin port, inside each namespace.
pub const ADMIN: &str = "127.0.0.1:8182";
/// The guard's port for GCP, Azure and OCI (it listens on every address of the namespace).
pub const PORT: u16 = 8181;
/// `imds/prod-5c7b9`: allowed by the rule of each test.
pub const PROD: &str = "127.0.0.2";
/// `imds/test-6d8f`: selected by no rule.
pub const TEST: &str = "127.0.0.3";
/// Alibaba's metadata address, which its client cannot be told otherwise.
pub const ALIBABA: &str = "100.100.100.200";
/// Tencent's metadata address, `metadata.tencentyun.com`, which its client cannot be told
/// otherwise.
pub const TENCENT: &str = "169.254.0.23";
/// Tencent's metadata host name, as its client asks for it.
pub const TENCENT_HOST: &str = "metadata.tencentyun.com";
/// Huawei's metadata address (OpenStack's), which its client cannot be told otherwise.
pub const HUAWEI: &str = "169.254.169.254";
/// Linode's metadata address, its client's default.
pub const LINODE: &str = "169.254.169.254";
/// Linode's IPv6 metadata address: never reachable from the namespace.
pub const LINODE_V6: &str = "fd00:a9fe:a9fe::1";
/// How fast a refused client must give up. Generous: a client that retried a 403 with back-off
/// (as they do 404, 429 and 5xx) would take far longer.
pub const FAST: f64 = 5.0;
/// How long any one client run may take at all.
pub const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

// ---- the namespace: emulator, guard, clients ----

/// One namespace with a cloud's emulator and the guard in front of it.
pub struct Lab {
    cloud: &'static str,
    guard: Option<Daemon>,
    emulator: Daemon,
    /// Kills whatever still runs, deletes the namespace.
    ns: Netns,
    /// Dropped after the namespace: its `/etc/netns/NAME/`, when [`Lab::hosts`] made one.
    etc: Option<EtcNetns>,
}

/// `/etc/netns/NAME/`: files `ip netns exec` bind-mounts over their namesakes in `/etc` for
/// every command it runs in the namespace NAME. Removed when dropped, panics included, and
/// `/etc/netns` with it when this made it and nothing else is in it.
struct EtcNetns {
    dir: PathBuf,
    made_parent: bool,
}

impl Drop for EtcNetns {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if self.made_parent {
            // Fails, as it should, while another namespace's directory is there.
            let _ = std::fs::remove_dir(ETC_NETNS);
        }
    }
}

const ETC_NETNS: &str = "/etc/netns";

impl Lab {
    /// The namespace with the pods' addresses (and `extra`) on `lo`, and the emulator of
    /// `cloud` (`emulate_args` added) running and answering.
    pub fn new(cloud: &'static str, extra: &[&str], emulate_args: &[&str]) -> Lab {
        let mut addresses = vec!["127.0.0.2/32", "127.0.0.3/32"];
        addresses.extend_from_slice(extra);
        let ns = Netns::new(&format!("sdk-{cloud}"), &addresses);
        // Nothing but loopback: the real metadata addresses have no route, unless `extra` puts
        // one on `lo` (then it is local, and nothing sent to it leaves the namespace).
        for address in [
            "169.254.169.254",
            TENCENT,
            ALIBABA,
            "fd00:c1::a9fe:a9fe",
            "fd00:ec2::254",
            LINODE_V6,
        ] {
            let route = ns
                .command("ip")
                .args(["route", "get", address])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .output()
                .unwrap();
            let route_text = String::from_utf8_lossy(&route.stdout);
            if extra.contains(&format!("{address}/32").as_str()) {
                assert!(
                    route_text.starts_with("local ") && route_text.contains(" dev lo "),
                    "{address} is not local to the namespace: {route_text}"
                );
            } else {
                assert!(
                    !route.status.success(),
                    "the namespace has a route to {address}: {route_text}"
                );
            }
        }
        let mut command = ns.command(BIN);
        command
            .args(["emulate", "--cloud", cloud, "--listen", EMULATOR])
            .args(emulate_args)
            // One debug line per request it answers: what reached it.
            .env("RUST_LOG", "imds_guard_emulator=debug");
        let emulator = ns.spawn("emulator", command);
        assert!(
            ns.wait_http(&format!("http://{EMULATOR}/"), Duration::from_secs(10))
                .is_some(),
            "the {cloud} emulator did not start:\n{}",
            emulator.read_stderr()
        );
        Lab {
            cloud,
            guard: None,
            emulator,
            ns,
            etc: None,
        }
    }

    /// Gives the namespace a hosts file of its own, naming `entries` (`(address, name)`) besides
    /// `localhost`: `ip netns exec` puts `/etc/netns/NAME/hosts` in place of `/etc/hosts` for
    /// every command started after this. The machine's `/etc/hosts` is left alone.
    pub fn hosts(&mut self, entries: &[(&str, &str)]) {
        assert!(self.etc.is_none(), "the namespace has a hosts file already");
        let made_parent = !Path::new(ETC_NETNS).exists();
        let dir = Path::new(ETC_NETNS).join(&self.ns.name);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("cannot make {}: {e}", dir.display()));
        self.etc = Some(EtcNetns {
            dir: dir.clone(),
            made_parent,
        });
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (address, name) in entries {
            text.push_str(&format!("{address} {name}\n"));
        }
        std::fs::write(dir.join("hosts"), text).unwrap();
    }

    /// Starts the guard on `config` (a whole config file) and waits until it is ready.
    pub fn start_guard(&mut self, config: &str) {
        assert!(self.guard.is_none(), "a guard is running");
        let n = std::fs::read_dir(self.ns.dir()).unwrap().count();
        let path = self.ns.dir().join(format!("guard-{n}.toml"));
        std::fs::write(&path, config).unwrap();
        let mut command = self.ns.command(BIN);
        command.args(["run", "--config"]).arg(&path);
        let guard = self.ns.spawn(&format!("guard-{n}"), command);
        let ready = self
            .ns
            .wait_http(&format!("http://{ADMIN}/readyz"), Duration::from_secs(20));
        assert_eq!(
            ready,
            Some(200),
            "the guard did not become ready:\n{}\n{config}",
            guard.read_stderr()
        );
        self.guard = Some(guard);
    }

    /// Stops the guard (SIGTERM: it writes out every audit line) and gives its audit lines.
    pub fn stop_guard(&mut self) -> Vec<Value> {
        let guard = self.guard.take().expect("no guard running");
        assert!(
            guard.terminate(Duration::from_secs(20)),
            "the guard did not stop on SIGTERM:\n{}",
            guard.read_stderr()
        );
        guard
            .read_stdout()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not an audit line ({e}): {line}"))
            })
            .collect()
    }

    /// What reached the emulator so far, from its log: `METHOD path` (without the query).
    pub fn emulator_seen(&self) -> Vec<String> {
        self.emulator
            .read_stderr()
            .lines()
            .filter(|l| l.contains("metadata request"))
            .map(|l| {
                let field = |name: &str| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .unwrap_or("?")
                        .trim_matches('"')
                        .to_owned()
                };
                format!("{} {}", field("method="), field("path="))
            })
            .collect()
    }

    /// `GET path` straight from the emulator, with `headers`: what the clients should get.
    pub fn direct(&self, path: &str, headers: &[&str]) -> String {
        self.direct_method("GET", path, headers)
    }

    /// `METHOD path` straight from the emulator, with `headers`.
    pub fn direct_method(&self, method: &str, path: &str, headers: &[&str]) -> String {
        let mut command = self.ns.command("curl");
        command.args(["-s", "-f", "-m", "5", "-X", method]);
        for h in headers {
            command.args(["-H", h]);
        }
        let out = command
            .arg(format!("http://{EMULATOR}{path}"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the {} emulator did not answer {method} {path}: {}",
            self.cloud,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a client script of `tests/clouds_sdk/` in the namespace with only `env` set (and
    /// `HOME`, `PATH`, `LANG`), and reads its report.
    pub fn client(&self, script: &str, env: &[(&str, String)]) -> Report {
        let path = scripts().join(script);
        let interpreter = if script.ends_with(".js") {
            node()
        } else {
            python()
        };
        let run = next_run();
        let home = self.ns.dir().join(format!("home-{run}"));
        let bin = home.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let mut command = self.ns.command(interpreter);
        command
            .arg(&path)
            .env_clear()
            .env("HOME", &home)
            .env("PATH", &bin)
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1");
        for (name, value) in env {
            command.env(name, value);
        }
        let done = self
            .ns
            .run(&format!("{script}-{run}"), command, CLIENT_DEADLINE);
        assert!(
            !done.timed_out,
            "{script} ran for more than {CLIENT_DEADLINE:?}:\n{}",
            done.stderr
        );
        let line = done.stdout.lines().last().unwrap_or_default();
        let report: Value = serde_json::from_str(line).unwrap_or_else(|e| {
            panic!(
                "{script} reported nothing readable ({e}; {:?}):\n{}\n{}",
                done.status, done.stdout, done.stderr
            )
        });
        if let Some(missing) = report["missing"].as_str() {
            panic!("{script}: missing {missing}");
        }
        Report {
            script: script.to_owned(),
            value: report,
        }
    }
}

/// A distinct number for each client run (its home, its output files).
fn next_run() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

pub fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clouds_sdk")
}

/// The real python3 (not a shim that needs `PATH`), or a failure saying what to install.
pub fn python() -> &'static str {
    static PYTHON: OnceLock<String> = OnceLock::new();
    PYTHON.get_or_init(|| {
        interpreter(
            "python3",
            &["-c", "import sys; print(sys.executable)"],
            "apt-get install python3",
        )
    })
}

/// node, with this directory's packages installed; or a failure saying what to install.
pub fn node() -> &'static str {
    static NODE: OnceLock<String> = OnceLock::new();
    NODE.get_or_init(|| {
        let node = interpreter(
            "node",
            &["-p", "process.execPath"],
            "apt-get install nodejs npm",
        );
        let major = interpreter("node", &["-p", "process.versions.node.split('.')[0]"], "");
        assert!(
            major.parse::<u32>().is_ok_and(|m| m >= 20),
            "the npm clients need Node.js 20 or later, this is {major}"
        );
        assert!(
            scripts().join("node_modules/@azure/identity").is_dir()
                && scripts().join("node_modules/gcp-metadata").is_dir()
                && scripts().join("node_modules/google-auth-library").is_dir(),
            "the npm clients are not installed: run `npm ci` in {} (tests/run.sh does)",
            scripts().display()
        );
        node
    })
}

fn interpreter(name: &str, args: &[&str], install: &str) -> String {
    let out = Command::new(name)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{name} is missing ({e}): {install} (tests/run.sh does)"));
    assert!(out.status.success(), "{name} does not run: {install}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

// ---- configs ----

/// The guard's config for `cloud`, listening on `listen`, with the pods `(ip, name, app)` and
/// the rule `imds-prod` allowing `allow` to `app=prod` in the namespace `imds`.
pub fn config(cloud: &str, listen: &str, pods: &[(&str, &str, &str)], allow: &[&str]) -> String {
    let mut text = format!(
        r#"[server]
listen = "{listen}"
admin_listen = "{ADMIN}"

[upstream]
cloud = "{cloud}"
url = "http://{EMULATOR}"
connect_timeout_ms = 1000
timeout_ms = 5000
"#
    );
    for (ip, name, app) in pods {
        text.push_str(&format!(
            r#"
[[inventory.pods]]
ip = "{ip}"
namespace = "imds"
name = "{name}"
labels = {{ app = "{app}" }}
"#
        ));
    }
    text.push_str(&format!(
        r#"
[[rules]]
name = "imds-prod"
namespaces = ["imds"]
pod_labels = {{ app = "prod" }}
allow = [{}]
"#,
        crate::support::toml_list(allow)
    ));
    text
}

/// The seed pods: prod on 127.0.0.2, test on 127.0.0.3.
pub const SEED_PODS: &[(&str, &str, &str)] =
    &[(PROD, "prod-5c7b9", "prod"), (TEST, "test-6d8f", "test")];

pub fn listen_all() -> String {
    format!("0.0.0.0:{PORT}")
}

/// Runs the allowed client, then the denied one, and checks that the emulator was reached by
/// the first and not by the second. Gives both reports and the guard's audit lines.
pub fn allowed_then_denied(
    lab: &mut Lab,
    script: &str,
    env: impl Fn(&str) -> Vec<(&'static str, String)>,
) -> (Report, Report, Vec<Value>) {
    let before = lab.emulator_seen().len();
    let allowed = lab.client(script, &env(PROD));
    let after_allowed = lab.emulator_seen();
    assert!(
        after_allowed.len() > before,
        "{script}: the allowed client never reached the emulator"
    );
    let denied = lab.client(script, &env(TEST));
    let after_denied = lab.emulator_seen();
    assert_eq!(
        after_denied[after_allowed.len()..],
        [] as [String; 0],
        "{script}: the denied client's requests reached the emulator"
    );
    let audit = lab.stop_guard();
    // Shown with --nocapture, and with a failure.
    eprintln!(
        "{}{}audit:\n{}",
        allowed.summary(),
        denied.summary(),
        briefs(&audit.iter().collect::<Vec<_>>())
    );
    // Every request that reached the emulator was one the guard allowed and forwarded.
    let forwarded = audit.iter().filter(|e| !e["upstream_ms"].is_null()).count();
    assert_eq!(
        forwarded,
        after_allowed.len() - before,
        "{script}: the emulator saw {:?}\nthe guard forwarded:\n{}",
        &after_allowed[before..],
        briefs(&audit.iter().collect::<Vec<_>>())
    );
    (allowed, denied, audit)
}

/// For a client whose metadata address is fixed (`address`, on `lo`, the guard on port 80 of
/// it): the pod is whatever the guard's inventory says `address` is. Runs the client with
/// `address` as `imds/prod-5c7b9` (allowed by `allow`), then with the guard restarted with
/// `address` as `imds/test-6d8f` (selected by no rule), and checks that the emulator was reached
/// by the first, only with what the guard forwarded, and never by the second. Gives both reports
/// and each run's audit lines.
pub fn allowed_then_denied_at(
    lab: &mut Lab,
    address: &str,
    allow: &[&str],
    script: &str,
    env: &[(&str, String)],
) -> (Report, Report, Vec<Value>, Vec<Value>) {
    let cloud = lab.cloud;
    let listen = format!("{address}:80");
    let mut run = |name: &str, app: &str| {
        lab.start_guard(&config(cloud, &listen, &[(address, name, app)], allow));
        let before = lab.emulator_seen().len();
        let report = lab.client(script, env);
        let seen = lab.emulator_seen()[before..].to_vec();
        let audit = lab.stop_guard();
        eprintln!(
            "{}audit:\n{}emulator: {seen:?}",
            report.summary(),
            briefs(&audit.iter().collect::<Vec<_>>())
        );
        let forwarded = audit.iter().filter(|e| !e["upstream_ms"].is_null()).count();
        assert_eq!(
            forwarded,
            seen.len(),
            "{script} as {name}: the emulator saw {seen:?}\nthe guard forwarded:\n{}",
            briefs(&audit.iter().collect::<Vec<_>>())
        );
        (report, seen, audit)
    };
    let (allowed, seen, allowed_audit) = run("prod-5c7b9", "prod");
    assert!(
        !seen.is_empty(),
        "{script}: the allowed client never reached the emulator"
    );
    let (denied, seen, denied_audit) = run("test-6d8f", "test");
    assert_eq!(
        seen,
        [] as [String; 0],
        "{script}: the denied client's requests reached the emulator"
    );
    (allowed, denied, allowed_audit, denied_audit)
}
