//! The configuration: parsed and validated once, before anything listens.
//!
//! Every refusal names the key and the reason (`rules[1].allow[0]: a pattern must start with
//! `/``), so an operator can fix a ConfigMap from the log line alone. Unknown keys are errors: a
//! misspelt `deny` must not silently become "no deny".

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::cloud::Cloud;
use crate::imds::MAX_TOKEN_TTL_SECONDS;
use crate::index::{Owner, Pod};
use crate::policy::pattern::PathPattern;
use crate::policy::{Imdsv2, Policy, Rule, Selector};

mod audit;
mod front;
mod interception;
mod self_pod;
mod server;
mod validate;
pub use audit::{Audit, DEFAULT_WORKLOAD_LABELS, MAX_WORKLOAD_LABELS};
pub use front::{Cache, Limits, TokenIssuer};
pub use interception::{redirect_target, Interception, Method};
pub use self_pod::SelfPod;
pub use server::{expand_env, Mode, Server, AUTO_WORKERS_MAX};

/// A config that passed every check.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub upstream: Upstream,
    pub inventory: Inventory,
    pub imdsv2: Imdsv2,
    pub policy: Arc<Policy>,
    pub netfilter: Netfilter,
    /// `[interception]`: netfilter or cgroup hooks.
    pub interception: Interception,
    /// `[imdsv2] hop_limit`: the IP TTL of the proxy's token answers to pods, when set.
    pub token_hop_limit: Option<u8>,
    /// `run --remove-startup-taint KEY`: the taint removed from the node once the guard protects
    /// it (see [`Config::remove_startup_taint`]).
    pub startup_taint: Option<String>,
    /// `[imdsv2] tokens`: who issues pods' tokens.
    pub tokens: TokenIssuer,
    /// `[imdsv2] token_key_file`: the key that seals guard tokens; random per start when unset.
    pub token_key_file: Option<PathBuf>,
    /// `[cache]`, when enabled.
    pub cache: Option<Cache>,
    /// `[limits]`.
    pub limits: Limits,
    /// `[audit]`.
    pub audit: Audit,
}

impl Config {
    /// Adds `run --remove-startup-taint KEY`, checked with the rest of the config before anything
    /// listens: only the Kubernetes source knows the node to untaint.
    pub fn remove_startup_taint(mut self, key: Option<String>) -> Result<Self, ConfigError> {
        if key.is_some() && self.inventory.source != Source::Kubernetes {
            return Err(invalid(
                "inventory.source",
                "--remove-startup-taint needs [inventory] source = \"kubernetes\"",
            ));
        }
        self.startup_taint = key;
        Ok(self)
    }
}

/// Which iptables backend to use (`[netfilter] backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// The one the host uses (see the module documentation).
    #[default]
    Auto,
    /// `iptables-legacy`.
    Legacy,
    /// `iptables-nft`.
    Nft,
}

/// Reads `[upstream] cloud` by name, with the names in the message when it is none of them.
fn cloud_name<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Cloud, D::Error> {
    let name = String::deserialize(d)?;
    name.parse().map_err(serde::de::Error::custom)
}

/// `[upstream]`
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Whose metadata server: the protocol rules, the default url, the emulator.
    pub cloud: Cloud,
    /// `http://host[:port]`, without a path.
    pub url: String,
    /// The host and port requests are sent to (and, with `emulator`, where it listens).
    pub authority: http::uri::Authority,
    /// Run the built-in emulator in-process at the url's address.
    pub emulator: bool,
    pub connect_timeout: Duration,
    /// Deadline for the whole upstream exchange, answer body included.
    pub timeout: Duration,
    /// Most connections open to the service at once; more requests wait for one.
    pub max_connections: usize,
}

impl Upstream {
    /// The socket address of the upstream, when its host is an IP literal.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let host = self
            .authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let ip: IpAddr = host.parse().ok()?;
        Some(SocketAddr::new(ip, self.authority.port_u16().unwrap_or(80)))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawUpstream {
    #[serde(deserialize_with = "cloud_name")]
    cloud: Cloud,
    /// Unset: the cloud's own address.
    url: Option<String>,
    emulator: bool,
    connect_timeout_ms: u64,
    timeout_ms: u64,
    max_connections: usize,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            cloud: Cloud::Aws,
            url: None,
            emulator: false,
            connect_timeout_ms: 1000,
            timeout_ms: 3000,
            max_connections: 64,
        }
    }
}

/// Where pod identities come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Pods listed under `[[inventory.pods]]`.
    #[default]
    Static,
    /// A node-scoped watch of the Kubernetes API.
    Kubernetes,
    /// This pod only (sidecar mode): identity from the downward API; every connection the proxy
    /// accepts is this pod's.
    #[serde(rename = "self")]
    SelfPod,
}

impl Source {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Static => "static",
            Source::Kubernetes => "kubernetes",
            Source::SelfPod => "self",
        }
    }
}

