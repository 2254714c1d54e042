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

use crate::imds::MAX_TOKEN_TTL_SECONDS;
use crate::inventory::Pod;
use crate::netfilter::rules::RuleSet;
use crate::netfilter::Backend;
use crate::policy::pattern::PathPattern;
use crate::policy::{Imdsv2, Policy, Rule, Selector};

mod self_pod;
pub use self_pod::SelfPod;

/// A config that passed every check.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub upstream: Upstream,
    pub inventory: Inventory,
    pub imdsv2: Imdsv2,
    pub policy: Arc<Policy>,
    pub netfilter: Netfilter,
    /// `[imdsv2] hop_limit`: the IP TTL of the proxy's token answers to pods, when set.
    pub token_hop_limit: Option<u8>,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    /// Where pods' (DNATed) requests arrive. `${VAR}` is replaced from the environment, so a
    /// DaemonSet can listen on `${HOST_IP}:8181`.
    #[serde(deserialize_with = "env_addr")]
    pub listen: SocketAddr,
    /// `/healthz`, `/readyz`, `/metrics`; `${VAR}` expanded as for `listen`.
    #[serde(deserialize_with = "env_addr")]
    pub admin_listen: SocketAddr,
    pub mode: Mode,
    /// How long in-flight requests may take to finish after SIGTERM.
    pub shutdown_grace_seconds: u64,
    /// Time allowed for a request's headers, and for the next request on a kept-alive connection
    /// (so it is the idle timeout too): slow or silent clients cannot hold connections open.
    pub header_read_timeout_ms: u64,
    /// Open connections allowed in total; beyond, new ones get 429 and are closed.
    pub max_connections: usize,
    /// Open connections allowed from one source address.
    pub max_connections_per_source: usize,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8181)),
            admin_listen: SocketAddr::from(([127, 0, 0, 1], 8182)),
            mode: Mode::Enforce,
            shutdown_grace_seconds: 10,
            header_read_timeout_ms: 5000,
            max_connections: 10_000,
            max_connections_per_source: 256,
        }
    }
}

/// Reads a socket address, replacing `${VAR}` from the process environment first.
fn env_addr<'de, D: serde::Deserializer<'de>>(de: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(de)?;
    let expanded =
        expand_env(&text, |name| std::env::var(name).ok()).map_err(serde::de::Error::custom)?;
    expanded.parse().map_err(|e| {
        serde::de::Error::custom(format!("`{expanded}` is not an address with a port ({e})"))
    })
}

/// Replaces every `${NAME}` in `text` with `lookup(NAME)`; an unset or empty variable is an error
/// (listening on `:8181` by accident would be worse than not starting).
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in `{text}`"))?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("`${{{name}}}` is not a variable name"));
        }
        match lookup(name).filter(|v| !v.is_empty()) {
            Some(value) => out.push_str(&value),
            None => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Enforce the policy, or only report what it would deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Enforce,
    /// Forward what would be denied and log `would-deny`: for a safe roll-out.
    Audit,
}

/// `[upstream]`
#[derive(Debug, Clone)]
pub struct Upstream {
    /// `http://host[:port]`, without a path.
    pub url: String,
    /// The host and port requests are sent to (and, with `emulator`, where it listens).
    pub authority: http::uri::Authority,
    /// Run the built-in emulator in-process at the url's address.
    pub emulator: bool,
    pub connect_timeout: Duration,
    /// Deadline for the whole upstream exchange, answer body included.
    pub timeout: Duration,
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
    url: String,
    emulator: bool,
    connect_timeout_ms: u64,
    timeout_ms: u64,
}

