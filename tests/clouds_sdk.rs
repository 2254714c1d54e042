//! Real client libraries of every cloud other than AWS, through the real guard binary, against
//! that cloud's emulator (`imds-guard emulate --cloud X`), each pointed at the guard by its own
//! documented override (`tests/clouds_sdk/*.py`, `*.js`):
//!
//! | cloud   | clients                                             | override                          |
//! |---------|-----------------------------------------------------|-----------------------------------|
//! | GCP     | google-auth (PyPI); gcp-metadata, google-auth-library (npm) | `GCE_METADATA_HOST`, `GCE_METADATA_IP` |
//! | Azure   | azure-identity (PyPI); @azure/identity (npm)        | `AZURE_POD_IDENTITY_AUTHORITY_HOST` |
//! | OCI     | oci (PyPI), the instance principal signer           | `OCI_METADATA_BASE_URL`           |
//! | Alibaba | alibabacloud-credentials (PyPI), ECS RAM role       | none: the guard is 100.100.100.200:80 |
//!
//! Everything — emulator, guard, client — runs in a network namespace of its own that holds only
//! loopback, so a client that ignores its override finds no route to a real metadata address,
//! and no test can send a packet to one. Pods are loopback addresses: with `127.0.0.2/32` and
//! `127.0.0.3/32` on `lo`, a connection to one of them leaves from it, so a client pointed at
//! `127.0.0.2:8181` is the pod `imds/prod-5c7b9` (allowed by the test's rule) and one pointed at
//! `127.0.0.3:8181` is `imds/test-6d8f` (selected by no rule): the seed scenario. Alibaba's
//! client connects to 100.100.100.200 (on `lo` too) and so speaks from it: that address is `prod`
//! in one run of the guard and `test` in the next.
//!
//! Each test shows: the allowed pod's client gets its token or data (checked against what the
//! emulator itself serves); the denied pod's fails cleanly (an error naming the 403) and fast; the
//! guard's audit lines show each request with its decision and reason; the emulator is reached
//! while the allowed client runs and never while the denied one does.
//!
//! Clients run with an environment of their own: no cloud settings from outside, `HOME` an empty
//! directory, and `PATH` an empty directory (no `gcloud` or other CLI to answer in the metadata
//! server's place; google-auth-library runs `gcloud` to find a project when it can).
//!
//! Needs root (namespaces), `ip`, `curl`, python3 with google-auth, azure-identity, oci and
//! alibabacloud-credentials, and node with `tests/clouds_sdk/node_modules` (`npm ci`): all
//! installed by `tests/run.sh`. A missing one fails the test, naming what to install.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::Value;
use support::netns::{Daemon, Netns};

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");
/// The emulator, inside each namespace.
const EMULATOR: &str = "127.0.0.1:8080";
/// The guard's admin port, inside each namespace.
const ADMIN: &str = "127.0.0.1:8182";
/// The guard's port for GCP, Azure and OCI (it listens on every address of the namespace).
const PORT: u16 = 8181;
/// `imds/prod-5c7b9`: allowed by the rule of each test.
const PROD: &str = "127.0.0.2";
/// `imds/test-6d8f`: selected by no rule.
const TEST: &str = "127.0.0.3";
/// Alibaba's metadata address, which its client cannot be told otherwise.
const ALIBABA: &str = "100.100.100.200";
/// How fast a refused client must give up. Generous: a client that retried a 403 with back-off
/// (as they do 404, 429 and 5xx) would take far longer.
const FAST: f64 = 5.0;
/// How long any one client run may take at all.
const CLIENT_DEADLINE: Duration = Duration::from_secs(120);

// ---- the namespace: emulator, guard, clients ----

/// One namespace with a cloud's emulator and the guard in front of it.
struct Lab {
    cloud: &'static str,
    guard: Option<Daemon>,
    emulator: Daemon,
    /// Dropped last: kills whatever still runs, deletes the namespace.
    ns: Netns,
}

