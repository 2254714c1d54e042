//! `policy suggest` and `policy replay` on a log the real binary wrote: three workloads served in
//! audit mode by the guard in front of the emulator — one reading the node's credentials with
//! tokens, one only its instance id, one running pods with a role each. The suggested rules pass
//! `check`, replay without a change on that log, and deny what no workload read (`explain`); a
//! narrowed copy's breakage is reported exactly; broken lines are counted, never fatal.

use crate::support;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use imds_guard_emulator::EmulatorOptions;
use support::binary::Binary;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");

const CREDS: &str = "/latest/meta-data/iam/security-credentials/";

/// The pods, each on its own loopback address; the roles pods belong to a Job.
const PODS: &str = r#"
[[inventory.pods]]
ip = "127.0.0.21"
namespace = "shop"
name = "creds-7d9c6b5f4-x2kqz"
labels = { app = "creds", "pod-template-hash" = "7d9c6b5f4" }
owner = { kind = "Deployment", name = "creds" }

[[inventory.pods]]
ip = "127.0.0.22"
namespace = "web"
name = "id-1"
labels = { app = "id" }

[[inventory.pods]]
ip = "127.0.0.23"
namespace = "web"
name = "id-2"
labels = { app = "id" }

[[inventory.pods]]
ip = "127.0.0.24"
namespace = "batch"
name = "roles-a"
labels = { "app.kubernetes.io/name" = "roles" }

[[inventory.pods]]
ip = "127.0.0.25"
namespace = "batch"
name = "roles-b"
labels = { "app.kubernetes.io/name" = "roles" }

[[inventory.pods]]
ip = "127.0.0.26"
namespace = "batch"
name = "roles-c"
labels = { "app.kubernetes.io/name" = "roles" }
"#;

fn config(
    proxy: SocketAddr,
    admin: SocketAddr,
    upstream: SocketAddr,
    mode: &str,
    rules: &str,
) -> String {
    format!(
        "[server]\nlisten = \"{proxy}\"\nadmin_listen = \"{admin}\"\nmode = \"{mode}\"\n\n\
         [upstream]\nurl = \"http://{upstream}\"\n{PODS}\n{rules}"
    )
}

