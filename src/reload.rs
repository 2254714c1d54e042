//! Hot reload: the policy changes without a restart and without dropping a connection.
//!
//! What a request reads from the config lives in one [`Live`] value that is swapped whole, so a
//! request sees either the old policy or the new one, never a mix. A reload is triggered by SIGHUP
//! or by a change of the config file's content. The file is re-read by path on every check, which
//! follows symlinks: a mounted ConfigMap, which the kubelet updates by swapping a `..data`
//! symlink, is seen like any other change. A new config that fails the check is refused with the
//! key and the reason in the log and a metric, and the old one keeps serving.
//!
//! Reloaded: the rules, `[imdsv2]`, `[server] mode`, `[audit]`, and static pods. Everything that owns a
//! socket, a watch or netfilter rules (listen addresses, upstream, inventory source, netfilter)
//! needs a restart; such changes are logged and otherwise ignored.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::mpsc;

use crate::config::{self, Config, Mode, Source};
use crate::file_watch::{self, Judged, Seen};
use crate::inventory::{static_source, Index};
use crate::metrics::Metrics;
use crate::policy::Policy;

/// The part of the config the request path reads, swapped whole on reload.
#[derive(Debug)]
pub struct Current {
    pub policy: Arc<Policy>,
    pub mode: Mode,
    /// `[imdsv2] hop_limit`: IP TTL of the proxy's token answers, when set.
    pub token_hop_limit: Option<u8>,
    /// `[audit] workload_labels`: the pod labels audit lines carry.
    pub workload_labels: Arc<[String]>,
}

impl Current {
    fn of(config: &Config) -> Self {
        Self {
            policy: Arc::clone(&config.policy),
            mode: config.server.mode,
            token_hop_limit: config.token_hop_limit,
            workload_labels: Arc::clone(&config.audit.workload_labels),
        }
    }
}

/// The live, swappable settings: read by every request without a lock (`arc_swap`), replaced
/// whole by a reload.
#[derive(Debug)]
pub struct Live {
    current: ArcSwap<Current>,
}

impl Live {
    /// Starts with `config`'s settings.
    pub fn new(config: &Config) -> Self {
        Self {
            current: ArcSwap::from_pointee(Current::of(config)),
        }
    }

    /// The settings in force now (a cheap clone of a shared pointer).
    pub fn load(&self) -> Arc<Current> {
        self.current.load_full()
    }

    fn store(&self, current: Current) {
        self.current.store(Arc::new(current));
    }
}

/// Where and when to reload from.
pub struct Reload {
    /// The config file, re-read by path (symlinks followed) on every check.
    pub path: PathBuf,
    /// The text the running config was parsed from: a change is a difference from this.
    pub loaded: String,
    /// How often the file is checked for a change of content; `None`: only on request.
    pub poll: Option<Duration>,
    /// One message per SIGHUP (or any other explicit request to reload).
    pub requests: mpsc::UnboundedReceiver<()>,
}

/// Config files are a few kilobytes; the cap, far above any real config, only keeps a wrong path
/// (a device, a log) from being read into memory whole.
const MAX_CONFIG_FILE: u64 = 16 << 20;

/// Watches for reload requests and file changes until the task is dropped.
pub async fn watch(
    reload: Reload,
    started: Config,
    live: Arc<Live>,
    index: Arc<Index>,
    metrics: Arc<Metrics>,
) {
    let Reload {
        path,
        loaded,
        poll,
        requests,
    } = reload;
    let mut running = started;
    // The running config was parsed from `loaded`: the file unchanged since is not a change.
    let seen = Seen::acted_on(loaded.into_bytes());
    let act = |judged: Judged<'_>| match judged {
        Judged::Unchanged => {}
        Judged::Failed { error, report } => {
            if report {
                tracing::error!(path = %path.display(), error = %error, "config reload: cannot read the file; keeping the running config");
                metrics.config_reloads.get_or_create(&refused()).inc();
            }
        }
        Judged::Changed(content) => {
            let text = String::from_utf8_lossy(content);
            match config::parse(&text) {
                Ok(new) if new.upstream.cloud != running.upstream.cloud => {
                    // A policy is written for one cloud's paths and protocol: it is never put in
                    // front of another's server.
                    tracing::error!(path = %path.display(), running = %running.upstream.cloud, new = %new.upstream.cloud, "config reload refused: [upstream] cloud changes only with a restart; the running config stays in force");
                    metrics.config_reloads.get_or_create(&refused()).inc();
                }
                Ok(new) => {
                    apply(&running, &new, &live, &index);
                    metrics.config_reloads.get_or_create(&ok()).inc();
                    running = new;
                }
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "config reload refused; the running config stays in force");
                    metrics.config_reloads.get_or_create(&refused()).inc();
                }
            }
        }
    };
    file_watch::watch(&path, MAX_CONFIG_FILE, seen, poll, Some(requests), act).await
}

fn ok() -> crate::metrics::ReloadLabels {
    crate::metrics::ReloadLabels { result: "ok" }
}

fn refused() -> crate::metrics::ReloadLabels {
    crate::metrics::ReloadLabels { result: "refused" }
}

fn apply(running: &Config, new: &Config, live: &Live, index: &Index) {
    let ignored = restart_needed(running, new);
    if !ignored.is_empty() {
        tracing::warn!(sections = ?ignored, "config reload: these changes take effect only after a restart; kept as they were");
    }
    if running.inventory.source == Source::Static && new.inventory.source == Source::Static {
        static_source::load(index, &new.inventory.pods);
    }
    if new.policy.uses_namespace_labels()
        && !running.policy.uses_namespace_labels()
        && running.inventory.source == Source::Kubernetes
    {
        tracing::warn!("config reload: rules now select on namespace labels, but namespaces are watched only from a start with such rules; those rules match no pod until a restart");
    }
    live.store(Current::of(new));
    tracing::info!(rules = new.policy.rules().len(), mode = ?new.server.mode, "config reloaded");
}

/// Sections whose change needs a restart.
fn restart_needed(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.server.listen != new.server.listen || old.server.admin_listen != new.server.admin_listen
    {
        out.push("server.listen/admin_listen");
    }
    if old.server.shutdown_grace_seconds != new.server.shutdown_grace_seconds {
        out.push("server.shutdown_grace_seconds");
    }
    let (a, b) = (&old.upstream, &new.upstream);
    if a.url != b.url
        || a.cloud != b.cloud
        || a.emulator != b.emulator
        || a.connect_timeout != b.connect_timeout
        || a.timeout != b.timeout
    {
        out.push("upstream");
    }
    let (a, b) = (&old.inventory, &new.inventory);
    if a.source != b.source
        || a.node_name != b.node_name
        || a.kubeconfig != b.kubeconfig
        || a.unknown_source_grace != b.unknown_source_grace
        || a.self_pod != b.self_pod
    {
        out.push("inventory");
    }
    let (a, b) = (&old.netfilter, &new.netfilter);
    if a.manage != b.manage || a.interfaces != b.interfaces || a.backend != b.backend {
        out.push("netfilter");
    }
    if old.tokens != new.tokens || old.token_key_file != new.token_key_file {
        out.push("imdsv2.tokens/token_key_file");
    }
    if old.cache != new.cache {
        out.push("cache");
    }
    if old.limits != new.limits {
        out.push("limits");
    }
    out
}

#[cfg(test)]
mod tests;
