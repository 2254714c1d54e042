//! Hostile requests against the real server: the bypass corpus, and per-request decisions on
//! kept-alive connections.
//!
//! The pod under test may read `/latest/meta-data/**` but not `/latest/meta-data/iam/**`, and
//! nothing else. Behind the guard sits a recording upstream that answers every request, and
//! answers the way the metadata service would to the most lenient reading of the target (the
//! user-data marker, credential JSON), so anything forwarded is both recorded and visible to
//! the client. Each case gets a guard and recorder of its own, so what was forwarded is known
//! per case, and the cases run concurrently.
//!
//! The same corpus idea in front of GCP, Azure, OCI, Alibaba, OpenStack, DigitalOcean, Hetzner,
//! Tencent, Huawei, Exoscale and Linode: `bypass/clouds.rs` (profiles and checks), `bypass/oracle.rs`
//! (what the most lenient server of each would read and hand out), and the cases in
//! `bypass/gcp.rs`, `bypass/azure.rs` and `bypass/others.rs`.

use crate::support;

#[path = "bypass/azure.rs"]
mod azure;
#[path = "bypass/canonical.rs"]
pub(crate) mod canonical;
#[path = "bypass/clouds.rs"]
mod clouds;
#[path = "bypass/corpus.rs"]
mod corpus;
#[path = "bypass/gcp.rs"]
mod gcp;
#[path = "bypass/lenient.rs"]
pub(crate) mod lenient;
#[path = "bypass/oracle.rs"]
mod oracle;
#[path = "bypass/others.rs"]
mod others;
#[path = "bypass/spellings.rs"]
mod spellings;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use support::{
    connect_from, passthrough, recorder_answering, Guard, Recorder, Seen, ECHO_USER_AGENT,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The pod allowed `/latest/meta-data/**` minus `iam/**`.
const POD: &str = "127.0.0.2";
/// A pod allowed everything under `/latest`, so the upstream has secrets to hand out.
const INSPECTOR: &str = "127.0.0.3";
/// An address no pod has.
const STRANGER: &str = "127.0.0.9";
const ALLOWED: &str = "/latest/meta-data/instance-id";

const USER_DATA_MARKER: &str = "USER-DATA-MARKER";
const CREDENTIALS: &str = r#"{"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIAMARKER","SecretAccessKey":"marker-secret","Token":"marker-token"}"#;

/// How long a client waits for more bytes before it takes the answer to a case as complete. (What
/// was forwarded does not depend on it: the recorder is read only once the guard has stopped.)
const QUIET: Duration = Duration::from_millis(1000);
/// The same for answers that end with the connection (`Connection: close`), on a busy machine.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// The guard's config, with `allow` and `deny` pattern lists for the pod under test.
fn config(allow: &str, deny: &str) -> String {
    format!(
        r#"
[upstream]
url = "{{upstream}}"
connect_timeout_ms = 500
timeout_ms = 1500

[[inventory.pods]]
ip = "{POD}"
namespace = "web"
name = "frontend-0"
labels = {{ app = "frontend" }}

[[inventory.pods]]
ip = "{INSPECTOR}"
namespace = "tools"
name = "inspector-0"
labels = {{ app = "inspector" }}

[[rules]]
name = "frontend: instance metadata, no credentials"
pod_labels = {{ app = "frontend" }}
allow = [{allow}]
deny = [{deny}]

[[rules]]
name = "inspector: everything"
pod_labels = {{ app = "inspector" }}
allow = ["/latest/**"]
"#
    )
}

fn pod_config() -> String {
    config(r#""/latest/meta-data/**""#, r#""/latest/meta-data/iam/**""#)
}

/// [`pod_config`] with the service's own tokens passing through: every allowed request reaches
/// the recorder as sent, so what it saw is what was forwarded.
fn passthrough_config() -> String {
    passthrough(&pod_config())
}

fn is_user_data(segments: &[String]) -> bool {
    segments.starts_with(&["latest".into(), "user-data".into()])
}

fn is_iam(segments: &[String]) -> bool {
    segments.starts_with(&["latest".into(), "meta-data".into(), "iam".into()])
}

/// The policy for the pod under test, on a (lower-cased, resolved) reading of a path.
fn oracle_allows(method: &str, segments: &[String]) -> bool {
    match method {
        "GET" | "HEAD" => {
            segments.starts_with(&["latest".into(), "meta-data".into()]) && !is_iam(segments)
        }
        "PUT" => segments == ["latest", "api", "token"],
        _ => false,
    }
}

/// The recorder's answers: what the metadata service would give for the most dangerous reading.
fn answer_like_imds(target: &str) -> String {
    let readings = lenient::readings(target);
    if readings.iter().any(|r| is_user_data(r)) {
        format!("#!/bin/bash\n# {USER_DATA_MARKER} for {target}\n")
    } else if readings.iter().any(|r| is_iam(r)) {
        CREDENTIALS.to_owned()
    } else {
        format!("recorded {target}")
    }
}

/// The request headers the guard may pass on (the upstream client adds `host`).
const FORWARDABLE: [&str; 5] = [
    "host",
    "user-agent",
    "accept",
    "x-aws-ec2-metadata-token",
    "x-aws-ec2-metadata-token-ttl-seconds",
];

/// Everything wrong with what reached the upstream for the pod under test.
fn forwarded_problems(seen: &[Seen]) -> Vec<String> {
    let mut problems = Vec::new();
    for s in seen {
        let t = &s.target;
        let lower = t.to_ascii_lowercase();
        let mut bad: Vec<&str> = ["%2e", "%2f", "%5c", "%25", ";", "?", "#", "\\"]
            .into_iter()
            .filter(|needle| lower.contains(needle))
            .collect();
        if t.split('/').any(|seg| seg == "." || seg == "..") {
            bad.push("dot segment");
        }
        if t.contains("//") || !t.starts_with('/') {
            bad.push("not a canonical origin-form path");
        }
        if !t.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            bad.push("control, space or non-ASCII byte");
        }
        if !bad.is_empty() {
            problems.push(format!(
                "forwarded non-canonical {} {t:?}: {bad:?}",
                s.method
            ));
        }
        for reading in lenient::readings(t) {
            if !oracle_allows(&s.method, &reading) {
                problems.push(format!(
                    "forwarded {} {t:?}, which a lenient server reads as /{}",
                    s.method,
                    reading.join("/")
                ));
            }
        }
        for name in s.headers.keys() {
            if !FORWARDABLE.contains(&name.as_str()) {
                problems.push(format!("forwarded header {name} with {t:?}"));
            }
        }
    }
    problems
}

/// Everything wrong with what the client got back.
fn answer_problems(reply: &str) -> Vec<String> {
    [USER_DATA_MARKER, "AccessKeyId", "SecretAccessKey"]
        .into_iter()
        .filter(|marker| reply.contains(marker))
        .map(|marker| format!("client received {marker:?}"))
        .collect()
}

/// Writes `bytes` on a fresh connection from `from` and reads until the server closes or is quiet
/// for `quiet`. A write may fail half-way when the server refuses early and closes; what it
/// answered still counts.
async fn send(from: &str, to: std::net::SocketAddr, bytes: &[u8], quiet: Duration) -> String {
    let mut stream = connect_from(from, to).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(bytes)).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    while let Ok(Ok(n @ 1..)) = tokio::time::timeout(quiet, stream.read(&mut buf)).await {
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status codes of the HTTP/1 responses in `reply`, in order.
fn statuses(reply: &str) -> Vec<u16> {
    reply
        .match_indices("HTTP/1.")
        .filter_map(|(at, _)| reply.get(at + 9..at + 12)?.parse().ok())
        .collect()
}

/// What one case did.
struct Outcome {
    name: String,
    statuses: Vec<u16>,
    forwarded: Vec<String>,
    problems: Vec<String>,
}

/// Sends one case to a guard of its own with `config`, then checks what was forwarded, what came
/// back, and that the guard still serves an allowed request.
async fn run_case(config: String, name: String, bytes: Vec<u8>) -> Outcome {
    let rec: Recorder = recorder_answering(Duration::ZERO, Arc::new(answer_like_imds)).await;
    let guard = Guard::start(&config, rec.addr).await;
    let reply = send(POD, guard.proxy, &bytes, QUIET).await;
    let mut problems = answer_problems(&reply);

    let health = format!("GET {ALLOWED} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let health_reply = send(POD, guard.proxy, health.as_bytes(), CLOSE_WAIT).await;
    if statuses(&health_reply).first() != Some(&200)
        || !health_reply.ends_with(&format!("recorded {ALLOWED}"))
    {
        problems.push(format!(
            "an allowed request afterwards was not served: {health_reply:?}"
        ));
    }
    // Stopping waits for requests in flight, so a late forward of this case is recorded too.
    if let Err(e) = guard.stop().await {
        problems.push(format!("the guard did not stop cleanly: {e}"));
    }
    // Everything the upstream saw, the health request included (it must pass the same checks).
    let seen = rec.seen();
    problems.extend(forwarded_problems(&seen));
    let forwarded = seen[..seen.len().saturating_sub(1)]
        .iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    Outcome {
        name,
        statuses: statuses(&reply),
        forwarded,
        problems,
    }
}

async fn run_all(config: &str, cases: Vec<corpus::Case>) -> Vec<Outcome> {
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (name, bytes)) in cases.into_iter().enumerate() {
        let config = config.to_owned();
        tasks.spawn(async move { (index, run_case(config, name, bytes).await) });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.expect("a case panicked"));
    }
    outcomes.sort_by_key(|(index, _)| *index);
    outcomes.into_iter().map(|(_, o)| o).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bypass_corpus_forwards_nothing_denied() {
    let cases = corpus::cases();
    let count = cases.len();
    assert!(count >= 80, "the corpus has only {count} cases");
    let mut names: Vec<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "case names must be distinct");

    let outcomes = run_all(&pod_config(), cases).await;
    let mut failures = Vec::new();
    for o in &outcomes {
        println!(
            "{:<48} {:?} forwarded {:?}",
            o.name, o.statuses, o.forwarded
        );
        for problem in &o.problems {
            failures.push(format!("{}: {problem}", o.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems in {count} cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The same promises in front of each other cloud: `tests/bypass/clouds.rs` and its corpora.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::gcp(), gcp::cases(), 240).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::azure(), azure::cases(), 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::oci(), others::oci(), 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::alibaba(), others::alibaba(), 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openstack_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::openstack(), others::openstack(), 50).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digitalocean_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::digitalocean(), others::digitalocean(), 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hetzner_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::hetzner(), others::hetzner(), 120).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::tencent(), others::tencent(), 250).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huawei_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::huawei(), others::huawei(), 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exoscale_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::exoscale(), others::exoscale(), 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linode_corpus_forwards_nothing_denied() {
    clouds::check_corpus(clouds::linode(), others::linode(), 400).await;
}

/// Spellings a lenient server reads as a legacy tree, a document or a denied value
/// (`tests/bypass/spellings.rs`), one test per way of reading, so a regression shows which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_legacy_tree_spellings_are_refused() {
    clouds::check_corpus(clouds::gcp(), spellings::gcp_legacy_spellings(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_instance_document_spellings_are_aggregates() {
    clouds::check_corpus(clouds::azure(), spellings::azure_document_spellings(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oci_instance_document_spellings_are_aggregates() {
    clouds::check_corpus(clouds::oci(), spellings::oci_document_spellings(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alibaba_meta_data_all_spellings_are_aggregates() {
    clouds::check_corpus(clouds::alibaba(), spellings::alibaba_all_spellings(), 1).await;
}

/// DigitalOcean's and Hetzner's denied paths and DigitalOcean's document under an allow as wide
/// as their trees, so that the denies and the aggregate check (not a narrow allow) refuse each
/// spelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digitalocean_document_and_data_spellings_are_refused() {
    let wide = clouds::Profile {
        allow: &["/metadata/**"],
        ..clouds::digitalocean()
    };
    let mut cases = others::digitalocean_data();
    cases.extend(others::digitalocean_document());
    clouds::check_corpus(wide, cases, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hetzner_userdata_spellings_are_denied() {
    let wide = clouds::Profile {
        allow: &["/hetzner/**"],
        ..clouds::hetzner()
    };
    clouds::check_corpus(wide, others::hetzner_userdata(), 40).await;
}

/// Tencent's, Huawei's and Exoscale's denied paths under an allow as wide as their trees, so that
/// the denies (not a narrow allow) refuse each spelling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tencent_credentials_and_user_data_spellings_are_denied() {
    let wide = clouds::Profile {
        allow: &["/latest/**"],
        ..clouds::tencent()
    };
    let mut cases = others::tencent_credentials();
    cases.extend(others::tencent_user_data());
    clouds::check_corpus(wide, cases, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huawei_securitykey_user_data_and_password_spellings_are_denied() {
    let wide = clouds::Profile {
        allow: &["/openstack/**"],
        ..clouds::huawei()
    };
    clouds::check_corpus(wide, others::huawei_denied(), 300).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exoscale_user_data_spellings_are_denied() {
    let wide = clouds::Profile {
        allow: &["/1.0/**", "/latest/**"],
        ..clouds::exoscale()
    };
    clouds::check_corpus(wide, others::exoscale_user_data(), 100).await;
}

/// Linode's profile already allows its whole `/v1/` tree; here everything is allowed, so that
/// the deny alone refuses each spelling of the user data, those outside `/v1/` included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linode_user_data_spellings_are_denied() {
    let wide = clouds::Profile {
        allow: &["/**"],
        ..clouds::linode()
    };
    clouds::check_corpus(wide, others::linode_user_data(), 60).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_denied_resource_spellings_are_denied() {
    clouds::check_corpus(clouds::azure(), spellings::azure_resource_spellings(), 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gcp_escaped_separators_in_free_text_values() {
    clouds::check_corpus(clouds::gcp(), spellings::gcp_decode_before_split(), 1).await;
}

/// The per-cloud checks can fail: with the denies removed, what each policy denied is caught
/// at the upstream and at the client (so a green corpus means something).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cloud_checks_catch_a_guard_that_forwards_denied_material() {
    let get = |target: &str, header: &str| {
        format!("GET {target} HTTP/1.1\r\nHost: x\r\n{header}\r\n").into_bytes()
    };
    // GCP conceals kube-env whatever the denies say, unless an allow names it: this one does.
    let gcp = clouds::Profile {
        allow: &["/**", "/computeMetadata/v1/instance/attributes/kube-env"],
        ..clouds::gcp()
    };
    // Hetzner's user data lies beside the metadata tree that its profile allows.
    let hetzner = clouds::Profile {
        allow: &["/hetzner/v1/**"],
        ..clouds::hetzner()
    };
    // So do Tencent's and Exoscale's user data beside their meta-data trees.
    let tencent = || clouds::Profile {
        allow: &["/latest/**"],
        ..clouds::tencent()
    };
    let exoscale = || clouds::Profile {
        allow: &["/1.0/**", "/latest/**"],
        ..clouds::exoscale()
    };
    for (profile, target, header) in [
        (
            gcp,
            "/computeMetadata/v1/instance/attributes/kube-env",
            "Metadata-Flavor: Google\r\n",
        ),
        (
            clouds::azure(),
            "/metadata/instance?api-version=2021-02-01",
            "Metadata: true\r\n",
        ),
        (
            clouds::oci(),
            "/opc/v2/instance/",
            "Authorization: Bearer Oracle\r\n",
        ),
        (clouds::alibaba(), "/latest/meta-data/all", ""),
        (clouds::openstack(), "/openstack/latest/user_data", ""),
        (clouds::digitalocean(), "/metadata/v1/user-data", ""),
        (clouds::digitalocean(), "/metadata/v1/vendor-data", ""),
        (clouds::digitalocean(), "/metadata/v1.json", ""),
        (hetzner, "/hetzner/v1/userdata", ""),
        (
            tencent(),
            "/latest/meta-data/cam/security-credentials/role",
            "",
        ),
        (tencent(), "/latest/user-data", ""),
        (clouds::huawei(), "/openstack/latest/securitykey", ""),
        (clouds::huawei(), "/openstack/2018-08-27/securitykey", ""),
        (clouds::huawei(), "/openstack/latest/user_data", ""),
        (clouds::huawei(), "/openstack/latest/password", ""),
        (exoscale(), "/1.0/user-data", ""),
        (exoscale(), "/latest/user-data", ""),
        (clouds::linode(), "/v1/user-data", "Metadata-Token: tok\r\n"),
    ] {
        let profile = std::sync::Arc::new(clouds::Profile {
            deny: &[],
            ..profile
        });
        let o = clouds::run_case(profile, target.into(), get(target, header)).await;
        let all = o.problems.join("\n");
        assert!(all.contains("hands out"), "{target}: {all}");
        assert!(all.contains("client received"), "{target}: {all}");
    }
}

/// Linode's forwarded-request checks flag what its guard must never send on: another cloud's
/// token headers, a forwarding header, a token request with its TTL missing, doubled or out of
/// range, a read of the token endpoint, a write elsewhere, AWS's token endpoint.
#[test]
fn the_linode_checks_flag_foreign_headers_and_token_misuse() {
    let profile = clouds::linode();
    let seen = |method: &str, target: &str, headers: &[(&'static str, &'static str)]| {
        let mut map = http::HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, value.parse().unwrap());
        }
        Seen {
            method: method.into(),
            target: target.into(),
            headers: map,
        }
    };
    let ttl = "metadata-token-expiry-seconds";
    for ok in [
        seen("GET", "/v1/instance", &[("metadata-token", "tok")]),
        seen("HEAD", "/v1/ssh-keys", &[("host", "x"), ("accept", "*/*")]),
        seen("PUT", "/v1/token", &[(ttl, "1")]),
        seen("PUT", "/v1/token/", &[(ttl, "86400")]),
    ] {
        let problems = clouds::forwarded_problems(&profile, std::slice::from_ref(&ok));
        assert!(
            problems.is_empty(),
            "{} {}: {problems:?}",
            ok.method,
            ok.target
        );
    }
    for bad in [
        seen(
            "GET",
            "/v1/instance",
            &[("x-aws-ec2-metadata-token", "tok")],
        ),
        seen(
            "GET",
            "/v1/instance",
            &[("x-aliyun-ecs-metadata-token", "tok")],
        ),
        seen("GET", "/v1/instance", &[("x-forwarded-for", "10.0.0.1")]),
        seen("GET", "/v1/instance", &[("cookie", "a=b")]),
        seen(
            "PUT",
            "/v1/token",
            &[(ttl, "60"), ("x-aws-ec2-metadata-token-ttl-seconds", "60")],
        ),
        seen("PUT", "/v1/token", &[]),
        seen("PUT", "/v1/token", &[(ttl, "0")]),
        seen("PUT", "/v1/token", &[(ttl, "86401")]),
        seen("PUT", "/v1/token", &[(ttl, "+60")]),
        seen("PUT", "/v1/token", &[(ttl, "60"), (ttl, "60")]),
        seen("GET", "/v1/token", &[]),
        seen("PUT", "/v1/instance", &[(ttl, "60")]),
        seen("POST", "/v1/instance", &[]),
        seen("PUT", "/latest/api/token", &[(ttl, "60")]),
        seen("GET", "/v1/user-data", &[]),
        seen("GET", "/v1/instance/../user-data", &[]),
    ] {
        let problems = clouds::forwarded_problems(&profile, std::slice::from_ref(&bad));
        assert!(!problems.is_empty(), "{} {}", bad.method, bad.target);
    }
}

/// The checks above can fail: a guard that does allow user-data and credentials is caught both
/// at the upstream and at the client.
#[tokio::test]
async fn the_checks_catch_a_guard_that_forwards_denied_paths() {
    let permissive = config(r#""/latest/**""#, "");
    let outcomes = run_all(
        &permissive,
        vec![
            ("user-data".into(), corpus_get("/latest/user-data")),
            (
                "credentials".into(),
                corpus_get("/latest/meta-data/iam/security-credentials/node-role"),
            ),
        ],
    )
    .await;
    for o in &outcomes {
        let all = o.problems.join("\n");
        assert!(all.contains("forwarded GET"), "{}: {all}", o.name);
        assert!(all.contains("client received"), "{}: {all}", o.name);
    }
}

fn corpus_get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").into_bytes()
}

#[test]
fn the_forwarded_check_flags_non_canonical_and_denied_targets() {
    let seen = |target: &str| Seen {
        method: "GET".into(),
        target: target.into(),
        headers: http::HeaderMap::new(),
    };
    assert!(forwarded_problems(&[seen(ALLOWED), seen("/latest/meta-data/a%20b")]).is_empty());
    for target in [
        "/latest/user-data",
        "/latest/meta-data/iam/info",
        "/latest/meta-data/IAM/info",
        "/latest/meta-data/iam./info",
        "/latest/meta-data/..%20/user-data",
        "/latest/meta-data/%2e%2e/user-data",
        "/latest/meta-data/x%25",
        "/latest/meta-data/x;y",
        "/latest/meta-data/x?y",
        "/latest/meta-data//x",
        "/latest/meta-data/./x",
        "/latest/dynamic/instance-identity/document",
    ] {
        assert!(!forwarded_problems(&[seen(target)]).is_empty(), "{target}");
    }
    let mut with_header = seen(ALLOWED);
    with_header
        .headers
        .insert("x-original-url", "/latest/user-data".parse().unwrap());
    assert!(!forwarded_problems(&[with_header]).is_empty());
}

/// One kept-alive client connection from a pod.
struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

struct Reply {
    status: u16,
    echo: Option<String>,
    body: String,
}

impl Conn {
    async fn open(from: &str, to: std::net::SocketAddr) -> Conn {
        let stream = connect_from(from, to).await;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(connection);
        Conn { sender }
    }

    async fn get(&mut self, path: &str, nonce: &str) -> Reply {
        self.sender.ready().await.expect("connection closed");
        let request = Request::get(path)
            .header("host", "169.254.169.254")
            .header("user-agent", nonce)
            .body(Empty::new())
            .unwrap();
        let response = self.sender.send_request(request).await.unwrap();
        let status = response.status().as_u16();
        let echo = response
            .headers()
            .get(ECHO_USER_AGENT)
            .map(|v| v.to_str().unwrap().to_owned());
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            echo,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }
}

#[tokio::test]
async fn pipelined_requests_are_decided_one_by_one() {
    let rec = recorder_answering(Duration::ZERO, Arc::new(answer_like_imds)).await;
    let guard = Guard::start(&passthrough_config(), rec.addr).await;
    let pipelined = [
        corpus_get(ALLOWED),
        corpus_get("/latest/user-data"),
        corpus_get("/latest/meta-data/iam/security-credentials/node-role"),
        corpus_get("/latest/meta-data/../user-data"),
        b"GET /latest/meta-data/hostname HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
    ]
    .concat();
    let reply = send(POD, guard.proxy, &pipelined, CLOSE_WAIT).await;
    assert_eq!(statuses(&reply), [200, 403, 403, 400, 200], "{reply}");
    assert_eq!(answer_problems(&reply), Vec::<String>::new());
    let targets: Vec<String> = rec.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, [ALLOWED, "/latest/meta-data/hostname"]);
}

#[tokio::test]
async fn sequential_requests_on_one_connection_are_decided_one_by_one() {
    let rec = recorder_answering(Duration::ZERO, Arc::new(answer_like_imds)).await;
    let guard = Guard::start(&passthrough_config(), rec.addr).await;
    let mut conn = Conn::open(POD, guard.proxy).await;
    for (path, want) in [
        (ALLOWED, 200),
        ("/latest/user-data", 403),
        ("/latest/meta-data/iam/security-credentials/node-role", 403),
        ("/latest/meta-data/Iam/info", 403),
        ("/latest/meta-data/hostname", 200),
        ("/latest/user-data", 403),
    ] {
        let reply = conn.get(path, "sdk").await;
        assert_eq!(reply.status, want, "{path}: {}", reply.body);
        assert_eq!(answer_problems(&reply.body), Vec::<String>::new(), "{path}");
    }
    let targets: Vec<String> = rec.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(targets, [ALLOWED, "/latest/meta-data/hostname"]);
}

/// Pods on many kept-alive connections at once, over the guard's pooled upstream connections:
/// every answer is the answer to the request it was sent for (the upstream echoes each request's
/// nonce), and the pod without access to secrets never receives one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_pods_never_get_each_others_answers() {
    const CONNECTIONS: usize = 6;
    const REQUESTS: usize = 12;
    let rec = recorder_answering(Duration::from_millis(3), Arc::new(answer_like_imds)).await;
    let guard = Arc::new(Guard::start(&passthrough_config(), rec.addr).await);
    let mut tasks = tokio::task::JoinSet::new();
    for pod in [POD, INSPECTOR, STRANGER] {
        for c in 0..CONNECTIONS {
            let guard = Arc::clone(&guard);
            tasks.spawn(async move {
                let mut conn = Conn::open(pod, guard.proxy).await;
                let mut problems = Vec::new();
                for i in 0..REQUESTS {
                    let nonce = format!("{pod}-{c}-{i}");
                    let (path, want) = match (pod, i % 3) {
                        (STRANGER, _) => (format!("/latest/meta-data/n/{nonce}"), 403),
                        (_, 0) => (format!("/latest/meta-data/n/{nonce}"), 200),
                        (POD, 1) => (format!("/latest/user-data/{nonce}"), 403),
                        (POD, _) => (
                            format!("/latest/meta-data/iam/security-credentials/{nonce}"),
                            403,
                        ),
                        (_, 1) => (format!("/latest/user-data/{nonce}"), 200),
                        (_, _) => (
                            format!("/latest/meta-data/iam/security-credentials/{nonce}"),
                            200,
                        ),
                    };
                    let reply = conn.get(&path, &nonce).await;
                    if reply.status != want {
                        problems.push(format!("{nonce} {path}: status {}", reply.status));
                    }
                    if want == 200 && reply.echo.as_deref() != Some(nonce.as_str()) {
                        problems.push(format!("{nonce} {path}: answer for {:?}", reply.echo));
                    }
                    if want == 200 && i % 3 == 0 && reply.body != format!("recorded {path}") {
                        problems.push(format!("{nonce} {path}: body {:?}", reply.body));
                    }
                    if want != 200 {
                        problems.extend(answer_problems(&reply.body));
                    }
                }
                problems
            });
        }
    }
    let mut problems = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        problems.extend(joined.unwrap());
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The upstream saw exactly the allowed requests: 4 of 12 per frontend connection, 12 of 12
    // per inspector connection.
    assert_eq!(rec.seen().len(), CONNECTIONS * (REQUESTS / 3 + REQUESTS));
    let frontend: Vec<Seen> = rec
        .seen()
        .into_iter()
        .filter(|s| s.headers["user-agent"].to_str().unwrap().starts_with(POD))
        .collect();
    assert_eq!(forwarded_problems(&frontend), Vec::<String>::new());
}