fn imds_guard(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("IMDS_GUARD_CONFIG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Serves the three workloads through the real binary in audit mode; its stdout and stderr
/// together, as `kubectl logs` gives them.
async fn recorded_log(dir: &Path) -> (PathBuf, SocketAddr) {
    let roles = serde_json::json!({"meta-data": {"iam": {"security-credentials": {
        "role-a": "", "role-b": "", "role-c": ""
    }}}});
    let emulator = emulator(EmulatorOptions {
        metadata: Some(roles),
        ..EmulatorOptions::default()
    })
    .await;
    let (proxy, admin) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    // The policy in force is the seed recipe: none of these pods has access, so everything they
    // ask is would-deny, and forwarded.
    let seed = "[[rules]]\nname = \"seed\"\npod_labels = { \"allow-node-metadata-lookup\" = \"true\" }\nallow = [\"/latest/**\"]\n";
    let path = dir.join("running.toml");
    std::fs::write(&path, config(proxy, admin, emulator.addr, "audit", seed)).unwrap();
    let mut guard = Binary::start_file(&path, proxy, admin);
    guard.wait_ready().await;
    let creds = "127.0.0.21";
    for _ in 0..2 {
        let token = request(
            creds,
            proxy,
            "PUT",
            "/latest/api/token",
            &[("x-aws-ec2-metadata-token-ttl-seconds", "300")],
        )
        .await;
        assert_eq!(token.status, 200, "{}", token.text());
        let token = token.text();
        for path in [
            CREDS,
            "/latest/meta-data/iam/security-credentials/imds-guard-node-role",
        ] {
            let answer = request(
                creds,
                proxy,
                "GET",
                path,
                &[("x-aws-ec2-metadata-token", &token)],
            )
            .await;
            assert_eq!(answer.status, 200, "{path}: {}", answer.text());
        }
    }
    for (pod, times) in [("127.0.0.22", 2), ("127.0.0.23", 1)] {
        for _ in 0..times {
            assert_eq!(
                get(pod, proxy, "/latest/meta-data/instance-id")
                    .await
                    .status,
                200
            );
        }
    }
    for (pod, role) in [
        ("127.0.0.24", "role-a"),
        ("127.0.0.25", "role-b"),
        ("127.0.0.26", "role-c"),
    ] {
        assert_eq!(get(pod, proxy, CREDS).await.status, 200);
        let answer = get(pod, proxy, &format!("{CREDS}{role}")).await;
        assert_eq!(answer.status, 200, "{role}: {}", answer.text());
    }
    // Neither a pod nor a request the policy decides: skipped by both commands.
    assert_eq!(
        get(STRANGER, proxy, "/latest/meta-data/instance-id")
            .await
            .status,
        200
    );
    assert_eq!(
        raw_status(
            &raw(
                "127.0.0.22",
                proxy,
                b"GET /latest/../user-data HTTP/1.1\r\nhost: x\r\n\r\n"
            )
            .await
        ),
        400
    );
    let log = guard.stop();
    let audit = std::fs::read_to_string(guard.audit_file()).unwrap();
    assert_eq!(audit.lines().count(), 17, "{audit}");
    // The lines carry the workload labels chosen (by default app.kubernetes.io/name and app,
    // not pod-template-hash) and the owner.
    let first: serde_json::Value = serde_json::from_str(audit.lines().next().unwrap()).unwrap();
    assert_eq!(first["labels"], serde_json::json!({"app": "creds"}));
    assert_eq!(
        first["owner"],
        serde_json::json!({"kind": "Deployment", "name": "creds"})
    );
    let recorded = dir.join("audit.log");
    // The text log first, as `kubectl logs` interleaves it.
    std::fs::write(&recorded, format!("{log}{audit}")).unwrap();
    (recorded, emulator.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suggest_then_replay_close_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let (log, upstream) = recorded_log(dir.path()).await;
    let log = log.to_str().unwrap();

    let out = imds_guard(&["policy", "suggest", "--audit", log], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rules = text(&out.stdout);
    let notes = text(&out.stderr);
    assert!(
        notes.contains("1 request(s) from sources that were no known pod skipped"),
        "{notes}"
    );
    assert!(
        notes.contains("refused whatever the policy skipped: bad-request 1"),
        "{notes}"
    );
    assert!(!notes.contains("malformed"), "{notes}");
    assert!(
        rules.contains("name = \"suggested: shop app=creds\""),
        "{rules}"
    );
    assert!(
        rules.contains("\"/latest/meta-data/iam/security-credentials/imds-guard-node-role\""),
        "{rules}"
    );
    assert!(
        rules.contains("name = \"suggested: batch app.kubernetes.io/name=roles\""),
        "{rules}"
    );
    assert!(rules.contains("\"/latest/meta-data/iam/security-credentials/*\",  # 3 request(s), 3 paths, 3 pod(s); sensitive"), "{rules}");
    assert!(
        rules.contains("\"/latest/meta-data/instance-id\",  # 3 request(s)"),
        "{rules}"
    );
    assert_eq!(rules.matches("require_tokens = true").count(), 1, "{rules}");

    // The suggestion is a config's rules: it passes `check`...
    let (proxy, admin) = (
        SocketAddr::from(([127, 0, 0, 1], free_port())),
        SocketAddr::from(([127, 0, 0, 1], free_port())),
    );
    let new = dir.path().join("new.toml");
    std::fs::write(&new, config(proxy, admin, upstream, "enforce", &rules)).unwrap();
    let new = new.to_str().unwrap();
    let out = imds_guard(&["check", "--config", new], None);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("config ok: 3 rule(s)"),
        "{}",
        text(&out.stdout)
    );

    // ... replays without a change on the log it came from ...
    let out = imds_guard(&["policy", "replay", "--audit", log, "--config", new], None);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        "allowed → denied: 0 request(s) to 0 path(s)\ndenied → allowed: 0 request(s) to 0 path(s)\nunchanged: 15 request(s) allowed, 0 denied\n"
    );

    // ... and denies what no workload read.
    let explain = |source: &str, path: &str, token: bool| {
        let mut args = vec![
            "explain", "--config", new, "--source", source, "--path", path,
        ];
        if token {
            args.push("--token");
        }
        let out = imds_guard(&args, None);
        assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
        text(&out.stdout).lines().next().unwrap().to_owned()
    };
    assert_eq!(
        explain("127.0.0.22", "/latest/meta-data/instance-id", false),
        "decision: allow"
    );
    assert_eq!(
        explain("127.0.0.22", "/latest/meta-data/ami-id", false),
        "decision: deny"
    );
    assert_eq!(explain("127.0.0.22", CREDS, false), "decision: deny");
    assert_eq!(
        explain("127.0.0.21", "/latest/user-data", true),
        "decision: deny"
    );
    assert_eq!(
        explain("127.0.0.21", &format!("{CREDS}role-a"), true),
        "decision: deny"
    );
    assert_eq!(
        explain("127.0.0.21", &format!("{CREDS}imds-guard-node-role"), false),
        "decision: deny",
        "tokens required"
    );
    assert_eq!(
        explain("127.0.0.24", &format!("{CREDS}role-z"), false),
        "decision: allow"
    );
    assert_eq!(
        explain("127.0.0.24", "/latest/meta-data/iam/info", false),
        "decision: deny"
    );

    // A deliberately narrowed copy: its breakage, exactly.
    let narrowed = dir.path().join("narrowed.toml");
    let narrow = rules.replace(
        "\"/latest/meta-data/iam/security-credentials/*\"",
        "\"/latest/meta-data/iam/security-credentials/role-a\"",
    );
    assert_ne!(narrow, rules);
    std::fs::write(
        &narrowed,
        config(proxy, admin, upstream, "enforce", &narrow),
    )
    .unwrap();
    let out = imds_guard(
        &[
            "policy",
            "replay",
            "--audit",
            log,
            "--config",
            narrowed.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "allowed → denied: 2 request(s) to 2 path(s)\n\
         \x20 batch app.kubernetes.io/name=roles  /latest/meta-data/iam/security-credentials/role-b  allowed → denied (path-not-allowed, -)  1\n\
         \x20 batch app.kubernetes.io/name=roles  /latest/meta-data/iam/security-credentials/role-c  allowed → denied (path-not-allowed, -)  1\n\
         denied → allowed: 0 request(s) to 0 path(s)\n\
         unchanged: 13 request(s) allowed, 0 denied\n"
    );

    // Broken lines are counted and said; the rest is read as before, from stdin too.
    let mut broken = std::fs::read_to_string(log).unwrap();
    broken.push_str(
        "{\"ts\":\"2026-11-23T11:02:03.456Z\",\"src\":\"127.0.0.22\",\"pod\":\"web/id-1\n",
    );
    broken.push_str("{\"pod\":\"web/id-1\",\"method\":\"GET\"}\n");
    broken.push_str("a log line { with a brace\n");
    let out = imds_guard(
        &["policy", "suggest", "--audit", "-"],
        Some(broken.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), rules);
    assert!(
        text(&out.stderr).contains("imds-guard: 2 malformed audit line(s) skipped"),
        "{}",
        text(&out.stderr)
    );
    let out = imds_guard(
        &["policy", "replay", "--audit", "-", "--config", new],
        Some(broken.as_bytes()),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("2 malformed audit line(s) skipped"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn bad_configs_and_unreadable_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.log");
    std::fs::write(&log, "").unwrap();
    let log = log.to_str().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[rules]]\nname = \"x\"\nallow = [\"/latest/**\"]\n").unwrap();
    let bad = bad.to_str().unwrap();
    for args in [
        vec!["policy", "replay", "--audit", log, "--config", bad],
        vec![
            "policy",
            "replay",
            "--audit",
            "/nonexistent.log",
            "--config",
            "config.toml",
        ],
        vec!["policy", "suggest", "--audit", "/nonexistent.log"],
        vec!["policy", "suggest", "--audit", log, "--config", bad],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).is_empty());
    }
    // An empty log: nothing to suggest, nothing that breaks.
    let out = imds_guard(
        &["policy", "suggest", "--audit", log, "--cloud", "gcp"],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("for [upstream] cloud = \"gcp\""));
    assert!(text(&out.stderr).contains("no audit lines found"));
}
