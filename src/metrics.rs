//! Prometheus metrics, served as text on the admin port.
//!
//! Label values come from fixed sets (decisions, reasons, statuses, error kinds), never from pod
//! names or paths, so the number of series stays bounded whatever pods send. The one exception,
//! the node's pod interfaces with BPF programs on their ingress, is bounded by the node's pods, and
//! an interface's series goes when the interface does.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of the request counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub decision: &'static str,
    pub reason: &'static str,
    pub status: u16,
}

/// Labels of the per-rule counter: the rule that allowed or denied, and the decision.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The rule's name, as in the config (bounded by the config, not by pods).
    pub rule: String,
    pub decision: &'static str,
}

/// Labels of the upstream error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: &'static str,
}

/// Labels of the config reload counter: `ok` or `refused`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    pub result: &'static str,
}

/// Labels of the Kubernetes watch counters: `pods` or `namespaces`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WatchLabels {
    pub watch: &'static str,
}

/// Labels of the refused-connection counter: `per-source` or `total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub limit: &'static str,
}

/// Labels of the metadata front's counters: a result (`hit`, `miss`, `shared`; `ok`, `failed`;
/// `valid`, `invalid`, `expired`) or a scope (`pod`, `upstream`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

/// Labels of the netfilter bypass gauge: a pod interface of the node (`lxc12ab`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InterfaceLabels {
    pub interface: String,
}

/// Labels of the netfilter bypass checks counter: whether every hook of every pod interface was
/// read (`"true"`), or part could not be (`"false"`; the log says which).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CheckLabels {
    pub complete: &'static str,
}

/// Labels of the rate-limit counter: `pod` or `upstream`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ScopeLabels {
    pub scope: &'static str,
}

/// Every metric the guard exports.
pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    /// Requests a rule decided (allowed, denied by a deny pattern, token required…), by rule
    /// and decision; requests no rule decided are not counted here.
    pub rule_decisions: Family<RuleLabels, Counter>,
    pub request_duration: Histogram,
    pub upstream_duration: Histogram,
    pub upstream_errors: Family<ErrorLabels, Counter>,
    pub inventory_pods: Gauge,
    /// 1 once the inventory has its first complete view.
    pub inventory_ready: Gauge,
    /// Complete (re)lists applied: 1 after start, one more after each 410 Gone or restart.
    pub watch_relists: Family<WatchLabels, Counter>,
    /// Watch errors (API server unreachable, 410 Gone, …), each followed by a retry.
    pub watch_errors: Family<WatchLabels, Counter>,
    pub config_reloads: Family<ReloadLabels, Counter>,
    /// 1 when the managed netfilter rules were last found complete, 0 when not — and 0 when
    /// netfilter is not managed (`[netfilter] manage = false`), which nothing sets.
    pub netfilter_rules_ok: Gauge,
    /// 1 for each pod interface with a BPF program on its ingress (tcx, or a `tc` bpf filter), which
    /// may send pods' packets past the netfilter rules; 0 once it is gone.
    pub netfilter_bypass_suspected: Family<InterfaceLabels, Gauge>,
    /// Bypass checks made, by whether they could read everything (a check that cannot list tcx
    /// programs, for want of bpf(), is incomplete: it may miss the programs it looks for).
    pub netfilter_bypass_checks: Family<CheckLabels, Counter>,
    /// Connections refused by a connection limit.
    pub connections_refused: Family<LimitLabels, Counter>,
    /// Audit lines dropped because stdout's reader fell behind (0 in a healthy setup).
    pub audit_dropped_lines: Gauge,
    /// Cacheable reads by result: `hit`, `miss` (this request asked the service), `shared` (it
    /// waited for another request's identical miss).
    pub cache_requests: Family<ResultLabels, Counter>,
    /// Answers held by the cache.
    pub cache_entries: Gauge,
    /// Credentials refetched in the background before they were due, by result.
    pub cache_refreshes: Family<ResultLabels, Counter>,
    /// Requests refused for going over a limit, by scope (`pod`, `upstream`).
    pub rate_limited: Family<ScopeLabels, Counter>,
    /// Tokens the guard issued to pods.
    pub tokens_issued: Counter,
    /// Guard tokens presented by pods, by result (`valid`, `invalid`, `expired`).
    pub token_checks: Family<ResultLabels, Counter>,
    /// The guard's own token with the service: fetches by result.
    pub upstream_token_fetches: Family<ResultLabels, Counter>,
    /// When the guard's own token with the service expires (Unix seconds; 0 before the first).
    pub upstream_token_expiry: Gauge,
    /// Interception canary probes the guard answered itself (malformed nonces included); they
    /// write no audit line, so this is their only trace.
    pub canary_probes: Counter,
}

