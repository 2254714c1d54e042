//! The guard's own IMDSv2 token with the metadata service (`[imdsv2] tokens = "guard"`): fetched
//! when first needed, used for everything the guard forwards, and fetched again when three
//! quarters of its life are gone (before it expires) or when the service turns it down. Pods'
//! tokens never reach the service.

use parking_lot::Mutex;
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

/// After a failed fetch, how long requests use its failure (or the token still in hand) instead
/// of fetching again.
pub const RETRY: Duration = Duration::from_secs(1);

/// The token and the lock that makes one fetch at a time.
pub struct UpstreamToken {
    held: Mutex<Option<Held>>,
    fetching: tokio::sync::Mutex<()>,
    /// When the last fetch failed, and how.
    failed: Mutex<Option<(Instant, UpstreamFailure)>>,
}

impl Default for UpstreamToken {
    fn default() -> Self {
        Self {
            held: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            failed: Mutex::new(None),
        }
    }
}

impl UpstreamToken {
    /// A token to send with a forwarded request, fetched when there is none still in its first
    /// three quarters of life. While the token in hand is still good, a renewal under way (or one
    /// that failed less than [`RETRY`] ago) is not waited for: the held token is used. Requests
    /// that queued behind a failed fetch get its failure rather than each fetching again.
    pub async fn get<U: Forward>(
        &self,
        upstream: &U,
        metrics: &Metrics,
    ) -> Result<HeaderValue, UpstreamFailure> {
        if let Some(value) = self.current(Instant::now(), false) {
            return Ok(value);
        }
        let still_good = self.current(Instant::now(), true);
        let _one = match (&still_good, self.fetching.try_lock()) {
            (_, Ok(one)) => one,
            (Some(value), Err(_)) => return Ok(value.clone()),
            (None, Err(_)) => self.fetching.lock().await,
        };
        // Whoever held the lock before may have fetched it, or failed a moment ago.
        if let Some(value) = self.current(Instant::now(), false) {
            return Ok(value);
        }
        if let Some(failure) = self.recent_failure(Instant::now()) {
            return self.current(Instant::now(), true).ok_or(failure);
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
                // A little before the service's own expiry, for the time in flight.
                let expires_at = now + ttl.saturating_sub(Duration::from_secs(5));
                *self.held.lock() = Some(Held {
                    value: value.clone(),
                    renew_at: (now + ttl * 3 / 4).min(expires_at),
                    expires_at,
                });
                *self.failed.lock() = None;
                Ok(value)
            }
            Err(failure) => {
                metrics
                    .upstream_token_fetches
                    .get_or_create(&ResultLabels { result: "failed" })
                    .inc();
                *self.failed.lock() = Some((Instant::now(), failure));
                // Renewal failed, but the token in hand is still good for a while.
                self.current(Instant::now(), true).ok_or(failure)
            }
        }
    }

    /// The failure of a fetch that ended less than [`RETRY`] before `now`.
    fn recent_failure(&self, now: Instant) -> Option<UpstreamFailure> {
        let failed = self.failed.lock();
        failed
            .filter(|(at, _)| now.saturating_duration_since(*at) < RETRY)
            .map(|(_, failure)| failure)
    }

    /// Forgets `value` after the service refused it (401), so the next request fetches anew.
    pub fn refused(&self, value: &HeaderValue) {
        let mut held = self.held.lock();
        if held.as_ref().is_some_and(|h| h.value == *value) {
            *held = None;
        }
    }

    /// The held token when it need not be renewed yet (`until_expiry`: when it has not expired).
    fn current(&self, now: Instant, until_expiry: bool) -> Option<HeaderValue> {
        let held = self.held.lock();
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
        .send(Method::PUT, Uri::from_static(TOKEN_PATH), headers, None)
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
    if granted < Duration::from_secs(10) {
        tracing::warn!(
            ttl_seconds = granted.as_secs(),
            "the metadata service granted the guard's token too short a life to use"
        );
        return Err(UpstreamFailure::Broken);
    }
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

#[cfg(test)]
mod tests;
