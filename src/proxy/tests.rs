//! The request path with a fake upstream: no sockets, no emulator. Each test hands the proxy a
//! request and checks the answer, what reached the upstream, and the audit line.

use std::collections::BTreeMap;
use std::sync::Mutex;

use http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};

use super::*;
use crate::audit::Memory;
use crate::config;
use crate::inventory::Pod;
use crate::upstream::{Answer, UpstreamError};

mod canary;
mod refusals;

/// What the fake upstream answers.
enum Script {
    /// 200 with this body, and these headers.
    Ok(&'static str, Vec<(&'static str, &'static str)>),
    Fail(fn() -> UpstreamError),
}

/// An upstream that records what it was sent and answers from its script.
struct Fake {
    script: Script,
    sent: Mutex<Vec<(HttpMethod, Uri, HeaderMap)>>,
}

impl Forward for Fake {
    async fn send(
        &self,
        method: HttpMethod,
        target: Uri,
        headers: HeaderMap,
        _deadline: Option<Duration>,
    ) -> Result<Answer, UpstreamError> {
        self.sent.lock().unwrap().push((method, target, headers));
        match &self.script {
            Script::Ok(body, headers) => {
                let mut map = HeaderMap::new();
                for (name, value) in headers {
                    map.insert(*name, value.parse().unwrap());
                }
                Ok(Answer {
                    status: StatusCode::OK,
                    headers: map,
                    body: Bytes::from_static(body.as_bytes()),
                    elapsed: Duration::from_millis(2),
                })
            }
            Script::Fail(error) => Err(error()),
        }
    }
}

const POLICY: &str = r#"
[imdsv2]
hop_limit = 2

[[rules]]
name = "prod"
pod_labels = { app = "prod" }
allow = ["/latest/meta-data/**", "/latest/api/token"]
deny = ["/latest/meta-data/iam/**"]
max_token_ttl_seconds = 300

[[rules]]
name = "strict"
pod_labels = { app = "strict" }
allow = ["/latest/meta-data/**"]
require_tokens = true

[[rules]]
name = "tokenless"
pod_labels = { app = "tokenless" }
allow = []
"#;

/// Pods by address: .2 prod, .3 unlabelled, .4 strict, .5 and .6 on one address, .7 tokenless.
fn index() -> Index {
    let pod = |name: &str, app: Option<&str>| Pod {
        namespace: "ns".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        labels: app
            .map(|app| BTreeMap::from([("app".to_owned(), app.to_owned())]))
            .unwrap_or_default(),
        namespace_labels: BTreeMap::new(),
        owner: None,
        host_network: false,
    };
    let ip = |s: &str| vec![s.parse().unwrap()];
    let index = Index::new();
    index.reset([
        (pod("prod", Some("prod")), ip("10.0.0.2")),
        (pod("other", None), ip("10.0.0.3")),
        (pod("strict", Some("strict")), ip("10.0.0.4")),
        (pod("twin-a", Some("prod")), ip("10.0.0.5")),
        (pod("twin-b", Some("prod")), ip("10.0.0.5")),
        (pod("tokenless", Some("tokenless")), ip("10.0.0.7")),
    ]);
    index
}

struct Harness {
    proxy: Proxy<Arc<Fake>>,
    audit: Arc<Memory>,
}

fn harness(extra: &str, index: Index, script: Script) -> Harness {
    let config = config::parse(&format!("{extra}\n{POLICY}")).unwrap();
    let audit = Arc::new(Memory::default());
    let proxy = Proxy {
        live: Arc::new(Live::new(&config)),
        inventory: Arc::new(index),
        upstream: Arc::new(Fake {
            script,
            sent: Mutex::new(Vec::new()),
        }),
        audit: audit.clone(),
        metrics: Arc::new(Metrics::new()),
        unknown_source_grace: Duration::ZERO,
        front: crate::front::Front::passthrough(),
    };
    Harness { proxy, audit }
}

fn ok() -> Script {
    Script::Ok("i-0123", vec![("content-type", "text/plain")])
}

fn request(method: &str, target: &str, headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    let mut builder = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Empty::new()).unwrap()
}

/// The answer's status, its body as text, its headers, the hop limit asked for.
struct Answered {
    status: u16,
    body: String,
    headers: HeaderMap,
    hops: Option<u8>,
}

impl Harness {
    async fn send<B: Body>(&self, from: &str, request: Request<B>) -> Answered {
        let response = self.proxy.handle(from.parse().unwrap(), request).await;
        let hops = response
            .extensions()
            .get::<imds_guard_net::HopLimit>()
            .map(|hops| hops.0);
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Answered {
            status,
            body: String::from_utf8(body.to_vec()).unwrap(),
            headers,
            hops,
        }
    }

