//! `[inventory]` keys of the `self` source (sidecar mode), and what sidecar mode asks of the rest
//! of the config.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::{invalid, ConfigError, Netfilter, Source};

/// The `self` source's settings: who this pod is, when the downward API does not say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SelfPod {
    /// `inventory.pod_namespace`; `$POD_NAMESPACE` when unset.
    pub namespace: Option<String>,
    /// `inventory.pod_name`; `$POD_NAME` when unset.
    pub name: Option<String>,
    /// `inventory.pod_uid`; `$POD_UID` when unset, else `self:NAMESPACE/NAME`.
    pub uid: Option<String>,
    /// The downward-API file of the pod's labels (`metadata.labels`); without it the pod has no
    /// labels as far as the policy knows.
    pub labels_file: Option<PathBuf>,
    /// How often the labels file is checked for a change of content.
    pub labels_poll: Duration,
}

/// The raw keys, as read from `[inventory]`.
pub(super) struct RawSelfPod {
    pub(super) pod_namespace: Option<String>,
    pub(super) pod_name: Option<String>,
    pub(super) pod_uid: Option<String>,
    pub(super) labels_file: Option<PathBuf>,
    pub(super) labels_poll_ms: Option<u64>,
}

/// Checks the keys; they belong to the `self` source only, so that a node-mode config cannot
/// carry a pod identity that silently means nothing.
pub(super) fn validate(source: Source, raw: RawSelfPod) -> Result<SelfPod, ConfigError> {
    let keys = [
        ("inventory.pod_namespace", raw.pod_namespace.as_deref()),
        ("inventory.pod_name", raw.pod_name.as_deref()),
        ("inventory.pod_uid", raw.pod_uid.as_deref()),
    ];
    for (key, value) in keys {
        match value {
            Some(_) if source != Source::SelfPod => {
                return Err(invalid(key, "only used with source = \"self\""))
            }
            Some("") => return Err(invalid(key, "must not be empty")),
            _ => {}
        }
    }
    if source != Source::SelfPod {
        if raw.labels_file.is_some() {
            return Err(invalid(
                "inventory.labels_file",
                "only used with source = \"self\"",
            ));
        }
        if raw.labels_poll_ms.is_some() {
            return Err(invalid(
                "inventory.labels_poll_ms",
                "only used with source = \"self\"",
            ));
        }
    }
    if raw
        .labels_file
        .as_ref()
        .is_some_and(|p| p.as_os_str().is_empty())
    {
        return Err(invalid("inventory.labels_file", "must not be empty"));
    }
    let poll = raw.labels_poll_ms.unwrap_or(1000);
    if !(10..=60_000).contains(&poll) {
        return Err(invalid(
            "inventory.labels_poll_ms",
            "must be from 10 to 60000",
        ));
    }
    Ok(SelfPod {
        namespace: raw.pod_namespace,
        name: raw.pod_name,
        uid: raw.pod_uid,
        labels_file: raw.labels_file,
        labels_poll: Duration::from_millis(poll),
    })
}

/// What the `self` source needs of the other sections.
pub(super) fn check_mode(listen: SocketAddr, netfilter: &Netfilter) -> Result<(), ConfigError> {
    // Every connection the proxy accepts is taken to be this pod's: only a loopback listener
    // guarantees that (other pods cannot reach the pod's loopback).
    if !listen.ip().to_canonical().is_loopback() {
        return Err(invalid(
            "server.listen",
            format!(
                "{listen}: with inventory.source = \"self\" the proxy must listen on a loopback \
                 address (127.0.0.1:PORT), since every connection it accepts is taken to be this \
                 pod's"
            ),
        ));
    }
    if netfilter.manage {
        return Err(invalid(
            "netfilter.manage",
            "cannot be true with inventory.source = \"self\": the sidecar runs without NET_ADMIN; \
             its rules are installed by an init container with `imds-guard iptables install \
             --sidecar`",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
