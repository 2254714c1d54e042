//! Wiring: the listeners, the inventory, the proxy, the admin port and (for local runs) the
//! emulator, all stopped by one shutdown future handed in by the caller.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
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
use tokio::sync::{mpsc, oneshot, watch};

use crate::admin::Admin;
use crate::audit;
use crate::config::{Config, Source};
use crate::emulator::{self, EmulatorOptions};
use crate::inventory::kubernetes::{self, KubeError};
use crate::inventory::self_source::{self, SelfError};
use crate::inventory::{static_source, Index, Wait as _};
use crate::limits::{ConnLimits, Limit, Permit};
use crate::metrics::{LimitLabels, Metrics};
use crate::net::{TtlHandle, TtlStream};
use crate::netfilter::{self, NetfilterError, Settings};
use crate::proxy::upstream::Upstream;
use crate::proxy::Proxy;
use crate::reload::{self, Live, Reload};
use crate::taint;

/// How a listener treats its connections.
#[derive(Clone)]
pub struct Connections {
    /// Time for a request's headers, and for the next request on a kept-alive connection.
    pub header_read_timeout: Duration,
    /// Caps on open connections; `None` for listeners only the node reaches (admin).
    pub limits: Option<Arc<ConnLimits>>,
    /// Counts connections refused by a limit.
    pub metrics: Option<Arc<Metrics>>,
}

impl Default for Connections {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(5),
            limits: None,
            metrics: None,
        }
    }
}

