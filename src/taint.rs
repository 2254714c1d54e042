//! The start-up taint: new nodes join with a taint that keeps ordinary pods off them, and the guard
//! removes it from its own node once the interception rules are in place and the inventory is
//! synced, so no pod ever runs on a node where the metadata service is unguarded.
//!
//! The taint list is replaced with a merge patch that carries the node's resourceVersion, so a
//! concurrent change of the node (another controller adding a taint) makes the API server refuse
//! the patch (409) instead of losing that change; the guard then reads the node again.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use crate::inventory::{Index, Wait as _};
use crate::netfilter::keeper::RulesState;

/// Removes the taint `key` (any effect) from `node`. `Ok(false)` when the node does not carry it.
pub async fn remove(client: Client, node: &str, key: &str) -> Result<bool, kube::Error> {
    let api: Api<Node> = Api::all(client);
    loop {
        let current = api.get(node).await?;
        let taints = current.spec.and_then(|s| s.taints).unwrap_or_default();
        if !taints.iter().any(|t| t.key == key) {
            return Ok(false);
        }
        let kept: Vec<_> = taints.into_iter().filter(|t| t.key != key).collect();
        let patch = serde_json::json!({
            "metadata": { "resourceVersion": current.metadata.resource_version },
            "spec": { "taints": kept },
        });
        match api
            .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(true),
            // Someone changed the node in between: read it again.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(e),
        }
    }
}

/// [`remove`], retried with backoff until it succeeds (the API server may be briefly away).
pub async fn remove_until_done(client: Client, node: &str, key: &str) {
    let mut wait = Duration::from_millis(200);
    loop {
        match remove(client.clone(), node, key).await {
            Ok(true) => {
                tracing::info!(
                    node,
                    taint = key,
                    "start-up taint removed: pods may be scheduled here"
                );
                return;
            }
            Ok(false) => {
                tracing::info!(node, taint = key, "node does not carry the start-up taint");
                return;
            }
            Err(e) => {
                tracing::warn!(node, taint = key, error = %e, retry_in = ?wait, "cannot remove the start-up taint yet");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Removes the taint `key` from `node` once the inventory is synced and the interception rules
/// are in place: until then the node stays unschedulable, so no pod runs unprotected.
pub async fn remove_once_protected(
    client: Client,
    node: String,
    key: String,
    index: Arc<Index>,
    rules: RulesState,
) {
    let mut changes = index.subscribe();
    while !(index.is_ready() && rules.in_place()) {
        // Index updates wake us; the timeout covers a change of the rules' state.
        let _ = tokio::time::timeout(Duration::from_secs(1), changes.changed()).await;
    }
    remove_until_done(client, &node, &key).await;
}
