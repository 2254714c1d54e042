//! The node's metadata front: what the guard does for pods beyond deciding — issuing their IMDSv2
//! tokens (bound to the pod), keeping its own token with the service, keeping answers
//! (`[cache]`, one upstream request for many), and limiting how fast each pod and the whole node
//! may go (`[limits]`).
//!
//! The proxy consults it after the policy has decided; nothing here decides who may read what.

pub mod cache;
pub mod rate;
pub mod tokens;
pub mod upstream_token;

use std::sync::Arc;

use crate::config::{Config, TokenIssuer};
use crate::metrics::Metrics;

pub use cache::Cache;
pub use rate::{RateLimits, Scope};
pub use tokens::{Check, Issuer, KeyError};
pub use upstream_token::UpstreamToken;

/// Everything of the front, shared by every worker.
pub struct Front {
    /// Issues and checks pods' tokens; `None` with passthrough tokens.
    pub issuer: Option<Issuer>,
    /// The guard's own token with the service (guard tokens only).
    pub upstream_token: UpstreamToken,
    /// `None` when `[cache]` is off.
    pub cache: Option<Cache>,
    pub limits: RateLimits,
}

impl Front {
    /// The front for `config`: the token key read (or made), the cache and the buckets empty.
    pub fn start(config: &Config, metrics: &Arc<Metrics>) -> Result<Arc<Self>, KeyError> {
        let issuer = match (config.tokens, &config.token_key_file) {
            (TokenIssuer::Passthrough, _) => None,
            (TokenIssuer::Guard, Some(path)) => Some(Issuer::from_file(path)?),
            (TokenIssuer::Guard, None) => Some(Issuer::random()?),
        };
        Ok(Arc::new(Self {
            issuer,
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