impl Metrics {
    /// Creates and registers all metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("imds_guard");
        let requests = Family::<RequestLabels, Counter>::default();
        let rule_decisions = Family::<RuleLabels, Counter>::default();
        registry.register(
            "rule_decisions",
            "Requests a rule decided, by rule and decision",
            rule_decisions.clone(),
        );
        registry.register(
            "requests",
            "Requests by decision, reason and status",
            requests.clone(),
        );
        // 50 µs to ~3 s: the guard's own work is microseconds, upstream milliseconds.
        let request_duration = Histogram::new(exponential_buckets(0.000_05, 3.0, 11));
        registry.register(
            "request_duration_seconds",
            "Time from request to answer, in the guard",
            request_duration.clone(),
        );
        let upstream_duration = Histogram::new(exponential_buckets(0.000_05, 3.0, 11));
        registry.register(
            "upstream_duration_seconds",
            "Time of the upstream exchange",
            upstream_duration.clone(),
        );
        let upstream_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "upstream_errors",
            "Failed upstream exchanges by kind",
            upstream_errors.clone(),
        );
        let inventory_pods = Gauge::default();
        registry.register(
            "inventory_pods",
            "Pods in the inventory",
            inventory_pods.clone(),
        );
        let inventory_ready = Gauge::default();
        registry.register(
            "inventory_ready",
            "1 once the inventory has its first complete view",
            inventory_ready.clone(),
        );
        let watch_relists = Family::<WatchLabels, Counter>::default();
        registry.register(
            "watch_relists",
            "Complete lists applied by the Kubernetes watches",
            watch_relists.clone(),
        );
        let watch_errors = Family::<WatchLabels, Counter>::default();
        registry.register(
            "watch_errors",
            "Kubernetes watch errors, each followed by a retry",
            watch_errors.clone(),
        );
        let config_reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "config_reloads",
            "Config reloads by result (ok, refused)",
            config_reloads.clone(),
        );
        let netfilter_rules_ok = Gauge::default();
        registry.register(
            "netfilter_rules_ok",
            "1 when the managed netfilter rules were last found complete",
            netfilter_rules_ok.clone(),
        );
        let netfilter_bypass_suspected = Family::<InterfaceLabels, Gauge>::default();
        registry.register(
            "netfilter_bypass_suspected",
            "1 for each pod interface with a BPF program on its ingress that may bypass netfilter",
            netfilter_bypass_suspected.clone(),
        );
        let netfilter_bypass_checks = Family::<CheckLabels, Counter>::default();
        registry.register(
            "netfilter_bypass_checks",
            "Netfilter bypass checks made, by whether every pod interface's hooks could be read",
            netfilter_bypass_checks.clone(),
        );
        let connections_refused = Family::<LimitLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections refused by a connection limit (per-source, total)",
            connections_refused.clone(),
        );
        let audit_dropped_lines = Gauge::default();
        registry.register(
            "audit_dropped_lines",
            "Audit lines dropped because the reader of stdout fell behind",
            audit_dropped_lines.clone(),
        );
        let cache_requests = Family::<ResultLabels, Counter>::default();
        registry.register(
            "cache_requests",
            "Cacheable reads by result (hit, miss, shared)",
            cache_requests.clone(),
        );
        let cache_entries = Gauge::default();
        registry.register(
            "cache_entries",
            "Answers held by the cache",
            cache_entries.clone(),
        );
        let cache_refreshes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "cache_refreshes",
            "Credentials refetched in the background before they were due, by result (ok, failed)",
            cache_refreshes.clone(),
        );
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused for going over a limit, by scope (pod, upstream)",
            rate_limited.clone(),
        );
        let tokens_issued = Counter::default();
        registry.register(
            "tokens_issued",
            "IMDSv2 tokens the guard issued to pods",
            tokens_issued.clone(),
        );
        let token_checks = Family::<ResultLabels, Counter>::default();
        registry.register(
            "token_checks",
            "Guard tokens presented by pods, by result (valid, invalid, expired)",
            token_checks.clone(),
        );
        let upstream_token_fetches = Family::<ResultLabels, Counter>::default();
        registry.register(
            "upstream_token_fetches",
            "The guard's own token requests to the metadata service, by result (ok, failed)",
            upstream_token_fetches.clone(),
        );
        let upstream_token_expiry = Gauge::default();
        registry.register(
            "upstream_token_expiry_seconds",
            "When the guard's own token with the metadata service expires, in Unix seconds",
            upstream_token_expiry.clone(),
        );
        let canary_probes = Counter::default();
        registry.register(
            "canary_probes",
            "Interception canary probes the guard answered itself",
            canary_probes.clone(),
        );
        Self {
            registry,
            canary_probes,
            cache_requests,
            cache_entries,
            cache_refreshes,
            rate_limited,
            tokens_issued,
            token_checks,
            upstream_token_fetches,
            upstream_token_expiry,
            audit_dropped_lines,
            connections_refused,
            inventory_ready,
            watch_relists,
            watch_errors,
            config_reloads,
            netfilter_rules_ok,
            netfilter_bypass_suspected,
            netfilter_bypass_checks,
            requests,
            rule_decisions,
            request_duration,
            upstream_duration,
            upstream_errors,
            inventory_pods,
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        text
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
