//! The `self` source (sidecar mode): the guard runs inside one pod, and every connection it
//! accepts is that pod's.
//!
//! The pod's namespace, name and uid come from the downward API's environment (`POD_NAMESPACE`,
//! `POD_NAME`, `POD_UID`), or from the config; its labels from a downward-API volume file, which
//! the kubelet rewrites when the labels change (by swapping a `..data` symlink, so the file is
//! re-read by path and compared by content, as the config reload does). There is no Kubernetes
//! API access at all.
//!
//! Fail closed: with a labels file configured, the index is not ready (pods get 503) until the file
//! has been read once; a malformed or unreadable file later keeps the last good labels, with a log
//! line per change of state, never a guess.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::labels::{parse_labels, LabelsError};
use super::{Index, Pod};
use crate::config::SelfPod;
use crate::file_watch::{self, Judged, Seen};

/// Why the `self` source cannot say who this pod is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelfError {
    #[error("no pod namespace: set [inventory] pod_namespace or $POD_NAMESPACE (the downward API's metadata.namespace)")]
    NoNamespace,
    #[error(
        "no pod name: set [inventory] pod_name or $POD_NAME (the downward API's metadata.name)"
    )]
    NoName,
}

/// Who this pod is, without its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl Identity {
    /// The config's keys first, then the environment (`env` looks a variable up, so that tests
    /// need not change the process environment). An empty variable counts as unset.
    pub fn resolve(
        settings: &SelfPod,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Identity, SelfError> {
        let pick = |configured: &Option<String>, var: &str| {
            configured
                .clone()
                .or_else(|| env(var))
                .filter(|v| !v.is_empty())
        };
        let namespace = pick(&settings.namespace, "POD_NAMESPACE").ok_or(SelfError::NoNamespace)?;
        let name = pick(&settings.name, "POD_NAME").ok_or(SelfError::NoName)?;
        let uid =
            pick(&settings.uid, "POD_UID").unwrap_or_else(|| format!("self:{namespace}/{name}"));
        Ok(Identity {
            namespace,
            name,
            uid,
        })
    }

    /// The pod with `labels`. Namespace labels stay empty: they are not known without the API.
    pub fn pod(&self, labels: BTreeMap<String, String>) -> Pod {
        Pod {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            labels,
            namespace_labels: BTreeMap::new(),
            owner: None,
            host_network: false,
        }
    }
}

/// The labels file and what was last made of it.
pub struct LabelsFile {
    path: PathBuf,
    identity: Identity,
    /// A bad file is reported once, not on every poll.
    seen: Seen,
}

/// What one look at the labels file did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refresh {
    /// The content is as last seen: nothing to do.
    Unchanged,
    /// New labels were given to the index.
    Applied,
    /// The file could not be read or parsed; the index keeps what it had (nothing, the first
    /// time: not ready).
    Kept(String),
}

impl LabelsFile {
    /// The file at `path`, for the pod `identity`.
    pub fn new(path: PathBuf, identity: Identity) -> LabelsFile {
        LabelsFile {
            path,
            identity,
            seen: Seen::nothing(),
        }
    }

    /// Acts on one read of the file: new, well-formed content replaces the pod's labels in the
    /// index; anything else keeps what the index has.
    pub fn update(&mut self, read: std::io::Result<Vec<u8>>, index: &Index) -> Refresh {
        refresh(
            &self.path,
            &self.identity,
            self.seen.judge(read, false),
            index,
        )
    }

    /// Reads the file now (blocking; for start-up and one-off commands).
    pub fn read_now(&mut self, index: &Index) -> Refresh {
        let read = file_watch::read_capped(&self.path, MAX_LABELS_FILE);
        self.update(read, index)
    }

    /// Re-reads the file every `poll` until the task is dropped.
    pub async fn watch(self, index: Arc<Index>, poll: Duration) {
        let LabelsFile {
            path,
            identity,
            seen,
        } = self;
        let act = |judged: Judged<'_>| {
            refresh(&path, &identity, judged, &index);
        };
        file_watch::watch(&path, MAX_LABELS_FILE, seen, Some(poll), None, act).await
    }
}

/// Acts on one judged read of the labels file at `path`, for the pod `identity`.
fn refresh(path: &Path, identity: &Identity, judged: Judged<'_>, index: &Index) -> Refresh {
    let content = match judged {
        Judged::Unchanged => return Refresh::Unchanged,
        Judged::Failed { error, report } => {
            if report {
                tracing::error!(path = %path.display(), error = %error, "cannot read the labels file; keeping the last good labels");
            }
            return Refresh::Kept(format!("cannot read the labels file: {error}"));
        }
        Judged::Changed(content) => content,
    };
    let parsed = std::str::from_utf8(content)
        .map_err(|_| LabelsError::NotUtf8)
        .and_then(parse_labels);
    match parsed {
        Ok(labels) => {
            tracing::info!(pod = %format!("{}/{}", identity.namespace, identity.name), labels = labels.len(), "pod labels read");
            index.reset([(identity.pod(labels), Vec::new())]);
            Refresh::Applied
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "malformed labels file; keeping the last good labels");
            Refresh::Kept(e.to_string())
        }
    }
}

/// Labels are small (Kubernetes caps them); a file larger than this is not a labels file.
const MAX_LABELS_FILE: u64 = 1 << 20;

/// Gives `index` (made with [`Index::any_source`]) this pod. Without a labels file the pod has no
/// labels and the index is ready at once; with one, the file is read now and the returned task
/// (to be spawned) keeps re-reading it. The first read failing is not an error: the index stays
/// not ready, pods get 503, and the task keeps trying.
pub fn start(
    index: &Arc<Index>,
    settings: &SelfPod,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<impl Future<Output = ()> + Send + 'static>, SelfError> {
    let identity = Identity::resolve(settings, env)?;
    tracing::info!(namespace = %identity.namespace, name = %identity.name, uid = %identity.uid, labels_file = ?settings.labels_file, "sidecar mode: every connection is this pod's");
    let Some(path) = settings.labels_file.clone() else {
        index.reset([(identity.pod(BTreeMap::new()), Vec::new())]);
        return Ok(None);
    };
    let mut file = LabelsFile::new(path, identity);
    if let Refresh::Kept(why) = file.read_now(index) {
        tracing::warn!(reason = %why, "not ready until the labels file has been read");
    }
    Ok(Some(file.watch(Arc::clone(index), settings.labels_poll)))
}

#[cfg(test)]
mod tests;
