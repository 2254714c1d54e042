//! Slow and many clients: header read timeout (slowloris), idle keep-alive timeout, caps on
//! connections per source and in total, and 10,000 idle connections that do not stop an allowed
//! pod from being served.

use crate::support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use imds_guard_emulator::EmulatorOptions;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads until the server closes the connection; returns what it sent and how long that took.
async fn until_closed(stream: &mut tokio::net::TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("connection still open after {limit:?}"),
        }
    }
    (
        String::from_utf8_lossy(&out).into_owned(),
        started.elapsed(),
    )
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&config("[server]\nheader_read_timeout_ms = 400"), emu.addr).await;

    // Slowloris: half a request, then nothing.
    let mut slow = connect_from(TEST, guard.proxy).await;
    slow.write_all(b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    // Meanwhile an allowed pod is served at once.
    assert_eq!(
        get(PROD, guard.proxy, "/latest/meta-data/instance-id")
            .await
            .status,
        200
    );
    let (_, took) = until_closed(&mut slow, Duration::from_secs(3)).await;
    assert!(
        took >= Duration::from_millis(300),
        "closed too early: {took:?}"
    );

    // A kept-alive connection that goes quiet after one request is closed too.
    let mut idle = connect_from(PROD, guard.proxy).await;
    idle.write_all(b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let (text, took) = until_closed(&mut idle, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        took >= Duration::from_millis(300),
        "closed too early: {took:?}"
    );

    // A connection that never sends a byte as well.
    let mut silent = connect_from(TEST, guard.proxy).await;
    let (text, _) = until_closed(&mut silent, Duration::from_secs(3)).await;
    assert!(!text.contains("200"), "{text}");
}

#[tokio::test]
async fn connection_caps_per_source_and_in_total() {
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(
        &config("[server]\nmax_connections = 8\nmax_connections_per_source = 3\nheader_read_timeout_ms = 30000"),
        emu.addr,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from(TEST, guard.proxy).await);
    }
    // Give the guard time to accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fourth = connect_from(TEST, guard.proxy).await;
    let (text, _) = until_closed(&mut fourth, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains(r#""reason":"connection-limit""#), "{text}");

    // Another pod is not affected by TEST's cap.
    assert_eq!(
        get(PROD, guard.proxy, "/latest/meta-data/instance-id")
            .await
            .status,
        200
    );

    // That connection has ended on the client's side; give the guard time to see it end (it
    // serves connections on worker threads, not on the test's), so its place is free again.
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Fill the total: 3 (TEST) + 3 (LABELLED) + 2 (STRANGER) = 8.
    for _ in 0..3 {
        held.push(connect_from(LABELLED, guard.proxy).await);
    }
    for _ in 0..2 {
        held.push(connect_from(STRANGER, guard.proxy).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut over = connect_from(PROD, guard.proxy).await;
    let (text, _) = until_closed(&mut over, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");

    // Places come back when connections end.
    held.truncate(2);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        get(PROD, guard.proxy, "/latest/meta-data/instance-id")
            .await
            .status,
        200
    );
    let metrics = get(PROD, guard.admin, "/metrics").await.text();
    assert!(
        metrics.contains(r#"imds_guard_connections_refused_total{limit="per-source"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"imds_guard_connections_refused_total{limit="total"} 1"#),
        "{metrics}"
    );
}

/// Runs the real binary (its own file-descriptor budget) and holds 10,000 idle connections from
/// 20 addresses; an allowed pod is still answered promptly.
#[tokio::test]
async fn ten_thousand_idle_connections_do_not_starve_a_pod() {
    let emu = emulator(EmulatorOptions::default()).await;
    let (port, admin) = (free_port(), free_port());
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nadmin_listen = \"127.0.0.1:{admin}\"\nheader_read_timeout_ms = 120000\nmax_connections = 12000\nmax_connections_per_source = 600\n{}",
        config("").replace("{upstream}", &format!("http://{}", emu.addr))
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_imds-guard"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(proxy).await;

    let mut idle = Vec::with_capacity(10_000);
    for i in 0..10_000u32 {
        let from = format!("127.0.{}.{}", 10 + i % 20, 1 + i % 20);
        idle.push(connect_from(&from, proxy).await);
    }
    // Let the guard accept the backlog, then ask as an allowed pod.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let answer = get(PROD, proxy, "/latest/meta-data/instance-id").await;
    let took = asked.elapsed();
    assert_eq!(answer.status, 200);
    println!("allowed request with 10,000 idle connections open: {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // A sample of the idle connections is still open: nothing to read, no EOF, no 429.
    let mut probe = [0u8; 64];
    let mut closed = 0;
    for stream in idle.iter_mut().step_by(250) {
        // A read that completes (data, EOF or error) means the guard answered or closed it.
        if tokio::time::timeout(Duration::from_millis(10), stream.read(&mut probe))
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    assert_eq!(closed, 0, "idle connections were closed or refused");
    drop(idle);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(tokio::task::spawn_blocking(move || child.wait())
        .await
        .unwrap()
        .unwrap()
        .success());
}
