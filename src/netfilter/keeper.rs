//! The managed rules while the guard runs: installed before anything is served, checked every
//! `[netfilter] check_interval_seconds` and put back when something removed them (another tool
//! flushing `nat`, say). The keeper owns the one fact "the interception rules are in place", which
//! `/readyz`, the metrics and the start-up taint read.
//!
//! The rules stay when the guard stops, so pods fail closed rather than reach the service
//! directly.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::metrics::Metrics;

use super::{NetfilterError, Settings};

/// Whether the interception rules are in place: always, when netfilter is not managed.
#[derive(Clone)]
pub struct RulesState {
    in_place: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl RulesState {
    /// Whether the rules were in place at the last look.
    pub fn in_place(&self) -> bool {
        self.in_place.load(Ordering::Relaxed)
    }

    fn set(&self, ok: bool) {
        self.in_place.store(ok, Ordering::Relaxed);
        self.metrics.netfilter_rules_ok.set(i64::from(ok));
    }
}

/// With `[netfilter] manage = true`, installs and verifies the rules (pods that connect meanwhile
/// wait in the listen backlog) and gives the task that keeps them, to run until shutdown.
pub async fn start(
    config: &Config,
    metrics: &Arc<Metrics>,
) -> Result<
    (
        RulesState,
        Option<impl Future<Output = ()> + Send + 'static>,
    ),
    NetfilterError,
> {
    let state = RulesState {
        in_place: Arc::new(AtomicBool::new(true)),
        metrics: Arc::clone(metrics),
    };
    if !config.netfilter.manage {
        return Ok((state, None));
    }
    let settings = Settings::from_config(config);
    let install = settings.clone();
    let done = tokio::task::spawn_blocking(move || super::install(&install))
        .await
        .map_err(|e| NetfilterError::Task(e.to_string()))??;
    tracing::info!(
        backend = %done.variant.name(super::rules::Family::V4),
        ipv6 = done.ipv6,
        rules = done.rules,
        cleared_connections = done.cleared,
        "netfilter rules installed and verified"
    );
    state.set(true);
    let every = Duration::from_secs(config.netfilter.check_interval_seconds);
    Ok((state.clone(), Some(keep(settings, every, state))))
}

/// Checks the rules `every` so often and puts them back when they are not all in place.
async fn keep(settings: Settings, every: Duration, state: RulesState) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await; // The first tick is immediate; the rules were just installed.
    loop {
        ticks.tick().await;
        let check = settings.clone();
        let fine = match tokio::task::spawn_blocking(move || super::status(&check)).await {
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
        if fine {
            state.set(true);
            continue;
        }
        tracing::warn!("netfilter rules are not all in place; installing them again");
        let again = settings.clone();
        let installed = tokio::task::spawn_blocking(move || super::install(&again)).await;
        if let Ok(Err(e)) = &installed {
            tracing::error!(error = %e, "netfilter rules could not be put back");
        }
        state.set(matches!(installed, Ok(Ok(_))));
    }
}
