//! Self-test of the fake API server: the real kube client and `kube::runtime::watcher`, reaching it
//! through the kubeconfig it writes, must see what they would see from a real API server — pages,
//! selectors, bookmarks, dropped streams, 410 Gone and an unreachable server.

use crate::support;

use std::collections::BTreeSet;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, VersionMatch, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource, ResourceExt};
use support::fake_api::*;
use tokio::sync::mpsc;

/// The bound on every single wait; generous, since the machine is shared with other builds.
const WAIT: Duration = Duration::from_secs(10);

struct Cluster {
    api: FakeApi,
    client: Client,
    dir: tempfile::TempDir,
}

/// A fresh fake server and a kube client built from its kubeconfig, as the guard would build one.
async fn cluster() -> Cluster {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let client = client(&api, &dir, true).await;
    Cluster { api, client, dir }
}

/// A client reaching `api` through a kubeconfig written in `dir`. `retry: false` turns off kube's
/// default retrying of 429/503/504 (up to 15 times, with backoff), to see such answers directly.
async fn client(api: &FakeApi, dir: &tempfile::TempDir, retry: bool) -> Client {
    let path = api.write_kubeconfig(dir.path());
    assert!(std::fs::read_to_string(&path)
        .unwrap()
        .contains(&format!("server: http://{}", api.addr())));
    let kubeconfig = Kubeconfig::read_from(&path).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .unwrap();
    config.default_retry = retry;
    Client::try_from(config).unwrap()
}

fn pods(c: &Cluster) -> Api<Pod> {
    Api::all(c.client.clone())
}

fn node_a() -> watcher::Config {
    watcher::Config::default().fields("spec.nodeName=node-a")
}

/// A pod on node-a or node-b in namespace "apps", with one IP and an `app=web` label.
fn on(node: &str, name: &str) -> serde_json::Value {
    pod("apps", name, node, &["10.0.0.1"], &[("app", "web")])
}

/// Watcher events as short strings, so tests compare whole sequences.
fn show<K: Resource>(event: Result<watcher::Event<K>, watcher::Error>) -> String {
    let key = |o: &K| match o.meta().namespace.as_deref() {
        Some(ns) => format!("{ns}/{}", o.meta().name.as_deref().unwrap_or_default()),
        None => o.meta().name.clone().unwrap_or_default(),
    };
    match event {
        Ok(watcher::Event::Init) => "Init".into(),
        Ok(watcher::Event::InitApply(o)) => format!("InitApply {}", key(&o)),
        Ok(watcher::Event::InitDone) => "InitDone".into(),
        Ok(watcher::Event::Apply(o)) => format!("Apply {}", key(&o)),
        Ok(watcher::Event::Delete(o)) => format!("Delete {}", key(&o)),
        Err(watcher::Error::WatchError(status)) => {
            format!("WatchError {} {}", status.code, status.reason)
        }
        Err(e) => format!("Error {e}"),
    }
}

/// A watcher polled by its own task, as the guard polls it, so the tests can wait on its events
/// while it keeps reconnecting in the background.
struct Events(mpsc::UnboundedReceiver<String>);

fn spawn_watcher<K: Resource + Send + 'static>(
    stream: impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) -> Events {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if tx.send(show(item)).is_err() {
                break;
            }
        }
    });
    Events(rx)
}

impl Events {
    async fn next(&mut self) -> String {
        let next = tokio::time::timeout(WAIT, self.0.recv()).await;
        next.expect("no watcher event in time")
            .expect("watcher stream ended")
    }

    async fn take(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.next().await);
        }
        out
    }

    /// The next event that is not a transport error (those repeat while the server is down).
    async fn next_after_transport_errors(&mut self) -> String {
        loop {
            let event = self.next().await;
            if !event.starts_with("Error ") {
                return event;
            }
        }
    }

    /// Everything up to and including InitDone.
    async fn until_init_done(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while out.last().is_none_or(|e| e != "InitDone") {
            // A fake that pages forever must fail the test, not hang it.
            assert!(out.len() < 10_000, "no InitDone after {} events", out.len());
            out.push(self.next().await);
        }
        out
    }
}