/// The sockets `run` serves on, bound by the caller (so tests can bind `127.0.0.1:0`).
pub struct Listeners {
    pub proxy: TcpListener,
    pub admin: TcpListener,
    /// Where the built-in emulator listens when `[upstream] emulator = true`.
    pub emulator: Option<TcpListener>,
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("[netfilter] manage = true: {0}")]
    Netfilter(#[from] NetfilterError),
    #[error("[upstream] emulator = true but no emulator listener was bound")]
    NoEmulatorListener,
    #[error("server task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Kubernetes(#[from] KubeError),
    #[error("--remove-startup-taint needs [inventory] source = \"kubernetes\"")]
    TaintNeedsKubernetes,
    #[error("[inventory] source = \"self\": {0}")]
    SelfPod(#[from] SelfError),
}

/// What `run_with` takes beyond the config and the listeners.
#[derive(Default)]
pub struct Extras {
    /// Reload the policy on request and on a change of the config file.
    pub reload: Option<Reload>,
    /// Remove this taint from the node once the rules are in place and the inventory is synced
    /// (Kubernetes source only): new nodes then stay unschedulable until the guard protects them.
    pub remove_startup_taint: Option<String>,
}

/// Runs the guard until `shutdown` resolves, then drains within the configured grace period.
pub async fn run(
    config: Config,
    listeners: Listeners,
    audit: Arc<dyn audit::Sink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    run_with(config, listeners, audit, shutdown, Extras::default()).await
}

/// [`run`] with reloading and the start-up taint.
pub async fn run_with(
    config: Config,
    listeners: Listeners,
    audit: Arc<dyn audit::Sink>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    extras: Extras,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    // Whether the interception rules are in place; always true when netfilter is not managed.
    let rules_ok = Arc::new(AtomicBool::new(true));
    if config.netfilter.manage {
        // Before serving: pods that connect meanwhile wait in the listen backlog. The rules stay
        // when the guard stops, so pods fail closed rather than reach the service directly.
        let settings = Settings::from_config(&config);
        let done = tokio::task::spawn_blocking(move || netfilter::install(&settings))
            .await
            .map_err(|e| RunError::Task(e.to_string()))??;
        tracing::info!(
            backend = %done.variant.name(netfilter::rules::Family::V4),
            ipv6 = done.ipv6,
            rules = done.rules,
            cleared_connections = done.cleared,
            "netfilter rules installed and verified"
        );
        metrics.netfilter_rules_ok.set(1);
    }
    // Background work (inventory feeders, reload, rule checks) runs until shutdown.
    let mut sources = tokio::task::JoinSet::new();
    if config.netfilter.manage {
        let settings = Settings::from_config(&config);
        sources.spawn(keep_rules(
            settings,
            Duration::from_secs(config.netfilter.check_interval_seconds),
            Arc::clone(&rules_ok),
            Arc::clone(&metrics),
        ));
    }
    let mut kube_client = None;
    let (inventory, unknown_source_grace) = match config.inventory.source {
        Source::Static => {
            let index = Index::new();
            static_source::load(&index, &config.inventory.pods);
            (Arc::new(index), Duration::ZERO)
        }
        Source::SelfPod => {
            let index = Arc::new(Index::any_source());
            let env = |name: &str| std::env::var(name).ok();
            if let Some(watch) = self_source::start(&index, &config.inventory.self_pod, env)? {
                sources.spawn(watch);
            }
            if config.policy.uses_namespace_labels() {
                tracing::warn!("rules select on namespace labels, which sidecar mode cannot know (no API access): those rules select nothing");
            }
            (index, Duration::ZERO)
        }
        Source::Kubernetes => {
            let node = kubernetes::node_name(config.inventory.node_name.as_deref())?;
            let client = kubernetes::client(config.inventory.kubeconfig.as_deref()).await?;
            let namespaces = config.policy.uses_namespace_labels();
            let index = Arc::new(if namespaces {
                Index::with_namespace_labels()
            } else {
                Index::new()
            });
            tracing::info!(node = %node, namespaces, "watching this node's pods; not ready until the first list");
            sources.spawn(kubernetes::watch_pods(
                client.clone(),
                node.clone(),
                Arc::clone(&index),
                Arc::clone(&metrics),
            ));
            if namespaces {
                sources.spawn(kubernetes::watch_namespaces(
                    client.clone(),
                    Arc::clone(&index),
                    Arc::clone(&metrics),
                ));
            }
            kube_client = Some((client, node));
            (index, config.inventory.unknown_source_grace)
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            // Resolves on the signal, or if the sender is gone (which only happens on exit).
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    let mut tasks = tokio::task::JoinSet::new();

    if config.upstream.emulator {
        let listener = listeners.emulator.ok_or(RunError::NoEmulatorListener)?;
        tracing::info!(addr = ?listener.local_addr().ok(), "built-in emulator serving as the metadata service");
        let stop = stopped();
        tasks.spawn(async move {
            if let Err(e) = emulator::serve(listener, EmulatorOptions::default(), stop).await {
                tracing::error!(error = %e, "emulator stopped");
            }
        });
    }

    if let Some(key) = extras.remove_startup_taint {
        let Some((client, node)) = kube_client.clone() else {
            return Err(RunError::TaintNeedsKubernetes);
        };
        let (index, rules_ok) = (Arc::clone(&inventory), Arc::clone(&rules_ok));
        sources.spawn(async move {
            wait_until_protected(&index, &rules_ok).await;
            taint::remove_until_done(client, &node, &key).await;
        });
    }
    let live = Arc::new(Live::new(&config));
    if let Some(reload) = extras.reload {
        sources.spawn(reload::watch(
            reload,
            config.clone(),
            Arc::clone(&live),
            Arc::clone(&inventory),
            Arc::clone(&metrics),
        ));
    }
    // One proxy per worker thread: they share the policy, the inventory, the audit sink and the
    // metrics, and each has its own share of the upstream connections (used only on its thread).
    let workers = config.server.worker_threads();
    let proxies: Vec<Arc<Proxy>> = (0..workers)
        .map(|i| {
            Arc::new(Proxy {
                live: Arc::clone(&live),
                inventory: Arc::clone(&inventory),
                upstream: Upstream::with_connections(
                    &config.upstream,
                    share(config.upstream.max_connections, workers, i),
                ),
                audit: Arc::clone(&audit),
                metrics: Arc::clone(&metrics),
                unknown_source_grace,
            })
        })
        .collect();
    let admin = Arc::new(Admin {
        inventory,
        metrics: Arc::clone(&metrics),
        rules_ok,
        audit,
    });

    tracing::info!(
        listen = ?listeners.proxy.local_addr().ok(),
        admin = ?listeners.admin.local_addr().ok(),
        upstream = %config.upstream.url,
        mode = ?config.server.mode,
        rules = config.policy.rules().len(),
        workers,
        "imds-guard serving"
    );
    let connections = Connections {
        header_read_timeout: Duration::from_millis(config.server.header_read_timeout_ms),
        limits: Some(ConnLimits::new(
            config.server.max_connections,
            config.server.max_connections_per_source,
        )),
        metrics: Some(Arc::clone(&metrics)),
    };
    let threads = start_workers(proxies, connections.header_read_timeout, grace)?;
    tasks.spawn(spread(listeners.proxy, stopped(), connections, threads));
    tasks.spawn(serve(listeners.admin, stopped(), grace, move |_peer| {
        let admin = Arc::clone(&admin);
        move |request: Request<Incoming>| {
            let response = admin.handle(&request);
            async move { response }
        }
    }));

    shutdown.await;
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "shutting down: no new connections, finishing requests in flight"
    );
    let _ = stop_tx.send(true);
    while let Some(result) = tasks.join_next().await {
        result.map_err(|e| RunError::Task(e.to_string()))?;
    }
    sources.shutdown().await;
    Ok(())
}

/// Checks the managed rules `every` so often; puts them back when something removed them (another
/// tool flushing `nat`, say), and reports their state to `/readyz` and the metrics.
async fn keep_rules(
    settings: Settings,
    every: Duration,
    rules_ok: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await; // The first tick is immediate; the rules were just installed.
    loop {
        ticks.tick().await;
        let check = settings.clone();
        let fine = match tokio::task::spawn_blocking(move || netfilter::status(&check)).await {
            Ok(Ok(status)) => status.diff.is_empty(),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot check the netfilter rules");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "netfilter check task failed");
                false
            }
        };
        if !fine {
            tracing::warn!("netfilter rules are not all in place; installing them again");
            let again = settings.clone();
            let installed = tokio::task::spawn_blocking(move || netfilter::install(&again)).await;
            let ok = matches!(installed, Ok(Ok(_)));
            if let Ok(Err(e)) = &installed {
                tracing::error!(error = %e, "netfilter rules could not be put back");
            }
            rules_ok.store(ok, Ordering::Relaxed);
            metrics.netfilter_rules_ok.set(i64::from(ok));
        } else {
            rules_ok.store(true, Ordering::Relaxed);
            metrics.netfilter_rules_ok.set(1);
        }
    }
}

/// Answers a connection over a limit with a fixed 429 and closes it, without reading a request.
fn refuse_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    limit: Limit,
    metrics: Option<&Metrics>,
) {
    tracing::debug!(%peer, limit = limit.as_str(), "connection refused: limit reached");
    if let Some(metrics) = metrics {
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
            let _ = stream.write_all(crate::limits::REFUSAL).await;
            let _ = stream.shutdown().await;
        })
        .await;
    });
}

