//! The Kubernetes source: a node-scoped watch of Pods (and of Namespaces when rules select on
//! namespace labels) feeding the index.
//!
//! Only pods with `spec.nodeName` equal to this node are ever listed or watched, so memory and API
//! server load do not grow with the cluster. Objects are turned into the index's own `Pod` type at
//! once; nothing of the Kubernetes object is kept. On a relist (start, or after 410 Gone) the
//! complete new view replaces the index wholly; in between, each event is applied as it comes. When
//! the API server is unreachable the watcher retries with backoff and the index keeps serving its
//! last good state.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod as KubePod};
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

use super::{Index, Owner, Pod};
use crate::metrics::{Metrics, WatchLabels};

/// Why the Kubernetes source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("no node name: set [inventory] node_name or $NODE_NAME (the DaemonSet sets it from spec.nodeName)")]
    NoNodeName,
    #[error("cannot read kubeconfig {path}: {source}")]
    Kubeconfig {
        path: String,
        source: kube::config::KubeconfigError,
    },
    #[error("cannot configure the Kubernetes client: {0}")]
    Config(String),
    #[error("Kubernetes API request failed: {0}")]
    Api(#[from] kube::Error),
}

/// The node whose pods are watched: `[inventory] node_name`, else `$NODE_NAME`.
pub fn node_name(configured: Option<&str>) -> Result<String, KubeError> {
    configured
        .map(str::to_owned)
        .or_else(|| std::env::var("NODE_NAME").ok())
        .filter(|n| !n.is_empty())
        .ok_or(KubeError::NoNodeName)
}

/// A client from `kubeconfig` when given, else in-cluster service account or `$KUBECONFIG`.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client, KubeError> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path).map_err(|source| {
                KubeError::Kubeconfig {
                    path: path.display().to_string(),
                    source,
                }
            })?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?,
    };
    Client::try_from(with_user_agent(config)).map_err(KubeError::Api)
}

/// Every request to the API names the guard and its version (`imds-guard/0.x.y`), so its requests
/// can be told apart in the API server's audit log.
fn with_user_agent(mut config: kube::Config) -> kube::Config {
    config.headers.push((
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("imds-guard/", env!("CARGO_PKG_VERSION"))),
    ));
    config
}

/// The field selector that keeps every pod request node-scoped.
pub fn node_selector(node: &str) -> String {
    format!("spec.nodeName={node}")
}

/// Turns a Kubernetes pod into the index's pod and the IPs it holds.
///
/// hostNetwork pods hold no IP of their own (they share the node's), and pods in phase Succeeded
/// or Failed no longer hold theirs even though `status.podIPs` still lists them. Malformed IPs are
/// skipped with a log line, never indexed. `None` when the object lacks a uid, name or namespace.
pub fn convert(pod: &KubePod) -> Option<(Pod, Vec<IpAddr>)> {
    let meta = &pod.metadata;
    let (Some(uid), Some(name), Some(namespace)) = (&meta.uid, &meta.name, &meta.namespace) else {
        tracing::warn!(name = ?meta.name, namespace = ?meta.namespace, "pod without uid, name or namespace skipped");
        return None;
    };
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let status = pod.status.as_ref();
    let terminal = matches!(
        status.and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    let mut ips = Vec::new();
    if !host_network && !terminal {
        let listed = status.and_then(|s| s.pod_ips.as_ref());
        let texts: Vec<&str> = match listed {
            Some(list) if !list.is_empty() => list.iter().map(|p| p.ip.as_str()).collect(),
            _ => status
                .and_then(|s| s.pod_ip.as_deref())
                .into_iter()
                .collect(),
        };
        for text in texts {
            match text.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => {
                    tracing::warn!(pod = %format!("{namespace}/{name}"), ip = %text, "malformed pod IP skipped")
                }
            }
        }
    }
    let labels = meta.labels.clone().unwrap_or_default();
    let pod = Pod {
        namespace: namespace.clone(),
        name: name.clone(),
        uid: uid.clone(),
        owner: owner(pod, &labels),
        // Known by its cgroup only (`[interception] host_network_pods`).
        host_network,
        labels,
        namespace_labels: BTreeMap::new(),
    };
    Some((pod, ips))
}