/// `namespace/name` of the pods a list with these selectors (empty = none) returns.
async fn names(api: &Api<Pod>, fields: &str, labels: &str) -> Vec<String> {
    let params = ListParams {
        field_selector: (!fields.is_empty()).then(|| fields.to_string()),
        label_selector: (!labels.is_empty()).then(|| labels.to_string()),
        ..ListParams::default()
    };
    let list = api
        .list(&params)
        .await
        .unwrap_or_else(|e| panic!("{fields} / {labels}: {e}"));
    list.items
        .iter()
        .map(|p| format!("{}/{}", p.namespace().unwrap(), p.name_any()))
        .collect()
}

/// The HTTP code of an API answer.
fn code<T>(result: kube::Result<T>) -> u16 {
    match result {
        Err(kube::Error::Api(s)) => s.code,
        Ok(_) => 200,
        Err(e) => panic!("not an API answer: {e}"),
    }
}

/// The pod list requests (pages included) seen so far.
fn lists(api: &FakeApi) -> Vec<Recorded> {
    api.requests()
        .into_iter()
        .filter(|r| !r.is_watch() && r.path == "/api/v1/pods")
        .collect()
}

/// The watch requests seen so far.
fn watches(api: &FakeApi) -> Vec<Recorded> {
    api.requests()
        .into_iter()
        .filter(Recorded::is_watch)
        .collect()
}

#[tokio::test]
async fn node_field_selector_lists_only_that_nodes_pods() {
    let c = cluster().await;
    c.api.upsert_pod(pod(
        "apps",
        "a-1",
        "node-a",
        &["10.0.0.1", "fd00::1"],
        &[("app", "web")],
    ));
    c.api.upsert_pod(on("node-b", "b-1"));
    c.api.upsert_pod(on("node-a", "a-2"));

    let list = pods(&c)
        .list(&ListParams::default().fields("spec.nodeName=node-a"))
        .await
        .unwrap();

    let names: Vec<_> = list.items.iter().map(|p| p.name_any()).collect();
    assert_eq!(names, ["a-1", "a-2"]);
    assert_eq!(list.metadata.resource_version.as_deref(), Some("3"));
    let first = &list.items[0];
    assert_eq!(first.resource_version().as_deref(), Some("1"));
    assert!(first.uid().is_some());
    let status = first.status.as_ref().unwrap();
    assert_eq!(status.pod_ip.as_deref(), Some("10.0.0.1"));
    let ips: Vec<_> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|ip| ip.ip.as_str())
        .collect();
    assert_eq!(ips, ["10.0.0.1", "fd00::1"]);
    assert_eq!(status.phase.as_deref(), Some("Running"));
    let request = c
        .api
        .wait_for_request(|r| r.path == "/api/v1/pods", WAIT)
        .await;
    assert_eq!(
        (request.method.as_str(), request.is_watch()),
        ("GET", false)
    );
    assert_eq!(
        request.query_value("fieldSelector"),
        Some("spec.nodeName=node-a")
    );
}

