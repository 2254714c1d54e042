//! A real Kubernetes control plane for the tests: etcd and kube-apiserver, built from their
//! published Go modules by `build.sh` (cached per machine), started on loopback ports with RBAC
//! authorization, a generated serving certificate, service-account signing keys and an admin
//! identity (a client certificate in `system:masters`). Every process started is ended when the
//! [`ControlPlane`] is dropped, by pid, a failing test included.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::{free_port, raw};

/// The programs' directory, built on first use. Fails the test, naming what is missing, when they
/// cannot be built.
pub fn binaries() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/controlplane/build.sh");
    let out = Command::new("bash")
        .arg(&script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e} (install bash)", script.display()));
    assert!(
        out.status.success(),
        "{} failed: the control plane could not be built (it needs Go 1.26 and the Go module proxy)",
        script.display()
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// etcd and kube-apiserver, running until dropped.
pub struct ControlPlane {
    dir: tempfile::TempDir,
    processes: Vec<Child>,
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    /// A kubeconfig with the admin identity.
    pub kubeconfig: PathBuf,
    /// etcd's client address.
    pub etcd: SocketAddr,
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        for child in self.processes.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

impl ControlPlane {
    /// Starts etcd and kube-apiserver and waits until the API server is ready (60 s at most).
    /// Ports are picked free and may be taken by another test before the programs bind them: then
    /// it starts again on others.
    pub async fn start() -> ControlPlane {
        let bin = binaries();
        let mut attempts = 0;
        loop {
            match ControlPlane::start_once(&bin).await {
                Ok(plane) => return plane,
                Err(log) if log.contains("address already in use") && attempts < 3 => {
                    attempts += 1;
                }
                Err(log) => panic!("{log}"),
            }
        }
    }

    async fn start_once(bin: &Path) -> Result<ControlPlane, String> {
        let dir = tempfile::tempdir().unwrap();
        let pki = dir.path();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "imds-guard test CA");
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);
        let ca_file = write(pki, "ca.crt", &ca_cert.pem());

        let serving_key = KeyPair::generate().unwrap();
        let mut serving =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        serving
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let serving_cert = serving.signed_by(&serving_key, &issuer).unwrap();
        let serving_crt = write(pki, "apiserver.crt", &serving_cert.pem());
        let serving_pem = write(pki, "apiserver.key", &serving_key.serialize_pem());

        let admin_key = KeyPair::generate().unwrap();
        let mut admin = CertificateParams::new(Vec::<String>::new()).unwrap();
        admin.distinguished_name.push(DnType::CommonName, "admin");
        admin
            .distinguished_name
            .push(DnType::OrganizationName, "system:masters");
        admin
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ClientAuth);
        let admin_cert = admin.signed_by(&admin_key, &issuer).unwrap();
        let admin_crt = write(pki, "admin.crt", &admin_cert.pem());
        let admin_pem = write(pki, "admin.key", &admin_key.serialize_pem());

        let sa = KeyPair::generate().unwrap();
        let sa_key = write(pki, "sa.key", &sa.serialize_pem());
        let sa_pub = write(pki, "sa.pub", &sa.public_key_pem());

        // Every request's metadata (who, verb, URI, answer), for tests that count requests.
        let audit_policy = write(
            pki,
            "audit-policy.yaml",
            "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\n\
             rules:\n- level: Metadata\n",
        );

        let mut processes = Vec::new();
        let (client, peer) = (free_port(), free_port());
        let etcd = Command::new(bin.join("etcd"))
            .arg(format!("--data-dir={}", pki.join("etcd").display()))
            .arg(format!("--listen-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--advertise-client-urls=http://127.0.0.1:{client}"))
            .arg(format!("--listen-peer-urls=http://127.0.0.1:{peer}"))
            .arg(format!(
                "--initial-advertise-peer-urls=http://127.0.0.1:{peer}"
            ))
            .arg(format!("--initial-cluster=default=http://127.0.0.1:{peer}"))
            .arg("--unsafe-no-fsync")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(pki.join("etcd.log")).unwrap())
            .spawn()
            .expect("start etcd");
        processes.push(etcd);

        let port = free_port();
        let url = format!("https://127.0.0.1:{port}");
        let apiserver = Command::new(bin.join("kube-apiserver"))
            .arg(format!("--etcd-servers=http://127.0.0.1:{client}"))
            .arg(format!("--cert-dir={}", pki.display()))
            .arg(format!("--tls-cert-file={}", serving_crt.display()))
            .arg(format!("--tls-private-key-file={}", serving_pem.display()))
            .arg(format!("--client-ca-file={}", ca_file.display()))
            .arg(format!("--secure-port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            .arg("--service-cluster-ip-range=10.0.0.0/24")
            .arg("--allow-privileged")
            .arg("--authorization-mode=RBAC")
            .arg(format!("--service-account-issuer={url}/"))
            .arg(format!("--service-account-key-file={}", sa_pub.display()))
            .arg(format!(
                "--service-account-signing-key-file={}",
                sa_key.display()
            ))
            // No controller manager makes service-account tokens for pods.
            .arg("--disable-admission-plugins=ServiceAccount")
            .arg("--etcd-compaction-interval=0")
            // Watches are served from etcd, so "too old" is decided by etcd's compaction, which
            // the tests trigger themselves (`compact`).
            .arg("--watch-cache=false")
            .arg(format!("--audit-policy-file={}", audit_policy.display()))
            .arg(format!(
                "--audit-log-path={}",
                pki.join("audit.log").display()
            ))
            .arg("--audit-log-mode=blocking")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(pki.join("apiserver.log")).unwrap())
            .spawn()
            .expect("start kube-apiserver");
        processes.push(apiserver);

        let kubeconfig = write(
            pki,
            "kubeconfig",
            &format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {url}\n    certificate-authority: {}\n\
                 users:\n- name: admin\n  user:\n    client-certificate: {}\n    client-key: {}\n\
                 contexts:\n- name: test\n  context:\n    cluster: test\n    user: admin\n    namespace: default\n\
                 current-context: test\n",
                ca_file.display(),
                admin_crt.display(),
                admin_pem.display()
            ),
        );
        let mut plane = ControlPlane {
            dir,
            processes,
            url,
            kubeconfig,
            etcd: SocketAddr::from(([127, 0, 0, 1], client)),
        };
        plane.wait_ready().await?;
        Ok(plane)
    }

    /// Compacts etcd's history up to `revision` (a resourceVersion): watches from before it get
    /// 410 Gone.
    pub async fn compact(&self, revision: &str) {
        let body = format!(r#"{{"revision":"{revision}","physical":true}}"#);
        let request = format!(
            "POST /v3/kv/compaction HTTP/1.1\r\nHost: etcd\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let answer = raw("127.0.0.1", self.etcd, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "compaction: {answer}");
    }

    /// A kubeconfig like the admin's, whose server is `server` (a [`Gate`] in front of the API).
    pub fn kubeconfig_via(&self, server: SocketAddr) -> PathBuf {
        let text = std::fs::read_to_string(&self.kubeconfig)
            .unwrap()
            .replace(&self.url, &format!("https://{server}"));
        write(
            self.dir.path(),
            &format!("kubeconfig-{}", server.port()),
            &text,
        )
    }

    /// A kubeconfig that authenticates with `token` (a ServiceAccount's, say) instead of the
    /// admin's certificate.
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> PathBuf {
        let ca = self.dir.path().join("ca.crt");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {}\n    certificate-authority: {}\n\
             users:\n- name: {name}\n  user:\n    token: {token}\n\
             contexts:\n- name: test\n  context:\n    cluster: test\n    user: {name}\n\
             current-context: test\n",
            self.url,
            ca.display()
        );
        write(self.dir.path(), &format!("kubeconfig-{name}"), &text)
    }

    /// Stops kube-apiserver (etcd keeps running), as an outage of the API would.
    pub fn stop_apiserver(&mut self) {
        let apiserver = &mut self.processes[1];
        let _ = apiserver.kill();
        let _ = apiserver.wait();
    }

    /// The requests the API server's audit log holds from clients whose `User-Agent` starts with
    /// `agent`, in order, each once (a watch is logged when it starts and again when it ends).
    pub fn requests_from(&self, agent: &str) -> Vec<Audited> {
        let log = std::fs::read_to_string(self.dir.path().join("audit.log")).unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        log.lines()
            .map(|line| serde_json::from_str::<serde_json::Value>(line).expect("audit event"))
            .filter(|event| {
                event["userAgent"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(agent))
            })
            .filter(|event| seen.insert(event["auditID"].as_str().unwrap_or_default().to_owned()))
            .map(|event| Audited {
                verb: event["verb"].as_str().unwrap_or_default().to_owned(),
                uri: event["requestURI"].as_str().unwrap_or_default().to_owned(),
                code: event["responseStatus"]["code"].as_u64().unwrap_or(0) as u16,
            })
            .collect()
    }

    /// A kube client with the admin identity.
    pub async fn client(&self) -> kube::Client {
        let config = kube::Config::from_custom_kubeconfig(
            kube::config::Kubeconfig::read_from(&self.kubeconfig).unwrap(),
            &Default::default(),
        )
        .await
        .unwrap();
        kube::Client::try_from(config).unwrap()
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let client = self.client().await;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            for (child, log) in self.processes.iter_mut().zip(["etcd.log", "apiserver.log"]) {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(format!(
                        "{log}: exited ({status}):\n{}",
                        std::fs::read_to_string(self.dir.path().join(log)).unwrap_or_default()
                    ));
                }
            }
            let request = http::Request::get("/readyz").body(Vec::new()).unwrap();
            match client.request_text(request).await {
                Ok(text) if text.trim() == "ok" => return Ok(()),
                _ if Instant::now() > deadline => panic!(
                    "kube-apiserver not ready after 60 s; its log:\n{}",
                    std::fs::read_to_string(self.dir.path().join("apiserver.log"))
                        .unwrap_or_default()
                ),
                _ => tokio::time::sleep(Duration::from_millis(250)).await,
            }
        }
    }
}

