//! Hot reload: through a kubelet-style symlink swap of a mounted ConfigMap, through an explicit
//! request, and through SIGHUP to the real binary. A good config takes effect without dropping
//! connections; a bad one is refused and the old one keeps serving.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use imds_guard::reload::Reload;
use imds_guard_emulator::EmulatorOptions;
use support::*;

const TEST_ALLOWED: &str = r#"
[[rules]]
name = "test pods too"
namespaces = ["imds"]
pod_labels = { app = "test" }
allow = ["/latest/meta-data/**"]
"#;

/// A directory laid out as the kubelet lays out a mounted ConfigMap:
/// `config.toml -> ..data/config.toml`, `..data -> ..vN`, swapped atomically by renaming a new
/// `..data` symlink over the old one.
struct ConfigMapDir {
    dir: tempfile::TempDir,
    version: u32,
}

impl ConfigMapDir {
    fn new(text: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut me = Self { dir, version: 0 };
        me.publish(text);
        std::os::unix::fs::symlink("..data/config.toml", me.path()).unwrap();
        me
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn publish(&mut self, text: &str) {
        self.version += 1;
        let version = format!("..v{}", self.version);
        let root = self.dir.path();
        std::fs::create_dir(root.join(&version)).unwrap();
        std::fs::write(root.join(&version).join("config.toml"), text).unwrap();
        let tmp = root.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, root.join("..data")).unwrap();
    }
}

async fn status_of(from: &str, guard: &Guard) -> u16 {
    get(from, guard.proxy, "/latest/meta-data/instance-id")
        .await
        .status
        .as_u16()
}

async fn until(from: &str, guard: &Guard, want: u16) -> Duration {
    let started = Instant::now();
    while status_of(from, guard).await != want {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{from} never got {want}; metrics:\n{}",
            get(PROD, guard.admin, "/metrics").await.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    started.elapsed()
}

async fn metric(guard: &Guard, line: &str) -> bool {
    get(PROD, guard.admin, "/metrics")
        .await
        .text()
        .lines()
        .any(|l| l == line)
}

#[tokio::test]
async fn a_configmap_symlink_swap_reloads_and_a_bad_one_is_refused() {
    let emu = emulator(EmulatorOptions::default()).await;
    let base = config("").replace("{upstream}", &format!("http://{}", emu.addr));
    let mut files = ConfigMapDir::new(&base);
    let (_requests, rx) = tokio::sync::mpsc::unbounded_channel();
    let extras = Extras {
        reload: Some(Reload {
            path: files.path(),
            loaded: base.clone(),
            poll: Some(Duration::from_millis(100)),
            requests: rx,
        }),
        ..Extras::default()
    };
    let guard = Guard::start_with(&base, emu.addr, extras).await;
    assert_eq!(status_of(TEST, &guard).await, 403);

    // A connection kept alive across the reload keeps working, and its next request is decided
    // by the new policy.
    let stream = connect_from(TEST, guard.proxy).await;
    let (mut kept, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let ask = |sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>| {
        let request = http::Request::get("/latest/meta-data/instance-id")
            .header("host", "x")
            .body(Empty::new())
            .unwrap();
        let sent = sender.send_request(request);
        async move {
            let response = sent.await.unwrap();
            let status = response.status().as_u16();
            response.into_body().collect().await.unwrap();
            status
        }
    };
    assert_eq!(ask(&mut kept).await, 403);

    files.publish(&format!("{base}\n{TEST_ALLOWED}"));
    let took = until(TEST, &guard, 200).await;
    println!("symlink swap to new decision: {took:?}");
    assert_eq!(
        ask(&mut kept).await,
        200,
        "the kept-alive connection sees the new policy"
    );
    assert!(metric(&guard, "imds_guard_config_reloads_total{result=\"ok\"} 1").await);

    // A broken config is refused; the running one stays.
    files.publish(&format!(
        "{base}\n{TEST_ALLOWED}\n[[rules]]\nname = \"broken\"\nallow = [\"../x\"]\n"
    ));
    let started = Instant::now();
    while !metric(
        &guard,
        "imds_guard_config_reloads_total{result=\"refused\"} 1",
    )
    .await
    {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the bad config was not noticed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status_of(TEST, &guard).await, 200);
    assert_eq!(ask(&mut kept).await, 200);
    // Noticed once, not on every poll.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        metric(
            &guard,
            "imds_guard_config_reloads_total{result=\"refused\"} 1"
        )
        .await
    );

    // Back to the base policy: test pods are refused again.
    files.publish(&base);
    until(TEST, &guard, 403).await;
    assert_eq!(ask(&mut kept).await, 403);
    assert!(metric(&guard, "imds_guard_config_reloads_total{result=\"ok\"} 2").await);
}

#[tokio::test]
async fn an_explicit_request_reloads_mode_and_static_pods() {
    let emu = emulator(EmulatorOptions::default()).await;
    let base = config("").replace("{upstream}", &format!("http://{}", emu.addr));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, &base).unwrap();
    let (requests, rx) = tokio::sync::mpsc::unbounded_channel();
    let extras = Extras {
        reload: Some(Reload {
            path: path.clone(),
            loaded: base.clone(),
            poll: None,
            requests: rx,
        }),
        ..Extras::default()
    };
    let guard = Guard::start_with(&base, emu.addr, extras).await;
    assert_eq!(status_of(STRANGER, &guard).await, 403);

    // Audit mode and a new static pod, picked up only when asked (no polling here).
    let new = format!(
        "[server]\nmode = \"audit\"\n{}\n[[inventory.pods]]\nip = \"{STRANGER}\"\nnamespace = \"late\"\nname = \"comer\"\n",
        base
    );
    std::fs::write(&path, new).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        status_of(STRANGER, &guard).await,
        403,
        "reloaded without being asked"
    );
    requests.send(()).unwrap();
    until(STRANGER, &guard, 200).await;
    let event = guard.last_event().await;
    assert_eq!(
        (event["pod"].as_str(), event["decision"].as_str()),
        (Some("late/comer"), Some("would-deny"))
    );
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn sighup_reloads_the_real_binary() {
    let emu = emulator(EmulatorOptions::default()).await;
    let (proxy, admin) = (free_port(), free_port());
    let base = format!(
        "[server]\nlisten = \"127.0.0.1:{proxy}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n{}",
        config("").replace("{upstream}", &format!("http://{}", emu.addr))
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    write(&path, &base);
    let mut child = Command::new(env!("CARGO_BIN_EXE_imds-guard"))
        .args(["run", "--watch-config-ms", "0", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let proxy: std::net::SocketAddr = format!("127.0.0.1:{proxy}").parse().unwrap();
    wait_listening(proxy).await;
    let status = |from: &'static str| async move {
        get(from, proxy, "/latest/meta-data/instance-id")
            .await
            .status
            .as_u16()
    };
    assert_eq!(status(TEST).await, 403);

    write(&path, &format!("{base}\n{TEST_ALLOWED}"));
    // File watching is off: nothing changes until the signal.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(status(TEST).await, 403);
    let hup = |pid: u32| {
        Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
    };
    assert!(hup(child.id()).success());
    let started = Instant::now();
    while status(TEST).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SIGHUP did not reload"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A bad config on SIGHUP: refused, the old one keeps serving, the process keeps running.
    write(&path, "[server]\nmode = \"sometimes\"\n");
    assert!(hup(child.id()).success());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(TEST).await, 200);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the guard exited on a bad reload"
    );

    assert!(Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("config reload refused"), "{stderr}");
    assert!(
        stderr.contains("server.mode: unknown variant `sometimes`"),
        "{stderr}"
    );
}