#[tokio::test]
async fn selectors_gets_and_errors_answer_like_the_real_server() {
    let c = cluster().await;
    c.api.upsert_pod(pod(
        "apps",
        "web",
        "node-a",
        &["10.0.0.1"],
        &[("app", "web")],
    ));
    c.api.upsert_pod(with_phase(
        pod("apps", "job", "node-a", &[], &[("app", "job")]),
        "Pending",
    ));
    c.api.upsert_pod(with_host_network(pod(
        "kube-system",
        "proxy",
        "node-a",
        &["192.168.0.5"],
        &[],
    )));
    c.api.upsert_pod(pod(
        "other",
        "web",
        "node-b",
        &["10.0.1.1"],
        &[("app", "web")],
    ));
    let all = pods(&c);
    assert_eq!(
        names(&all, "spec.nodeName!=node-a,metadata.namespace=other", "").await,
        ["other/web"]
    );
    assert_eq!(
        names(&all, "spec.nodeName==node-a,status.phase=Pending", "").await,
        ["apps/job"]
    );
    assert_eq!(
        names(&all, "spec.hostNetwork=true", "").await,
        ["kube-system/proxy"]
    );
    assert_eq!(
        names(&all, "spec.hostNetwork=false,metadata.name=web", "").await,
        ["apps/web", "other/web"]
    );
    assert_eq!(names(&all, "", "app=web").await, ["apps/web", "other/web"]);
    assert_eq!(
        names(&all, "", "app!=web").await,
        ["apps/job", "kube-system/proxy"]
    );
    assert_eq!(names(&all, "", "!app").await, ["kube-system/proxy"]);
    assert_eq!(
        names(&all, "spec.nodeName=node-a", "app").await,
        ["apps/job", "apps/web"]
    );
    let in_apps = Api::<Pod>::namespaced(c.client.clone(), "apps")
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(
        in_apps
            .items
            .iter()
            .map(|p| p.name_any())
            .collect::<Vec<_>>(),
        ["job", "web"]
    );

    let unsupported = pods(&c)
        .list(&ListParams::default().fields("spec.nodeNam=node-a"))
        .await;
    match unsupported {
        Err(kube::Error::Api(s)) => assert_eq!(
            (s.code, s.message.as_str()),
            (400, "field label not supported: spec.nodeNam")
        ),
        other => panic!("unsupported field selector answered {other:?}"),
    }
    let set_based = all
        .list(&ListParams::default().labels("app in (web,job)"))
        .await;
    assert_eq!(
        code(set_based),
        400,
        "refused loudly rather than filtered wrongly"
    );
    let got = Api::<Pod>::namespaced(c.client.clone(), "kube-system")
        .get("proxy")
        .await
        .unwrap();
    assert_eq!(got.spec.unwrap().host_network, Some(true));
    match Api::<Pod>::namespaced(c.client.clone(), "apps")
        .get("missing")
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!((s.code, s.reason.as_str()), (404, "NotFound")),
        other => panic!("missing pod answered {other:?}"),
    }
    let unknown = http::Request::get("/apis/apps/v1/deployments")
        .body(Vec::new())
        .unwrap();
    match c.client.request_text(unknown).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        other => panic!("unknown resource answered {other:?}"),
    }

    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    c.api.upsert_namespace(namespace("apps", &[("team", "a")]));
    c.api.upsert_namespace(namespace("other", &[("team", "b")]));
    let team_a = namespaces
        .list(&ListParams::default().labels("team=a"))
        .await
        .unwrap();
    assert_eq!(
        team_a
            .items
            .iter()
            .map(|n| n.name_any())
            .collect::<Vec<_>>(),
        ["apps"]
    );
    assert_eq!(
        team_a.metadata.resource_version.as_deref(),
        Some("6"),
        "one RV sequence across kinds"
    );
    let apps = namespaces.get("apps").await.unwrap();
    assert_eq!(
        apps.labels()
            .get("kubernetes.io/metadata.name")
            .map(String::as_str),
        Some("apps")
    );
    c.api.delete_namespace("apps");
    let left = namespaces.list(&ListParams::default()).await.unwrap();
    assert_eq!(
        left.items.iter().map(|n| n.name_any()).collect::<Vec<_>>(),
        ["other"]
    );
}

#[tokio::test]
async fn watcher_sees_init_then_changes_of_its_node_only() {
    let c = cluster().await;
    c.api.upsert_pod(on("node-a", "a-1"));
    c.api.upsert_pod(on("node-b", "b-1"));
    c.api.upsert_pod(on("node-a", "a-2"));
    let mut events = spawn_watcher(watcher(pods(&c), node_a()));

    assert_eq!(
        events.take(4).await,
        [
            "Init",
            "InitApply apps/a-1",
            "InitApply apps/a-2",
            "InitDone"
        ]
    );
    let list = &lists(&c.api)[0];
    assert_eq!(
        list.query_value("fieldSelector"),
        Some("spec.nodeName=node-a")
    );
    assert_eq!(list.query_value("limit"), Some("500"));
    let watch = c.api.wait_for_request(Recorded::is_watch, WAIT).await;
    assert_eq!(watch.path, "/api/v1/pods");
    assert_eq!(
        watch.query_value("fieldSelector"),
        Some("spec.nodeName=node-a")
    );
    assert_eq!(watch.query_value("resourceVersion"), Some("3"));
    assert_eq!(watch.query_value("allowWatchBookmarks"), Some("true"));
    assert_eq!(c.api.open_watches(), 1);

    // Events arrive in order, so a node-b event would show up before the node-a one after it.
    c.api.upsert_pod(on("node-b", "b-2"));
    c.api.upsert_pod(on("node-a", "a-3"));
    assert_eq!(events.next().await, "Apply apps/a-3");
    c.api
        .upsert_pod(with_phase(on("node-a", "a-1"), "Succeeded"));
    assert_eq!(events.next().await, "Apply apps/a-1");
    c.api.bookmark();
    c.api.delete_pod("apps", "b-1");
    c.api.delete_pod("apps", "a-2");
    assert_eq!(events.next().await, "Delete apps/a-2");
    c.api.upsert_pod(on("node-a", "a-4"));
    assert_eq!(
        events.next().await,
        "Apply apps/a-4",
        "the watcher survived the bookmark"
    );
    assert_eq!((lists(&c.api).len(), watches(&c.api).len()), (1, 1));
}

