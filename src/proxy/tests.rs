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
    proxy: Proxy<Fake>,
    audit: Arc<Memory>,
}

fn harness(extra: &str, index: Index, script: Script) -> Harness {
    let config = config::parse(&format!("{extra}\n{POLICY}")).unwrap();
    let audit = Arc::new(Memory::default());
    let proxy = Proxy {
        live: Arc::new(Live::new(&config)),
        inventory: Arc::new(index),
        upstream: Fake {
            script,
            sent: Mutex::new(Vec::new()),
        },
        audit: audit.clone(),
        metrics: Arc::new(Metrics::new()),
        unknown_source_grace: Duration::ZERO,
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
        let (response, hops) = self.proxy.handle(from.parse().unwrap(), request).await;
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
async fn each_denial_is_refused_with_its_status_and_reason_and_nothing_is_forwarded() {
    // From, request, status, reason, the rule named.
    type Case = (
        &'static str,
        Request<Empty<Bytes>>,
        u16,
        &'static str,
        Option<&'static str>,
    );
    let cases: [Case; 9] = [
        (
            "10.0.0.9",
            request("GET", "/latest/meta-data/", &[]),
            403,
            "unknown-source",
            None,
        ),
        (
            "10.0.0.5",
            request("GET", "/latest/meta-data/", &[]),
            403,
            "ambiguous-source",
            None,
        ),
        (
            "10.0.0.3",
            request("GET", "/latest/meta-data/", &[]),
            403,
            "no-rule",
            None,
        ),
        (
            "10.0.0.2",
            request("GET", "/latest/user-data", &[]),
            403,
            "path-not-allowed",
            None,
        ),
        (
            "10.0.0.2",
            request("GET", "/latest/meta-data/iam/info", &[]),
            403,
            "denied-by-rule",
            Some("prod"),
        ),
        (
            "10.0.0.2",
            request("POST", "/latest/meta-data/", &[]),
            405,
            "method-not-allowed",
            None,
        ),
        (
            "10.0.0.4",
            request("GET", "/latest/meta-data/", &[]),
            401,
            "token-required",
            Some("strict"),
        ),
        (
            "10.0.0.2",
            request("GET", "/latest/meta-data/../iam/", &[]),
            400,
            "bad-request",
            None,
        ),
        (
            "10.0.0.7",
            request(
                "PUT",
                "/latest/api/token",
                &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
            ),
            403,
            "path-not-allowed",
            None,
        ),
    ];
    for (from, req, status, reason, rule) in cases {
        let h = harness("", index(), ok());
        let answer = h.send(from, req).await;
        assert_eq!(answer.status, status, "{from} {reason}");
        assert_eq!(answer.headers["content-type"], "application/json");
        let body = json(&answer.body);
        assert_eq!(body["reason"], reason);
        assert_eq!(body["rule"].as_str(), rule, "{reason}");
        assert!(h.sent().is_empty(), "{reason}: forwarded");
        let line = h.line();
        assert_eq!(
            (line["decision"].as_str(), line["reason"].as_str()),
            (Some("deny"), Some(reason))
        );
        assert_eq!(line["status"], status);
    }
}

#[tokio::test]
async fn not_ready_asks_to_come_back_and_a_405_names_the_methods() {
    let h = harness("", Index::new(), ok());
    let answer = h.get("10.0.0.2", "/latest/meta-data/").await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(json(&answer.body)["reason"], "not-ready");
    let h = harness("", index(), ok());
    let answer = h
        .send("10.0.0.2", request("DELETE", "/latest/meta-data/", &[]))
        .await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.headers["allow"], "GET, HEAD, PUT");
}

#[tokio::test]
async fn bodies_and_bad_token_ttls_are_bad_requests() {
    let h = harness("", index(), ok());
    let with_body = Request::builder()
        .method("GET")
        .uri("/latest/meta-data/")
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(h.send("10.0.0.2", with_body).await.status, 400);
    let chunked = request(
        "GET",
        "/latest/meta-data/",
        &[("transfer-encoding", "chunked")],
    );
    assert_eq!(h.send("10.0.0.2", chunked).await.status, 400);
    for ttl in [None, Some("0"), Some("21601"), Some("+5")] {
        let headers: Vec<(&str, &str)> = ttl
            .map(|t| vec![("x-aws-ec2-metadata-token-ttl-seconds", t)])
            .unwrap_or_default();
        let answer = h
            .send("10.0.0.2", request("PUT", "/latest/api/token", &headers))
            .await;
        assert_eq!(answer.status, 400, "{ttl:?}");
        // The rule that allowed the token request is named.
        assert_eq!(json(&answer.body)["rule"], "prod", "{ttl:?}");
    }
    assert!(h.sent().is_empty());
    assert!(h
        .audit
        .events()
        .iter()
        .all(|l| l["reason"] == "bad-request" && l["decision"] == "deny"));
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
async fn a_failed_forward_is_answered_from_the_table_and_audited_with_its_error() {
    // The failure, the status, the JSON error word, the reason.
    type Case = (fn() -> UpstreamError, u16, &'static str, &'static str);
    let cases: [Case; 3] = [
        (
            || UpstreamError::Timeout,
            504,
            "gateway-timeout",
            "upstream-timeout",
        ),
        (
            || UpstreamError::Unreachable("refused".into()),
            502,
            "bad-gateway",
            "upstream-unreachable",
        ),
        (
            || UpstreamError::TooLarge,
            502,
            "bad-gateway",
            "upstream-too-large",
        ),
    ];
    for (error, status, word, kind) in cases {
        let h = harness("", index(), Script::Fail(error));
        let answer = h.get("10.0.0.2", "/latest/meta-data/instance-id").await;
        assert_eq!(answer.status, status);
        let body = json(&answer.body);
        assert_eq!(
            (body["error"].as_str(), body["reason"].as_str()),
            (Some(word), Some(kind))
        );
        assert_eq!(
            (body["pod"].as_str(), body["rule"].as_str()),
            (Some("ns/prod"), Some("prod"))
        );
        // The request was allowed; forwarding is what failed.
        let line = h.line();
        assert_eq!(line["decision"], "allow");
        assert_eq!(line["reason"], "path-allowed");
        assert_eq!(line["error"], kind);
        assert_eq!(line["status"], status);
        assert!(line["upstream_ms"].is_null());
    }
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

#[tokio::test(start_paused = true)]
async fn a_malformed_request_from_an_unknown_address_is_refused_without_waiting() {
    let mut h = harness("", index(), ok());
    h.proxy.unknown_source_grace = Duration::from_secs(30);
    let started = tokio::time::Instant::now();
    let answer = h.get("10.0.0.9", "/latest/meta-data/..%2f").await;
    assert_eq!(answer.status, 400);
    assert_eq!(started.elapsed(), Duration::ZERO);
    // A well-formed one from the same address waits out the grace before its refusal.
    let answer = h.get("10.0.0.9", "/latest/meta-data/").await;
    assert_eq!(
        (answer.status, json(&answer.body)["reason"].as_str()),
        (403, Some("unknown-source"))
    );
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}