/// The workload a pod belongs to, from its controller `ownerReference`, for audit lines. A
/// Deployment's pods are owned by one of its ReplicaSets, named `<deployment>-<pod-template-hash>`
/// (the hash is also the pod's `pod-template-hash` label): they are reported as the Deployment,
/// which outlives its ReplicaSets. Other owners (StatefulSet, DaemonSet, Job…) as they are.
fn owner(pod: &KubePod, labels: &BTreeMap<String, String>) -> Option<Owner> {
    let reference = pod
        .metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))?;
    let deployment = (reference.kind == "ReplicaSet")
        .then(|| labels.get("pod-template-hash"))
        .flatten()
        .and_then(|hash| {
            reference
                .name
                .strip_suffix(hash.as_str())?
                .strip_suffix('-')
        })
        .filter(|name| !name.is_empty());
    Some(match deployment {
        Some(name) => Owner {
            kind: "Deployment".into(),
            name: name.into(),
        },
        None => Owner {
            kind: reference.kind.clone(),
            name: reference.name.clone(),
        },
    })
}

/// Logs a watch's health changes once each, not once per retry, and counts them.
struct Health {
    what: &'static str,
    failing: bool,
    metrics: Arc<Metrics>,
}

impl Health {
    fn ok(&mut self) {
        if self.failing {
            self.failing = false;
            tracing::info!(watch = self.what, "Kubernetes watch resumed");
        }
    }

    fn relisted(&self) {
        let labels = WatchLabels { watch: self.what };
        self.metrics.watch_relists.get_or_create(&labels).inc();
    }

    fn failed(&mut self, err: &watcher::Error) {
        let labels = WatchLabels { watch: self.what };
        self.metrics.watch_errors.get_or_create(&labels).inc();
        if !self.failing {
            self.failing = true;
            tracing::warn!(watch = self.what, error = %err, "Kubernetes watch failing; serving the last known state and retrying");
        }
    }
}

/// What a watch of one kind of object does to the index; [`feed`] is the loop around it.
trait Feed {
    /// The Kubernetes object watched.
    type Object;
    /// What the index keeps of one object.
    type Entry;
    /// The `watch` label of the logs and metrics.
    const WATCH: &'static str;
    /// The object's entry; `None` when it has none (an incomplete object).
    fn entry(&self, object: &Self::Object) -> Option<Self::Entry>;
    /// Replaces the index's entries with `fresh`, a complete list.
    fn reset(&self, index: &Index, fresh: Vec<Self::Entry>);
    /// Adds or replaces one entry.
    fn apply(&self, index: &Index, entry: Self::Entry);
    /// Removes the object's entry.
    fn delete(&self, index: &Index, object: &Self::Object);
    /// Logs a completed list of `count` entries.
    fn synced(&self, count: usize);
}

/// Feeds `index` from `events`, retried with backoff, until they end.
async fn feed<F: Feed>(
    feed: F,
    events: impl Stream<Item = watcher::Result<Event<F::Object>>>,
    index: &Index,
    metrics: Arc<Metrics>,
) {
    let mut events = std::pin::pin!(events.default_backoff());
    let mut health = Health {
        what: F::WATCH,
        failing: false,
        metrics,
    };
    // A relist in progress: it replaces the index wholly once complete.
    let mut fresh = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                health.ok();
                index.resume();
                match event {
                    Event::Init => fresh.clear(),
                    Event::InitApply(object) => fresh.extend(feed.entry(&object)),
                    Event::InitDone => {
                        let count = fresh.len();
                        feed.reset(index, std::mem::take(&mut fresh));
                        health.relisted();
                        feed.synced(count);
                    }
                    Event::Apply(object) => {
                        if let Some(entry) = feed.entry(&object) {
                            feed.apply(index, entry);
                        }
                    }
                    Event::Delete(object) => feed.delete(index, &object),
                }
            }
            Err(err) => {
                if forbidden(&err) {
                    // Listing may be allowed and watching not: the index would then be stale
                    // from the start. Fail closed until the watch delivers again.
                    index.suspend();
                }
                health.failed(&err);
            }
        }
    }
}