#[tokio::test]
async fn dropped_watch_resumes_from_the_bookmarked_version_without_a_relist() {
    let c = cluster().await;
    c.api.upsert_pod(on("node-a", "a-1"));
    let mut events = spawn_watcher(watcher(pods(&c), node_a()));
    assert_eq!(
        events.take(3).await,
        ["Init", "InitApply apps/a-1", "InitDone"]
    );
    c.api
        .wait_for_request(
            |r| r.is_watch() && r.query_value("resourceVersion") == Some("1"),
            WAIT,
        )
        .await;

    // Changes the watcher never sees move the RV on; only the bookmark tells it.
    c.api.upsert_pod(on("node-b", "b-1"));
    c.api.upsert_pod(on("node-b", "b-2"));
    c.api.bookmark();
    c.api.drop_watches();
    assert_eq!(c.api.open_watches(), 0);

    c.api
        .wait_for_request(
            |r| r.is_watch() && r.query_value("resourceVersion") == Some("3"),
            WAIT,
        )
        .await;
    assert_eq!(c.api.open_watches(), 1);
    c.api.upsert_pod(on("node-a", "a-2"));
    assert_eq!(events.next().await, "Apply apps/a-2");
    assert_eq!((lists(&c.api).len(), watches(&c.api).len()), (1, 2));
}

#[tokio::test]
async fn unreachable_server_yields_errors_and_restart_resumes() {
    let c = cluster().await;
    c.api.upsert_pod(on("node-a", "a-1"));
    c.api.upsert_pod(on("node-a", "a-2"));
    let mut events = spawn_watcher(watcher(pods(&c), node_a()).default_backoff());
    assert_eq!(
        events.take(4).await,
        [
            "Init",
            "InitApply apps/a-1",
            "InitApply apps/a-2",
            "InitDone"
        ]
    );
    c.api.wait_for_request(Recorded::is_watch, WAIT).await;
    let port = c.api.addr();

    c.api.stop().await;
    assert_eq!(c.api.open_watches(), 0);
    assert!(
        pods(&c).list(&ListParams::default()).await.is_err(),
        "a stopped server must be unreachable"
    );
    let error = events.next().await;
    assert!(
        error.starts_with("Error "),
        "expected a transport error, got {error}"
    );
    c.api.upsert_pod(on("node-a", "a-3"));
    c.api.delete_pod("apps", "a-1");

    // With history intact the watcher just resumes its watch: no relist.
    c.api.restart().await;
    assert_eq!(c.api.addr(), port);
    assert_eq!(events.next_after_transport_errors().await, "Apply apps/a-3");
    assert_eq!(events.next().await, "Delete apps/a-1");
    assert_eq!(lists(&c.api).len(), 1);

    // Down again, and the history lost meanwhile: now it takes a relist.
    c.api.stop().await;
    c.api.upsert_pod(on("node-a", "a-4"));
    c.api.compact();
    c.api.restart().await;
    assert_eq!(
        events.next_after_transport_errors().await,
        "WatchError 410 Expired"
    );
    let relisted = events.until_init_done().await;
    assert_eq!(
        relisted,
        [
            "Init",
            "InitApply apps/a-2",
            "InitApply apps/a-3",
            "InitApply apps/a-4",
            "InitDone"
        ]
    );
    assert_eq!(lists(&c.api).len(), 2);
}

