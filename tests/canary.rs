//! The interception canary, with the real binary on loopback ports: `canary --once` against the
//! guard, the bare emulator (the real service's 404), a closed port, a silent listener and a
//! stranger that answers 200; and the DaemonSet form following the guard going away.

use crate::support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::binary::Binary;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");

/// The guard with its built-in emulator as the upstream, ready.
async fn guard() -> Binary {
    let upstream = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = format!("[upstream]\nurl = \"{{upstream}}\"\nemulator = true\n{SEED}");
    let mut guard = Binary::start(&config, upstream, &[]);
    guard.wait_ready().await;
    guard
}

/// `imds-guard canary --once` with `args`, run off the runtime (servers of this test answer it).
async fn once(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["canary", "--once"])
            .args(&args)
            .env_remove("NODE_NAME")
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

/// A child process of the binary, its stderr kept in a file, killed when dropped (panics too).
struct Running {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("stderr.log");
        let child = Command::new(BIN)
            .args(args)
            .env_remove("NODE_NAME")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Running {
            child,
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_through_the_guard_is_protected() {
    let mut guard = guard().await;
    let out = once(&["--url", &url(guard.proxy), "--node", "node-a"]).await;
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        stdout(&out),
        "protected: the node's guard answered (node node-a)\n"
    );
    // Counted by the guard, not audited.
    let (probes, text) = metric(guard.admin, "imds_guard_canary_probes_total").await;
    assert_eq!(probes, Some(1.0), "{text}");
    guard.stop();
    assert!(guard.audit().is_empty(), "{:?}", guard.audit());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_against_the_metadata_service_itself_is_not_protected() {
    let port = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let emulator = Running::start(&["emulate", "--listen", &port.to_string()]);
    wait_listening(port).await;
    let out = once(&["--url", &url(port)]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}\n{}", emulator.log());
    assert_eq!(stdout(&out), "NOT protected: status-404\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_against_a_closed_port_is_not_protected() {
    let out = once(&["--url", &url(closed_port().await), "--node", "node-b"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(
        stdout(&out),
        "NOT protected: connect-refused (node node-b)\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_against_a_silent_listener_times_out_in_time() {
    let (addr, task) = black_hole().await;
    let started = Instant::now();
    let out = once(&["--url", &url(addr), "--timeout-ms", "500"]).await;
    let took = started.elapsed();
    task.abort();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stdout(&out), "NOT protected: timeout\n");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_against_a_stranger_answering_200_is_no_echo() {
    let stranger = recorder(Duration::ZERO).await;
    let out = once(&["--url", &format!("{}/prefix/", url(stranger.addr))]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert_eq!(stdout(&out), "NOT protected: no-echo\n");
    // What a probe is: a GET of the canary path with a fresh 32-hex-digit nonce.
    let seen = stranger.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/prefix/.imds-guard/canary")
    );
    let nonce = seen[0].headers["x-imds-guard-canary"].to_str().unwrap();
    assert!(
        nonce.len() == 32 && nonce.bytes().all(|b| b.is_ascii_hexdigit()),
        "{nonce}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_refuses_a_url_it_cannot_probe() {
    let out = once(&["--url", "https://169.254.169.254"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(stdout(&out).is_empty());
}

/// Polls `check` every 100 ms for at most 10 s; panics with `what` and the canary's log.
async fn eventually<F, Fut>(canary: &Running, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}\n{}", canary.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The canary's state as its port reports it: `/readyz`'s status and text, and `protected`.
struct Seen {
    ready: u16,
    readyz: String,
    protected: Option<f64>,
    metrics: String,
}

async fn seen(port: SocketAddr) -> Seen {
    let readyz = get(TEST, port, "/readyz").await;
    let (protected, metrics) = metric(port, "imds_guard_canary_protected").await;
    Seen {
        ready: readyz.status.as_u16(),
        readyz: readyz.text(),
        protected,
        metrics,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemonset_form_follows_the_guard() {
    let mut guard = guard().await;
    let port = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let canary = Running::start(&[
        "canary",
        "--url",
        &url(guard.proxy),
        "--interval-seconds",
        "1",
        "--timeout-ms",
        "500",
        "--metrics-listen",
        &port.to_string(),
        "--node",
        "node-c",
    ]);
    wait_listening(port).await;
    assert_eq!(get(TEST, port, "/healthz").await.status, 200);

    eventually(&canary, "never protected", move || async move {
        let s = seen(port).await;
        s.ready == 200 && s.protected == Some(1.0)
    })
    .await;
    let s = seen(port).await;
    assert_eq!(s.readyz, "protected\n");
    for series in [
        "imds_guard_canary_probes_total{result=\"protected\"}",
        "imds_guard_canary_probes_total{result=\"unprotected\"} 0",
        "imds_guard_canary_last_probe_timestamp_seconds",
    ] {
        assert!(s.metrics.contains(series), "{series}:\n{}", s.metrics);
    }

    // The guard counts each probe.
    let admin = guard.admin;
    let (first, text) = metric(admin, "imds_guard_canary_probes_total").await;
    let first = first.unwrap_or_else(|| panic!("no counter:\n{text}"));
    assert!(first >= 1.0, "{text}");
    eventually(&canary, "the guard's count did not rise", move || async move {
        metric(admin, "imds_guard_canary_probes_total").await.0 > Some(first)
    })
    .await;

    // Without the guard the node is unprotected: not ready, with the reason, and 0.
    guard.stop();
    assert!(guard.audit().is_empty(), "{:?}", guard.audit());
    eventually(&canary, "never unprotected", move || async move {
        let s = seen(port).await;
        s.ready == 503 && s.protected == Some(0.0)
    })
    .await;
    let s = seen(port).await;
    assert_eq!(s.readyz, "not protected: connect-refused\n");
    let (unprotected, text) = metric(
        port,
        "imds_guard_canary_probes_total{result=\"unprotected\"}",
    )
    .await;
    assert!(unprotected >= Some(1.0), "{text}");
    let log = canary.log();
    assert!(
        log.contains("WARN") && log.contains("NOT protected") && log.contains("node-c"),
        "{log}"
    );
}
