//! The managed rules while the guard runs: installed before anything is served, checked every
//! `[netfilter] check_interval_seconds` and put back when something removed them (another tool
//! flushing `nat`, say). The keeper owns the one fact "the interception rules are in place", which
//! `/readyz`, the metrics and the start-up taint read, and what it found that may go around them:
//! BPF programs on the pod interfaces' ingress (`bypass`), looked for at every check, and once at
//! start when the rules are not managed (the look only reads).
//!
//! The rules stay when the guard stops, so pods fail closed rather than reach the service
//! directly.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Method, Source};
use crate::metrics::Metrics;

use super::bypass::{Suspected, Watch};
use super::{NetfilterError, Settings};

/// Whether the interception rules are in place: always, when netfilter is not managed.
#[derive(Clone)]
pub struct RulesState {
    in_place: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
    bypass: Suspected,
}

impl RulesState {
    /// Whether the rules were in place at the last look.
    pub fn in_place(&self) -> bool {
        self.in_place.load(Ordering::Relaxed)
    }

    /// The pod interfaces last found with BPF programs on their ingress (sorted; empty when none).
    pub fn bypass_suspected(&self) -> Vec<String> {
        self.bypass.interfaces()
    }

    fn set(&self, ok: bool) {
        self.in_place.store(ok, Ordering::Relaxed);
        self.metrics.netfilter_rules_ok.set(i64::from(ok));
    }
}

/// With `[netfilter] manage = true`, installs and verifies the rules (pods that connect meanwhile
/// wait in the listen backlog) and gives the task that keeps them, to run until shutdown. In node
/// mode with the netfilter method the task also looks for a bypass (once, when the rules are not
/// managed).
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
        bypass: Suspected::default(),
    };
    let every = Duration::from_secs(config.netfilter.check_interval_seconds);
    // Pod interfaces exist only in node mode (a sidecar sits inside its pod's own namespace), and
    // a BPF dataplane's programs on them bypass netfilter, not the cgroup method's hooks.
    let node_netfilter = config.inventory.source != Source::SelfPod
        && config.interception.method == Method::Netfilter;
    let watch = node_netfilter.then(|| {
        Watch::new(
            config.netfilter.interfaces.clone(),
            Arc::clone(metrics),
            state.bypass.clone(),
        )
    });
    // The cgroup method intercepts without netfilter, and its DaemonSet has neither the xtables
    // lock nor iptables-legacy's NET_RAW: a `manage = true` left from the netfilter config (the
    // cgroup component adds its section to the base's) installs nothing.
    let manage = config.netfilter.manage && config.interception.method == Method::Netfilter;
    if config.netfilter.manage && !manage {
        tracing::info!(
            "[netfilter] manage = true has no effect with [interception] method = \"cgroup\": \
             no netfilter rules are installed"
        );
    }
    if !manage {
        let task = watch.map(|watch| keep(None, Some(watch), every, state.clone()));
        return Ok((state, task));
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
    Ok((
        state.clone(),
        Some(keep(Some(settings), watch, every, state)),
    ))
}

/// Looks for a bypass at once; then, with `settings` (managed rules), checks the rules and looks
/// again `every` so often, putting the rules back when they are not all in place.
async fn keep(
    settings: Option<Settings>,
    mut watch: Option<Watch>,
    every: Duration,
    state: RulesState,
) {
    if let Some(watch) = &mut watch {
        watch.check().await;
    }
    let Some(settings) = settings else {
        return;
    };
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await; // The first tick is immediate; the rules were just installed.
    loop {
        ticks.tick().await;
        keep_rules(&settings, &state).await;
        if let Some(watch) = &mut watch {
            watch.check().await;
        }
    }
}

/// Checks the rules once and puts them back when they are not all in place.
async fn keep_rules(settings: &Settings, state: &RulesState) {
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
        return;
    }
    tracing::warn!("netfilter rules are not all in place; installing them again");
    let again = settings.clone();
    let installed = tokio::task::spawn_blocking(move || super::install(&again)).await;
    if let Ok(Err(e)) = &installed {
        tracing::error!(error = %e, "netfilter rules could not be put back");
    }
    state.set(matches!(installed, Ok(Ok(_))));
}