/// One request as the API server's audit log recorded it.
#[derive(Debug, Clone)]
pub struct Audited {
    /// `list`, `watch`, `get`, `patch`, ...
    pub verb: String,
    /// Path and query, as sent.
    pub uri: String,
    pub code: u16,
}

/// What the guard sends as its `User-Agent`.
pub const GUARD_AGENT: &str = "imds-guard/";

/// Creates a pod on `node` with `labels`, then gives it `ip` and phase Running.
pub async fn running_pod(
    pods: &Api<Pod>,
    name: &str,
    node: &str,
    ip: &str,
    labels: &[(&str, &str)],
) {
    create_pod(pods, name, node, labels, false).await;
    set_status(pods, name, "Running", ip).await;
}

/// Creates a pod on `node`, as the scheduler would have placed it; no kubelet runs it.
pub async fn create_pod(
    pods: &Api<Pod>,
    name: &str,
    node: &str,
    labels: &[(&str, &str)],
    host_network: bool,
) {
    let labels: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "nodeName": node,
            "hostNetwork": host_network,
            "containers": [{"name": "app", "image": "app"}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
}

/// Sets what a kubelet reports: the phase and the pod's address.
pub async fn set_status(pods: &Api<Pod>, name: &str, phase: &str, ip: &str) {
    let status = json!({"status": {"phase": phase, "podIP": ip, "podIPs": [{"ip": ip}]}});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

/// A TCP forwarder to the API server that can be closed (every connection through it dropped, new
/// ones refused) and opened again: an outage of the API as one client sees it, while the test
/// itself keeps talking to the API server directly.
pub struct Gate {
    pub addr: SocketAddr,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Gate {
    /// Forwards to `to`, open.
    pub async fn to(to: SocketAddr) -> Gate {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (is_open, held) = (Arc::clone(&open), Arc::clone(&connections));
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue; // Dropped: refused while closed.
                }
                held.lock().unwrap().push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        });
        Gate {
            addr,
            open,
            connections,
            accept,
        }
    }

    /// Drops every connection through the gate and refuses new ones.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            connection.abort();
        }
    }

    /// Lets connections through again.
    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        self.close();
        self.accept.abort();
    }
}
