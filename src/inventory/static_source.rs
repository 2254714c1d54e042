//! The static source: pods listed under `[[inventory.pods]]`, for local runs, tests and hosts
//! without Kubernetes. It gives the index its one complete view at start.

use std::net::IpAddr;

use super::{Index, Pod};

/// Fills `index` with the configured pods and marks it ready.
pub fn load(index: &Index, pods: &[(Pod, Vec<IpAddr>)]) {
    index.reset(pods.iter().cloned());
    tracing::info!(pods = pods.len(), "static inventory loaded");
}