impl Lab {
    /// The namespace with the pods' addresses (and `extra`) on `lo`, and the emulator of
    /// `cloud` (`emulate_args` added) running and answering.
    fn new(cloud: &'static str, extra: &[&str], emulate_args: &[&str]) -> Lab {
        let mut addresses = vec!["127.0.0.2/32", "127.0.0.3/32"];
        addresses.extend_from_slice(extra);
        let ns = Netns::new(&format!("sdk-{cloud}"), &addresses);
        // Nothing but loopback: the real metadata addresses have no route.
        for address in ["169.254.169.254", "fd00:c1::a9fe:a9fe", "fd00:ec2::254"] {
            let route = ns
                .command("ip")
                .args(["route", "get", address])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .unwrap();
            assert!(!route.success(), "the namespace has a route to {address}");
        }
        let mut command = ns.command(BIN);
        command
            .args(["emulate", "--cloud", cloud, "--listen", EMULATOR])
            .args(emulate_args)
            // One debug line per request it answers: what reached it.
            .env("RUST_LOG", "imds_guard::emulator=debug");
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
        }
    }

    /// Starts the guard on `config` (a whole config file) and waits until it is ready.
    fn start_guard(&mut self, config: &str) {
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
    fn stop_guard(&mut self) -> Vec<Value> {
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
    fn emulator_seen(&self) -> Vec<String> {
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
    fn direct(&self, path: &str, headers: &[&str]) -> String {
        let mut command = self.ns.command("curl");
        command.args(["-s", "-f", "-m", "5"]);
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
            "the {} emulator did not answer {path}: {}",
            self.cloud,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a client script of `tests/clouds_sdk/` in the namespace with only `env` set (and
    /// `HOME`, `PATH`, `LANG`), and reads its report.
    fn client(&self, script: &str, env: &[(&str, String)]) -> Report {
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

fn scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clouds_sdk")
}

/// The real python3 (not a shim that needs `PATH`), or a failure saying what to install.
fn python() -> &'static str {
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
fn node() -> &'static str {
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

// ---- what a client reported ----

/// A client's report: `{"client": {..versions}, "steps": {NAME: {"ok": ..} | {"error": ..}}}`.
struct Report {
    script: String,
    value: Value,
}

impl Report {
    fn step(&self, name: &str) -> &Value {
        let step = &self.value["steps"][name];
        assert!(
            !step.is_null(),
            "{}: no step {name}:\n{:#}",
            self.script,
            self.value
        );
        step
    }

    /// The value of a step that must have succeeded.
    fn ok(&self, name: &str) -> &Value {
        let step = self.step(name);
        assert!(
            step.get("ok").is_some(),
            "{}: {name} failed: {}\n{}",
            self.script,
            step["error"],
            step["trace"].as_str().unwrap_or_default()
        );
        &step["ok"]
    }

    /// The error of a step that must have failed, fast, with every word of `words` in its
    /// message (or in one it was raised from).
    fn refused(&self, name: &str, words: &[&str]) -> String {
        let step = self.step(name);
        assert!(
            step.get("ok").is_none(),
            "{}: {name} succeeded for a denied pod: {:#}",
            self.script,
            step["ok"]
        );
        let text = format!("{} {} {}", step["error"], step["chain"], step["status"]);
        for word in words {
            assert!(
                text.contains(word),
                "{}: {name} failed without {word:?}: {text}",
                self.script
            );
        }
        let seconds = step["seconds"].as_f64().unwrap();
        assert!(
            seconds < FAST,
            "{}: {name} took {seconds:.1} s to fail (a retried refusal?): {text}",
            self.script
        );
        step["error"].as_str().unwrap().to_owned()
    }

    fn versions(&self) -> String {
        self.value["client"].to_string()
    }

    /// Each step in short: what it gave or how it failed, and how long it took.
    fn summary(&self) -> String {
        let mut out = format!("{} {}\n", self.script, self.versions());
        if let Some(steps) = self.value["steps"].as_object() {
            for (name, step) in steps {
                let what = match step.get("ok") {
                    Some(ok) => format!("ok {ok}"),
                    None => format!("error {}", step["error"]),
                };
                let what: String = what.chars().take(240).collect();
                out.push_str(&format!(
                    "  {name} ({:.2} s): {what}\n",
                    step["seconds"].as_f64().unwrap_or(-1.0)
                ));
            }
        }
        out
    }
}

// ---- audit lines ----

fn text<'a>(event: &'a Value, name: &str) -> &'a str {
    event[name].as_str().unwrap_or("null")
}

/// One audit line in short.
fn brief(event: &Value) -> String {
    format!(
        "{} {} {} {} {} {} rule={}",
        text(event, "src"),
        text(event, "method"),
        text(event, "path"),
        event["status"],
        text(event, "decision"),
        text(event, "reason"),
        text(event, "rule"),
    )
}

fn briefs(events: &[&Value]) -> String {
    events.iter().map(|e| format!("  {}\n", brief(e))).collect()
}

/// The lines of requests from `src`.
fn from<'a>(events: &'a [Value], src: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| text(e, "src") == src).collect()
}

/// Whether the line is of `target`: its path, and its query too when `target` has one (the audit
/// line has the canonical target, query included).
fn seen_as(event: &Value, target: &str) -> bool {
    let seen = text(event, "path");
    if target.contains('?') {
        seen == target
    } else {
        seen.split('?').next() == Some(target)
    }
}

/// The lines of allowed requests, and the others.
fn split_refused<'a>(events: &[&'a Value]) -> (Vec<&'a Value>, Vec<&'a Value>) {
    events.iter().partition(|e| text(e, "decision") == "allow")
}

