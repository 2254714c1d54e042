//! The one accept loop: everything that listens (the pods' listener, the admin port, the built-in
//! emulator) accepts, limits, refuses, backs off and drains here.
//!
//! A connection is admitted by the connection limits (or answered with the fixed 429 and closed),
//! served by hyper's HTTP/1 server with a header read timeout and a bounded read buffer, and given
//! a [`TtlHandle`] with which its handler chooses the IP TTL of an answer (the hop limit of token
//! answers). On stop, the listener closes and open connections get a grace period to finish.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::cloud::Cloud;
use crate::limits::{ConnLimits, Limit, Permit};
use crate::metrics::{LimitLabels, Metrics};
use crate::net::{TtlHandle, TtlStream};
use crate::respond::connection_refusal;

/// How a listener treats its connections.
#[derive(Clone)]
pub struct Connections {
    /// Time for a request's headers, and for the next request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Caps on open connections; `None` for listeners only the node reaches (admin).
    pub limits: Option<Arc<ConnLimits>>,
    /// Counts connections refused by a limit.
    pub metrics: Option<Arc<Metrics>>,
    /// Whose server the listener stands in for: the refusal speaks its protocol (GCP's header).
    pub cloud: Cloud,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            limits: None,
            metrics: None,
            cloud: Cloud::Aws,
        }
    }
}

/// Accepts HTTP/1 connections on `listener` until `stop` resolves, then gives open connections
/// `grace` to finish. `make` builds the request handler for each connection from its peer.
pub async fn serve<M, H, F>(
    listener: TcpListener,
    stop: impl Future<Output = ()>,
    grace: Duration,
    make: M,
) where
    M: Fn(SocketAddr) -> H,
    H: Fn(Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let connections = Connections::default();
    serve_with_ttl(listener, stop, grace, connections, move |peer, _ttl| {
        make(peer)
    })
    .await;
}

/// Like [`serve`], and `make` also gets the connection's [`TtlHandle`], with which a handler
/// chooses the IP TTL of the answer it is producing (the hop limit of token answers).
pub async fn serve_with_ttl<M, H, F>(
    listener: TcpListener,
    stop: impl Future<Output = ()>,
    grace: Duration,
    connections: Connections,
    make: M,
) where
    M: Fn(SocketAddr, TtlHandle) -> H,
    H: Fn(Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let graceful = GracefulShutdown::new();
    let timeout = connections.header_read_timeout;
    accept_admitted(listener, stop, &connections, |stream, peer, permit| {
        serve_connection(stream, peer, permit, timeout, &graceful, |ttl| {
            make(peer, ttl)
        });
        ControlFlow::Continue(())
    })
    .await;
    drain(graceful, grace).await;
}

/// Accepts connections on `listener` until `stop` resolves or `take` says to stop, and gives
/// `take` each one that the connection limits admit, with its place; the others get the 429
/// refusal. The listener is closed on return.
pub async fn accept_admitted(
    listener: TcpListener,
    stop: impl Future<Output = ()>,
    connections: &Connections,
    mut take: impl FnMut(TcpStream, SocketAddr, Option<Permit>) -> ControlFlow<()>,
) {
    tokio::pin!(stop);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => match admit(peer, connections) {
                    Ok(permit) => {
                        if take(stream, peer, permit).is_break() {
                            break;
                        }
                    }
                    Err(limit) => {
                        refuse_connection(stream, peer, limit, connections);
                    }
                },
                Err(e) => accept_failed(&e).await,
            },
            () = &mut stop => break,
        }
    }
}

/// Takes a place for a new connection from `peer`, or says which limit refuses it.
fn admit(peer: SocketAddr, connections: &Connections) -> Result<Option<Permit>, Limit> {
    connections
        .limits
        .as_ref()
        .map(|limits| limits.acquire(peer.ip()))
        .transpose()
}

/// Out of file descriptors and the like: back off instead of spinning.
async fn accept_failed(e: &std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Serves one connection with hyper on the current runtime. `make` gets the connection's
/// [`TtlHandle`] and gives the request handler; the connection's `permit` goes back when it ends.
pub fn serve_connection<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    permit: Option<Permit>,
    header_read_timeout: Duration,
    graceful: &GracefulShutdown,
    make: impl FnOnce(TtlHandle) -> H,
) where
    H: Fn(Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let (stream, ttl) = TtlStream::new(stream);
    let handler = make(ttl);
    let service = service_fn(move |request| {
        let answer = handler(request);
        async move { Ok::<_, Infallible>(answer.await) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        // Metadata requests are tiny: a 16 KiB read buffer bounds both what one connection can
        // make the guard hold and the size of a request's head.
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        // The connection's place is given back only when it has ended.
        drop(permit);
    });
}

/// Lets open connections finish their requests, for at most `grace`.
pub async fn drain(graceful: GracefulShutdown, grace: Duration) {
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

/// Answers a connection over a limit with a fixed 429 and closes it, without reading a request.
fn refuse_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    limit: Limit,
    connections: &Connections,
) {
    let refusal = connection_refusal(connections.cloud);
    tracing::debug!(%peer, limit = limit.as_str(), "connection refused: limit reached");
    if let Some(metrics) = connections.metrics.as_deref() {
        let labels = LimitLabels {
            limit: limit.as_str(),
        };
        metrics.connections_refused.get_or_create(&labels).inc();
    }
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        let mut stream = stream;
        // Bounded: a client that does not read cannot hold this task.
        let _ = tokio::time::timeout(Duration::from_secs(1), async {
            let _ = stream.write_all(refusal).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
}