#[tokio::test]
async fn paginated_list_is_complete_and_never_holds_other_nodes() {
    let c = cluster().await;
    for i in 0..1200 {
        c.api.upsert_pod(pod(
            &format!("ns-{}", i % 7),
            &format!("a-{i:04}"),
            "node-a",
            &["10.0.0.1"],
            &[],
        ));
    }
    for i in 0..5000 {
        c.api.upsert_pod(pod(
            &format!("ns-{}", i % 7),
            &format!("b-{i:04}"),
            "node-b",
            &["10.0.0.2"],
            &[],
        ));
    }
    let mut events = spawn_watcher(watcher(pods(&c), node_a()));

    let init = events.until_init_done().await;
    let applied: BTreeSet<_> = init
        .iter()
        .filter_map(|e| e.strip_prefix("InitApply "))
        .collect();
    assert_eq!(
        (init.len(), applied.len()),
        (1202, 1200),
        "Init + 1200 distinct InitApply + InitDone"
    );
    assert!(applied
        .iter()
        .all(|key| key.split('/').nth(1).unwrap().starts_with("a-")));
    let pages = lists(&c.api);
    assert_eq!(pages.len(), 3);
    assert!(pages.iter().all(|p| p.query_value("limit") == Some("500")));
    assert!(pages
        .iter()
        .all(|p| p.query_value("fieldSelector") == Some("spec.nodeName=node-a")));
    let continued: Vec<_> = pages
        .iter()
        .map(|p| p.query_value("continue").is_some())
        .collect();
    assert_eq!(continued, [false, true, true]);
    c.api
        .wait_for_request(
            |r| r.is_watch() && r.query_value("resourceVersion") == Some("6200"),
            WAIT,
        )
        .await;

    let everything_a = pods(&c)
        .list(&ListParams::default().fields("spec.nodeName=node-a"))
        .await
        .unwrap();
    assert_eq!(everything_a.items.len(), 1200);
    let everything_b = pods(&c)
        .list(&ListParams::default().fields("spec.nodeName=node-b"))
        .await
        .unwrap();
    assert_eq!(everything_b.items.len(), 5000);
}

#[tokio::test]
async fn watch_timeout_ends_the_stream_and_the_watcher_rewatches() {
    let c = cluster().await;
    c.api.upsert_pod(on("node-a", "a-1"));
    let mut events = spawn_watcher(watcher(pods(&c), node_a().timeout(1)));
    assert_eq!(
        events.take(3).await,
        ["Init", "InitApply apps/a-1", "InitDone"]
    );
    let first = c.api.wait_for_request(Recorded::is_watch, WAIT).await;
    assert_eq!(first.query_value("timeoutSeconds"), Some("1"));
    c.api.upsert_pod(on("node-a", "a-2"));
    assert_eq!(events.next().await, "Apply apps/a-2");

    // kube's own idle timeout would be 1 + 5 s: a re-watch well before that is the server's doing.
    let rewatch = |r: &Recorded| r.is_watch() && r.query_value("resourceVersion") == Some("2");
    c.api
        .wait_for_request(rewatch, Duration::from_secs(4))
        .await;
    c.api.upsert_pod(on("node-a", "a-3"));
    assert_eq!(events.next().await, "Apply apps/a-3");
}

#[tokio::test]
async fn streaming_list_watcher_gets_initial_events_from_the_watch() {
    let c = cluster().await;
    c.api.upsert_pod(on("node-a", "a-1"));
    c.api.upsert_pod(on("node-b", "b-1"));
    let mut events = spawn_watcher(watcher(pods(&c), node_a().streaming_lists()));

    assert_eq!(
        events.take(3).await,
        ["Init", "InitApply apps/a-1", "InitDone"]
    );
    c.api.upsert_pod(on("node-a", "a-2"));
    assert_eq!(events.next().await, "Apply apps/a-2");
    let watch = c.api.wait_for_request(Recorded::is_watch, WAIT).await;
    assert_eq!(watch.query_value("sendInitialEvents"), Some("true"));
    assert_eq!(
        watch.query_value("resourceVersionMatch"),
        Some("NotOlderThan")
    );
    assert_eq!(lists(&c.api).len(), 0);
}

