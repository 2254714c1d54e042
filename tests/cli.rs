//! The real binary: `check`, `explain`, and `run` on the shipped `config.toml` defaults, with
//! audit lines on stdout and a clean stop on SIGTERM.

use crate::support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");

fn imds_guard(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("IMDS_GUARD_CONFIG")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn check_accepts_the_shipped_config() {
    let out = imds_guard(&["check", "--config", "config.toml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("config ok: 2 rule(s)"),
        "{}",
        stdout(&out)
    );
    // The default path is ./config.toml.
    let out = imds_guard(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn check_refuses_bad_configs_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, want) in [
        (
            "[server]\nmode = \"permissive\"\n",
            "server.mode: unknown variant `permissive`",
        ),
        (
            "[[rules]]\nname = \"x\"\nall_pods = true\nallow = [\"/latest/../x\"]\n",
            "rules[0].allow[0]",
        ),
        ("[server]\nlisten = \"nowhere\"\n", "server.listen"),
        ("[upstream]\nurl = \"ftp://x\"\n", "upstream.url"),
        (
            "[inventory]\nunknown = 1\n",
            "inventory.unknown: unknown field",
        ),
    ] {
        let path = write_config(dir.path(), text);
        let out = imds_guard(&["check", "--config", &path]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        assert!(
            stderr(&out).contains(want),
            "{text}\nwant {want}\ngot {}",
            stderr(&out)
        );
    }
    let out = imds_guard(&["check", "--config", "/nonexistent.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot read /nonexistent.toml"));
}

#[test]
fn config_path_from_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[server]\nmode = \"bogus\"\n");
    let out = Command::new(BIN)
        .args(["check"])
        .env("IMDS_GUARD_CONFIG", &path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("server.mode"));
}

#[test]
fn explain_prints_decision_pod_rule_and_reason() {
    // (source, path, method, every line the explanation must hold)
    let cases: &[(&str, &str, &str, &[&str])] = &[
        (
            "127.0.0.2",
            "/latest/meta-data/iam/info",
            "GET",
            &[
                "decision: deny",
                "status:   403",
                "reason:   denied-by-rule",
                "pod:      imds/prod-5c7b9",
                "rule:     imds/prod: instance metadata, no credentials",
            ],
        ),
        (
            "127.0.0.2",
            "/latest/meta-data/ami-id",
            "GET",
            &["decision: allow", "reason:   path-allowed"],
        ),
        (
            "127.0.0.3",
            "/latest/meta-data/ami-id",
            "GET",
            &["reason:   no-rule", "pod:      imds/test-6d8f"],
        ),
        (
            "10.9.9.9",
            "/latest/meta-data/",
            "GET",
            &["reason:   unknown-source"],
        ),
        (
            "127.0.0.4",
            "/latest/api/token",
            "PUT",
            &["reason:   token-allowed", "TTL capped at 21600"],
        ),
        (
            "127.0.0.4",
            "/latest/%2e%2e/x",
            "GET",
            &["status:   400", "percent-escape"],
        ),
        (
            "127.0.0.4",
            "/latest/meta-data/",
            "POST",
            &["status:   405"],
        ),
    ];
    for (source, path, method, wants) in cases {
        let out = imds_guard(&[
            "explain", "--source", source, "--path", path, "--method", method,
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        for want in *wants {
            assert!(
                text.contains(want),
                "{method} {path} from {source}: want {want:?} in\n{text}"
            );
        }
    }
}

#[test]
fn help_lists_the_commands() {
    let text = stdout(&imds_guard(&["--help"]));
    for command in ["run", "emulate", "check", "explain"] {
        assert!(text.contains(command), "{text}");
    }
}

#[tokio::test]
async fn run_serves_the_shipped_defaults_and_stops_on_sigterm() {
    // The shipped config with its ports moved to free ones, so the test runs anywhere.
    let (proxy, admin, emu) = (free_port(), free_port(), free_port());
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml"))
        .unwrap()
        .replace("127.0.0.1:8181", &format!("127.0.0.1:{proxy}"))
        .replace("127.0.0.1:8182", &format!("127.0.0.1:{admin}"))
        .replace("127.0.0.1:1338", &format!("127.0.0.1:{emu}"));
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), &text);
    let child = Command::new(BIN)
        .args(["run", "--config", &path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let proxy: SocketAddr = format!("127.0.0.1:{proxy}").parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{admin}").parse().unwrap();

    wait_listening(admin).await;
    assert_eq!(get(PROD, admin, "/readyz").await.status, 200);

    let allowed = get(PROD, proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(allowed.status, 200);
    let denied = get(TEST, proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(denied.status, 403);
    let token = request(
        LABELLED,
        proxy,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "300")],
    )
    .await;
    assert_eq!(token.status, 200);
    let token = token.text();

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(
        exit.status.success(),
        "exit {:?}: {}",
        exit.status,
        stderr(&exit)
    );

    // stdout holds exactly the audit lines, one JSON object per request.
    let lines: Vec<serde_json::Value> = BufReader::new(&exit.stdout[..])
        .lines()
        .map(|l| serde_json::from_str(&l.unwrap()).expect("stdout line is not JSON"))
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0]["decision"], "allow");
    assert_eq!(lines[1]["decision"], "deny");
    assert_eq!(lines[1]["pod"], "imds/test-6d8f");
    assert_eq!(lines[2]["reason"], "token-allowed");
    for key in [
        "ts",
        "src",
        "pod",
        "method",
        "path",
        "decision",
        "reason",
        "rule",
        "status",
        "imds_version",
        "upstream_ms",
    ] {
        assert!(
            lines.iter().all(|l| l.get(key).is_some()),
            "audit key {key} missing"
        );
    }
    assert!(!String::from_utf8_lossy(&exit.stdout).contains(&token));
    assert!(!stderr(&exit).contains(&token));
    assert!(stderr(&exit).contains("shutting down"), "{}", stderr(&exit));
}

#[test]
fn run_refuses_a_bad_config_before_listening() {
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        &format!("[server]\nlisten = \"127.0.0.1:{port}\"\nmode = \"loose\"\n"),
    );
    let out = imds_guard(&["run", "--config", &path]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("server.mode"), "{}", stderr(&out));
    // It stopped at the config: nothing was served.
    assert!(!stderr(&out).contains("serving"), "{}", stderr(&out));
}

