//! The `self` source without a cluster: identities from a fake environment, and a labels file
//! updated the way the kubelet updates it (a `..data` symlink swapped to a new directory).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::*;
use crate::inventory::{Lookup, Wait as _};

fn settings() -> SelfPod {
    SelfPod {
        labels_poll: Duration::from_millis(10),
        ..SelfPod::default()
    }
}

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |name| vars.get(name).cloned()
}

const DOWNWARD: &[(&str, &str)] = &[("POD_NAMESPACE", "shop"), ("POD_NAME", "web-5c7b9")];

#[test]
fn the_identity_comes_from_the_config_then_the_environment() {
    let from_env = Identity::resolve(&settings(), env(DOWNWARD)).unwrap();
    assert_eq!(
        from_env,
        Identity {
            namespace: "shop".into(),
            name: "web-5c7b9".into(),
            uid: "self:shop/web-5c7b9".into(),
        }
    );
    let mut with_uid = DOWNWARD.to_vec();
    with_uid.push(("POD_UID", "0d1f-77"));
    assert_eq!(
        Identity::resolve(&settings(), env(&with_uid)).unwrap().uid,
        "0d1f-77"
    );
    let configured = SelfPod {
        namespace: Some("tools".into()),
        name: Some("probe".into()),
        ..settings()
    };
    let id = Identity::resolve(&configured, env(DOWNWARD)).unwrap();
    assert_eq!(
        (id.namespace.as_str(), id.name.as_str()),
        ("tools", "probe")
    );

    assert_eq!(
        Identity::resolve(&settings(), env(&[("POD_NAME", "x")])),
        Err(SelfError::NoNamespace)
    );
    let empty_name = [("POD_NAMESPACE", "shop"), ("POD_NAME", "")];
    assert_eq!(
        Identity::resolve(&settings(), env(&empty_name)),
        Err(SelfError::NoName)
    );
}

/// A downward-API volume: `labels -> ..data/labels`, `..data -> ..<version>`.
struct Volume {
    dir: tempfile::TempDir,
    version: usize,
}

impl Volume {
    fn new(labels: &str) -> Volume {
        let mut volume = Volume {
            dir: tempfile::tempdir().unwrap(),
            version: 0,
        };
        volume.update(labels);
        std::os::unix::fs::symlink("..data/labels", volume.dir.path().join("labels")).unwrap();
        volume
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("labels")
    }

    /// Writes a new version and swaps `..data` to it atomically, as the kubelet does.
    fn update(&mut self, labels: &str) {
        self.version += 1;
        let root = self.dir.path();
        let version = format!("..v{}", self.version);
        std::fs::create_dir(root.join(&version)).unwrap();
        std::fs::write(root.join(&version).join("labels"), labels).unwrap();
        let tmp = root.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, root.join("..data")).unwrap();
    }
}

fn labels_of(index: &Index, from: &str) -> Option<BTreeMap<String, String>> {
    match index.lookup(from.parse::<IpAddr>().unwrap()) {
        Lookup::Found(pod) => Some(pod.labels.clone()),
        _ => None,
    }
}

fn read(path: &Path) -> std::io::Result<Vec<u8>> {
    std::fs::read(path)
}

