//! A protocol-level fake of the Kubernetes API server, kept for the soak (`tests/soak.rs`): there
//! the test chooses each pod's uid and gives a pod its address in the same write that creates it,
//! which a real API server cannot be made to do. Everything else is tested against a real one
//! (`support::controlplane`).
//!
//! The real kube-rs client reaches it through the kubeconfig it writes and gets the real wire
//! protocol over plain HTTP/1 on `127.0.0.1`: lists with field and label selectors and
//! `limit`/`continue` pages, chunked watch streams of one JSON event per line, one global
//! resourceVersion sequence, bookmarks, `410 Gone`, watches ending at `timeoutSeconds`. Tests play
//! the cluster (`upsert_pod`, `compact`, `stop`, …) and assert on the recorded requests.
//!
//! Layout: `store` holds objects, history and open watches under one lock; `select` parses and
//! applies selectors; `wire` is the HTTP side. Deliberately not modelled: authentication (any
//! token is accepted), writes over HTTP, set-based label selectors (refused with a 400 that says
//! so), garbage collection, and waiting for a resourceVersion newer than the current one.

mod select;
mod store;
mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use store::Store;
use wire::{listen, serve};

/// One request the fake has seen. Lists and gets are recorded on arrival, so a held list shows up;
/// watches once open, so after a test has seen a watch request every later change reaches it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Decoded query pairs, in request order.
    pub query: Vec<(String, String)>,
}

impl Recorded {
    /// The first value of query parameter `key`.
    pub fn query_value(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether this is a watch (`watch=true` or `watch=1`) rather than a list or get.
    pub fn is_watch(&self) -> bool {
        matches!(self.query_value("watch"), Some("true" | "1"))
    }
}

/// What the running server and the test share.
struct Shared {
    /// Also held by every open watch body, which deregisters itself when dropped.
    store: Arc<Mutex<Store>>,
    requests: Mutex<Vec<Recorded>>,
    /// Bumped on every recorded request, so waiters need not poll.
    seen: watch::Sender<usize>,
}

/// A listening server, between `start`/`restart` and `stop`.
struct Running {
    stop: oneshot::Sender<()>,
    /// Ends once the listener is closed and every connection dropped.
    task: JoinHandle<()>,
}

struct Control {
    /// Kept across `stop`/`restart`, as a real API server's address is.
    addr: SocketAddr,
    /// `None` while stopped. Dropping the last `FakeApi` drops the sender, which stops the server.
    running: Mutex<Option<Running>>,
}

/// The fake API server. Clones share one server.
#[derive(Clone)]
pub struct FakeApi {
    shared: Arc<Shared>,
    control: Arc<Control>,
}

impl FakeApi {
    /// Starts an empty server on `127.0.0.1` at a free port.
    pub async fn start() -> FakeApi {
        let listener = listen(SocketAddr::from(([127, 0, 0, 1], 0)));
        let addr = listener.local_addr().expect("listener address");
        let shared = Arc::new(Shared {
            store: Arc::default(),
            requests: Mutex::default(),
            seen: watch::Sender::new(0),
        });
        let running = serve(listener, shared.clone());
        FakeApi {
            shared,
            control: Arc::new(Control {
                addr,
                running: Mutex::new(Some(running)),
            }),
        }
    }

    /// Where the server listens (the same across `stop`/`restart`).
    pub fn addr(&self) -> SocketAddr {
        self.control.addr
    }