impl Default for RawUpstream {
    fn default() -> Self {
        Self {
            url: "http://169.254.169.254".into(),
            emulator: false,
            connect_timeout_ms: 1000,
            timeout_ms: 3000,
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
    ip: IpAddr,
    namespace: String,
    name: String,
    uid: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    namespace_labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawImdsv2 {
    require_tokens: bool,
    max_token_ttl_seconds: u32,
    /// Wide, so that out-of-range values get the range in the message, not a type error.
    hop_limit: Option<i64>,
}

impl Default for RawImdsv2 {
    fn default() -> Self {
        Self {
            require_tokens: false,
            max_token_ttl_seconds: MAX_TOKEN_TTL_SECONDS,
            hop_limit: None,
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
            interfaces: ["eni+", "cali+", "cni0", "weave", "lxc+"]
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
    validate(raw)
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    if raw.server.listen == raw.server.admin_listen {
        return Err(invalid(
            "server.admin_listen",
            "must differ from server.listen",
        ));
    }
    let server = &raw.server;
    if server.header_read_timeout_ms == 0 || server.header_read_timeout_ms > 300_000 {
        return Err(invalid(
            "server.header_read_timeout_ms",
            "must be from 1 to 300000",
        ));
    }
    if server.max_connections == 0 {
        return Err(invalid("server.max_connections", "must be at least 1"));
    }
    if server.max_connections_per_source == 0
        || server.max_connections_per_source > server.max_connections
    {
        return Err(invalid(
            "server.max_connections_per_source",
            "must be from 1 to server.max_connections",
        ));
    }
    let upstream = validate_upstream(raw.upstream)?;
    let inventory = validate_inventory(raw.inventory)?;
    if inventory.source == Source::SelfPod {
        self_pod::check_mode(raw.server.listen, &raw.netfilter)?;
    }
    let imdsv2 = Imdsv2 {
        require_tokens: raw.imdsv2.require_tokens,
        max_token_ttl_seconds: check_ttl(
            "imdsv2.max_token_ttl_seconds",
            raw.imdsv2.max_token_ttl_seconds,
        )?,
    };
    let token_hop_limit = match raw.imdsv2.hop_limit {
        None => None,
        Some(hops) => match u8::try_from(hops) {
            Ok(hops @ 1..=64) => Some(hops),
            _ => return Err(invalid(
                "imdsv2.hop_limit",
                "must be from 1 to 64 (the IP TTL of token answers, like the instance's hop limit)",
            )),
        },
    };
    let rules = validate_rules(raw.rules)?;
    validate_netfilter(&raw.netfilter, raw.server.listen)?;
    Ok(Config {
        server: raw.server,
        upstream,
        inventory,
        imdsv2,
        policy: Arc::new(Policy::new(rules, imdsv2)),
        netfilter: raw.netfilter,
        token_hop_limit,
    })
}

fn validate_netfilter(raw: &Netfilter, listen: SocketAddr) -> Result<(), ConfigError> {
    for (i, iface) in raw.interfaces.iter().enumerate() {
        check_interface(iface).map_err(|r| invalid(format!("netfilter.interfaces[{i}]"), r))?;
        if raw.interfaces[..i].contains(iface) {
            return Err(invalid(
                format!("netfilter.interfaces[{i}]"),
                format!("`{iface}` is listed twice"),
            ));
        }
    }
    if raw.sidecar_uid == Some(0) {
        let e = crate::netfilter::rules::RuleError::SidecarRoot;
        return Err(invalid(e.key(), e));
    }
    if !(1..=3600).contains(&raw.check_interval_seconds) {
        return Err(invalid(
            "netfilter.check_interval_seconds",
            "must be from 1 to 3600",
        ));
    }
    // `iptables install` refuses these too; with manage = true, `check` says so up front.
    if raw.manage {
        RuleSet::new(listen, &raw.interfaces).map_err(|e| invalid(e.key(), e))?;
    }
    Ok(())
}

fn validate_upstream(raw: RawUpstream) -> Result<Upstream, ConfigError> {
    let uri: http::Uri = raw
        .url
        .parse()
        .map_err(|e| invalid("upstream.url", format!("not a URL: {e}")))?;
    if uri.scheme_str() != Some("http") {
        return Err(invalid(
            "upstream.url",
            "must start with http:// (the metadata service speaks plain HTTP)",
        ));
    }
    let authority = uri
        .authority()
        .cloned()
        .ok_or_else(|| invalid("upstream.url", "has no host"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("upstream.url", "must not carry user information"));
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err(invalid(
            "upstream.url",
            "must be http://host[:port] without a path or query",
        ));
    }
    if raw.connect_timeout_ms == 0 || raw.timeout_ms == 0 {
        let key = if raw.timeout_ms == 0 {
            "upstream.timeout_ms"
        } else {
            "upstream.connect_timeout_ms"
        };
        return Err(invalid(key, "must be greater than 0"));
    }
    let upstream = Upstream {
        url: format!("http://{authority}"),
        authority,
        emulator: raw.emulator,
        connect_timeout: Duration::from_millis(raw.connect_timeout_ms),
        timeout: Duration::from_millis(raw.timeout_ms),
    };
    if upstream.emulator && upstream.socket_addr().is_none() {
        return Err(invalid(
            "upstream.url",
            "with emulator = true the host must be an IP address to listen on",
        ));
    }
    Ok(upstream)
}

fn validate_inventory(raw: RawInventory) -> Result<Inventory, ConfigError> {
    if raw.source != Source::Static && !raw.pods.is_empty() {
        return Err(invalid(
            "inventory.pods",
            "only used with source = \"static\"",
        ));
    }
    if raw.unknown_source_grace_ms > 10_000 {
        return Err(invalid(
            "inventory.unknown_source_grace_ms",
            "must be at most 10000 (a pod waits this long before it is refused)",
        ));
    }
    if raw.node_name.as_deref() == Some("") {
        return Err(invalid("inventory.node_name", "must not be empty"));
    }
    let self_pod = self_pod::validate(
        raw.source,
        self_pod::RawSelfPod {
            pod_namespace: raw.pod_namespace,
            pod_name: raw.pod_name,
            pod_uid: raw.pod_uid,
            labels_file: raw.labels_file,
            labels_poll_ms: raw.labels_poll_ms,
        },
    )?;
    let mut owners: HashMap<IpAddr, String> = HashMap::new();
    let mut pods = Vec::with_capacity(raw.pods.len());
    for (i, p) in raw.pods.into_iter().enumerate() {
        let key = |field: &str| format!("inventory.pods[{i}].{field}");
        if p.namespace.is_empty() {
            return Err(invalid(key("namespace"), "must not be empty"));
        }
        if p.name.is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        let qualified = format!("{}/{}", p.namespace, p.name);
        if let Some(owner) = owners.insert(p.ip.to_canonical(), qualified.clone()) {
            return Err(invalid(
                key("ip"),
                format!("{} is already given to {owner}", p.ip),
            ));
        }
        let pod = Pod {
            uid: p.uid.unwrap_or_else(|| format!("static:{qualified}")),
            namespace: p.namespace,
            name: p.name,
            labels: p.labels,
            namespace_labels: p.namespace_labels,
        };
        pods.push((pod, vec![p.ip]));
    }
    Ok(Inventory {
        source: raw.source,
        node_name: raw.node_name,
        kubeconfig: raw.kubeconfig,
        unknown_source_grace: Duration::from_millis(raw.unknown_source_grace_ms),
        pods,
        self_pod,
    })
}

fn validate_rules(raw: Vec<RawRule>) -> Result<Vec<Rule>, ConfigError> {
    let mut names = HashMap::new();
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |field: &str| format!("rules[{i}].{field}");
        if r.name.trim().is_empty() {
            return Err(invalid(key("name"), "must not be empty"));
        }
        if let Some(first) = names.insert(r.name.clone(), i) {
            return Err(invalid(
                key("name"),
                format!("`{}` is already the name of rules[{first}]", r.name),
            ));
        }
        let selector = Selector {
            all_pods: r.all_pods,
            namespaces: r.namespaces,
            pod_labels: r.pod_labels,
            namespace_labels: r.namespace_labels,
        };
        if selector.is_empty() {
            return Err(invalid(
                format!("rules[{i}]"),
                "selects no pods: set namespaces, pod_labels or namespace_labels (or all_pods = true to select every pod)",
            ));
        }
        if selector.all_pods
            && (selector.namespaces.is_some()
                || !selector.pod_labels.is_empty()
                || !selector.namespace_labels.is_empty())
        {
            return Err(invalid(
                key("all_pods"),
                "cannot be combined with other selectors",
            ));
        }
        if selector.namespaces.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                key("namespaces"),
                "must list at least one namespace (or be left out)",
            ));
        }
        let compile = |field: &str, list: &[String]| {
            list.iter()
                .enumerate()
                .map(|(j, p)| {
                    PathPattern::parse(p).map_err(|e| {
                        invalid(format!("rules[{i}].{field}[{j}]"), format!("`{p}`: {e}"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        let max_token_ttl_seconds = r
            .max_token_ttl_seconds
            .map(|ttl| check_ttl(&key("max_token_ttl_seconds"), ttl))
            .transpose()?;
        rules.push(Rule {
            name: r.name.as_str().into(),
            allow: compile("allow", &r.allow)?,
            deny: compile("deny", &r.deny)?,
            selector,
            require_tokens: r.require_tokens,
            max_token_ttl_seconds,
        });
    }
    Ok(rules)
}

fn check_ttl(key: &str, ttl: u32) -> Result<u32, ConfigError> {
    if (1..=MAX_TOKEN_TTL_SECONDS).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(invalid(
            key,
            format!("must be from 1 to {MAX_TOKEN_TTL_SECONDS} seconds"),
        ))
    }
}

/// iptables interface names: up to 15 characters of `[A-Za-z0-9_.-]`, optionally ending in `+`.
fn check_interface(name: &str) -> Result<(), &'static str> {
    let stem = name.strip_suffix('+').unwrap_or(name);
    if stem.is_empty() || name.len() > 15 {
        return Err("an interface name or prefix must have 1 to 15 characters");
    }
    if !stem
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err("an interface name may hold letters, digits, `_`, `.`, `-` and a final `+`");
    }
    Ok(())
}

#[cfg(test)]
mod tests;