#[tokio::test]
async fn label_filtered_namespace_watch_sees_objects_enter_and_leave() {
    let c = cluster().await;
    c.api.upsert_namespace(namespace("apps", &[("team", "a")]));
    c.api.upsert_namespace(namespace("other", &[("team", "b")]));
    let config = watcher::Config::default().labels("team=a");
    let mut events = spawn_watcher(watcher(Api::<Namespace>::all(c.client.clone()), config));
    assert_eq!(events.take(3).await, ["Init", "InitApply apps", "InitDone"]);

    c.api.upsert_namespace(namespace("other", &[("team", "a")]));
    assert_eq!(events.next().await, "Apply other");
    c.api.upsert_namespace(namespace("apps", &[("team", "b")]));
    assert_eq!(
        events.next().await,
        "Delete apps",
        "leaving the selector is a DELETED"
    );
    c.api.delete_namespace("other");
    assert_eq!(events.next().await, "Delete other");
    let watch = c.api.wait_for_request(Recorded::is_watch, WAIT).await;
    assert_eq!(
        (watch.path.as_str(), watch.query_value("labelSelector")),
        ("/api/v1/namespaces", Some("team=a"))
    );
}

#[tokio::test]
async fn resource_versions_follow_the_real_server_rules() {
    let c = cluster().await;
    c.api.upsert_pod(on("node-a", "a-1"));
    c.api.upsert_pod(on("node-a", "a-2"));
    c.api.upsert_pod(with_phase(on("node-a", "a-1"), "Failed"));
    let all = pods(&c);
    let exact = all
        .list(&ListParams::default().at("1").matching(VersionMatch::Exact))
        .await
        .unwrap();
    assert_eq!(
        exact.items.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        ["a-1"]
    );
    assert_eq!(exact.metadata.resource_version.as_deref(), Some("1"));
    let legacy = all
        .list(&ListParams::default().at("1").limit(5))
        .await
        .unwrap();
    assert_eq!(
        legacy.items.len(),
        1,
        "a paginated list at an RV is exact when no match is given"
    );
    let newer = all
        .list(
            &ListParams::default()
                .at("1")
                .matching(VersionMatch::NotOlderThan),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            newer.items.len(),
            newer.metadata.resource_version.as_deref()
        ),
        (2, Some("3"))
    );
    let impatient = Api::<Pod>::all(client(&c.api, &c.dir, false).await);
    let future = impatient
        .list(
            &ListParams::default()
                .at("99")
                .matching(VersionMatch::NotOlderThan),
        )
        .await;
    assert_eq!(code(future), 504, "too large a resourceVersion");
    let page = all.list(&ListParams::default().limit(1)).await.unwrap();
    let token = page.metadata.continue_.clone().expect("a second page");
    let rest = all
        .list(&ListParams::default().limit(1).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(
        rest.items.iter().map(|p| p.name_any()).collect::<Vec<_>>(),
        ["a-2"]
    );
    assert_eq!(rest.metadata.continue_, None);

    let mut from_zero = pods(&c)
        .watch(&WatchParams::default(), "0")
        .await
        .unwrap()
        .boxed();
    for name in ["a-1", "a-2"] {
        match tokio::time::timeout(WAIT, from_zero.next()).await.unwrap() {
            Some(Ok(WatchEvent::Added(p))) => assert_eq!(p.name_any(), name),
            other => panic!("expected a synthetic ADDED, got {other:?}"),
        }
    }
    c.api.bookmark();
    match tokio::time::timeout(WAIT, from_zero.next()).await.unwrap() {
        Some(Ok(WatchEvent::Bookmark(b))) => assert_eq!(b.metadata.resource_version, "3"),
        other => panic!("expected a BOOKMARK, got {other:?}"),
    }

    c.api.compact();
    assert_eq!(
        code(
            all.list(&ListParams::default().at("1").matching(VersionMatch::Exact))
                .await
        ),
        410
    );
    assert_eq!(
        code(
            all.list(&ListParams::default().limit(1).continue_token(&token))
                .await
        ),
        410
    );
    assert_eq!(
        code(
            all.list(
                &ListParams::default()
                    .at("1")
                    .matching(VersionMatch::NotOlderThan)
            )
            .await
        ),
        200
    );
    let mut expired = pods(&c)
        .watch(&WatchParams::default(), "3")
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(WAIT, expired.next()).await.unwrap() {
        Some(Ok(WatchEvent::Error(s))) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
    assert!(
        tokio::time::timeout(WAIT, expired.next())
            .await
            .unwrap()
            .is_none(),
        "the stream ends after a 410"
    );
    c.api.drop_watches();
    assert!(
        tokio::time::timeout(WAIT, from_zero.next())
            .await
            .unwrap()
            .is_none(),
        "drop_watches ends streams"
    );
}
