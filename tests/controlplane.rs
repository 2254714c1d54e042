//! The Kubernetes inventory against a real kube-apiserver and etcd (`support::controlplane`):
//! pods created with `spec.nodeName`, their status set through `pods/status`, as a kubelet would.

use crate::support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use imds_guard_emulator::EmulatorOptions;
use support::controlplane::{
    create_pod, running_pod, set_status, Audited, ControlPlane, Gate, GUARD_AGENT,
};
use support::*;

const NODE: &str = "node-a";
const ALLOW: (&str, &str) = ("allow-node-metadata-lookup", "true");

/// The guard on `NODE`, against `plane`, once ready.
async fn ready_guard(plane: &ControlPlane, emu: &Emulator, extra: &str) -> Guard {
    ready_guard_via(&plane.kubeconfig, emu, extra).await
}

/// The guard on `NODE`, reaching the API through `kubeconfig`, once ready.
async fn ready_guard_via(kubeconfig: &std::path::Path, emu: &Emulator, extra: &str) -> Guard {
    let guard = Guard::start(&kube_config(NODE, kubeconfig, 0, extra), emu.addr).await;
    wait_ready(&guard).await;
    guard
}

async fn wait_ready(guard: &Guard) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(TEST, guard.admin, "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "the guard never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value of `key` in a request URI's query, percent-decoded.
fn query_value(uri: &str, key: &str) -> Option<String> {
    let query = uri.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
}

async fn until_reason(guard: &Guard, from: &str, want: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let answer = get(from, guard.proxy, "/latest/meta-data/instance-id").await;
        let got = match answer.status.as_u16() {
            200 => "allowed".to_owned(),
            _ => answer.json()["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        };
        if got == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{from}: still {got} after {within:?}, not {want}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_guard_knows_its_nodes_pods_from_a_real_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    running_pod(&pods, "labelled", NODE, LABELLED, &[ALLOW]).await;
    running_pod(&pods, "plain", NODE, TEST, &[]).await;
    // Another node's pod: the guard's node-scoped watch never sees it.
    running_pod(&pods, "elsewhere", "node-b", PROD, &[ALLOW]).await;

    let emu = emulator(EmulatorOptions::default()).await;
    let guard = ready_guard(&plane, &emu, "").await;
    let within = Duration::from_secs(5);
    until_reason(&guard, LABELLED, "allowed", within).await;
    until_reason(&guard, TEST, "no-rule", within).await;
    until_reason(&guard, PROD, "unknown-source", within).await;

    // A label change reaches the decision through the watch.
    let patch = json!({"metadata": {"labels": {"allow-node-metadata-lookup": "true"}}});
    pods.patch("plain", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let took = until_reason(&guard, TEST, "allowed", within).await;
    println!("label change → changed decision: {took:?}");

    // Deleted (grace 0: there is no kubelet to finish it): its address is unknown again.
    pods.delete(
        "labelled",
        &kube::api::DeleteParams::default().grace_period(0),
    )
    .await
    .unwrap();
    until_reason(&guard, LABELLED, "unknown-source", within).await;
    guard.stop().await.unwrap();
}

#[tokio::test]
async fn terminal_host_network_and_doubly_claimed_addresses_against_a_real_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let pods: Api<Pod> = Api::namespaced(plane.client().await, "default");
    // Two live pods claim one address: refused as ambiguous, never guessed.
    running_pod(&pods, "twin-a", NODE, PROD, &[ALLOW]).await;
    running_pod(&pods, "twin-b", NODE, PROD, &[ALLOW]).await;
    // A hostNetwork pod holds the node's address, not one of its own.
    create_pod(&pods, "host", NODE, &[ALLOW], true).await;
    set_status(&pods, "host", "Running", TEST).await;
    running_pod(&pods, "job", NODE, LABELLED, &[ALLOW]).await;

    let emu = emulator(EmulatorOptions::default()).await;
    let guard = ready_guard(&plane, &emu, "").await;
    let within = Duration::from_secs(5);
    until_reason(&guard, PROD, "ambiguous-source", within).await;
    until_reason(&guard, TEST, "unknown-source", within).await;
    until_reason(&guard, LABELLED, "allowed", within).await;

    // A pod that has finished releases its address ...
    set_status(&pods, "job", "Succeeded", LABELLED).await;
    until_reason(&guard, LABELLED, "unknown-source", within).await;
    // ... which a new pod may then take.
    running_pod(&pods, "job-2", NODE, LABELLED, &[ALLOW]).await;
    until_reason(&guard, LABELLED, "allowed", within).await;
    // One twin gone: the address is the other's.
    pods.delete(
        "twin-b",
        &kube::api::DeleteParams::default().grace_period(0),
    )
    .await
    .unwrap();
    until_reason(&guard, PROD, "allowed", within).await;
    guard.stop().await.unwrap();
}

#[tokio::test]
async fn namespace_labels_and_an_api_server_outage_against_a_real_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut plane = ControlPlane::start().await;
    let client = plane.client().await;
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns =
        serde_json::from_value(json!({"metadata": {"name": "infra", "labels": {"team": "infra"}}}))
            .unwrap();
    namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    let infra: Api<Pod> = Api::namespaced(client.clone(), "infra");
    running_pod(&infra, "tool", NODE, TEST, &[]).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    running_pod(&pods, "labelled", NODE, LABELLED, &[ALLOW]).await;

    let rule = "\n[[rules]]\nname = \"infra\"\nnamespace_labels = { team = \"infra\" }\nallow = [\"/latest/meta-data/**\"]\n";
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = ready_guard(&plane, &emu, rule).await;
    let within = Duration::from_secs(5);
    until_reason(&guard, TEST, "allowed", within).await;
    // The namespace's labels are watched: taking the label away changes the decision.
    let patch = json!({"metadata": {"labels": {"team": "other"}}});
    namespaces
        .patch("infra", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    until_reason(&guard, TEST, "no-rule", within).await;
    // A rule uses namespace labels, so namespaces are listed and watched (pods still node-scoped).
    let requests = plane.requests_from(GUARD_AGENT);
    for verb in ["list", "watch"] {
        assert!(
            requests
                .iter()
                .any(|r| r.verb == verb && r.uri.starts_with("/api/v1/namespaces?")),
            "no {verb} of namespaces: {requests:#?}"
        );
    }
    assert!(requests
        .iter()
        .all(|r| r.uri.starts_with("/api/v1/namespaces?")
            || query_value(&r.uri, "fieldSelector").as_deref() == Some("spec.nodeName=node-a")));

    // With the API server gone the last index keeps serving, and unknown addresses stay refused.
    plane.stop_apiserver();
    tokio::time::sleep(Duration::from_millis(500)).await;
    until_reason(&guard, LABELLED, "allowed", within).await;
    until_reason(&guard, TEST, "no-rule", within).await;
    until_reason(&guard, PROD, "unknown-source", within).await;
    assert_eq!(get(TEST, guard.admin, "/readyz").await.status, 200);
    guard.stop().await.unwrap();
}

/// The guard's `watch_relists` counter for pods, from its metrics.
async fn pod_relists(guard: &Guard) -> f64 {
    match metric(
        guard.admin,
        r#"imds_guard_watch_relists_total{watch="pods"}"#,
    )
    .await
    {
        (Some(value), _) => value,
        (None, text) => panic!("no pod relist counter in:\n{text}"),
    }
}

#[tokio::test]
async fn after_compacted_history_the_watch_gets_its_410_and_the_relist_replaces_the_index() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let pods: Api<Pod> = Api::namespaced(plane.client().await, "default");
    running_pod(&pods, "old", NODE, LABELLED, &[ALLOW]).await;
    let api: SocketAddr = plane.url.trim_start_matches("https://").parse().unwrap();
    let gate = Gate::to(api).await;
    let kubeconfig = plane.kubeconfig_via(gate.addr);
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = ready_guard_via(&kubeconfig, &emu, "").await;
    let within = Duration::from_secs(10);
    until_reason(&guard, LABELLED, "allowed", within).await;
    assert_eq!(pod_relists(&guard).await, 1.0);

    // The guard loses the API; meanwhile the node's pods change and etcd forgets the history.
    gate.close();
    pods.delete("old", &kube::api::DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    running_pod(&pods, "new", NODE, TEST, &[ALLOW]).await;
    let latest = pods
        .get("new")
        .await
        .unwrap()
        .metadata
        .resource_version
        .unwrap();
    plane.compact(&latest).await;
    // While away: the last index serves.
    until_reason(&guard, LABELLED, "allowed", within).await;

    // Back: resuming from its old resourceVersion gets 410; the relist replaces the index wholly.
    gate.open();
    until_reason(&guard, TEST, "allowed", within).await;
    until_reason(&guard, LABELLED, "unknown-source", within).await;
    assert_eq!(pod_relists(&guard).await, 2.0);
    guard.stop().await.unwrap();
}

#[tokio::test]
async fn not_ready_until_the_first_list_and_every_request_is_node_scoped() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let pods: Api<Pod> = Api::namespaced(plane.client().await, "default");
    running_pod(&pods, "labelled", NODE, LABELLED, &[ALLOW]).await;
    running_pod(&pods, "elsewhere", "node-b", PROD, &[ALLOW]).await;
    let api: SocketAddr = plane.url.trim_start_matches("https://").parse().unwrap();
    let gate = Gate::to(api).await;
    gate.close();
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(
        &kube_config(NODE, &plane.kubeconfig_via(gate.addr), 0, ""),
        emu.addr,
    )
    .await;

    // No list yet: alive, not ready, and pods are told to retry rather than refused.
    for _ in 0..10 {
        assert_eq!(get(TEST, guard.admin, "/readyz").await.status, 503);
        assert_eq!(get(TEST, guard.admin, "/healthz").await.status, 200);
        let answer = get(LABELLED, guard.proxy, "/latest/meta-data/instance-id").await;
        assert_eq!(answer.status, 503, "{}", answer.text());
        assert_eq!(answer.json()["reason"], "not-ready");
        assert_eq!(answer.headers["retry-after"], "1");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        plane.requests_from(GUARD_AGENT).is_empty(),
        "the gate let a request through"
    );

    gate.open();
    wait_ready(&guard).await;
    until_reason(&guard, LABELLED, "allowed", Duration::from_secs(5)).await;
    until_reason(&guard, PROD, "unknown-source", Duration::from_secs(5)).await;

    // As the API server recorded them: pods only, listed and watched, always for this node; no rule
    // uses namespace labels, so namespaces are never asked for.
    let requests = plane.requests_from(GUARD_AGENT);
    let verbs: Vec<&str> = requests.iter().map(|r| r.verb.as_str()).collect();
    assert!(
        verbs.contains(&"list") && verbs.contains(&"watch"),
        "{requests:#?}"
    );
    for Audited { verb, uri, code } in &requests {
        assert!(uri.starts_with("/api/v1/pods?"), "{verb} {uri}");
        assert_eq!(
            query_value(uri, "fieldSelector").as_deref(),
            Some("spec.nodeName=node-a"),
            "{verb} {uri}"
        );
        assert_eq!(*code, 200, "{verb} {uri}");
    }
    guard.stop().await.unwrap();
}

#[tokio::test]
async fn a_request_just_before_the_pods_address_arrives_waits_for_it() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let pods: Api<Pod> = Api::namespaced(plane.client().await, "default");
    let emu = emulator(EmulatorOptions::default()).await;
    // A grace of 2 s for addresses the index does not know yet.
    let guard = Guard::start(&kube_config(NODE, &plane.kubeconfig, 2000, ""), emu.addr).await;
    wait_ready(&guard).await;

    let proxy = guard.proxy;
    let early =
        tokio::spawn(async move { get(STRANGER, proxy, "/latest/meta-data/instance-id").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The pod is scheduled and its kubelet reports the address while the request waits.
    running_pod(&pods, "new", NODE, STRANGER, &[ALLOW]).await;
    let answer = early.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());

    // Without a pod, an unknown address is refused once the grace is over.
    let started = Instant::now();
    let answer = get("127.0.0.10", guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.json()["reason"], "unknown-source");
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    guard.stop().await.unwrap();
}

#[tokio::test]
async fn explain_lists_the_node_once_and_never_watches() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let pods: Api<Pod> = Api::namespaced(plane.client().await, "default");
    running_pod(&pods, "web", NODE, "10.1.2.3", &[ALLOW]).await;
    running_pod(&pods, "elsewhere", "node-b", "10.1.2.4", &[ALLOW]).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        kube_config(NODE, &plane.kubeconfig, 0, "").replace("{upstream}", "http://169.254.169.254"),
    )
    .unwrap();
    let explain = |source: &'static str| {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_imds-guard"))
                .args(["explain", "--config"])
                .arg(&config)
                .args(["--source", source, "--path", "/latest/meta-data/"])
                .output()
                .unwrap()
        })
    };
    let out = explain("10.1.2.3").await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("decision: allow") && text.contains("pod:      default/web"),
        "{text}"
    );
    let out = explain("10.1.2.4").await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reason:   unknown-source"), "{text}");

    // Two runs, one node-scoped list each, and nothing else.
    let requests = plane.requests_from(GUARD_AGENT);
    assert_eq!(requests.len(), 2, "{requests:#?}");
    for r in &requests {
        assert_eq!(r.verb, "list", "{r:?}");
        assert_eq!(
            query_value(&r.uri, "fieldSelector").as_deref(),
            Some("spec.nodeName=node-a"),
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn a_node_with_more_pods_than_a_page_is_listed_in_pages_and_held_whole() {
    use futures::StreamExt as _;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let pods: Api<Pod> = Api::namespaced(plane.client().await, "default");
    // 1,100 pods on this node: three pages of the watcher's 500.
    futures::stream::iter(0..1100u32)
        .for_each_concurrent(16, |i| {
            let pods = pods.clone();
            async move {
                let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
                running_pod(&pods, &format!("p{i}"), NODE, &ip, &[]).await;
            }
        })
        .await;
    running_pod(&pods, "labelled", NODE, LABELLED, &[ALLOW]).await;
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = ready_guard(&plane, &emu, "").await;
    until_reason(&guard, LABELLED, "allowed", Duration::from_secs(5)).await;
    let metrics = get(TEST, guard.admin, "/metrics").await.text();
    assert!(
        metrics.contains("imds_guard_inventory_pods 1101\n"),
        "{metrics}"
    );
    let lists: Vec<Audited> = plane
        .requests_from(GUARD_AGENT)
        .into_iter()
        .filter(|r| r.verb == "list")
        .collect();
    assert_eq!(lists.len(), 3, "{lists:#?}");
    assert!(lists
        .iter()
        .all(|r| query_value(&r.uri, "limit").as_deref() == Some("500")));
    assert_eq!(
        lists
            .iter()
            .filter(|r| query_value(&r.uri, "continue").is_some())
            .count(),
        2,
        "{lists:#?}"
    );
    guard.stop().await.unwrap();
}

#[tokio::test]
async fn audit_lines_carry_the_workload_labels_and_the_deployment_that_owns_the_pod() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let pods: Api<Pod> = Api::namespaced(plane.client().await, "default");
    // A Deployment's pod as its ReplicaSet makes it (no controller runs here to do it, and none
    // needs to: the owner is read from the pod alone).
    let owned: Pod = serde_json::from_value(json!({
        "metadata": {
            "name": "web-5c7b9d4f8-x2kqz",
            "labels": {
                "allow-node-metadata-lookup": "true",
                "app.kubernetes.io/name": "web",
                "pod-template-hash": "5c7b9d4f8",
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5c7b9d4f8",
                "uid": "9c1f3d52-6a43-4c55-9a0e-1b2f3c4d5e6f", "controller": true,
            }],
        },
        "spec": {"nodeName": NODE, "containers": [{"name": "app", "image": "app"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &owned).await.unwrap();
    set_status(&pods, "web-5c7b9d4f8-x2kqz", "Running", PROD).await;
    running_pod(&pods, "bare", NODE, TEST, &[ALLOW]).await;
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = ready_guard(&plane, &emu, "").await;
    let within = Duration::from_secs(5);
    until_reason(&guard, PROD, "allowed", within).await;
    until_reason(&guard, TEST, "allowed", within).await;
    let events = guard.wait_events(2).await;
    let event = |from: &str| {
        events
            .iter()
            .rev()
            .find(|e| e["src"] == from)
            .unwrap_or_else(|| panic!("no audit line from {from}: {events:#?}"))
            .clone()
    };
    // The default [audit] workload_labels: app.kubernetes.io/name and app, not every label.
    let owned = event(PROD);
    assert_eq!(owned["pod"], "default/web-5c7b9d4f8-x2kqz");
    assert_eq!(owned["labels"], json!({"app.kubernetes.io/name": "web"}));
    assert_eq!(owned["owner"], json!({"kind": "Deployment", "name": "web"}));
    let bare = event(TEST);
    assert_eq!(bare["labels"], json!({}));
    assert_eq!(bare["owner"], serde_json::Value::Null);
    guard.stop().await.unwrap();
}
