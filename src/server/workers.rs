//! The proxy's threads: one per CPU (`[server] workers`), each running its own single-threaded
//! event loop, and the accepting task that hands them connections in turn.
//!
//! Why not tokio's work-stealing runtime: measured with `bench/run.py` in alternating runs
//! (README.md's "Performance", in git history; current figures in docs/performance.md), one event
//! loop per thread — a request read, decided, forwarded and answered on one thread without waking
//! another, with that thread's own share of the upstream connections — served more requests per
//! second at 32 and 256 connections (54.4k and 53.8k against 52.1k and 49.3k at 32) and spent less
//! CPU per request at one (45.3 and 48.0 µs against 54.3 and 55.1 µs) than the multi-thread
//! runtime it replaced. Kept because it pays.

use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use http::Request;
use hyper::body::Incoming;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use crate::audit;
use crate::config::Config;
use crate::conn_caps::{ConnCaps, Permit};
use crate::interception::Identifier;
use crate::inventory::Index;
use crate::listen::{accept_admitted, Connections};
use crate::metrics::Metrics;
use crate::proxy::{Proxy, Source};
use crate::reload::Live;
use crate::upstream::Pool;
use imds_guard_net::{drain, serve_connection};

/// A connection accepted for a worker thread.
struct Accepted {
    stream: std::net::TcpStream,
    peer: SocketAddr,
    permit: Option<Permit>,
}

/// A proxy worker thread, as the accepting task sees it.
struct Worker {
    /// Where its connections go; dropping it tells the worker to drain and stop.
    handoff: mpsc::UnboundedSender<Accepted>,
    /// Resolves when the worker has drained and stopped.
    done: oneshot::Receiver<()>,
}

/// What the proxies of all workers share.
pub struct Shared {
    pub live: Arc<Live>,
    pub inventory: Arc<Index>,
    pub audit: Arc<dyn audit::Sink>,
    pub metrics: Arc<Metrics>,
    /// See [`Proxy::unknown_source_grace`].
    pub unknown_source_grace: Duration,
    /// See [`Proxy::front`].
    pub front: Arc<crate::front::Front>,
    /// With the cgroup method: which pod's cgroup opened each accepted connection.
    pub identifier: Option<Arc<Identifier>>,
}

/// Starts `[server] workers` threads, each with its own proxy and its own share of the upstream
/// connections, and gives the task that accepts pods' connections on `listener` (after the
/// connection limits) and hands them out until `stop`; then the workers drain within `grace`.
pub fn start(
    config: &Config,
    shared: Shared,
    listener: TcpListener,
    stop: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<impl Future<Output = ()> + Send + 'static, std::io::Error> {
    let workers = config.server.worker_threads();
    let proxies = (0..workers)
        .map(|i| {
            Arc::new(Proxy {
                live: Arc::clone(&shared.live),
                inventory: Arc::clone(&shared.inventory),
                upstream: Pool::with_connections(
                    &config.upstream,
                    share(config.upstream.max_connections, workers, i),
                ),
                audit: Arc::clone(&shared.audit),
                metrics: Arc::clone(&shared.metrics),
                unknown_source_grace: shared.unknown_source_grace,
                front: Arc::clone(&shared.front),
            })
        })
        .collect();
    let connections = Connections {
        header_read_timeout: Duration::from_millis(config.server.header_read_timeout_ms),
        caps: Some(ConnCaps::new(
            config.server.max_connections,
            config.server.max_connections_per_source,
        )),
        metrics: Some(shared.metrics),
        cloud: config.upstream.cloud,
    };
    let threads = start_workers(
        proxies,
        shared.identifier,
        connections.header_read_timeout,
        grace,
    )?;
    Ok(spread(listener, stop, connections, threads))
}

/// The `i`th of `workers` shares of `total` upstream connections (the shares add up to `total`;
/// none is smaller than one).
fn share(total: usize, workers: usize, i: usize) -> usize {
    (total / workers + usize::from(i < total % workers)).max(1)
}

/// Starts one thread per proxy, each running its own single-threaded event loop: a request is then
/// read, decided, forwarded and answered on one thread, without waking another, and the upstream
/// connections it uses belong to that thread.
fn start_workers(
    proxies: Vec<Arc<Proxy>>,
    identifier: Option<Arc<Identifier>>,
    header_read_timeout: Duration,
    grace: Duration,
) -> Result<Vec<Worker>, std::io::Error> {
    let mut workers = Vec::with_capacity(proxies.len());
    for (i, proxy) in proxies.into_iter().enumerate() {
        let (handoff, connections) = mpsc::unbounded_channel();
        let (finished, done) = oneshot::channel();
        let identifier = identifier.clone();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name(format!("imds-guard-proxy-{i}"))
            .spawn(move || {
                runtime.block_on(work(
                    connections,
                    proxy,
                    identifier,
                    header_read_timeout,
                    grace,
                ));
                let _ = finished.send(());
            })?;
        workers.push(Worker { handoff, done });
    }
    Ok(workers)
}

/// A worker thread's loop: serves the connections handed to it until the accepting task stops,
/// then drains them within `grace`.
async fn work(
    mut connections: mpsc::UnboundedReceiver<Accepted>,
    proxy: Arc<Proxy>,
    identifier: Option<Arc<Identifier>>,
    header_read_timeout: Duration,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    while let Some(Accepted {
        stream,
        peer,
        permit,
    }) = connections.recv().await
    {
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot take over an accepted connection");
                continue;
            }
        };
        let origin = match &identifier {
            None => Source::Address,
            Some(identifier) => {
                // The record is keyed by both ends of the connection as the guard sees them.
                let pod = stream
                    .local_addr()
                    .ok()
                    .and_then(|local| identifier.pod_of(peer, local));
                Source::Cgroup(pod.map(Arc::from))
            }
        };
        let proxy = Arc::clone(&proxy);
        serve_connection(
            stream,
            peer,
            permit,
            header_read_timeout,
            &graceful,
            move |request: Request<Incoming>| {
                let proxy = Arc::clone(&proxy);
                let origin = origin.clone();
                async move { proxy.handle_from(peer.ip(), &origin, request).await }
            },
        );
    }
    drain(graceful, grace).await;
}

/// Accepts pods' connections until `stop` resolves and hands them to the worker threads in turn
/// (after the connection limits); then stops the workers and waits until they have drained.
async fn spread(
    listener: TcpListener,
    stop: impl Future<Output = ()>,
    connections: Connections,
    workers: Vec<Worker>,
) {
    let (handoffs, done): (Vec<_>, Vec<_>) =
        workers.into_iter().map(|w| (w.handoff, w.done)).unzip();
    let mut next = 0;
    accept_admitted(listener, stop, &connections, |stream, peer, permit| {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "cannot hand over an accepted connection");
                return ControlFlow::Continue(());
            }
        };
        let mut accepted = Accepted {
            stream,
            peer,
            permit,
        };
        // A worker that has stopped (it never should) is passed over; with none left the guard
        // stops serving, and pods' connections are refused.
        for _ in 0..handoffs.len() {
            let worker = &handoffs[next % handoffs.len()];
            next += 1;
            match worker.send(accepted) {
                Ok(()) => return ControlFlow::Continue(()),
                Err(returned) => accepted = returned.0,
            }
        }
        tracing::error!("every proxy worker has stopped; no longer serving");
        ControlFlow::Break(())
    })
    .await;
    drop(handoffs);
    for worker in done {
        let _ = worker.await;
    }
}

#[cfg(test)]
mod tests;
