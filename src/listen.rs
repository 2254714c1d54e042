//! The guard's accept loop: everything the guard listens on (the pods' listener, the admin port,
//! the canary's port) accepts, caps, refuses, backs off and drains here.
//!
//! A connection is admitted by the connection caps (or answered with the fixed 429 and closed),
//! served by `imds_guard_net::serve_connection` (hyper's HTTP/1 server with a header read timeout
//! and a bounded read buffer, which gives an answer carrying `imds_guard_net::HopLimit` that IP
//! TTL). On stop, the listener closes and open connections get a grace period to finish.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

use crate::cloud::Cloud;
use crate::conn_caps::{Cap, ConnCaps, Permit};
use crate::metrics::{LimitLabels, Metrics};
use crate::respond::connection_refusal;
use imds_guard_net::{accept_failed, drain, serve_connection};

/// How a listener treats its connections.
#[derive(Clone)]
pub struct Connections {
    /// Time for a request's headers, and for the next request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Caps on open connections; `None` for listeners only the node reaches (admin).
    pub caps: Option<Arc<ConnCaps>>,
    /// Counts connections refused by a cap.
    pub metrics: Option<Arc<Metrics>>,
    /// Whose server the listener stands in for: the refusal speaks its protocol (GCP's header).
    pub cloud: Cloud,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            caps: None,
            metrics: None,
            cloud: Cloud::Aws,
        }
    }
}

/// Accepts HTTP/1 connections on `listener` (no caps: listeners only the node reaches) until
/// `stop` resolves, then gives open connections `grace` to finish. `make` builds the request
/// handler for each connection from its peer.
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
    let graceful = GracefulShutdown::new();
    let connections = Connections::default();
    let timeout = connections.header_read_timeout;
    accept_admitted(listener, stop, &connections, |stream, peer, permit| {
        serve_connection(stream, peer, permit, timeout, &graceful, make(peer));
        ControlFlow::Continue(())
    })
    .await;
    drain(graceful, grace).await;
}

/// Accepts connections on `listener` until `stop` resolves or `take` says to stop, and gives
/// `take` each one that the connection caps admit, with its place; the others get the 429
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
                    Err(cap) => {
                        refuse_connection(stream, peer, cap, connections);
                    }
                },
                Err(e) => accept_failed(&e).await,
            },
            () = &mut stop => break,
        }
    }
}

/// Takes a place for a new connection from `peer`, or says which cap refuses it.
fn admit(peer: SocketAddr, connections: &Connections) -> Result<Option<Permit>, Cap> {
    connections
        .caps
        .as_ref()
        .map(|caps| caps.acquire(peer.ip()))
        .transpose()
}

/// Answers a connection over a cap with a fixed 429 and closes it, without reading a request.
fn refuse_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    cap: Cap,
    connections: &Connections,
) {
    let refusal = connection_refusal(connections.cloud);
    tracing::debug!(%peer, cap = cap.as_str(), "connection refused: cap reached");
    if let Some(metrics) = connections.metrics.as_deref() {
        // The metric's label keeps its published name, `limit`.
        let labels = LimitLabels {
            limit: cap.as_str(),
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
