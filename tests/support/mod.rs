//! Test support: the real guard and the real emulator on `127.0.0.1:0`, clients that speak from a
//! chosen loopback address (each address a "pod"), and a recording upstream that shows exactly
//! what was forwarded.
#![allow(dead_code)]

pub mod binary;
pub mod controlplane;
pub mod fake_api;
pub mod netns;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use imds_guard::audit::Memory;
use imds_guard::server::{self, Listeners};
use imds_guard_emulator::EmulatorOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Pods of the seed scenario, as in `config.toml`.
pub const PROD: &str = "127.0.0.2";
pub const TEST: &str = "127.0.0.3";
pub const LABELLED: &str = "127.0.0.4";
pub const STRANGER: &str = "127.0.0.9";

/// Pods and rules of the seed scenario; `{extra}` in tests is appended.
pub const SEED: &str = r#"
[[inventory.pods]]
ip = "127.0.0.2"
namespace = "imds"
name = "prod-5c7b9"
labels = { app = "prod" }

[[inventory.pods]]
ip = "127.0.0.3"
namespace = "imds"
name = "test-6d8f"
labels = { app = "test" }

[[inventory.pods]]
ip = "127.0.0.4"
namespace = "tools"
name = "inspector"
labels = { "allow-node-metadata-lookup" = "true" }

[[rules]]
name = "seed"
pod_labels = { "allow-node-metadata-lookup" = "true" }
allow = ["/latest/**"]

[[rules]]
name = "imds-prod"
namespaces = ["imds"]
pod_labels = { app = "prod" }
allow = ["/latest/meta-data/**", "/latest/dynamic/instance-identity/document"]
deny = ["/latest/meta-data/iam/**"]
"#;

/// An emulator on `127.0.0.1:0`, stopped when dropped.
pub struct Emulator {
    pub addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

pub async fn emulator(options: EmulatorOptions) -> Emulator {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(imds_guard_emulator::serve(listener, options, async {
        let _ = stopped.await;
    }));
    Emulator { addr, _stop: stop }
}

/// The guard, running in this process on real sockets.
pub struct Guard {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub audit: Arc<Memory>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), server::RunError>>>,
}

/// What a test adds to a guard's start beyond its config: reloading, the start-up taint.
#[derive(Default)]
pub struct Extras {
    pub reload: Option<imds_guard::reload::Reload>,
    /// As `run --remove-startup-taint KEY`.
    pub remove_startup_taint: Option<String>,
    /// The pods' listener on `[::1]` instead of `127.0.0.1`.
    pub ipv6: bool,
}

impl Guard {
    /// Starts the guard with `config` (TOML); `{upstream}` in it is replaced by `upstream`.
    pub async fn start(config: &str, upstream: SocketAddr) -> Guard {
        Self::start_with(config, upstream, Extras::default()).await
    }

    /// [`Guard::start`] with reloading or the start-up taint.
    pub async fn start_with(config: &str, upstream: SocketAddr, extras: Extras) -> Guard {
        let text = config.replace("{upstream}", &format!("http://{upstream}"));
        let config = imds_guard::config::parse(&text)
            .and_then(|config| config.remove_startup_taint(extras.remove_startup_taint))
            .unwrap_or_else(|e| panic!("test config refused: {e}\n{text}"));
        let proxy_bind = if extras.ipv6 {
            "[::1]:0"
        } else {
            "127.0.0.1:0"
        };
        let proxy = TcpListener::bind(proxy_bind).await.unwrap_or_else(|e| {
            panic!(
                "cannot listen on {proxy_bind} (the machine needs ::1 on lo for IPv6 tests): {e}"
            )
        });
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (proxy_addr, admin_addr) = (proxy.local_addr().unwrap(), admin.local_addr().unwrap());
        let audit = Arc::new(Memory::default());
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = Listeners {
            proxy,
            admin,
            emulator: None,
        };
        let stop_signal = async {
            let _ = stopped.await;
        };
        let options = server::Options {
            reload: extras.reload,
            ..server::Options::new(audit.clone())
        };
        let task = tokio::spawn(server::run(config, listeners, options, stop_signal));
        Guard {
            proxy: proxy_addr,
            admin: admin_addr,
            audit,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Sends the shutdown signal and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), server::RunError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(15), task)
            .await
            .expect("guard did not stop")
            .unwrap()
    }

    /// Audit events recorded so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.audit.events()
    }

    /// The last audit event, waiting briefly for it (it is written after the answer is sent).
    pub async fn last_event(&self) -> serde_json::Value {
        for _ in 0..100 {
            if let Some(e) = self.audit.events().last() {
                return e.clone();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no audit event");
    }

    /// Waits until `n` audit events exist and returns them.
    pub async fn wait_events(&self, n: usize) -> Vec<serde_json::Value> {
        for _ in 0..200 {
            let events = self.audit.events();
            if events.len() >= n {
                return events;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("expected {n} audit events, have {:?}", self.audit.events());
    }
}

/// A complete answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// A TCP connection to `to` from the loopback address `from`.
pub async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let from: IpAddr = from.parse().unwrap();
    let socket = if from.is_ipv6() {
        TcpSocket::new_v6().unwrap()
    } else {
        TcpSocket::new_v4().unwrap()
    };
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(to).await.unwrap()
}

/// One HTTP/1.1 request from `from` with `headers`, on a fresh connection.
pub async fn request(
    from: &str,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Answer {
    let stream = connect_from(from, to).await;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(metadata_request(method, path, headers))
        .await
        .unwrap();
    collect(response).await
}

/// A request to the metadata service as a pod sends it.
fn metadata_request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "169.254.169.254");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Empty::<Bytes>::new()).unwrap()
}