/// Every line is an allowed request of `imds/prod-5c7b9`, by the rule `imds-prod`, and `paths`
/// are among them.
fn assert_allowed(events: &[&Value], paths: &[&str]) {
    assert!(!events.is_empty(), "no audit lines of the allowed pod");
    for e in events {
        assert!(
            text(e, "decision") == "allow"
                && text(e, "pod") == "imds/prod-5c7b9"
                && text(e, "rule") == "imds-prod",
            "a request of the allowed pod was not allowed by its rule:\n{}",
            briefs(events)
        );
    }
    for path in paths {
        assert!(
            events.iter().any(|e| seen_as(e, path)),
            "no audit line of {path}:\n{}",
            briefs(events)
        );
    }
}

/// Every line is a refusal of `pod` with 403 and `reason`; there is at least one.
fn assert_denied(events: &[&Value], pod: &str, reason: &str) {
    assert!(!events.is_empty(), "no audit lines of the denied pod");
    for e in events {
        assert!(
            text(e, "decision") == "deny"
                && e["status"] == 403
                && text(e, "reason") == reason
                && text(e, "pod") == pod
                && e["upstream_ms"].is_null(),
            "a request of {pod} was not refused with 403 {reason}:\n{}",
            briefs(events)
        );
    }
}

// ---- configs ----

/// The guard's config for `cloud`, listening on `listen`, with the pods `(ip, name, app)` and
/// the rule `imds-prod` allowing `allow` to `app=prod` in the namespace `imds`.
fn config(cloud: &str, listen: &str, pods: &[(&str, &str, &str)], allow: &[&str]) -> String {
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
    let allow: Vec<String> = allow.iter().map(|p| format!("{p:?}")).collect();
    text.push_str(&format!(
        r#"
[[rules]]
name = "imds-prod"
namespaces = ["imds"]
pod_labels = {{ app = "prod" }}
allow = [{}]
"#,
        allow.join(", ")
    ));
    text
}

/// The seed pods: prod on 127.0.0.2, test on 127.0.0.3.
const SEED_PODS: &[(&str, &str, &str)] =
    &[(PROD, "prod-5c7b9", "prod"), (TEST, "test-6d8f", "test")];

fn listen_all() -> String {
    format!("0.0.0.0:{PORT}")
}