#[test]
fn emulate_refuses_a_bad_hop_limit() {
    let out = imds_guard(&["emulate", "--hop-limit", "0"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("hop-limit"), "{}", stderr(&out));
}

#[test]
fn run_refuses_the_startup_taint_without_the_kubernetes_source() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!("[server]\nlisten = \"127.0.0.1:{}\"\n", free_port()),
    );
    let out = imds_guard(&[
        "run",
        "--config",
        &config,
        "--remove-startup-taint",
        "imds-guard/not-ready",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "inventory.source: --remove-startup-taint needs [inventory] source = \"kubernetes\""
        ),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn refuses_to_start_without_a_node_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.2:0\"\n[inventory]\nsource = \"kubernetes\"\n",
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_imds-guard"))
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("NODE_NAME")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no node name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn run_refuses_a_token_key_file_it_cannot_use_before_listening() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    for (key, want) in [
        (None, "cannot read [imdsv2] token_key_file"),
        (
            Some(vec![7u8; 16]),
            "holds 16 bytes; at least 32 are needed",
        ),
    ] {
        let path = dir.path().join("token.key");
        let _ = std::fs::remove_file(&path);
        if let Some(bytes) = key {
            std::fs::write(&path, bytes).unwrap();
        }
        let config = write_config(
            dir.path(),
            &format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\n[imdsv2]\ntoken_key_file = \"{}\"\n",
                path.display()
            ),
        );
        let out = imds_guard(&["run", "--config", &config]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(stderr(&out).contains(want), "{}", stderr(&out));
        assert!(
            std::net::TcpListener::bind(("127.0.0.1", port)).is_ok(),
            "something listened"
        );
    }
}