/// One kept-alive connection from a pod, for requests one after another on it (so that no
/// connection cap is met on the way, as a new connection per request can while the last one is
/// still closing).
pub struct Kept(hyper::client::conn::http1::SendRequest<Empty<Bytes>>);

impl Kept {
    pub async fn connect(from: &str, to: SocketAddr) -> Kept {
        let stream = connect_from(from, to).await;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Kept(sender)
    }

    /// The answer, or `None` once the guard has ended the connection.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<Answer> {
        // Ready again only once hyper has finished with the last exchange.
        self.0.ready().await.ok()?;
        let response = self
            .0
            .send_request(metadata_request(method, path, headers))
            .await
            .ok()?;
        Some(collect(response).await)
    }
}

/// `count` GETs of `path` from `from` on one [`Kept`] connection; the statuses, up to the first
/// answer that ends the connection.
pub async fn gets_on_one_connection(
    from: &str,
    to: SocketAddr,
    path: &str,
    count: usize,
) -> Vec<u16> {
    let mut kept = Kept::connect(from, to).await;
    let mut statuses = Vec::new();
    for _ in 0..count {
        let Some(answer) = kept.send("GET", path, &[]).await else {
            break;
        };
        statuses.push(answer.status.as_u16());
        if answer
            .headers
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
        {
            break;
        }
    }
    statuses
}

pub async fn get(from: &str, to: SocketAddr, path: &str) -> Answer {
    request(from, to, "GET", path, &[]).await
}

async fn collect(response: Response<Incoming>) -> Answer {
    let (parts, body) = response.into_parts();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// Sends `raw` bytes from `from` and returns everything the server sends back until it closes or
/// goes quiet for a second.
pub async fn raw(from: &str, to: SocketAddr, raw: &[u8]) -> String {
    let mut stream = connect_from(from, to).await;
    stream.write_all(raw).await.unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break,
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of the first response in raw HTTP text.
pub fn raw_status(text: &str) -> u16 {
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {text:?}"))
}

/// What a recording upstream saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: HeaderMap,
}

/// An upstream that records every request and answers 200 (after `delay`).
pub struct Recorder {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _stop: oneshot::Sender<()>,
}

impl Recorder {
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// An upstream that records every request and answers 200 with the path it saw (after `delay`).
pub async fn recorder(delay: Duration) -> Recorder {
    recorder_answering(delay, Arc::new(|target: &str| format!("recorded {target}"))).await
}

/// The body a recording upstream answers for a request target.
pub type AnswerFn = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// The response header in which a recording upstream echoes the request's `User-Agent`: one of
/// the few headers the guard forwards, so a client can tag each request with a nonce and check
/// that the answer it got is the answer to its own request.
pub const ECHO_USER_AGENT: &str = "x-echo-user-agent";

/// A recording upstream whose body for each target is `answer(target)` (so a test can make it
/// answer like the metadata service would for a sensitive path).
pub async fn recorder_answering(delay: Duration, answer: AnswerFn) -> Recorder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (stop, stopped) = oneshot::channel::<()>();
    let record = seen.clone();
    tokio::spawn(imds_guard::listen::serve(
        listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
        move |_peer| {
            let record = record.clone();
            let answer = answer.clone();
            move |request: Request<Incoming>| {
                record.lock().unwrap().push(Seen {
                    method: request.method().to_string(),
                    target: request.uri().to_string(),
                    headers: request.headers().clone(),
                });
                let body = answer(&request.uri().to_string());
                let user_agent = request.headers().get("user-agent").cloned();
                async move {
                    tokio::time::sleep(delay).await;
                    let mut response = Response::new(Full::new(Bytes::from(body)));
                    response.headers_mut().insert(
                        "x-aws-ec2-metadata-token-ttl-seconds",
                        "77".parse().unwrap(),
                    );
                    response
                        .headers_mut()
                        .insert("connection", "keep-alive, x-secret-hop".parse().unwrap());
                    response
                        .headers_mut()
                        .insert("x-secret-hop", "1".parse().unwrap());
                    if let Some(user_agent) = user_agent {
                        response.headers_mut().insert(ECHO_USER_AGENT, user_agent);
                    }
                    response
                }
            }
        },
    ));
    Recorder {
        addr,
        seen,
        _stop: stop,
    }
}

/// An address where nothing listens (bound, then released).
pub async fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// An upstream that accepts connections and never answers.
pub async fn black_hole() -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    (addr, task)
}

