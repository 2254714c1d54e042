//! The node's metadata front: what the guard does for pods beyond deciding — issuing their IMDSv2
//! tokens (bound to the pod: `pod_tokens`), keeping its own token with the service
//! (`upstream::token`), keeping answers (`[cache]`, one upstream request for many: `cache`), and
//! limiting how fast each pod and the whole node may go (`[limits]`: `rate_limits`).
//!
//! The proxy consults it after the policy has decided; nothing here decides who may read what.

pub mod cache;
pub mod pod_tokens;
pub mod rate_limits;

use std::sync::Arc;

use crate::config::{Config, TokenIssuer};
use crate::imds::MAX_TOKEN_TTL_SECONDS;
use crate::metrics::Metrics;

pub use cache::Cache;
pub use pod_tokens::{Check, Issuer, KeyError};
pub use rate_limits::{RateLimits, Scope};

use crate::upstream::token::UpstreamToken;

/// The longest token the guard issues when its key is random per start: a restart makes every
/// token invalid, and an SDK that keeps its token for the TTL it was granted (aws-config keeps it
/// until two minutes before, and retries a 401 with the same token) would fail for that long. A
/// token granted for at most two minutes is never kept by it: it asks for a new one each time.
/// With `[imdsv2] token_key_file` tokens outlive a restart and get the TTL asked for.
pub const EPHEMERAL_KEY_MAX_TTL_SECONDS: u32 = 120;

/// Everything of the front, shared by every worker.
pub struct Front {
    /// Issues and checks pods' tokens; `None` with passthrough tokens.
    pub issuer: Option<Issuer>,
    /// The longest TTL the guard grants a pod's token (before the policy's own cap).
    pub max_token_ttl_seconds: u32,
    /// The guard's own token with the service (guard tokens only).
    pub upstream_token: UpstreamToken,
    /// `None` when `[cache]` is off.
    pub cache: Option<Cache>,
    pub limits: RateLimits,
}

impl Front {
    /// The front for `config`: the token key read (or made), the cache and the buckets empty.
    pub fn start(config: &Config, metrics: &Arc<Metrics>) -> Result<Arc<Self>, KeyError> {
        let (issuer, max_token_ttl_seconds) = match (config.tokens, &config.token_key_file) {
            (TokenIssuer::Passthrough, _) => (None, MAX_TOKEN_TTL_SECONDS),
            (TokenIssuer::Guard, Some(path)) => {
                (Some(Issuer::from_file(path)?), MAX_TOKEN_TTL_SECONDS)
            }
            (TokenIssuer::Guard, None) => {
                tracing::info!(
                    max_ttl_seconds = EPHEMERAL_KEY_MAX_TTL_SECONDS,
                    "no [imdsv2] token_key_file: pods' tokens are sealed with a key random to this start and granted at most two minutes, so that SDKs recover from a restart"
                );
                (Some(Issuer::random()?), EPHEMERAL_KEY_MAX_TTL_SECONDS)
            }
        };
        Ok(Arc::new(Self {
            issuer,
            max_token_ttl_seconds,
            upstream_token: UpstreamToken::default(),
            cache: config
                .cache
                .clone()
                .map(|settings| Cache::new(settings, Arc::clone(metrics))),
            limits: RateLimits::new(config.limits),
        }))
    }

    /// A front that changes nothing: passthrough tokens, no cache, no limits (tests of the proxy
    /// alone).
    pub fn passthrough() -> Arc<Self> {
        Arc::new(Self {
            issuer: None,
            max_token_ttl_seconds: MAX_TOKEN_TTL_SECONDS,
            upstream_token: UpstreamToken::default(),
            cache: None,
            limits: RateLimits::new(crate::config::Limits {
                pod_requests_per_second: 0.0,
                pod_burst: 1,
                upstream_requests_per_second: 0.0,
            }),
        })
    }
}
