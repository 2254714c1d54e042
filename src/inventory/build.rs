//! The one inventory builder: from `[inventory]`, the index and whatever keeps it current. `run`
//! watches; `explain` looks once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt as _;
use kube::Client;

use crate::config::{Config, Source};
use crate::metrics::Metrics;

use super::kubernetes::{self, KubeError};
use super::self_source::{self, Identity, LabelsFile, SelfError};
use super::{static_source, Index};

/// Why the inventory could not be built.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error(transparent)]
    Kubernetes(#[from] KubeError),
    #[error("[inventory] source = \"self\": {0}")]
    SelfPod(#[from] SelfError),
}

/// How the index is kept.
pub enum Feed {
    /// Watch the source until shutdown, counting the watch's health in these metrics.
    Watch(Arc<Metrics>),
    /// Look once (a one-off command): list the node's pods, read the labels file.
    Once,
}

/// An index and what keeps it current.
pub struct Inventory {
    pub index: Arc<Index>,
    /// How long a request from an unknown address may wait for the index to learn it: only the
    /// Kubernetes source learns pods after start.
    pub unknown_source_grace: Duration,
    /// The tasks that keep the index current, to run until shutdown (none when looking once).
    pub feeders: Vec<BoxFuture<'static, ()>>,
    /// The API client and the node's name, with the Kubernetes source.
    pub kubernetes: Option<(Client, String)>,
}

/// Builds the inventory `config` names. With [`Feed::Watch`] and the Kubernetes source the index
/// is not ready until the first full list has arrived.
pub async fn start(config: &Config, feed: Feed) -> Result<Inventory, InventoryError> {
    let mut inventory = Inventory {
        index: Arc::new(Index::new()),
        unknown_source_grace: Duration::ZERO,
        feeders: Vec::new(),
        kubernetes: None,
    };
    match config.inventory.source {
        Source::Static => static_source::load(&inventory.index, &config.inventory.pods),
        Source::SelfPod => {
            let index = Arc::new(Index::any_source());
            let settings = &config.inventory.self_pod;
            let env = |name: &str| std::env::var(name).ok();
            match feed {
                Feed::Watch(_) => {
                    if let Some(watch) = self_source::start(&index, settings, env)? {
                        inventory.feeders.push(watch.boxed());
                    }
                    if config.policy.uses_namespace_labels() {
                        tracing::warn!("rules select on namespace labels, which sidecar mode cannot know (no API access): those rules select nothing");
                    }
                }
                Feed::Once => {
                    let identity = Identity::resolve(settings, env)?;
                    match &settings.labels_file {
                        Some(path) => {
                            LabelsFile::new(path.clone(), identity).read_now(&index);
                        }
                        None => index.reset([(identity.pod(BTreeMap::new()), Vec::new())]),
                    }
                }
            }
            inventory.index = index;
        }
        Source::Kubernetes => {
            let node = kubernetes::node_name(config.inventory.node_name.as_deref())?;
            let client = kubernetes::client(config.inventory.kubeconfig.as_deref()).await?;
            let namespaces = config.policy.uses_namespace_labels();
            match feed {
                Feed::Watch(metrics) => {
                    let index = Arc::new(if namespaces {
                        Index::with_namespace_labels()
                    } else {
                        Index::new()
                    });
                    tracing::info!(node = %node, namespaces, "watching this node's pods; not ready until the first list");
                    inventory.feeders.push(
                        kubernetes::watch_pods(
                            client.clone(),
                            node.clone(),
                            Arc::clone(&index),
                            Arc::clone(&metrics),
                        )
                        .boxed(),
                    );
                    if namespaces {
                        inventory.feeders.push(
                            kubernetes::watch_namespaces(
                                client.clone(),
                                Arc::clone(&index),
                                metrics,
                            )
                            .boxed(),
                        );
                    }
                    inventory.index = index;
                    inventory.unknown_source_grace = config.inventory.unknown_source_grace;
                }
                Feed::Once => {
                    let index = kubernetes::list_once(client.clone(), &node, namespaces).await?;
                    inventory.index = Arc::new(index);
                }
            }
            inventory.kubernetes = Some((client, node));
        }
    }
    Ok(inventory)
}
