//! `[server]`: where the guard listens, how it treats connections, enforce or audit.

use std::net::SocketAddr;

use serde::Deserialize;

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
    #[serde(with = "ModeKey")]
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
    /// Threads serving pods' connections, each with its own event loop; 0: one per CPU the
    /// process may use, at most [`AUTO_WORKERS_MAX`].
    pub workers: usize,
}

/// The most proxy threads `workers = 0` starts: more cores than this serve no node's pods better
/// (the metadata service itself answers far fewer requests than a handful of threads can pass).
pub const AUTO_WORKERS_MAX: usize = 8;

impl Server {
    /// The number of proxy threads: `workers`, or when it is 0 one per CPU the process may use
    /// (cgroup quotas included), at most [`AUTO_WORKERS_MAX`].
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism()
                .map_or(1, std::num::NonZero::get)
                .min(AUTO_WORKERS_MAX),
            n => n,
        }
    }
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
            workers: 0,
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

pub use crate::disposition::Mode;

/// How `[server] mode` is written: the core's [`Mode`], in lowercase.
#[derive(Deserialize)]
#[serde(remote = "Mode", rename_all = "lowercase")]
enum ModeKey {
    Enforce,
    Audit,
}