    /// Writes `dir/kubeconfig`: one cluster at `http://ADDR`, a user with a dummy token, and a
    /// current context joining them.
    pub fn write_kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
             users:\n- name: fake\n  user:\n    token: fake-token\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\n",
            self.addr()
        );
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }

    /// Creates (ADDED) or replaces (MODIFIED) a pod, keyed by namespace/name, with a new global
    /// resourceVersion; keeps the uid of the pod it replaces, or assigns one.
    pub fn upsert_pod(&self, pod: Value) {
        self.store().put(Kind::Pod, pod);
    }

    /// Deletes a pod: watchers get DELETED with its last state at a new resourceVersion.
    pub fn delete_pod(&self, namespace: &str, name: &str) {
        self.store().delete(Kind::Pod, namespace, name);
    }

    /// Creates or replaces a namespace; like the real server, labels it
    /// `kubernetes.io/metadata.name=<name>`.
    pub fn upsert_namespace(&self, ns: Value) {
        self.store().put(Kind::Namespace, ns);
    }

    /// Deletes a namespace (its pods stay: there is no garbage collector here).
    pub fn delete_namespace(&self, name: &str) {
        self.store().delete(Kind::Namespace, "", name);
    }

    /// Sends a BOOKMARK at the current resourceVersion to every open watch that allowed bookmarks.
    pub fn bookmark(&self) {
        self.store().bookmark();
    }

    /// Ends every open watch stream cleanly, as the real server does when a watch times out.
    pub fn drop_watches(&self) {
        self.store().drop_watches();
    }

    /// Forgets the event history: every resourceVersion handed out so far becomes too old, so a
    /// watch (or an `Exact` list, or a `continue`) from one gets 410 Gone.
    pub fn compact(&self) {
        self.store().compact();
    }

    /// Stops listening and cuts every open connection mid-stream: the API server is unreachable.
    /// State and history are kept.
    pub async fn stop(&self) {
        let running = self.control.running.lock().unwrap().take();
        if let Some(Running { stop, task }) = running {
            let _ = stop.send(());
            let _ = task.await;
        }
    }

    /// Listens again on the same port, with the same state. Panics if it is already running.
    pub async fn restart(&self) {
        let mut running = self.control.running.lock().unwrap();
        assert!(running.is_none(), "restart() of a running fake API server");
        *running = Some(serve(listen(self.addr()), self.shared.clone()));
    }

    /// Every request seen so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The first request matching `pred`, waiting up to `timeout`; panics listing what was seen.
    pub async fn wait_for_request(
        &self,
        pred: impl Fn(&Recorded) -> bool,
        timeout: Duration,
    ) -> Recorded {
        // Subscribing before looking means a request recorded in between still wakes us.
        let mut seen = self.shared.seen.subscribe();
        let search = async {
            loop {
                if let Some(found) = self.requests().into_iter().find(|r| pred(r)) {
                    return found;
                }
                let _ = seen.changed().await;
            }
        };
        match tokio::time::timeout(timeout, search).await {
            Ok(found) => found,
            Err(_) => panic!(
                "no matching request within {timeout:?}; seen: {:#?}",
                self.requests()
            ),
        }
    }

    /// How many watch streams are open now.
    pub fn open_watches(&self) -> usize {
        self.store().open_watches()
    }

    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        store::lock(&self.shared.store)
    }
}

/// A running pod on `node` in `namespace`, with `ips` (the first is `status.podIP`) and `labels`.
pub fn pod(
    namespace: &str,
    name: &str,
    node: &str,
    ips: &[&str],
    labels: &[(&str, &str)],
) -> Value {
    let mut pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"namespace": namespace, "name": name, "labels": label_map(labels)},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "i"}]},
        "status": {"phase": "Running", "podIPs": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>()},
    });
    if let Some(ip) = ips.first() {
        pod["status"]["podIP"] = (*ip).into();
    }
    pod
}

/// `pod` with `status.phase` set to `phase` (e.g. "Pending", "Succeeded").
pub fn with_phase(mut pod: Value, phase: &str) -> Value {
    pod["status"]["phase"] = phase.into();
    pod
}

/// `pod` sharing the node's network namespace (`spec.hostNetwork: true`).
pub fn with_host_network(mut pod: Value) -> Value {
    pod["spec"]["hostNetwork"] = true.into();
    pod
}

/// An active namespace with `labels`.
pub fn namespace(name: &str, labels: &[(&str, &str)]) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": name, "labels": label_map(labels)},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

fn label_map(labels: &[(&str, &str)]) -> Value {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The resources the fake serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Pod,
    Namespace,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::Namespace => "Namespace",
        }
    }

    fn plural(self) -> &'static str {
        match self {
            Kind::Pod => "pods",
            Kind::Namespace => "namespaces",
        }
    }
}

/// A refused request: answered with this HTTP code and a `Status` object, as the real server does.
struct Refusal {
    code: u16,
    reason: &'static str,
    message: String,
}

impl Refusal {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Refusal {
        let message = message.into();
        Refusal {
            code,
            reason,
            message,
        }
    }

    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal::new(400, "BadRequest", message)
    }

    fn gone(message: impl Into<String>) -> Refusal {
        Refusal::new(410, "Expired", message)
    }

    /// The `Status` object: the body of an error reply, or of a watch's ERROR event.
    fn status(&self) -> Value {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code})
    }
}