#[test]
fn labels_follow_the_file_and_a_bad_file_keeps_the_last_good_ones() {
    let mut volume = Volume::new("app=\"web\"\ntier=\"front\"");
    let identity = Identity::resolve(&settings(), env(DOWNWARD)).unwrap();
    let index = Index::any_source();
    let mut file = LabelsFile::new(volume.path(), identity);
    assert_eq!(index.lookup("127.0.0.1".parse().unwrap()), Lookup::NotReady);

    assert_eq!(file.update(read(&volume.path()), &index), Refresh::Applied);
    let first = labels_of(&index, "127.0.0.1").unwrap();
    assert_eq!(first.get("tier").map(String::as_str), Some("front"));
    // Every address is this pod: loopback, the pod's own address, IPv6.
    for from in ["10.1.2.3", "::1", "fd00::7"] {
        assert_eq!(labels_of(&index, from).as_ref(), Some(&first), "{from}");
    }
    assert_eq!(
        file.update(read(&volume.path()), &index),
        Refresh::Unchanged
    );

    volume.update("allow-node-metadata-lookup=\"true\"\napp=\"web\"");
    assert_eq!(file.update(read(&volume.path()), &index), Refresh::Applied);
    let second = labels_of(&index, "127.0.0.1").unwrap();
    assert_eq!(
        second.get("allow-node-metadata-lookup").map(String::as_str),
        Some("true")
    );
    assert!(!second.contains_key("tier"));

    volume.update("app=web");
    let kept = file.update(read(&volume.path()), &index);
    assert_eq!(
        kept,
        Refresh::Kept("line 1: the value must be in double quotes".into())
    );
    assert_eq!(labels_of(&index, "127.0.0.1"), Some(second.clone()));
    // Reported once: the same bad content again is not news.
    assert_eq!(
        file.update(read(&volume.path()), &index),
        Refresh::Unchanged
    );

    std::fs::remove_file(volume.path()).unwrap();
    assert!(matches!(
        file.update(read(&volume.path()), &index),
        Refresh::Kept(why) if why.starts_with("cannot read the labels file")
    ));
    assert_eq!(labels_of(&index, "127.0.0.1"), Some(second));
}

#[test]
fn without_a_labels_file_the_pod_is_known_at_once_and_has_no_labels() {
    let index = Arc::new(Index::any_source());
    let task = start(&index, &settings(), env(DOWNWARD)).unwrap();
    assert!(task.is_none());
    match index.lookup("10.9.8.7".parse().unwrap()) {
        Lookup::Found(pod) => {
            assert_eq!(pod.qualified_name(), "shop/web-5c7b9");
            assert!(pod.labels.is_empty() && pod.namespace_labels.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        start(&index, &settings(), env(&[])),
        Err(SelfError::NoNamespace)
    ));
}

#[tokio::test]
async fn a_labels_file_not_there_yet_means_not_ready_until_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels");
    let settings = SelfPod {
        labels_file: Some(path.clone()),
        ..settings()
    };
    let index = Arc::new(Index::any_source());
    let task = start(&index, &settings, env(DOWNWARD)).unwrap().unwrap();
    assert!(!index.is_ready());
    let mut changes = index.subscribe();
    let watching = tokio::spawn(task);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(index.lookup("127.0.0.1".parse().unwrap()), Lookup::NotReady);
    std::fs::write(&path, "app=\"web\"").unwrap();
    tokio::time::timeout(Duration::from_secs(5), changes.changed())
        .await
        .expect("the watch did not pick the file up")
        .unwrap();
    assert_eq!(
        labels_of(&index, "127.0.0.1").and_then(|l| l.get("app").cloned()),
        Some("web".into())
    );
    watching.abort();
}

#[test]
fn a_huge_file_is_not_read_as_labels() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("labels");
    std::fs::write(&path, vec![b'a'; (MAX_LABELS_FILE + 1) as usize]).unwrap();
    assert!(file_watch::read_capped(&path, MAX_LABELS_FILE).is_err());
    std::fs::write(&path, "a=\"b\"").unwrap();
    assert_eq!(
        file_watch::read_capped(&path, MAX_LABELS_FILE).unwrap(),
        b"a=\"b\""
    );
}

#[test]
fn an_any_source_index_never_picks_among_pods() {
    let identity = Identity::resolve(&settings(), env(DOWNWARD)).unwrap();
    let index = Index::any_source();
    index.reset([]);
    assert_eq!(index.lookup("127.0.0.1".parse().unwrap()), Lookup::Unknown);
    let mut other = identity.pod(BTreeMap::new());
    other.uid = "another".into();
    index.reset([
        (identity.pod(BTreeMap::new()), Vec::new()),
        (other, Vec::new()),
    ]);
    assert_eq!(
        index.lookup("127.0.0.1".parse().unwrap()),
        Lookup::Ambiguous
    );
}
