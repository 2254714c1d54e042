//! The whole process, read top to bottom: each part started by its own `start`, all of them
//! stopped by one shutdown future handed in by the caller.
//!
//! Order matters where it says so: the interception rules go in before anything is served, the
//! inventory is watched before the proxy answers (until its first full list the proxy answers
//! 503), and on shutdown the listeners close first and in-flight requests get the grace period.

mod workers;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::admin::Admin;
use crate::audit;
use crate::config::{Config, Method};
use crate::interception;
use crate::inventory::{self, Feed, InventoryError};
use crate::metrics::Metrics;
use crate::netfilter::{self, NetfilterError};
use crate::reload::{self, Live, Reload};
use crate::taint;
#[cfg(feature = "emulator")]
use imds_guard_emulator::{self as emulator, EmulatorOptions};

/// The sockets `run` serves on, bound by the caller (so tests can bind `127.0.0.1:0`).
pub struct Listeners {
    pub proxy: TcpListener,
    pub admin: TcpListener,
    /// Where the built-in emulator serves, when it is to run (`[upstream] emulator = true`: the
    /// binary binds the upstream URL's address).
    #[cfg(feature = "emulator")]
    pub emulator: Option<TcpListener>,
}

/// What `run` is handed besides the config and the sockets.
pub struct Options {
    /// Where audit lines go.
    pub audit: Arc<dyn audit::Sink>,
    /// Reload the policy on request and on a change of the config file.
    pub reload: Option<Reload>,
}

impl Options {
    /// Audit lines to `audit`, no reloading.
    pub fn new(audit: Arc<dyn audit::Sink>) -> Self {
        Self {
            audit,
            reload: None,
        }
    }
}

/// Why the server could not run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("[netfilter] manage = true: {0}")]
    Netfilter(#[from] NetfilterError),
    #[error("[interception] method = \"cgroup\"")]
    Interception(#[from] crate::interception::InterceptionError),
    #[error(transparent)]
    Inventory(#[from] InventoryError),
    #[error(transparent)]
    TokenKey(#[from] crate::front::KeyError),
    #[error("cannot start the proxy's threads: {0}")]
    Workers(std::io::Error),
    #[error("server task failed: {0}")]
    Task(String),
}

/// Runs the guard until `shutdown` resolves, then drains within the configured grace period.
pub async fn run(
    config: Config,
    listeners: Listeners,
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let metrics = Arc::new(Metrics::new());
    // What keeps state current (rule checks, inventory watches, reload, the taint) runs until
    // shutdown; what serves is stopped by `stop` and drained.
    let mut background = tokio::task::JoinSet::new();
    let mut serving = tokio::task::JoinSet::new();
    let stop = CancellationToken::new();
    let stopped = || stop.clone().cancelled_owned();
    let grace = Duration::from_secs(config.server.shutdown_grace_seconds);
    // The token key first: a key file that cannot be read stops the start before anything else.
    let front = crate::front::Front::start(&config, &metrics)?;

    // 1. Interception, before anything is served: pods that connect meanwhile wait in the
    //    listen backlog.
    let (rules, keeper) = netfilter::keeper::start(&config, &metrics).await?;
    if let Some(keeper) = keeper {
        background.spawn(keeper);
    }
    // With the cgroup method, the kernel hooks (kept pinned across restarts) and the record of
    // which cgroup opened each redirected connection.
    let identifier = match config.interception.method {
        Method::Netfilter => None,
        Method::Cgroup => {
            let plan = interception::plan(&config)?;
            let installed = interception::install(&plan)?;
            background.spawn(interception::keeper::keep(
                config.clone(),
                plan,
                installed.backstop,
            ));
            Some(Arc::new(installed.identifier))
        }
    };

    // 2. Who is who.
    let inventory = inventory::start(&config, Feed::Watch(Arc::clone(&metrics))).await?;
    let index = Arc::clone(&inventory.index);
    for feeder in inventory.feeders {
        background.spawn(feeder);
    }

    // 3. The built-in emulator, as the upstream of local runs.
    #[cfg(feature = "emulator")]
    if let Some(listener) = listeners.emulator {
        tracing::info!(addr = ?listener.local_addr().ok(), "built-in emulator serving as the metadata service");
        let stop = stopped();
        let options = EmulatorOptions {
            cloud: config.upstream.cloud,
            ..EmulatorOptions::default()
        };
        serving.spawn(async move {
            if let Err(e) = emulator::serve(listener, options, stop).await {
                tracing::error!(error = %e, "emulator stopped");
            }
        });
    }

    // 4. New nodes stay unschedulable until the guard protects them.
    if let (Some(key), Some((client, node))) = (config.startup_taint.clone(), inventory.kubernetes)
    {
        background.spawn(taint::remove_once_protected(
            client,
            node,
            key,
            Arc::clone(&index),
            rules.clone(),
        ));
    }

    // 5. The policy in force, swapped whole on reload.
    let live = Arc::new(Live::new(&config));
    if let Some(reload) = options.reload {
        background.spawn(reload::watch(
            reload,
            config.clone(),
            Arc::clone(&live),
            Arc::clone(&index),
            Arc::clone(&metrics),
        ));
    }

    // 6. The proxy, on its worker threads.
    tracing::info!(
        listen = ?listeners.proxy.local_addr().ok(),
        admin = ?listeners.admin.local_addr().ok(),
        upstream = %config.upstream.url,
        mode = ?config.server.mode,
        rules = config.policy.rules().len(),
        workers = config.server.worker_threads(),
        tokens = config.tokens.as_str(),
        cache = config.cache.is_some(),
        "imds-guard serving"
    );
    let shared = workers::Shared {
        live,
        inventory: Arc::clone(&index),
        audit: Arc::clone(&options.audit),
        metrics: Arc::clone(&metrics),
        unknown_source_grace: inventory.unknown_source_grace,
        front,
        identifier,
    };
    let proxy = workers::start(&config, shared, listeners.proxy, stopped(), grace)
        .map_err(RunError::Workers)?;
    serving.spawn(proxy);

    // 7. The admin port: health, readiness, metrics.
    let admin = Admin {
        inventory: index,
        metrics,
        rules,
        audit: options.audit,
    };
    serving.spawn(admin.serve(listeners.admin, stopped(), grace));

    shutdown.await;
    tracing::info!(
        grace_seconds = grace.as_secs(),
        "shutting down: no new connections, finishing requests in flight"
    );
    stop.cancel();
    while let Some(result) = serving.join_next().await {
        result.map_err(|e| RunError::Task(e.to_string()))?;
    }
    background.shutdown().await;
    Ok(())
}