/// `[inventory]`
#[derive(Debug, Clone)]
pub struct Inventory {
    pub source: Source,
    /// The node whose pods are watched (Kubernetes source); `$NODE_NAME` when unset.
    pub node_name: Option<String>,
    /// Kubeconfig to use instead of the in-cluster service account or `$KUBECONFIG`.
    pub kubeconfig: Option<PathBuf>,
    /// How long a request from an IP the index does not know yet may wait for it.
    pub unknown_source_grace: Duration,
    /// Static pods with the IPs they hold.
    pub pods: Vec<(Pod, Vec<IpAddr>)>,
    /// The `self` source's settings (sidecar mode).
    pub self_pod: SelfPod,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawInventory {
    source: Source,
    node_name: Option<String>,
    kubeconfig: Option<PathBuf>,
    unknown_source_grace_ms: u64,
    pods: Vec<RawPod>,
    pod_namespace: Option<String>,
    pod_name: Option<String>,
    pod_uid: Option<String>,
    labels_file: Option<PathBuf>,
    labels_poll_ms: Option<u64>,
}

impl Default for RawInventory {
    fn default() -> Self {
        Self {
            source: Source::Static,
            node_name: None,
            kubeconfig: None,
            unknown_source_grace_ms: 1000,
            pods: Vec::new(),
            pod_namespace: None,
            pod_name: None,
            pod_uid: None,
            labels_file: None,
            labels_poll_ms: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPod {
    /// Required, except for a hostNetwork pod.
    ip: Option<IpAddr>,
    /// The pod runs in the node's network namespace (see [`Pod::host_network`]).
    #[serde(default)]
    host_network: bool,
    namespace: String,
    name: String,
    uid: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    namespace_labels: BTreeMap<String, String>,
    /// The pod's workload, for audit lines (the Kubernetes source reads it from the pod).
    owner: Option<RawOwner>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOwner {
    kind: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawImdsv2 {
    require_tokens: bool,
    max_token_ttl_seconds: u32,
    /// Wide, so that out-of-range values get the range in the message, not a type error.
    hop_limit: Option<i64>,
    /// Unset: guard tokens where the cloud has a token flow the guard issues (AWS).
    tokens: Option<TokenIssuer>,
    token_key_file: Option<PathBuf>,
}

impl Default for RawImdsv2 {
    fn default() -> Self {
        Self {
            require_tokens: false,
            max_token_ttl_seconds: MAX_TOKEN_TTL_SECONDS,
            hop_limit: None,
            tokens: None,
            token_key_file: None,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    name: String,
    #[serde(default)]
    all_pods: bool,
    namespaces: Option<Vec<String>>,
    #[serde(default)]
    pod_labels: BTreeMap<String, String>,
    #[serde(default)]
    namespace_labels: BTreeMap<String, String>,
    #[serde(default)]
    allow: Vec<String>,
    #[serde(default)]
    deny: Vec<String>,
    #[serde(default)]
    require_tokens: bool,
    max_token_ttl_seconds: Option<u32>,
}

/// `[netfilter]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Netfilter {
    /// Install the interception rules at start (they stay in place on stop).
    pub manage: bool,
    /// Pod interface patterns (`cali+` = every interface starting with `cali`).
    pub interfaces: Vec<String>,
    /// Which iptables backend to write with; `auto` finds the one the host uses.
    pub backend: Backend,
    /// With `manage`, how often the rules are checked (and put back when something removed them).
    pub check_interval_seconds: u64,
    /// The sidecar's UID for `iptables install --sidecar`: its traffic is not redirected.
    pub sidecar_uid: Option<u32>,
}

impl Default for Netfilter {
    fn default() -> Self {
        Self {
            manage: false,
            interfaces: ["eni+", "cali+", "cni0", "weave", "lxc+", "azv+"]
                .map(String::from)
                .to_vec(),
            backend: Backend::Auto,
            check_interval_seconds: 30,
            sidecar_uid: None,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    server: Server,
    upstream: RawUpstream,
    inventory: RawInventory,
    imdsv2: RawImdsv2,
    rules: Vec<RawRule>,
    netfilter: Netfilter,
    interception: Interception,
    cache: front::RawCache,
    limits: front::RawLimits,
    audit: audit::RawAudit,
}

/// Why a config was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    /// The key, as a path (`rules[0].allow[1]`), and what is wrong with it.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: impl Into<String>, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        reason: reason.to_string(),
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text)
}

/// Parses and validates config text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let line_of = |span: Option<std::ops::Range<usize>>| {
        span.map_or(0, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        })
    };
    let de = toml::Deserializer::parse(text).map_err(|e| ConfigError::Syntax {
        line: line_of(e.span()),
        reason: e.message().to_owned(),
    })?;
    let raw: RawConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let reason = format!("{} (line {})", inner.message(), line_of(inner.span()));
        if key == "." {
            ConfigError::Syntax {
                line: line_of(inner.span()),
                reason: inner.message().to_owned(),
            }
        } else {
            invalid(key, reason)
        }
    })?;
    validate::validate(raw)
}

#[cfg(test)]
mod tests;