    async fn get(&self, from: &str, path: &str) -> Answered {
        self.send(from, request("GET", path, &[])).await
    }

    fn sent(&self) -> Vec<(HttpMethod, Uri, HeaderMap)> {
        self.proxy.upstream.sent.lock().unwrap().clone()
    }

    /// The one audit line so far.
    fn line(&self) -> serde_json::Value {
        let events = self.audit.events();
        assert_eq!(events.len(), 1, "{events:?}");
        events[0].clone()
    }
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap()
}

#[tokio::test]
async fn an_allowed_read_is_forwarded_with_only_the_allowed_headers() {
    let h = harness("", index(), ok());
    let req = request(
        "GET",
        "/latest/meta-data/instance-id",
        &[
            ("x-forwarded-for", "1.2.3.4"),
            ("cookie", "a=b"),
            ("user-agent", "sdk"),
        ],
    );
    let answer = h.send("10.0.0.2", req).await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "i-0123"));
    let sent = h.sent();
    assert_eq!(sent.len(), 1);
    let (method, target, headers) = &sent[0];
    assert_eq!(
        (method.as_str(), target.to_string().as_str()),
        ("GET", "/latest/meta-data/instance-id")
    );
    assert_eq!(headers.len(), 1, "{headers:?}");
    assert_eq!(headers["user-agent"], "sdk");
    let line = h.line();
    assert_eq!(line["decision"], "allow");
    assert_eq!(line["reason"], "path-allowed");
    assert_eq!(line["rule"], "prod");
    assert_eq!(line["pod"], "ns/prod");
    assert_eq!(line["pod_uid"], "uid-prod");
    assert_eq!(line["status"], 200);
    assert_eq!(line["imds_version"], "v1");
    assert_eq!(line["upstream_ms"], 2.0);
    assert_eq!(line["bytes"], 6);
}

#[tokio::test]
async fn audit_mode_forwards_what_the_policy_would_deny_but_not_what_is_malformed() {
    let h = harness("[server]\nmode = \"audit\"", index(), ok());
    let answer = h.get("10.0.0.3", "/latest/meta-data/iam/info").await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "i-0123"));
    let line = h.line();
    assert_eq!(
        (line["decision"].as_str(), line["reason"].as_str()),
        (Some("would-deny"), Some("no-rule"))
    );
    assert_eq!(h.sent().len(), 1);

    let h = harness("[server]\nmode = \"audit\"", index(), ok());
    assert_eq!(
        h.get("10.0.0.2", "/latest/%2e%2e/user-data").await.status,
        400
    );
    assert_eq!(
        h.send("10.0.0.2", request("POST", "/latest/meta-data/", &[]))
            .await
            .status,
        405
    );
    assert!(h.sent().is_empty());
    let h = harness("[server]\nmode = \"audit\"", Index::new(), ok());
    assert_eq!(h.get("10.0.0.2", "/latest/meta-data/").await.status, 503);
    assert!(h.sent().is_empty());
}

#[tokio::test]
async fn token_ttls_are_capped_and_token_answers_get_the_hop_limit() {
    // The fake answers without the TTL header, as some services do: the guard adds the granted one.
    let h = harness("", index(), Script::Ok("token-value", vec![]));
    let ttl = ("x-aws-ec2-metadata-token-ttl-seconds", "21600");
    let answer = h
        .send("10.0.0.2", request("PUT", "/latest/api/token", &[ttl]))
        .await;
    assert_eq!(answer.status, 200);
    let (method, target, headers) = h.sent().remove(0);
    assert_eq!(
        (method.as_str(), target.path()),
        ("PUT", "/latest/api/token")
    );
    assert_eq!(headers["x-aws-ec2-metadata-token-ttl-seconds"], "300");
    assert_eq!(
        answer.headers["x-aws-ec2-metadata-token-ttl-seconds"],
        "300"
    );
    assert_eq!(answer.hops, Some(2));
    assert_eq!(answer.headers["connection"], "close");
    let line = h.line();
    assert_eq!(
        (line["reason"].as_str(), line["imds_version"].as_str()),
        (Some("token-allowed"), Some("v2"))
    );

    // A TTL below the cap is kept; a read carries no hop limit.
    let h = harness("", index(), Script::Ok("token-value", vec![]));
    let answer = h
        .send(
            "10.0.0.2",
            request(
                "PUT",
                "/latest/api/token",
                &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
            ),
        )
        .await;
    assert_eq!(answer.headers["x-aws-ec2-metadata-token-ttl-seconds"], "60");
    let answer = h.get("10.0.0.2", "/latest/meta-data/instance-id").await;
    assert_eq!((answer.status, answer.hops), (200, None));
    assert!(!answer.headers.contains_key("connection"));
}
