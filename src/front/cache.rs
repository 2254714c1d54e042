//! `[cache]`: answers of the metadata service kept for the node's pods, and one upstream request
//! for many identical misses.
//!
//! Only a request the policy allowed ever reaches the cache. What may be kept is the core's
//! [`CachePaths`](crate::cacheable::CachePaths): stable answers for `max_age`, credentials until
//! `credentials_refresh` before their own `Expiration` (never past it). In the last stretch before
//! that point a request is still answered from the cache, and the credentials are fetched again
//! in the background, so a refresh never makes a pod wait. Only successful answers are kept.
//!
//! Misses for the same path that arrive while one is being fetched wait for that one exchange
//! (single flight) and share its answer, a failure included; nothing failed is kept, so the next
//! request asks again.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use lru::LruCache;
use tokio::sync::watch;

use crate::cacheable::CacheClass;
use crate::config;
use crate::disposition::UpstreamFailure;
use crate::metrics::Metrics;

/// How long credentials already within their refresh stretch are kept, at most.
const SHORT_KEEP: Duration = Duration::from_secs(5);

/// An answer of the service as the guard relays it (connection headers already removed).
#[derive(Debug)]
pub struct Stored {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What a shared miss ends with: the answer, or why there was none.
#[derive(Debug, Clone)]
pub enum Outcome {
    Answer(Arc<Stored>),
    Failed(UpstreamFailure),
    /// The node's upstream budget was spent.
    RateLimited,
    /// The request that was fetching went away first (its client disconnected): ask again.
    Abandoned,
}

/// What the cache holds for a path.
pub enum Found {
    Fresh(Arc<Stored>),
    /// Still good; the caller should fetch it again in the background (and is the only one told).
    Refresh(Arc<Stored>),
    Missing,
}

struct Entry {
    answer: Arc<Stored>,
    /// Served until then.
    fresh_until: Instant,
    /// Fetched again in the background from then (credentials); pushed on by `retry` at each
    /// attempt, so a service that has not rotated them yet is asked again only that often.
    refresh_from: Option<Instant>,
    retry: Duration,
    /// A background fetch is under way.
    refreshing: bool,
}

/// The cache and its flights.
pub struct Cache {
    settings: config::Cache,
    entries: Mutex<LruCache<Box<str>, Entry>>,
    flights: Mutex<HashMap<Box<str>, watch::Sender<Option<Outcome>>>>,
    metrics: Arc<Metrics>,
}

/// Taking part in a miss.
pub enum Join<'c> {
    /// Nobody is fetching this path: the caller does, and tells the others through the lead.
    Lead(Lead<'c>),
    /// Someone is: wait for their outcome.
    Follow(watch::Receiver<Option<Outcome>>),
}

/// The fetching request's side of a flight. Dropped without [`Lead::finish`], it tells the
/// others to ask again.
pub struct Lead<'c> {
    cache: &'c Cache,
    key: Box<str>,
    done: bool,
}

impl Lead<'_> {
    /// Hands `outcome` to every request waiting for this path.
    pub fn finish(mut self, outcome: Outcome) {
        self.done = true;
        self.cache.land(&self.key, outcome);
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.cache.land(&self.key, Outcome::Abandoned);
        }
    }
}

/// Waits for the outcome of someone else's fetch.
pub async fn follow(mut rx: watch::Receiver<Option<Outcome>>) -> Outcome {
    match rx.wait_for(Option::is_some).await {
        Ok(outcome) => outcome.clone().unwrap_or(Outcome::Abandoned),
        Err(_) => Outcome::Abandoned,
    }
}

impl Cache {
    pub fn new(settings: config::Cache, metrics: Arc<Metrics>) -> Self {
        let capacity = NonZeroUsize::new(settings.max_entries).unwrap_or(NonZeroUsize::MIN);
        Self {
            settings,
            entries: Mutex::new(LruCache::new(capacity)),
            flights: Mutex::default(),
            metrics,
        }
    }

    /// How the answer for `path` may be kept.
    pub fn class(&self, path: &crate::target::CanonicalPath) -> CacheClass {
        self.settings.paths.class(path)
    }