/// The seed scenario for `cloud`: pods `imds/prod-5c7b9` (127.0.0.2, allowed `allow` minus
/// `deny` by rule `imds-prod`) and `imds/test-6d8f` (127.0.0.3, selected by no rule); `extra`
/// goes after `[upstream]` (so it may add keys there, or start sections of its own).
pub fn cloud_seed(cloud: &str, allow: &[&str], deny: &[&str], extra: &str) -> String {
    format!(
        r#"
[upstream]
cloud = "{cloud}"
url = "{{upstream}}"
connect_timeout_ms = 500
timeout_ms = 1500
{extra}

[[inventory.pods]]
ip = "127.0.0.2"
namespace = "imds"
name = "prod-5c7b9"
labels = {{ app = "prod" }}

[[inventory.pods]]
ip = "127.0.0.3"
namespace = "imds"
name = "test-6d8f"
labels = {{ app = "test" }}

[[rules]]
name = "imds-prod"
namespaces = ["imds"]
pod_labels = {{ app = "prod" }}
allow = [{}]
deny = [{}]
"#,
        toml_list(allow),
        toml_list(deny)
    )
}

/// `items` as the inside of a TOML array of strings: `"a", "b"`.
pub fn toml_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|p| format!("{p:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Config text: upstream placeholder, short timeouts, extra sections, then the seed pods and rules.
pub fn config(extra: &str) -> String {
    format!("[upstream]\nurl = \"{{upstream}}\"\nconnect_timeout_ms = 500\ntimeout_ms = 1500\n{extra}\n{SEED}")
}

/// A config for the guard on `node` with the Kubernetes source reached through `kubeconfig`, the
/// seed rule and `extra_rules`; `{upstream}` is left for [`Guard::start`].
pub fn kube_config(
    node: &str,
    kubeconfig: &std::path::Path,
    grace_ms: u64,
    extra_rules: &str,
) -> String {
    format!(
        r#"
[upstream]
url = "{{upstream}}"

[inventory]
source = "kubernetes"
node_name = "{node}"
kubeconfig = "{}"
unknown_source_grace_ms = {grace_ms}

[[rules]]
name = "seed"
pod_labels = {{ "allow-node-metadata-lookup" = "true" }}
allow = ["/latest/**"]
{extra_rules}
"#,
        kubeconfig.display()
    )
}

/// A loopback port that was free a moment ago (bound, then released), for child processes that
/// take their addresses from a config file.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (at most 10 s) until something accepts connections on `addr`: a child process started.
pub async fn wait_listening(addr: SocketAddr) {
    let started = std::time::Instant::now();
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nothing listens on {addr}: the guard did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `text` with `[imdsv2] tokens = "passthrough"`: the service's own tokens pass through the guard,
/// as before the guard issued its own (the tests of forwarding as such).
pub fn passthrough(text: &str) -> String {
    const SET: &str = "tokens = \"passthrough\"\n";
    match text.find("[imdsv2]\n") {
        Some(at) => {
            let end = at + "[imdsv2]\n".len();
            format!("{}{SET}{}", &text[..end], &text[end..])
        }
        None => format!("{text}\n[imdsv2]\n{SET}"),
    }
}

/// The value of one series (`name{labels}` exactly as exposed) on the admin port at `admin`, and
/// the whole exposition for messages; `None` when the series is absent.
pub async fn metric(admin: SocketAddr, series: &str) -> (Option<f64>, String) {
    let text = get(TEST, admin, "/metrics").await.text();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| {
            v.trim()
                .parse()
                .unwrap_or_else(|e| panic!("{series}: {v} ({e})"))
        });
    (value, text)
}
