//! A failing metadata service: refused connections, an upstream that closes half-way through an
//! answer, one that answers too late, and recovery once it is back. The guard stays healthy and
//! never relays a truncated answer as a success.

use crate::support;

use std::time::{Duration, Instant};

use imds_guard_emulator::EmulatorOptions;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// An upstream that answers every request with `answer` bytes after `delay`, then closes.
async fn scripted(answer: &'static [u8], delay: Duration) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(answer).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_answer_cut_short_is_a_502_not_a_truncated_200() {
    let up = scripted(
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\ni-0123",
        Duration::ZERO,
    )
    .await;
    let guard = Guard::start(&config(""), up).await;
    let answer = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert_eq!(answer.json()["reason"], "upstream-broken");
    assert!(!answer.text().contains("i-0123"));
    assert_eq!(guard.last_event().await["error"], "upstream-broken");

    // A chunked answer that stops before its last chunk: the same.
    let up = scripted(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\ni-012\r\n",
        Duration::ZERO,
    )
    .await;
    let guard = Guard::start(&config(""), up).await;
    assert_eq!(
        get(PROD, guard.proxy, "/latest/meta-data/instance-id")
            .await
            .status,
        502
    );
    assert_eq!(get(PROD, guard.admin, "/healthz").await.status, 200);
}

#[tokio::test]
async fn a_garbage_answer_is_a_502() {
    let up = scripted(b"SSH-2.0-OpenSSH_9.2\r\n", Duration::ZERO).await;
    let guard = Guard::start(&config(""), up).await;
    let answer = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 502, "{}", answer.text());
}

#[tokio::test]
async fn a_late_answer_is_a_504_at_the_deadline() {
    let up = scripted(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        Duration::from_secs(5),
    )
    .await;
    let guard = Guard::start(&config(""), up).await;
    let started = Instant::now();
    let answer = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 504);
    let took = started.elapsed();
    // `config` sets timeout_ms = 1500.
    assert!(
        took >= Duration::from_millis(1400) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn refused_fast_then_recovers_when_the_service_is_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let guard = Guard::start(&config(""), addr).await;
    let started = Instant::now();
    assert_eq!(
        get(PROD, guard.proxy, "/latest/meta-data/instance-id")
            .await
            .status,
        502
    );
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "a refused connection should fail at once"
    );

    // The service comes back on the same address: the next request goes through.
    let listener = TcpListener::bind(addr).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(imds_guard_emulator::serve(
        listener,
        EmulatorOptions::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let answer = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    // And it goes away again: 502 again (no stale pooled connection passes for it), the guard
    // still healthy.
    drop(stop);
    let started = Instant::now();
    while get(PROD, guard.proxy, "/latest/meta-data/ami-id")
        .await
        .status
        != 502
    {
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the outage went unnoticed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get(PROD, guard.admin, "/healthz").await.status, 200);
}
