//! The Kubernetes inventory end to end: the real server with the real kube client, pointed through a
//! kubeconfig at a protocol-level fake API server (real list and watch over HTTP).
//!
//! Pods are given loopback addresses (127.0.0.x), so the test client can speak as any of them.

mod support;

use std::time::{Duration, Instant};

use imds_guard::emulator::EmulatorOptions;
use serde_json::Value;
use support::fake_api::{self, FakeApi};
use support::*;

const NODE: &str = "node-a";
const ALLOW: (&str, &str) = ("allow-node-metadata-lookup", "true");

struct Setup {
    api: FakeApi,
    guard: Guard,
    _emu: Emulator,
    _dir: tempfile::TempDir,
}

async fn setup(grace_ms: u64, extra_rules: &str, pods: Vec<Value>) -> Setup {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::start().await;
    for pod in pods {
        api.upsert_pod(pod);
    }
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(
        &kube_config(NODE, &kubeconfig, grace_ms, extra_rules),
        emu.addr,
    )
    .await;
    wait_ready(&guard).await;
    Setup {
        api,
        guard,
        _emu: emu,
        _dir: dir,
    }
}

async fn wait_ready(guard: &Guard) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while get(PROD, guard.admin, "/readyz").await.status != 200 {
        assert!(Instant::now() < deadline, "the guard never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `from`'s decision until it has `status`; returns how long that took.
async fn until_status(guard: &Guard, from: &str, status: u16, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let answer = get(from, guard.proxy, "/latest/meta-data/instance-id").await;
        if answer.status == status {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{from}: still {} ({}) after {within:?}",
            answer.status,
            answer.text()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
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
async fn only_node_scoped_pod_requests_are_made() {
    let s = setup(
        0,
        "",
        vec![fake_api::pod("shop", "web", NODE, &[PROD], &[ALLOW])],
    )
    .await;
    assert_eq!(reason(&s.guard, PROD).await, "allowed");
    let pod_requests: Vec<_> = s
        .api
        .requests()
        .into_iter()
        .filter(|r| r.path.contains("pods"))
        .collect();
    assert!(!pod_requests.is_empty());
    for r in &pod_requests {
        assert_eq!(r.path, "/api/v1/pods", "{r:?}");
        assert_eq!(
            r.query_value("fieldSelector"),
            Some("spec.nodeName=node-a"),
            "{r:?}"
        );
    }
    // No rule uses namespace labels: namespaces are not watched at all.
    assert!(s
        .api
        .requests()
        .iter()
        .all(|r| !r.path.starts_with("/api/v1/namespaces")));
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
async fn pod_changes_change_decisions() {
    let s = setup(
        100,
        "",
        vec![fake_api::pod("shop", "web", NODE, &[PROD], &[ALLOW])],
    )
    .await;
    assert_eq!(reason(&s.guard, PROD).await, "allowed");

    // Label removed: denied within a second.
    s.api
        .upsert_pod(fake_api::pod("shop", "web", NODE, &[PROD], &[]));
    let took = until_status(&s.guard, PROD, 403, Duration::from_secs(1)).await;
    println!("label change to changed decision: {took:?}");
    assert_eq!(reason(&s.guard, PROD).await, "no-rule");

    // Label back, then the pod deleted: unknown.
    s.api
        .upsert_pod(fake_api::pod("shop", "web", NODE, &[PROD], &[ALLOW]));
    until_status(&s.guard, PROD, 200, Duration::from_secs(1)).await;
    s.api.delete_pod("shop", "web");
    until_status(&s.guard, PROD, 403, Duration::from_secs(1)).await;
    assert_eq!(reason(&s.guard, PROD).await, "unknown-source");

    // IP reuse by a new pod: the new pod's labels decide.
    s.api
        .upsert_pod(fake_api::pod("shop", "batch", NODE, &[PROD], &[]));
    until_status(&s.guard, PROD, 403, Duration::from_secs(1)).await;
    let answer = get(PROD, s.guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(
        (
            answer.json()["reason"].as_str(),
            answer.json()["pod"].as_str()
        ),
        (Some("no-rule"), Some("shop/batch"))
    );
}

#[tokio::test]
async fn terminal_host_network_and_double_claims() {
    let s = setup(
        0,
        "",
        vec![
            // A finished job still lists the IP that a live pod now holds.
            fake_api::with_phase(
                fake_api::pod("jobs", "done", NODE, &[PROD], &[ALLOW]),
                "Succeeded",
            ),
            fake_api::pod("shop", "live", NODE, &[PROD], &[]),
            // hostNetwork pods report the node's address: never indexed.
            fake_api::with_host_network(fake_api::pod(
                "kube-system",
                "agent",
                NODE,
                &[TEST],
                &[ALLOW],
            )),
            // Two live pods claim one address: refused.
            fake_api::pod("a", "one", NODE, &[LABELLED], &[ALLOW]),
            fake_api::pod("b", "two", NODE, &[LABELLED], &[ALLOW]),
        ],
    )
    .await;
    let answer = get(PROD, s.guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(
        (
            answer.json()["reason"].as_str(),
            answer.json()["pod"].as_str()
        ),
        (Some("no-rule"), Some("shop/live"))
    );
    assert_eq!(reason(&s.guard, TEST).await, "unknown-source");
    assert_eq!(reason(&s.guard, LABELLED).await, "ambiguous-source");
    // One claimant goes: the other is served.
    s.api.delete_pod("b", "two");
    until_status(&s.guard, LABELLED, 200, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_request_just_before_the_pods_event_is_served() {
    let s = setup(1000, "", vec![]).await;
    let proxy = s.guard.proxy;
    let early =
        tokio::spawn(async move { get(STRANGER, proxy, "/latest/meta-data/instance-id").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.api
        .upsert_pod(fake_api::pod("shop", "new", NODE, &[STRANGER], &[ALLOW]));
    let answer = early.await.unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());

    // Without an event, an unknown address is refused once the grace is over.
    let started = Instant::now();
    assert_eq!(reason(&s.guard, "127.0.0.10").await, "unknown-source");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn api_outage_keeps_the_last_index_and_relist_replaces_it() {
    let s = setup(
        0,
        "",
        vec![
            fake_api::pod("shop", "web", NODE, &[PROD], &[ALLOW]),
            fake_api::pod("shop", "gone-later", NODE, &[TEST], &[ALLOW]),
        ],
    )
    .await;
    assert_eq!(reason(&s.guard, TEST).await, "allowed");
    s.api.stop().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Known pods still served, unknown denied, proxy healthy.
    assert_eq!(reason(&s.guard, PROD).await, "allowed");
    assert_eq!(reason(&s.guard, STRANGER).await, "unknown-source");
    assert_eq!(get(PROD, s.guard.admin, "/healthz").await.status, 200);
    assert_eq!(get(PROD, s.guard.admin, "/readyz").await.status, 200);

    // While it is away the cluster changes, and history is compacted.
    s.api.delete_pod("shop", "gone-later");
    s.api.upsert_pod(fake_api::pod(
        "shop",
        "newcomer",
        NODE,
        &[LABELLED],
        &[ALLOW],
    ));
    s.api.compact();
    s.api.restart().await;

    // Back with compacted history: 410, relist, and the new state fully replaces the old.
    until_status(&s.guard, LABELLED, 200, Duration::from_secs(15)).await;
    assert_eq!(reason(&s.guard, TEST).await, "unknown-source");
    assert_eq!(reason(&s.guard, PROD).await, "allowed");
    let lists = s
        .api
        .requests()
        .iter()
        .filter(|r| r.path == "/api/v1/pods" && r.query_value("watch").is_none())
        .count();
    assert!(lists >= 2, "expected a relist after 410");
}

#[tokio::test]
async fn pods_on_other_nodes_never_enter_the_index() {
    let mut pods: Vec<Value> = (0..5_000)
        .map(|i| {
            fake_api::pod(
                "bulk",
                &format!("p{i}"),
                "node-b",
                &[&format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)],
                &[ALLOW],
            )
        })
        .collect();
    pods.push(fake_api::pod("shop", "web", NODE, &[PROD], &[ALLOW]));
    pods.push(fake_api::pod("shop", "api", NODE, &[TEST], &[]));
    pods.push(fake_api::pod("shop", "db", NODE, &[LABELLED], &[]));
    let s = setup(0, "", pods).await;
    let metrics = get(PROD, s.guard.admin, "/metrics").await.text();
    assert!(
        metrics.contains("imds_guard_inventory_pods 3\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn namespace_labels_select_when_rules_use_them() {
    let rule = r#"
[[rules]]
name = "infra namespaces"
namespace_labels = { team = "infra" }
allow = ["/latest/meta-data/**"]
"#;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::start().await;
    api.upsert_namespace(fake_api::namespace("tools", &[("team", "infra")]));
    api.upsert_namespace(fake_api::namespace("shop", &[]));
    api.upsert_pod(fake_api::pod("tools", "debug", NODE, &[PROD], &[]));
    api.upsert_pod(fake_api::pod("shop", "web", NODE, &[TEST], &[]));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&kube_config(NODE, &kubeconfig, 0, rule), emu.addr).await;
    wait_ready(&guard).await;
    assert!(api
        .requests()
        .iter()
        .any(|r| r.path == "/api/v1/namespaces"));

    assert_eq!(reason(&guard, PROD).await, "allowed");
    assert_eq!(reason(&guard, TEST).await, "no-rule");
    api.upsert_namespace(fake_api::namespace("shop", &[("team", "infra")]));
    until_status(&guard, TEST, 200, Duration::from_secs(1)).await;
    api.upsert_namespace(fake_api::namespace("tools", &[]));
    until_status(&guard, PROD, 403, Duration::from_secs(1)).await;
}

#[tokio::test]
async fn explain_lists_the_node_once() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = FakeApi::start().await;
    api.upsert_pod(fake_api::pod("shop", "web", NODE, &["10.1.2.3"], &[ALLOW]));
    api.upsert_pod(fake_api::pod(
        "shop",
        "elsewhere",
        "node-b",
        &["10.1.2.4"],
        &[ALLOW],
    ));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        kube_config(NODE, &kubeconfig, 0, "").replace("{upstream}", "http://169.254.169.254"),
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
        text.contains("decision: allow") && text.contains("pod:      shop/web"),
        "{text}"
    );
    let out = explain("10.1.2.4").await.unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("reason:   unknown-source"));
    assert!(
        api.requests()
            .iter()
            .all(|r| r.query_value("watch").is_none()),
        "explain must not watch"
    );
}

#[tokio::test]
async fn refuses_to_start_without_a_node_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.2:0\"\n[inventory]\nsource = \"kubernetes\"\n",
    )
    .unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_imds-guard"))
            .args(["run", "--config"])
            .arg(&config)
            .env_remove("NODE_NAME")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no node name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
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

#[test]
fn the_startup_taint_needs_the_kubernetes_source() {
    // Refused with the config, before anything listens.
    let text = config("").replace("{upstream}", "http://127.0.0.1:1");
    let err = imds_guard::config::parse(&text)
        .unwrap()
        .remove_startup_taint(Some("imds-guard/not-ready".into()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("--remove-startup-taint needs"), "{err}");
}