/// Whether the API server refused the watch itself (401, 403), rather than failing for a while.
fn forbidden(err: &watcher::Error) -> bool {
    let code = match err {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status))
        | watcher::Error::WatchFailed(kube::Error::Api(status)) => status.code,
        watcher::Error::WatchError(status) => status.code,
        _ => return false,
    };
    matches!(code, 401 | 403)
}

/// The node's pods, by uid.
struct Pods {
    node: String,
}

impl Feed for Pods {
    type Object = KubePod;
    type Entry = (Pod, Vec<IpAddr>);
    const WATCH: &'static str = "pods";

    fn entry(&self, pod: &KubePod) -> Option<Self::Entry> {
        convert(pod)
    }

    fn reset(&self, index: &Index, fresh: Vec<Self::Entry>) {
        index.reset(fresh);
    }

    fn apply(&self, index: &Index, (pod, ips): Self::Entry) {
        index.apply(pod, ips);
    }

    fn delete(&self, index: &Index, pod: &KubePod) {
        if let Some(uid) = &pod.metadata.uid {
            index.delete(uid);
        }
    }

    fn synced(&self, count: usize) {
        tracing::info!(node = %self.node, pods = count, "pod inventory synced");
    }
}

/// Every namespace's labels, by name.
struct Namespaces;

impl Feed for Namespaces {
    type Object = Namespace;
    type Entry = (String, BTreeMap<String, String>);
    const WATCH: &'static str = "namespaces";

    fn entry(&self, ns: &Namespace) -> Option<Self::Entry> {
        let labels = ns.metadata.labels.clone().unwrap_or_default();
        ns.metadata.name.clone().map(|name| (name, labels))
    }

    fn reset(&self, index: &Index, fresh: Vec<Self::Entry>) {
        index.reset_namespaces(fresh);
    }

    fn apply(&self, index: &Index, (name, labels): Self::Entry) {
        index.apply_namespace(&name, labels);
    }

    fn delete(&self, index: &Index, ns: &Namespace) {
        if let Some(name) = &ns.metadata.name {
            index.delete_namespace(name);
        }
    }

    fn synced(&self, _: usize) {
        tracing::info!("namespace labels synced");
    }
}

/// Feeds `index` from the node's pods until the task is dropped.
pub async fn watch_pods(client: Client, node: String, index: Arc<Index>, metrics: Arc<Metrics>) {
    let config = watcher::Config::default().fields(&node_selector(&node));
    let events = watcher(Api::<KubePod>::all(client), config);
    feed(Pods { node }, events, &index, metrics).await
}

/// Feeds `index` with namespace labels until the task is dropped.
pub async fn watch_namespaces(client: Client, index: Arc<Index>, metrics: Arc<Metrics>) {
    let events = watcher(Api::<Namespace>::all(client), watcher::Config::default());
    feed(Namespaces, events, &index, metrics).await
}

/// One complete list of the node's pods (and namespaces when `namespaces` is set) into a fresh
/// index: what `explain` decides against.
pub async fn list_once(client: Client, node: &str, namespaces: bool) -> Result<Index, KubeError> {
    let index = if namespaces {
        Index::with_namespace_labels()
    } else {
        Index::new()
    };
    if namespaces {
        let list = Api::<Namespace>::all(client.clone())
            .list(&Default::default())
            .await?;
        index.reset_namespaces(list.items.into_iter().filter_map(|ns| {
            let labels = ns.metadata.labels.unwrap_or_default();
            ns.metadata.name.map(|n| (n, labels))
        }));
    }
    let params = kube::api::ListParams::default().fields(&node_selector(node));
    let list = Api::<KubePod>::all(client).list(&params).await?;
    index.reset(list.items.iter().filter_map(convert));
    Ok(index)
}

#[cfg(test)]
mod tests;
