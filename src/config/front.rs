//! The metadata front: who issues pods' IMDSv2 tokens (`[imdsv2] tokens`, `token_key_file`), what
//! the guard keeps (`[cache]`) and how fast pods and the node may go (`[limits]`).

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{invalid, ConfigError};
use crate::cacheable::CachePaths;
use crate::cloud::Cloud;

/// `[imdsv2] tokens`: who issues the tokens pods use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenIssuer {
    /// The guard answers the token PUT itself with a sealed token bound to the pod, and keeps its
    /// own token with the service for what it forwards.
    #[default]
    Guard,
    /// The service's own tokens pass through the guard.
    Passthrough,
}

impl TokenIssuer {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Guard => "guard",
            Self::Passthrough => "passthrough",
        }
    }
}

/// `[cache]`, when enabled.
#[derive(Debug, Clone, PartialEq)]
pub struct Cache {
    /// How long a stable answer is kept.
    pub max_age: Duration,
    /// Credentials are kept until this long before their `Expiration`.
    pub credentials_refresh: Duration,
    /// Most answers kept; the least recently used go first.
    pub max_entries: usize,
    pub paths: CachePaths,
}

/// `[limits]`: token buckets. A rate of 0 means no limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests per second one pod may make, on average.
    pub pod_requests_per_second: f64,
    /// Requests one pod may make at once.
    pub pod_burst: u32,
    /// Requests per second the guard sends the metadata service, for the whole node.
    pub upstream_requests_per_second: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            pod_requests_per_second: 20.0,
            pod_burst: 100,
            upstream_requests_per_second: 100.0,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawCache {
    /// Unset: on with guard tokens, off with passthrough.
    enabled: Option<bool>,
    max_age_seconds: u64,
    credentials_refresh_seconds: u64,
    max_entries: usize,
    add_paths: Vec<String>,
    remove_paths: Vec<String>,
}

impl Default for RawCache {
    fn default() -> Self {
        Self {
            enabled: None,
            max_age_seconds: 300,
            credentials_refresh_seconds: 300,
            max_entries: 1024,
            add_paths: Vec::new(),
            remove_paths: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawLimits {
    pod_requests_per_second: f64,
    pod_burst: u32,
    /// Unset: 100, or Azure's own 5 requests/s in front of Azure.
    upstream_requests_per_second: Option<f64>,
}

impl Default for RawLimits {
    fn default() -> Self {
        let d = Limits::default();
        Self {
            pod_requests_per_second: d.pod_requests_per_second,
            pod_burst: d.pod_burst,
            upstream_requests_per_second: None,
        }
    }
}

/// The `[imdsv2]` keys of the front, checked with the rest of that section.
pub(super) fn check_key_file(path: &Option<PathBuf>) -> Result<(), ConfigError> {
    match path {
        Some(p) if p.as_os_str().is_empty() => {
            Err(invalid("imdsv2.token_key_file", "must not be empty"))
        }
        _ => Ok(()),
    }
}

pub(super) fn validate_cache(
    raw: RawCache,
    tokens: TokenIssuer,
) -> Result<Option<Cache>, ConfigError> {
    let enabled = match (raw.enabled, tokens) {
        (Some(true), TokenIssuer::Passthrough) => {
            return Err(invalid(
                "cache.enabled",
                "the cache needs [imdsv2] tokens = \"guard\": with passthrough tokens the guard cannot tell a valid token from a forged one",
            ))
        }
        (Some(on), _) => on,
        (None, issuer) => issuer == TokenIssuer::Guard,
    };
    if raw.max_age_seconds == 0 || raw.max_age_seconds > 86_400 {
        return Err(invalid("cache.max_age_seconds", "must be from 1 to 86400"));
    }
    if raw.credentials_refresh_seconds == 0 || raw.credentials_refresh_seconds > 3_600 {
        return Err(invalid(
            "cache.credentials_refresh_seconds",
            "must be from 1 to 3600 (credentials are never served closer to their expiry)",
        ));
    }
    if raw.max_entries == 0 || raw.max_entries > 1_000_000 {
        return Err(invalid("cache.max_entries", "must be from 1 to 1000000"));
    }
    let paths = CachePaths::new(&raw.add_paths, &raw.remove_paths)
        .map_err(|(list, i, e)| invalid(format!("cache.{list}_paths[{i}]"), e))?;
    Ok(enabled.then(|| Cache {
        max_age: Duration::from_secs(raw.max_age_seconds),
        credentials_refresh: Duration::from_secs(raw.credentials_refresh_seconds),
        max_entries: raw.max_entries,
        paths,
    }))
}

/// Azure throttles an instance at 5 requests/s; the node's budget stays below that by default.
pub const AZURE_UPSTREAM_REQUESTS_PER_SECOND: f64 = 5.0;

pub(super) fn validate_limits(raw: RawLimits, cloud: Cloud) -> Result<Limits, ConfigError> {
    let upstream_requests_per_second = raw.upstream_requests_per_second.unwrap_or(match cloud {
        Cloud::Azure => AZURE_UPSTREAM_REQUESTS_PER_SECOND,
        _ => Limits::default().upstream_requests_per_second,
    });
    for (key, rate) in [
        (
            "limits.pod_requests_per_second",
            raw.pod_requests_per_second,
        ),
        (
            "limits.upstream_requests_per_second",
            upstream_requests_per_second,
        ),
    ] {
        if !rate.is_finite() || !(rate == 0.0 || (0.001..=1_000_000.0).contains(&rate)) {
            return Err(invalid(
                key,
                "must be 0 (no limit) or from 0.001 to 1000000",
            ));
        }
    }
    if raw.pod_burst == 0 || raw.pod_burst > 1_000_000 {
        return Err(invalid("limits.pod_burst", "must be from 1 to 1000000"));
    }
    Ok(Limits {
        pod_requests_per_second: raw.pod_requests_per_second,
        pod_burst: raw.pod_burst,
        upstream_requests_per_second,
    })
}
