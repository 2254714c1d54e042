//! What a real API server cannot be made to do, shown with the protocol-level fake API server
//! (`support::fake_api`: real list and watch over HTTP, reached by the real kube client through a
//! kubeconfig). Everything else the inventory does is tested against a real kube-apiserver in
//! `tests/controlplane.rs`.
//!
//! A real server answers a list as soon as it can; only the fake can hold a list open while
//! answering everything else, which is what these tests need:
//! - before the first list completes the guard is alive but not ready and pods get 503, not 403,
//!   even though the API server is reachable and has been asked;
//! - the start-up taint stays on the node while the pods list is pending, although patching the
//!   node would succeed, and goes (with a resourceVersion precondition) once it completes.
//!
//! Pods are given loopback addresses (127.0.0.x), so the test client can speak as any of them.

mod support;

use std::time::{Duration, Instant};

use imds_guard_emulator::EmulatorOptions;
use support::fake_api::{self, FakeApi};
use support::*;

const NODE: &str = "node-a";
const ALLOW: (&str, &str) = ("allow-node-metadata-lookup", "true");

async fn wait_ready(guard: &Guard) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(PROD, guard.admin, "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "the guard never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn reason(guard: &Guard, from: &str) -> String {
    let answer = get(from, guard.proxy, "/latest/meta-data/instance-id").await;
    match answer.status.as_u16() {
        200 => "allowed".into(),
        _ => answer.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

#[tokio::test]
async fn not_ready_before_the_first_list() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::start().await;
    api.upsert_pod(fake_api::pod("shop", "web", NODE, &[PROD], &[ALLOW]));
    api.hold_lists(true);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&kube_config(NODE, &kubeconfig, 0, ""), emu.addr).await;
    api.wait_for_request(|r| r.path == "/api/v1/pods", Duration::from_secs(5))
        .await;

    assert_eq!(get(PROD, guard.admin, "/readyz").await.status, 503);
    assert_eq!(get(PROD, guard.admin, "/healthz").await.status, 200);
    let answer = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(
        answer.status, 503,
        "pods get 503 (retry), not 403, before the first list"
    );
    assert_eq!(answer.json()["reason"], "not-ready");
    assert_eq!(answer.headers["retry-after"], "1");

    api.hold_lists(false);
    wait_ready(&guard).await;
    assert_eq!(reason(&guard, PROD).await, "allowed");
}

#[tokio::test]
async fn the_startup_taint_goes_once_the_inventory_is_synced() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::start().await;
    api.upsert_node(fake_api::node(
        NODE,
        &[
            ("imds-guard/not-ready", "NoSchedule"),
            ("team", "NoExecute"),
        ],
    ));
    api.upsert_pod(fake_api::pod("shop", "web", NODE, &[PROD], &[ALLOW]));
    api.hold_lists(true);
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let emu = emulator(EmulatorOptions::default()).await;
    let extras = support::Extras {
        remove_startup_taint: Some("imds-guard/not-ready".into()),
        ..Default::default()
    };
    let guard = Guard::start_with(&kube_config(NODE, &kubeconfig, 0, ""), emu.addr, extras).await;
    api.wait_for_request(|r| r.path == "/api/v1/pods", Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let taint_keys = |api: &FakeApi| -> Vec<String> {
        api.node(NODE).unwrap()["spec"]["taints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        taint_keys(&api),
        ["imds-guard/not-ready", "team"],
        "removed before the inventory synced"
    );
    assert!(api
        .requests()
        .iter()
        .all(|r| !r.path.starts_with("/api/v1/nodes")));

    api.hold_lists(false);
    wait_ready(&guard).await;
    let started = Instant::now();
    while taint_keys(&api) != ["team"] {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "taint not removed: {:?}",
            taint_keys(&api)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Patched with the node's resourceVersion as a precondition.
    assert!(api
        .requests()
        .iter()
        .any(|r| r.method == "PATCH" && r.path == "/api/v1/nodes/node-a"));
}

#[tokio::test]
async fn audit_lines_carry_the_workload_labels_and_the_deployment_that_owns_the_pod() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::start().await;
    let mut pod = fake_api::pod(
        "shop",
        "web-5c7b9d4f8-x2kqz",
        NODE,
        &[PROD],
        &[
            ALLOW,
            ("app.kubernetes.io/name", "web"),
            ("pod-template-hash", "5c7b9d4f8"),
        ],
    );
    pod["metadata"]["ownerReferences"] = serde_json::json!([{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5c7b9d4f8",
        "uid": "rs-1", "controller": true
    }]);
    api.upsert_pod(pod);
    api.upsert_pod(fake_api::pod("shop", "bare", NODE, &[TEST], &[ALLOW]));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&kube_config(NODE, &kubeconfig, 0, ""), emu.addr).await;
    wait_ready(&guard).await;
    assert_eq!(reason(&guard, PROD).await, "allowed");
    assert_eq!(reason(&guard, TEST).await, "allowed");
    let events = guard.wait_events(2).await;
    // The default [audit] workload_labels: app.kubernetes.io/name and app, not every label.
    assert_eq!(
        events[0]["labels"],
        serde_json::json!({"app.kubernetes.io/name": "web"})
    );
    assert_eq!(
        events[0]["owner"],
        serde_json::json!({"kind": "Deployment", "name": "web"})
    );
    assert_eq!(events[1]["labels"], serde_json::json!({}));
    assert_eq!(events[1]["owner"], serde_json::Value::Null);
    guard.stop().await.unwrap();
}
