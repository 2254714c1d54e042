//! The guard's own IMDSv2 token with the metadata service (`[imdsv2] tokens = "guard"`): fetched
//! when first needed, used for everything the guard forwards, and fetched again when three
//! quarters of its life are gone (before it expires) or when the service turns it down. Pods'
//! tokens never reach the service.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::HeaderValue;
use http::{HeaderMap, Method, StatusCode, Uri};

use crate::disposition::UpstreamFailure;
use crate::imds::{TOKEN_HEADER, TOKEN_PATH, TOKEN_TTL_HEADER};
use crate::metrics::{ErrorLabels, Metrics, ResultLabels};
use crate::upstream::Forward;

/// The lifetime asked for: the longest the service gives.
pub const TTL: Duration = Duration::from_secs(21_600);

struct Held {
    value: HeaderValue,
    renew_at: Instant,
    expires_at: Instant,
}

/// The token and the lock that makes one fetch at a time.
pub struct UpstreamToken {
    held: Mutex<Option<Held>>,
    fetching: tokio::sync::Mutex<()>,
}

impl Default for UpstreamToken {
    fn default() -> Self {
        Self {
            held: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
        }
    }
}

impl UpstreamToken {
    /// A token to send with a forwarded request, fetched when there is none still in its first
    /// three quarters of life.
    pub async fn get<U: Forward>(
        &self,
        upstream: &U,
        metrics: &Metrics,
    ) -> Result<HeaderValue, UpstreamFailure> {
        if let Some(value) = self.current(Instant::now(), false) {
            return Ok(value);
        }
        let _one = self.fetching.lock().await;
        // Whoever held the lock before may have fetched it.
        if let Some(value) = self.current(Instant::now(), false) {
            return Ok(value);
        }
        match fetch(upstream, metrics).await {
            Ok((value, ttl)) => {
                let now = Instant::now();
                metrics
                    .upstream_token_fetches
                    .get_or_create(&ResultLabels { result: "ok" })
                    .inc();
                let expiry = SystemTime::now() + ttl;
                metrics.upstream_token_expiry.set(
                    expiry
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
                );
                *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(Held {
                    value: value.clone(),
                    renew_at: now + ttl * 3 / 4,
                    // A little before the service's own expiry, for the time in flight.
                    expires_at: now + ttl.saturating_sub(Duration::from_secs(5)),
                });
                Ok(value)
            }
            Err(failure) => {
                metrics
                    .upstream_token_fetches
                    .get_or_create(&ResultLabels { result: "failed" })
                    .inc();
                // Renewal failed, but the token in hand is still good for a while.
                self.current(Instant::now(), true).ok_or(failure)
            }
        }
    }

    /// Forgets `value` after the service refused it (401), so the next request fetches anew.
    pub fn refused(&self, value: &HeaderValue) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        if held.as_ref().is_some_and(|h| h.value == *value) {
            *held = None;
        }
    }

    /// The held token when it need not be renewed yet (`until_expiry`: when it has not expired).
    fn current(&self, now: Instant, until_expiry: bool) -> Option<HeaderValue> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref()
            .filter(|h| {
                now < if until_expiry {
                    h.expires_at
                } else {
                    h.renew_at
                }
            })
            .map(|h| h.value.clone())
    }
}

/// `PUT /latest/api/token` for [`TTL`]: the token and the lifetime granted.
async fn fetch<U: Forward>(
    upstream: &U,
    metrics: &Metrics,
) -> Result<(HeaderValue, Duration), UpstreamFailure> {
    let mut headers = HeaderMap::new();
    headers.insert(TOKEN_TTL_HEADER, HeaderValue::from(TTL.as_secs()));
    let answer = upstream
        .send(Method::PUT, Uri::from_static(TOKEN_PATH), headers)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "the guard's token request to the metadata service failed");
            metrics
                .upstream_errors
                .get_or_create(&ErrorLabels { kind: e.kind() })
                .inc();
            e.failure()
        })?;
    if answer.status != StatusCode::OK {
        tracing::warn!(
            status = answer.status.as_u16(),
            "the metadata service refused the guard's token request"
        );
        return Err(UpstreamFailure::Broken);
    }
    let granted = answer
        .headers
        .get(TOKEN_TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(TTL, |secs| Duration::from_secs(secs).min(TTL));
    let value = token_value(&answer.body).ok_or_else(|| {
        tracing::warn!(
            "the metadata service answered the guard's token request with no usable token"
        );
        UpstreamFailure::Broken
    })?;
    Ok((value, granted))
}

fn token_value(body: &Bytes) -> Option<HeaderValue> {
    let text = std::str::from_utf8(body).ok()?.trim();
    if text.is_empty() || text.len() > 1024 {
        return None;
    }
    let mut value = HeaderValue::from_str(text).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// The header the guard's token goes in.
pub const HEADER: http::HeaderName = http::HeaderName::from_static(TOKEN_HEADER);
