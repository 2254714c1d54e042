//! Who is this source IP? The pod inventory.
//!
//! One [`Index`] answers every lookup on the request path; sources only feed it. The static source
//! (pods listed in the config) fills it once at start; the Kubernetes source feeds it from a
//! node-scoped watch through the same `apply` / `delete` / `reset` calls; the `self` source
//! (sidecar mode) holds the one pod the guard runs in, for every address, and replaces it when
//! the pod's labels file changes. Lookups never block on a source and never call out: they read
//! the last state the index was given.

mod index;
pub mod kubernetes;
pub mod labels;
pub mod self_source;
pub mod static_source;

use std::collections::BTreeMap;

pub use index::{Index, Lookup};

/// A pod as the policy sees it. Deliberately free of Kubernetes types: any source can build one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    /// Tells apart two pods that had the same name at different times (audit lines carry it).
    pub uid: String,
    pub labels: BTreeMap<String, String>,
    /// Labels of the pod's namespace, for rules that select on them.
    pub namespace_labels: BTreeMap<String, String>,
}

impl Pod {
    /// `namespace/name`, as audit lines and refusals name the pod.
    pub fn qualified_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}