/// Runs the allowed client, then the denied one, and checks that the emulator was reached by
/// the first and not by the second. Gives both reports and the guard's audit lines.
fn allowed_then_denied(
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

// ---- GCP ----

const GCP_ALLOW: &[&str] = &[
    "/",
    "/computeMetadata/v1/project/project-id",
    "/computeMetadata/v1/instance/id",
    "/computeMetadata/v1/universe/universe-domain",
    // Whole: the service account's info is read with recursive=true, which the guard allows only
    // when everything below it is allowed.
    "/computeMetadata/v1/instance/service-accounts/**",
    // Identity tokens are concealed unless an allow names them: for this audience only.
    "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://service.example",
];
const GOOGLE: &str = "Metadata-Flavor: Google";
const AUDIENCE: &str = "https://service.example";

fn gcp_env(pod: &str) -> Vec<(&'static str, String)> {
    let host = format!("{pod}:{PORT}");
    vec![
        ("GCE_METADATA_HOST", host.clone()),
        ("GCE_METADATA_IP", host),
        ("GCE_METADATA_MTLS_MODE", "none".to_owned()),
        ("METADATA_SERVER_DETECTION", "assume-present".to_owned()),
    ]
}

fn gcp_lab() -> Lab {
    let mut lab = Lab::new("gcp", &[], &[]);
    lab.start_guard(&config("gcp", &listen_all(), SEED_PODS, GCP_ALLOW));
    lab
}

/// An ID token's claims, unverified.
fn assert_id_token(got: &Value, audience: &str) {
    let claims = &got["claims"];
    assert_eq!(claims["aud"], audience, "{got}");
    assert!(
        claims["exp"].as_u64().unwrap_or(0) > now(),
        "an expired ID token: {got}"
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn gcp_google_auth_python_gets_tokens_for_the_allowed_pod_only() {
    let mut lab = gcp_lab();
    let project = lab.direct("/computeMetadata/v1/project/project-id", &[GOOGLE]);
    let email = lab.direct(
        "/computeMetadata/v1/instance/service-accounts/default/email",
        &[GOOGLE],
    );
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "google_auth.py", gcp_env);

    // google.auth.default(): the ping on GCE_METADATA_IP, then the project.
    let default = allowed.ok("default");
    assert_eq!(default["class"], "Credentials", "{default}");
    assert_eq!(default["project"], project.as_str());
    let token = allowed.ok("token");
    assert!(
        token["token"].as_str().unwrap().starts_with("ya29."),
        "{token}"
    );
    assert_eq!(token["valid"], true);
    assert_eq!(token["service_account"], email.as_str());
    // No universe-domain in the emulator's tree: 404, which google-auth reads as the default.
    assert_eq!(allowed.ok("universe"), "googleapis.com");
    assert_id_token(allowed.ok("id_token"), AUDIENCE);
    allowed.refused("id_token_other_audience", &["403", "concealed-path"]);

    // The denied pod: not on GCE as far as default() can tell (its ping is refused), and every
    // read fails on the 403.
    denied.refused("default", &["DefaultCredentialsError"]);
    denied.refused("token", &["RefreshError", "403"]);
    denied.refused("universe", &["403"]);
    denied.refused("id_token", &["403"]);
    denied.refused("id_token_other_audience", &["403"]);

    let v1 = "/computeMetadata/v1";
    let (prod, other_audience) = split_refused(&from(&audit, PROD));
    assert_denied(&other_audience, "imds/prod-5c7b9", "concealed-path");
    assert_allowed(
        &prod,
        &[
            "/",
            &format!("{v1}/project/project-id"),
            &format!("{v1}/instance/service-accounts/default/?recursive=true"),
            &format!("{v1}/instance/service-accounts/default/token"),
            &format!("{v1}/instance/service-accounts/default/identity"),
            &format!("{v1}/universe/universe-domain"),
        ],
    );
    assert_denied(&from(&audit, TEST), "imds/test-6d8f", "no-rule");
    eprintln!("clients: {} — {}", allowed.versions(), allowed.script);
}

#[test]
fn gcp_gcp_metadata_and_google_auth_library_node_get_data_and_tokens_for_the_allowed_pod_only() {
    let mut lab = gcp_lab();
    let project = lab.direct("/computeMetadata/v1/project/project-id", &[GOOGLE]);
    let id = lab.direct("/computeMetadata/v1/instance/id", &[GOOGLE]);
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "gcp_metadata.js", gcp_env);

    assert_eq!(allowed.ok("instance_id"), id.as_str());
    assert_eq!(allowed.ok("project_id"), project.as_str());
    let token = allowed.ok("metadata_token");
    assert!(
        token["token"].as_str().unwrap().starts_with("ya29."),
        "{token}"
    );
    assert!(token["expires_in"].as_u64().unwrap() > 60, "{token}");
    let client = allowed.ok("auth_client");
    assert_eq!(client["class"], "Compute", "{client}");
    assert_eq!(client["project"], project.as_str());
    assert!(allowed.ok("auth_token")["token"]
        .as_str()
        .unwrap()
        .starts_with("ya29."));
    assert_id_token(allowed.ok("auth_id_token"), AUDIENCE);

    for step in ["instance_id", "project_id", "metadata_token"] {
        denied.refused(step, &["403"]);
    }
    // google-auth-library takes the refused project lookup for "no project here".
    denied.refused("auth_client", &["Unable to detect a Project Id"]);
    denied.refused("auth_token", &["403"]);
    denied.refused("auth_id_token", &["403"]);

    let v1 = "/computeMetadata/v1";
    assert_allowed(
        &from(&audit, PROD),
        &[
            &format!("{v1}/instance/id"),
            &format!("{v1}/project/project-id"),
            &format!("{v1}/instance/service-accounts/default/token"),
            &format!("{v1}/instance/service-accounts/default/identity"),
        ],
    );
    assert_denied(&from(&audit, TEST), "imds/test-6d8f", "no-rule");
    eprintln!("clients: {}", allowed.versions());
}

// ---- Azure ----

/// Tokens for Key Vault only: any other resource is refused by the query constraint.
const AZURE_ALLOW: &[&str] = &["/metadata/identity/oauth2/token?resource=https://vault.azure.net"];

fn azure_env(pod: &str) -> Vec<(&'static str, String)> {
    vec![(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://{pod}:{PORT}"),
    )]
}

fn azure_lab() -> Lab {
    let mut lab = Lab::new("azure", &[], &[]);
    lab.start_guard(&config("azure", &listen_all(), SEED_PODS, AZURE_ALLOW));
    lab
}

/// The allowed pod gets a Key Vault token, not a management one; the denied pod neither.
fn check_azure(allowed: &Report, denied: &Report, audit: &[Value]) {
    let vault = allowed.ok("vault");
    assert!(!vault["token"].as_str().unwrap().is_empty(), "{vault}");
    assert!(vault["expires_in"].as_i64().unwrap() > 60, "{vault}");
    // Both libraries read the refusal's JSON body as an OAuth error (`error`, and
    // `error_description`, which the guard's body does not have) and never show its status.
    allowed.refused("management", &["forbidden"]);
    denied.refused("vault", &["forbidden"]);
    denied.refused("management", &["forbidden"]);

    let token = "/metadata/identity/oauth2/token";
    let prod = from(audit, PROD);
    let (vault, management) = split_refused(&prod);
    assert!(
        !vault.is_empty()
            && vault
                .iter()
                .all(|e| e["status"] == 200 && text(e, "path").starts_with(token)),
        "no Key Vault token answered 200:\n{}",
        briefs(&prod)
    );
    assert_allowed(&vault, &[]);
    // The other resource: the path is allowed, its query is not.
    assert_denied(&management, "imds/prod-5c7b9", "path-not-allowed");
    assert_denied(&from(audit, TEST), "imds/test-6d8f", "no-rule");
}

#[test]
fn azure_identity_python_gets_a_token_for_the_allowed_pod_and_resource_only() {
    let mut lab = azure_lab();
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "azure_identity.py", azure_env);
    check_azure(&allowed, &denied, &audit);
    eprintln!("clients: {}", allowed.versions());
}