/// Resolves once the inventory is synced and the rules are in place.
async fn wait_until_protected(index: &Index, rules_ok: &AtomicBool) {
    let mut changes = index.subscribe();
    loop {
        if index.is_ready() && rules_ok.load(Ordering::Relaxed) {
            return;
        }
        // Index updates wake us; the timeout covers a change of the rules' state.
        let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
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
async fn accept_admitted(
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
                        refuse_connection(stream, peer, limit, connections.metrics.as_deref());
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
fn serve_connection<H, F>(
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
async fn drain(graceful: GracefulShutdown, grace: Duration) {
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

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
    header_read_timeout: Duration,
    grace: Duration,
) -> Result<Vec<Worker>, RunError> {
    let mut workers = Vec::with_capacity(proxies.len());
    for (i, proxy) in proxies.into_iter().enumerate() {
        let (handoff, connections) = mpsc::unbounded_channel();
        let (finished, done) = oneshot::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| RunError::Task(format!("cannot start a proxy worker: {e}")))?;
        std::thread::Builder::new()
            .name(format!("imds-guard-proxy-{i}"))
            .spawn(move || {
                runtime.block_on(work(connections, proxy, header_read_timeout, grace));
                let _ = finished.send(());
            })
            .map_err(|e| RunError::Task(format!("cannot start a proxy worker thread: {e}")))?;
        workers.push(Worker { handoff, done });
    }
    Ok(workers)
}

/// A worker thread's loop: serves the connections handed to it until the accepting task stops,
/// then drains them within `grace`.
async fn work(
    mut connections: mpsc::UnboundedReceiver<Accepted>,
    proxy: Arc<Proxy>,
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
        let proxy = Arc::clone(&proxy);
        serve_connection(
            stream,
            peer,
            permit,
            header_read_timeout,
            &graceful,
            |ttl| {
                move |request: Request<Incoming>| {
                    let proxy = Arc::clone(&proxy);
                    let ttl = ttl.clone();
                    async move { proxy.handle(peer.ip(), request, &ttl).await }
                }
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
mod tests {
    use super::share;

    #[test]
    fn upstream_connections_are_shared_out_whole() {
        for total in [1, 2, 3, 7, 64, 4096] {
            for workers in 1..=9 {
                let shares: Vec<usize> = (0..workers).map(|i| share(total, workers, i)).collect();
                assert!(
                    shares.iter().all(|&s| s >= 1),
                    "{total} over {workers}: {shares:?}"
                );
                let sum: usize = shares.iter().sum();
                // Exactly the total, unless there are more workers than connections (one each).
                assert_eq!(
                    sum,
                    total.max(workers),
                    "{total} over {workers}: {shares:?}"
                );
                let (min, max) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                assert!(max - min <= 1, "{total} over {workers}: {shares:?}");
            }
        }
    }
}
