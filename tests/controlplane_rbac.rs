//! The RBAC in `deploy/` for real: rendered with kustomize, applied to a real kube-apiserver, and
//! the real binary run with nothing but the DaemonSet's ServiceAccount token. Every render — the
//! kustomize ones and the Helm chart's (`deploy/helm/imds-guard`), the canary and the cgroup
//! interception included — is accepted by the API server.

use crate::support;
use crate::{chart, render};

use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use imds_guard_emulator::EmulatorOptions;
use support::binary::Binary;
use support::controlplane::{running_pod, Audited, ControlPlane, GUARD_AGENT};
use support::*;

const NODE: &str = "node-a";

/// `kubectl apply --server-side [extra] -f -` of `yaml`, as the admin; its output.
fn apply(plane: &ControlPlane, yaml: &str, extra: &[&str]) -> String {
    let kubeconfig = format!("--kubeconfig={}", plane.kubeconfig.display());
    let mut args = vec![kubeconfig.as_str(), "apply", "--server-side"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-f", "-"]);
    render::run("kubectl", &args, Some(yaml))
}

/// `deploy/` with the given components, rendered by kustomize (and validated strictly).
fn render_with(components: &[&str]) -> render::Rendered {
    let dir = render::copy_of_deploy();
    let overlay = dir.path().join("overlay");
    std::fs::create_dir(&overlay).unwrap();
    let mut text = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources:\n  - ../deploy\ncomponents:\n",
    );
    for name in components {
        text.push_str(&format!("  - ../deploy/components/{name}\n"));
    }
    std::fs::write(overlay.join("kustomization.yaml"), text).unwrap();
    render::render(&overlay)
}

/// prometheus-operator's module, whose `example/prometheus-operator-crd/` holds the CRDs of the
/// monitoring component's PodMonitor and PrometheusRule.
const PROMETHEUS_OPERATOR: &str = "github.com/prometheus-operator/prometheus-operator@v0.85.0";

/// Installs the PodMonitor and PrometheusRule CRDs, taken from prometheus-operator's published Go
/// module (`go mod download`, kept in Go's module cache), and waits until they are served, so that
/// the API server checks the monitoring component's objects against their schemas.
fn install_monitoring_crds(plane: &ControlPlane) {
    let out = std::process::Command::new("go")
        .args(["mod", "download", "-json", PROMETHEUS_OPERATOR])
        .env("GOFLAGS", "-mod=mod")
        .output()
        .unwrap_or_else(|e| panic!("cannot run `go` ({e}): install Go 1.26"));
    assert!(
        out.status.success(),
        "go mod download {PROMETHEUS_OPERATOR}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let module: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let dir = std::path::Path::new(module["Dir"].as_str().expect("the module's Dir"))
        .join("example/prometheus-operator-crd");
    let mut yaml = String::new();
    for kind in ["podmonitors", "prometheusrules"] {
        let file = dir.join(format!("monitoring.coreos.com_{kind}.yaml"));
        yaml.push_str("---\n");
        yaml.push_str(
            &std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display())),
        );
    }
    apply(plane, &yaml, &[]);
    let kubeconfig = format!("--kubeconfig={}", plane.kubeconfig.display());
    render::run(
        "kubectl",
        &[
            &kubeconfig,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/podmonitors.monitoring.coreos.com",
            "crd/prometheusrules.monitoring.coreos.com",
        ],
        None,
    );
}

/// The base applied as the admin.
fn apply_deploy(plane: &ControlPlane) {
    apply(plane, &render::base().yaml, &[]);
}