#[test]
fn azure_identity_node_gets_a_token_for_the_allowed_pod_and_resource_only() {
    let mut lab = azure_lab();
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "azure_identity.js", azure_env);
    check_azure(&allowed, &denied, &audit);
    eprintln!("clients: {}", allowed.versions());
}

// ---- OCI ----

#[test]
fn oci_instance_principal_reads_its_identity_for_the_allowed_pod_only() {
    let mut lab = Lab::new("oci", &[], &[]);
    lab.start_guard(&config(
        "oci",
        &listen_all(),
        SEED_PODS,
        &["/opc/v2/identity/**", "/opc/v2/instance/region"],
    ));
    let bearer = "Authorization: Bearer Oracle";
    let region = lab.direct("/opc/v2/instance/region", &[bearer]);
    let cert = lab.direct("/opc/v2/identity/cert.pem", &[bearer]);
    let env = |pod: &str| {
        vec![(
            "OCI_METADATA_BASE_URL",
            format!("http://{pod}:{PORT}/opc/v2"),
        )]
    };
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "oci_metadata.py", env);

    let signer = allowed.ok("signer");
    assert_eq!(
        signer["metadata_base_url"],
        format!("http://{PROD}:{PORT}/opc/v2")
    );
    // The region as the SDK maps the emulator's short name.
    assert!(
        signer["region"]
            .as_str()
            .unwrap()
            .contains(region.trim().to_lowercase().as_str())
            || region.trim() == "iad" && signer["region"] == "us-ashburn-1",
        "{signer}"
    );
    assert!(
        signer["tenancy_id"]
            .as_str()
            .unwrap()
            .starts_with("ocid1.tenancy."),
        "{signer}"
    );
    assert_eq!(signer["key_matches_certificate"], true, "{signer}");
    assert_eq!(signer["presented_leaf_is_served_leaf"], true, "{signer}");
    assert_eq!(signer["presented_intermediates"], 1, "{signer}");
    assert!(cert.contains("BEGIN CERTIFICATE"));
    assert!(!signer["security_token"].as_str().unwrap().is_empty());

    denied.refused("signer", &["403"]);

    assert_allowed(
        &from(&audit, PROD),
        &[
            "/opc/v2/identity/cert.pem",
            "/opc/v2/identity/key.pem",
            "/opc/v2/identity/intermediate.pem",
            "/opc/v2/instance/region",
        ],
    );
    assert_denied(&from(&audit, TEST), "imds/test-6d8f", "no-rule");
    eprintln!("clients: {}", allowed.versions());
}

