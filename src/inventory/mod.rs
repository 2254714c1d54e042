//! Who is this source IP? The pod inventory.
//!
//! One [`Index`] answers every lookup on the request path; sources only feed it. The static source
//! (pods listed in the config) fills it once at start; the Kubernetes source feeds it from a
//! node-scoped watch through the same `apply` / `delete` / `reset` calls; the `self` source
//! (sidecar mode) holds the one pod the guard runs in, for every address, and replaces it when
//! the pod's labels file changes. Lookups never block on a source and never call out: they read
//! the last state the index was given.

mod build;
pub mod kubernetes;
pub mod labels;
pub mod self_source;
pub mod static_source;

use std::net::IpAddr;
use std::time::Duration;

use tokio::sync::watch;

pub use build::{start, Feed, Inventory, InventoryError};
pub use imds_guard_core::index::{Labels, Lookup, Origin, Owner, Pod};

/// The index the sources feed and every request reads: the core's index, telling a watch channel
/// of each change so that requests waiting for an unknown address wake on updates.
pub type Index = imds_guard_core::index::Index<Changes>;

/// Counts the index's changes on a watch channel.
pub struct Changes(watch::Sender<u64>);

impl Default for Changes {
    fn default() -> Self {
        Self(watch::Sender::new(0))
    }
}

impl imds_guard_core::index::Observer for Changes {
    fn changed(&self) {
        self.0.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// Waiting on the index: what the request path and start-up need beyond a lookup.
pub trait Wait {
    /// Like `lookup`, but an unknown IP may wait up to `grace` for the index to learn it: a pod
    /// often asks for metadata before the watch has delivered it. Woken by index updates.
    fn lookup_or_wait(
        &self,
        ip: IpAddr,
        grace: Duration,
    ) -> impl std::future::Future<Output = Lookup> + Send;

    /// [`Index::identify`], waiting like [`Wait::lookup_or_wait`] while the answer is unknown.
    fn identify_or_wait(
        &self,
        ip: IpAddr,
        origin: Origin<'_>,
        grace: Duration,
    ) -> impl std::future::Future<Output = Lookup> + Send;

    /// A receiver that sees a new value after every change.
    fn subscribe(&self) -> watch::Receiver<u64>;
}

impl Wait for Index {
    async fn lookup_or_wait(&self, ip: IpAddr, grace: Duration) -> Lookup {
        self.identify_or_wait(ip, Origin::Address, grace).await
    }

    async fn identify_or_wait(&self, ip: IpAddr, origin: Origin<'_>, grace: Duration) -> Lookup {
        let found = self.identify(ip, origin);
        if !matches!(found, Lookup::Unknown) || grace.is_zero() {
            return found;
        }
        let deadline = tokio::time::Instant::now() + grace;
        // Subscribe before looking again, so an update between the look and the wait is not
        // missed.
        let mut changes = self.subscribe();
        loop {
            let found = self.identify(ip, origin);
            if !matches!(found, Lookup::Unknown) {
                return found;
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.identify(ip, origin),
            }
        }
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.observer().0.subscribe()
    }
}

#[cfg(test)]
mod tests;