/// A token for the DaemonSet's ServiceAccount (TokenRequest).
async fn guard_token(client: kube::Client) -> String {
    let accounts: Api<ServiceAccount> = Api::namespaced(client, "imds-guard");
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    accounts
        .create_token_request("imds-guard", &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .unwrap()
        .token
}

/// A labelled pod on `NODE`, and a kubeconfig with a token of the DaemonSet's ServiceAccount.
async fn labelled_pod_and_guard_identity(
    plane: &ControlPlane,
    client: &kube::Client,
) -> std::path::PathBuf {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    running_pod(
        &pods,
        "labelled",
        NODE,
        LABELLED,
        &[("allow-node-metadata-lookup", "true")],
    )
    .await;
    plane.kubeconfig_with_token("imds-guard", &guard_token(client.clone()).await)
}

/// Waits (at most 30 s) until the API server's authorizer denies the DaemonSet's ServiceAccount
/// `verb` on `resource` (core group, every namespace), as a SubjectAccessReview answers.
async fn until_denied(client: &kube::Client, verb: &str, resource: &str) {
    let reviews: Api<SubjectAccessReview> = Api::all(client.clone());
    let review: SubjectAccessReview = serde_json::from_value(json!({
        "spec": {
            "user": "system:serviceaccount:imds-guard:imds-guard",
            "groups": ["system:serviceaccounts", "system:serviceaccounts:imds-guard", "system:authenticated"],
            "resourceAttributes": {"verb": verb, "resource": resource, "group": ""},
        }
    }))
    .unwrap();
    let started = Instant::now();
    loop {
        let answer = reviews
            .create(&PostParams::default(), &review)
            .await
            .unwrap();
        if !answer.status.is_some_and(|s| s.allowed) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the API server still allows {verb} {resource} 30 s after the role lost it"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The real binary as the guard of `NODE`, reaching the API through `kubeconfig`.
fn guard(kubeconfig: &std::path::Path, upstream: std::net::SocketAddr, args: &[&str]) -> Binary {
    Binary::start(&kube_config(NODE, kubeconfig, 0, ""), upstream, args)
}

#[tokio::test]
async fn the_deployed_service_account_is_enough_and_one_verb_less_is_not() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    apply_deploy(&plane);
    let kubeconfig = labelled_pod_and_guard_identity(&plane, &client).await;
    let emu = emulator(EmulatorOptions::default()).await;

    // With exactly the deployed rights: synced, ready, serving.
    let mut binary = guard(&kubeconfig, emu.addr, &[]);
    binary.wait_ready().await;
    let answer = get(LABELLED, binary.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    binary.stop();

    // Without `watch` on pods: never ready, and the log says the API forbade it.
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let patch = json!({"rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    ]});
    roles
        .patch("imds-guard", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    // The API server's authorizer learns of the change from its own watch of roles: wait until
    // it says the guard may no longer watch pods, or a slow machine lets the guard in first.
    until_denied(&client, "watch", "pods").await;
    let mut binary = guard(&kubeconfig, emu.addr, &[]);
    wait_listening(binary.admin).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        assert_ne!(
            binary.readyz().await,
            200,
            "ready without the right to watch pods"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answer = get(LABELLED, binary.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 503, "{}", answer.text());
    let log = binary.stop();
    assert!(
        log.contains("Kubernetes watch failing") && log.contains("forbidden"),
        "the log does not say why:\n{log}"
    );
}

/// The keys of the node's taints.
async fn taints(nodes: &Api<Node>, name: &str) -> Vec<String> {
    let node = nodes.get(name).await.unwrap();
    node.spec
        .and_then(|s| s.taints)
        .unwrap_or_default()
        .into_iter()
        .map(|t| t.key)
        .collect()
}

const TAINT: &str = "--remove-startup-taint=imds-guard/not-ready";

#[tokio::test]
async fn the_startup_taint_component_grants_exactly_what_removing_the_taint_takes() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    apply_deploy(&plane);
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "metadata": {"name": NODE},
        "spec": {"taints": [
            {"key": "imds-guard/not-ready", "effect": "NoSchedule"},
            {"key": "team", "value": "infra", "effect": "NoExecute"},
        ]},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let kubeconfig = labelled_pod_and_guard_identity(&plane, &client).await;
    let emu = emulator(EmulatorOptions::default()).await;

    // The base grants nothing on nodes: the guard serves, the taint stays, and the log says why.
    let mut binary = guard(&kubeconfig, emu.addr, &[TAINT]);
    binary.wait_ready().await;
    // (The API server's admission adds node.kubernetes.io/not-ready of its own; it must stay too.)
    let before = taints(&nodes, NODE).await;
    assert!(
        before.iter().any(|t| t == "imds-guard/not-ready") && before.iter().any(|t| t == "team"),
        "{before:?}"
    );
    let others: Vec<String> = before
        .iter()
        .filter(|t| *t != "imds-guard/not-ready")
        .cloned()
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(taints(&nodes, NODE).await, before);
    let log = binary.stop();
    assert!(
        log.contains("cannot remove the start-up taint yet") && log.contains("forbidden"),
        "the log does not say why:\n{log}"
    );

    // With the component's rules applied over the base, but the pods list forbidden for now: the
    // guard may patch its node yet leaves the taint, and does not even read the node, until its
    // inventory has synced.
    apply(&plane, &render_with(&["startup-taint"]).yaml, &[]);
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let granted = roles.get("imds-guard").await.unwrap().rules;
    let patch = json!({"rules": [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    ]});
    roles
        .patch("imds-guard", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    until_denied(&client, "list", "pods").await;
    let earlier = plane.requests_from(GUARD_AGENT).len();
    let mut binary = guard(&kubeconfig, emu.addr, &[TAINT]);
    let refused_list = |plane: &ControlPlane| {
        plane
            .requests_from(GUARD_AGENT)
            .iter()
            .skip(earlier)
            .any(|r| r.verb == "list" && r.uri.starts_with("/api/v1/pods") && r.code == 403)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !refused_list(&plane) {
        assert!(
            Instant::now() < deadline,
            "the guard never asked for its pods"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_listening(binary.admin).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_ne!(binary.readyz().await, 200, "ready without its pods");
    assert_eq!(
        taints(&nodes, NODE).await,
        before,
        "the taint went before the inventory synced"
    );
    let asked_of_nodes: Vec<Audited> = plane
        .requests_from(GUARD_AGENT)
        .into_iter()
        .skip(earlier)
        .filter(|r| r.uri.starts_with("/api/v1/nodes"))
        .collect();
    assert!(asked_of_nodes.is_empty(), "{asked_of_nodes:#?}");

    // The pods list allowed again: the guard syncs by itself, then the taint goes, the other
    // taint kept.
    let patch = json!({ "rules": granted });
    roles
        .patch("imds-guard", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    binary.wait_ready().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while taints(&nodes, NODE).await != others {
        assert!(
            Instant::now() < deadline,
            "taint not removed: {:?}\n{}",
            taints(&nodes, NODE).await,
            binary.stop()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = binary.stop();
    assert!(log.contains("start-up taint removed"), "{log}");

    // What it asked of nodes, as the API server recorded it: its own node, read and patched.
    let on_nodes: Vec<(String, String, u16)> = plane
        .requests_from(GUARD_AGENT)
        .into_iter()
        .filter(|r| r.uri.starts_with("/api/v1/nodes"))
        .map(|r| {
            let path = r.uri.split('?').next().unwrap_or_default().to_owned();
            (r.verb, path, r.code)
        })
        .collect();
    let node_uri = format!("/api/v1/nodes/{NODE}");
    assert!(
        on_nodes
            .iter()
            .all(|(verb, uri, _)| uri == &node_uri && (verb == "get" || verb == "patch")),
        "{on_nodes:?}"
    );
    assert!(
        on_nodes
            .iter()
            .any(|(verb, _, code)| verb == "patch" && *code == 200),
        "{on_nodes:?}"
    );
}

#[tokio::test]
async fn every_render_is_accepted_by_a_real_api_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    // deploy/components/monitoring's objects are prometheus-operator's kinds.
    install_monitoring_crds(&plane);
    let namespaces: Api<Namespace> = Api::all(plane.client().await);
    let mut renders: Vec<(String, &render::Rendered)> = vec![("base".into(), render::base())];
    let single: Vec<(String, render::Rendered)> = render::components()
        .into_iter()
        .map(|name| {
            let rendered = render_with(&[name.as_str()]);
            (format!("base + {name}"), rendered)
        })
        .collect();
    let sidecar = render::render(&render::deploy_dir().join("sidecar/example"));
    // The cgroup interception with everything else, after a cloud component, as documented.
    let cgroup_everything = render_with(&[
        "networkpolicy",
        "startup-taint",
        "canary",
        "monitoring",
        "cloud-gcp",
        "cgroup-interception",
    ]);
    renders.extend(single.iter().map(|(name, r)| (name.clone(), r)));
    renders.push(("every component".into(), render::everything()));
    renders.push((
        "every component, cloud-gcp, cgroup-interception".into(),
        &cgroup_everything,
    ));
    renders.push(("sidecar example".into(), &sidecar));
    // The chart's: the default values, every component's, and every value changed (the
    // Prometheus Operator's kinds included: their CRDs are installed above).
    let helm_default = chart::default_render();
    let helm_components = chart::template(&[
        "--set",
        "startupTaint.enabled=true",
        "--set",
        "networkPolicy.enabled=true",
        "--set",
        "namespace.create=true",
    ]);
    let helm_custom = chart::template(&["-f", &chart::values_file("custom.yaml")]);
    let helm_cgroup = chart::template(&[
        "--set",
        "interception.method=cgroup",
        "--set",
        "monitoring.enabled=true",
        "--set",
        "cloud=azure",
    ]);
    renders.push(("helm: default values".into(), helm_default));
    renders.push(("helm: every component".into(), &helm_components));
    renders.push((
        "helm: interception.method=cgroup, monitoring, azure".into(),
        &helm_cgroup,
    ));
    renders.push(("helm: tests/helm/custom.yaml".into(), &helm_custom));
    assert!(
        renders.len() >= 5,
        "{:?}",
        renders.iter().map(|r| &r.0).collect::<Vec<_>>()
    );

    for (name, rendered) in renders {
        // A dry run persists nothing, so the namespaces the objects live in must exist first.
        for object in &rendered.objects {
            let Some(ns) = object["metadata"]["namespace"].as_str() else {
                continue;
            };
            let namespace: Namespace =
                serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap();
            match namespaces.create(&PostParams::default(), &namespace).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => {}
                Err(e) => panic!("namespace {ns}: {e}"),
            }
        }
        let out = apply(&plane, &rendered.yaml, &["--dry-run=server"]);
        let accepted = out
            .lines()
            .filter(|l| l.ends_with("(server dry run)"))
            .count();
        assert_eq!(
            accepted,
            rendered.objects.len(),
            "{name}: not every object was accepted:\n{out}"
        );
    }
}

/// `helm ARGS` as the admin of `plane`.
fn helm(plane: &ControlPlane, args: &[&str]) -> String {
    let kubeconfig = format!("--kubeconfig={}", plane.kubeconfig.display());
    let mut all = args.to_vec();
    all.push(&kubeconfig);
    chart::helm_run(&all)
}

/// docs/deploy.md's Helm steps on a real API server: the namespace created and labelled, `helm
/// install`; the installed ServiceAccount is all the real binary needs; `helm upgrade` with the
/// start-up taint grants exactly that on nodes; `helm uninstall` takes the RBAC away.
#[tokio::test]
async fn the_chart_installs_as_documented_and_its_service_account_is_enough() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    let admin = format!("--kubeconfig={}", plane.kubeconfig.display());
    render::run(
        "kubectl",
        &[&admin, "create", "namespace", "imds-guard"],
        None,
    );
    render::run(
        "kubectl",
        &[
            &admin,
            "label",
            "namespace",
            "imds-guard",
            "pod-security.kubernetes.io/enforce=privileged",
        ],
        None,
    );
    let dir = chart::chart_dir();
    let chart = dir.to_str().unwrap();
    helm(
        &plane,
        &["install", "imds-guard", chart, "-n", "imds-guard"],
    );

    let kubeconfig = labelled_pod_and_guard_identity(&plane, &client).await;
    let emu = emulator(EmulatorOptions::default()).await;
    let mut binary = guard(&kubeconfig, emu.addr, &[]);
    binary.wait_ready().await;
    let answer = get(LABELLED, binary.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    binary.stop();

    let roles: Api<ClusterRole> = Api::all(client);
    let on_nodes = |role: &ClusterRole| -> Vec<String> {
        role.rules
            .iter()
            .flatten()
            .filter(|r| r.resources.iter().flatten().any(|res| res == "nodes"))
            .flat_map(|r| r.verbs.clone())
            .collect()
    };
    assert!(on_nodes(&roles.get("imds-guard").await.unwrap()).is_empty());
    helm(
        &plane,
        &[
            "upgrade",
            "imds-guard",
            chart,
            "-n",
            "imds-guard",
            "--reuse-values",
            "--set",
            "startupTaint.enabled=true",
        ],
    );
    assert_eq!(
        on_nodes(&roles.get("imds-guard").await.unwrap()),
        ["get", "patch"]
    );

    helm(&plane, &["uninstall", "imds-guard", "-n", "imds-guard"]);
    match roles.get("imds-guard").await {
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        other => panic!("the ClusterRole outlived helm uninstall: {other:?}"),
    }
}