// ---- Alibaba ----

#[test]
fn alibaba_ecs_ram_role_gets_credentials_at_the_fixed_address_for_the_allowed_pod_only() {
    // Hardened mode: a read without a token is refused by the service itself.
    let mut lab = Lab::new(
        "alibaba",
        &["100.100.100.200/32"],
        &["--tokens", "required"],
    );
    let listen = format!("{ALIBABA}:80");
    let allow = &["/latest/meta-data/ram/security-credentials/**"];
    let env = |fallback: bool| {
        let mut env = vec![];
        if !fallback {
            env.push(("ALIBABA_CLOUD_IMDSV1_DISABLED", "true".to_owned()));
        }
        env
    };

    // 100.100.100.200 is prod.
    lab.start_guard(&config(
        "alibaba",
        &listen,
        &[(ALIBABA, "prod-5c7b9", "prod")],
        allow,
    ));
    let before = lab.emulator_seen().len();
    let allowed = lab.client("alibaba_credentials.py", &env(false));
    let seen = lab.emulator_seen()[before..].to_vec();
    let audit = lab.stop_guard();
    eprintln!(
        "{}audit:\n{}emulator: {seen:?}",
        allowed.summary(),
        briefs(&audit.iter().collect::<Vec<_>>())
    );
    let got = allowed.ok("credentials");
    assert!(
        got["access_key_id"].as_str().unwrap().starts_with("STS."),
        "{got}"
    );
    assert_eq!(got["has_secret"], true);
    assert!(!got["security_token"].as_str().unwrap().is_empty());
    assert_eq!(got["provider"], "ecs_ram_role");
    let events: Vec<&Value> = audit.iter().collect();
    assert_allowed(
        &events,
        &[
            "/latest/api/token",
            "/latest/meta-data/ram/security-credentials/",
        ],
    );
    assert!(
        events.iter().all(|e| text(e, "imds_version") == "v2"),
        "a read without a token:\n{}",
        briefs(&events)
    );
    let forwarded = audit.iter().filter(|e| !e["upstream_ms"].is_null()).count();
    assert!(!seen.is_empty(), "nothing reached the emulator");
    assert_eq!(forwarded, seen.len(), "the emulator saw {seen:?}");

    // 100.100.100.200 is test: refused, with and without the tokenless fall-back.
    lab.start_guard(&config(
        "alibaba",
        &listen,
        &[(ALIBABA, "test-6d8f", "test")],
        allow,
    ));
    let before = lab.emulator_seen().len();
    let strict = lab.client("alibaba_credentials.py", &env(false));
    let lenient = lab.client("alibaba_credentials.py", &env(true));
    assert_eq!(
        lab.emulator_seen()[before..],
        [] as [String; 0],
        "the denied pod's requests reached the emulator"
    );
    let audit = lab.stop_guard();
    eprintln!(
        "{}{}audit:\n{}",
        strict.summary(),
        lenient.summary(),
        briefs(&audit.iter().collect::<Vec<_>>())
    );
    strict.refused("credentials", &["403"]);
    lenient.refused("credentials", &["403"]);
    let events: Vec<&Value> = audit.iter().collect();
    assert_denied(&events, "imds/test-6d8f", "no-rule");
    // Without IMDSV1_DISABLED the client falls back to tokenless reads: refused as well.
    assert!(
        events
            .iter()
            .any(|e| text(e, "method") == "GET" && text(e, "imds_version") == "v1"),
        "no tokenless fall-back was seen:\n{}",
        briefs(&events)
    );
    eprintln!("clients: {}", allowed.versions());
}
