//! `[limits]`: a token bucket per pod, so a noisy pod is slowed alone, and one for the whole node's
//! requests to the metadata service, kept below the service's own throttle (which, once crossed,
//! drops every pod's requests alike).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Instant;

use crate::bucket::Bucket;
use crate::config::Limits;

/// Buckets of pods not seen for a while are forgotten once this many are held.
const PRUNE_AT: usize = 4096;

/// Over which limit a request went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Pod,
    Upstream,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pod => "pod",
            Self::Upstream => "upstream",
        }
    }
}

/// The buckets.
pub struct RateLimits {
    settings: Limits,
    pods: Mutex<HashMap<String, Bucket>>,
    upstream: Option<Mutex<Bucket>>,
}

impl RateLimits {
    pub fn new(settings: Limits) -> Self {
        let rate = settings.upstream_requests_per_second;
        let upstream = (rate > 0.0).then(|| {
            // A second's worth at once: the service's throttle counts per second too.
            let burst = u32::try_from(rate.ceil() as u64).unwrap_or(u32::MAX).max(1);
            Mutex::new(Bucket::new(rate, burst, Instant::now()))
        });
        Self {
            settings,
            pods: Mutex::default(),
            upstream,
        }
    }

    /// Takes one of the pod's (by uid) requests; `false` when it is over its rate.
    pub fn admit_pod(&self, uid: &str, now: Instant) -> bool {
        if self.settings.pod_requests_per_second <= 0.0 {
            return true;
        }
        let mut pods = self.pods.lock();
        if let Some(bucket) = pods.get_mut(uid) {
            return bucket.take(now).is_ok();
        }
        if pods.len() >= PRUNE_AT {
            pods.retain(|_, bucket| !bucket.is_full(now));
        }
        let mut bucket = Bucket::new(
            self.settings.pod_requests_per_second,
            self.settings.pod_burst,
            now,
        );
        let admitted = bucket.take(now).is_ok();
        pods.insert(uid.to_owned(), bucket);
        admitted
    }

    /// Takes one request to the metadata service from the node's budget; `false` when over it.
    pub fn admit_upstream(&self, now: Instant) -> bool {
        match &self.upstream {
            None => true,
            Some(bucket) => bucket.lock().take(now).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests;