    /// What is held for `key` at `now`.
    pub fn get(&self, key: &str, now: Instant) -> Found {
        let mut entries = self.entries.lock();
        let Some(entry) = entries.get_mut(key) else {
            return Found::Missing;
        };
        if now >= entry.fresh_until {
            entries.pop(key);
            self.metrics.cache_entries.set(entries.len() as i64);
            return Found::Missing;
        }
        let answer = Arc::clone(&entry.answer);
        match entry.refresh_from {
            Some(from) if now >= from && !entry.refreshing => {
                entry.refreshing = true;
                entry.refresh_from = Some(now + entry.retry);
                Found::Refresh(answer)
            }
            _ => Found::Fresh(answer),
        }
    }

    /// Keeps `answer` for `key` when it may be kept: a 200 of a cacheable class, and for
    /// credentials only while they are far enough from their `Expiration`. Whether it was kept.
    pub fn store(&self, key: &str, class: CacheClass, answer: &Arc<Stored>, now: Instant) -> bool {
        if answer.status != StatusCode::OK {
            self.refresh_failed(key);
            return false;
        }
        let (fresh_until, mut refresh_from, retry) = match class {
            CacheClass::Never => return false,
            CacheClass::Stable => (now + self.settings.max_age, None, Duration::ZERO),
            CacheClass::Credentials => {
                let Some(left) = credentials_left(&answer.body, SystemTime::now()) else {
                    self.refresh_failed(key);
                    return false;
                };
                match left.checked_sub(self.settings.credentials_refresh) {
                    Some(usable) if !usable.is_zero() => {
                        let window = self.settings.credentials_refresh.min(usable / 2);
                        let fresh_until = now + usable;
                        let retry =
                            (window / 10).clamp(Duration::from_secs(1), Duration::from_secs(30));
                        // Fetched again at the latest after `max_age` too, so credentials the
                        // service replaced early (revoked sessions, another role) are not served
                        // for their whole life.
                        let refresh_from = (fresh_until - window).min(now + self.settings.max_age);
                        (fresh_until, Some(refresh_from), retry)
                    }
                    // The service has not rotated them yet although they are within the refresh
                    // stretch: kept a moment (half their remaining life, at most 5 s) so that
                    // the node does not ask for every request, and never to their expiry.
                    _ if left > Duration::from_secs(2) => {
                        (now + (left / 2).min(SHORT_KEEP), None, Duration::ZERO)
                    }
                    _ => {
                        self.refresh_failed(key);
                        return false;
                    }
                }
            }
        };
        let mut entries = self.entries.lock();
        // The same answer again (the service has not rotated the credentials yet): the next
        // attempt stays where the last one put it.
        if let Some(previous) = entries.peek(key) {
            if previous.answer.body == answer.body {
                refresh_from = refresh_from.max(previous.refresh_from);
            }
        }
        entries.put(
            key.into(),
            Entry {
                answer: Arc::clone(answer),
                fresh_until,
                refresh_from,
                retry,
                refreshing: false,
            },
        );
        self.metrics.cache_entries.set(entries.len() as i64);
        true
    }

    /// A background fetch for `key` came to nothing: the next request in the window may try.
    pub fn refresh_failed(&self, key: &str) {
        let mut entries = self.entries.lock();
        if let Some(entry) = entries.peek_mut(key) {
            entry.refreshing = false;
        }
    }

    /// Joins the fetch of `key` under way, or leads a new one.
    pub fn join(&self, key: &str) -> Join<'_> {
        let mut flights = self.flights.lock();
        if let Some(flight) = flights.get(key) {
            return Join::Follow(flight.subscribe());
        }
        let (tx, _) = watch::channel(None);
        flights.insert(key.into(), tx);
        Join::Lead(Lead {
            cache: self,
            key: key.into(),
            done: false,
        })
    }

    fn land(&self, key: &str, outcome: Outcome) {
        let flight = self.flights.lock().remove(key);
        if let Some(tx) = flight {
            tx.send_replace(Some(outcome));
        }
    }
}

/// How long the credentials document in `body` is still good at `now`: from its `Expiration`
/// (RFC 3339), when its `Code` is `Success`.
pub fn credentials_left(body: &[u8], now: SystemTime) -> Option<Duration> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Document<'a> {
        code: Option<&'a str>,
        expiration: &'a str,
    }
    let doc: Document<'_> = serde_json::from_slice(body).ok()?;
    if doc.code.is_some_and(|c| c != "Success") {
        return None;
    }
    let expiration = humantime::parse_rfc3339_weak(doc.expiration).ok()?;
    expiration.duration_since(now).ok()
}

#[cfg(test)]
mod tests;
