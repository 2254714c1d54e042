//! The guard's connections to the metadata service: capped by `[upstream] max_connections`,
//! reused across requests and pods, never reused once the service has closed them, and waiting
//! for a free one counts against the request's deadline.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use imds_guard::listen;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// Counts of what an upstream saw: connections accepted, open at most at once, requests answered
/// at most at once.
#[derive(Default)]
struct Counts {
    accepted: AtomicUsize,
    open: AtomicUsize,
    most_open: AtomicUsize,
    busy: AtomicUsize,
    most_busy: AtomicUsize,
}

/// Lowers `open` when the connection it belongs to ends.
struct OpenConnection(Arc<Counts>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A keep-alive upstream that answers each request after `delay`, counting as it goes.
async fn counting_upstream(delay: Duration) -> (std::net::SocketAddr, Arc<Counts>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counts = Arc::new(Counts::default());
    let for_server = Arc::clone(&counts);
    tokio::spawn(listen::serve(
        listener,
        std::future::pending(),
        Duration::from_secs(1),
        move |_peer| {
            let counts = Arc::clone(&for_server);
            counts.accepted.fetch_add(1, Ordering::SeqCst);
            let open = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
            counts.most_open.fetch_max(open, Ordering::SeqCst);
            // Dropped with the handler, when the connection ends.
            let connection = Arc::new(OpenConnection(Arc::clone(&counts)));
            move |_request: Request<Incoming>| {
                let counts = Arc::clone(&counts);
                let _connection = Arc::clone(&connection);
                async move {
                    let busy = counts.busy.fetch_add(1, Ordering::SeqCst) + 1;
                    counts.most_busy.fetch_max(busy, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    counts.busy.fetch_sub(1, Ordering::SeqCst);
                    Response::new(Full::new(Bytes::from_static(b"i-0123")))
                }
            }
        },
    ));
    (addr, counts)
}

async fn many_at_once(guard: &Guard, n: usize) -> Vec<u16> {
    let proxy = guard.proxy;
    let requests = (0..n).map(|_| async move {
        get(PROD, proxy, "/latest/meta-data/instance-id")
            .await
            .status
            .as_u16()
    });
    futures::future::join_all(requests).await
}

#[tokio::test]
async fn connections_to_the_service_are_capped_and_reused() {
    let (up, counts) = counting_upstream(Duration::from_millis(100)).await;
    let guard = Guard::start(&passthrough(&config("max_connections = 2")), up).await;

    // Twelve pods' requests at once, each on its own client connection: all answered, never more
    // than two at a time upstream, over no more than two connections.
    let statuses = many_at_once(&guard, 12).await;
    assert_eq!(statuses, vec![200; 12]);
    assert_eq!(counts.most_busy.load(Ordering::SeqCst), 2);
    assert!(counts.most_open.load(Ordering::SeqCst) <= 2);
    assert_eq!(counts.accepted.load(Ordering::SeqCst), 2);

    // The next burst reuses the same two connections.
    let statuses = many_at_once(&guard, 6).await;
    assert_eq!(statuses, vec![200; 6]);
    assert_eq!(
        counts.accepted.load(Ordering::SeqCst),
        2,
        "idle connections were not reused"
    );
    let events = guard.wait_events(18).await;
    assert!(events.iter().all(|e| e["decision"] == "allow"));
}

/// An upstream that answers each connection's first request, keeps the connection as if for
/// another, and closes it `linger` later (as a service with a short keep-alive time does).
async fn closes_after_answering(linger: Duration) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\ni-0123")
                    .await;
                tokio::time::sleep(linger).await;
                drop(stream);
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn a_connection_the_service_closed_is_never_used_again() {
    let (up, accepted) = closes_after_answering(Duration::from_millis(20)).await;
    let guard = Guard::start(&passthrough(&config("")), up).await;
    for round in 0..5 {
        let answer = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
        assert_eq!(answer.status, 200, "round {round}: {}", answer.text());
        assert_eq!(answer.text(), "i-0123");
        // The service closes the pooled connection meanwhile.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        5,
        "each request should have needed a new connection"
    );
}

#[tokio::test]
async fn waiting_for_a_connection_counts_against_the_deadline() {
    // One connection, held by a request the service never answers: the second request waits for
    // it and still ends at its own deadline (`config` sets timeout_ms = 1500), not after the first.
    let (up, _hole) = black_hole().await;
    let guard = Guard::start(&config("max_connections = 1"), up).await;
    let started = Instant::now();
    let statuses = many_at_once(&guard, 2).await;
    let took = started.elapsed();
    assert_eq!(statuses, vec![504, 504]);
    assert!(took < Duration::from_millis(2500), "{took:?}");
}
