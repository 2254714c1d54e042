//! The bypass corpus for the other clouds: one policy per cloud that allows much and denies the
//! few things that matter (GCP's kube-env and identity tokens, Azure's userData, Key Vault and
//! user-assigned identities, OCI's user_data and instance principal, Alibaba's RAM credentials,
//! OpenStack's user_data and password, DigitalOcean's user and vendor data, Hetzner's user data,
//! Tencent's CAM credentials and user data, Huawei's securitykey, user_data and password,
//! Exoscale's user data, Linode's user data), a recording upstream that answers as the most
//! lenient server of that cloud would ([`oracle`]), and raw requests sent byte for byte.
//!
//! Each case gets a guard and upstream of its own. What must hold for every case: nothing
//! forwarded reads, to the lenient server, as denied material or outside the policy; what is
//! forwarded is canonical and carries only the cloud's headers (its gate header with its one
//! value); a forwarded token request carries its TTL once, within the service's range; no secret
//! reaches the pod; GCP answers all carry `Metadata-Flavor: Google`; and an allowed request
//! afterwards is still served.

use std::sync::Arc;

use super::oracle::{self, Cloud};
use super::support::{recorder_answering, toml_list, Guard, Seen};
use super::{canonical, send, statuses, Outcome, CLOSE_WAIT, POD, QUIET};

/// Marks an upstream answer that holds denied material.
pub const SECRET_MARKER: &str = "DENIED-MATERIAL-MARKER";

/// One cloud's corpus setting.
pub struct Profile {
    pub cloud: Cloud,
    /// `[upstream] cloud`.
    pub name: &'static str,
    pub allow: &'static [&'static str],
    pub deny: &'static [&'static str],
    /// An allowed request (without `Connection: close`, added here), sent after each case.
    pub health: &'static str,
    /// Request headers the guard may pass on (the upstream client adds `host`).
    pub forwardable: &'static [&'static str],
    /// The gate header and the one value it may be forwarded with.
    pub gate: Option<(&'static str, &'static str)>,
    /// The token request's TTL header and the longest TTL the service grants, where the cloud's
    /// token flow passes through: a forwarded PUT carries it once, as whole seconds in `1..=max`.
    pub token_ttl: Option<(&'static str, u32)>,
}

impl Profile {
    /// The guard's config: the pod under test with this policy; no rate limits (a case is about
    /// what passes, not how fast).
    pub fn config(&self) -> String {
        format!(
            r#"
[upstream]
cloud = "{cloud}"
url = "{{upstream}}"
connect_timeout_ms = 500
timeout_ms = 1500

[limits]
pod_requests_per_second = 0
upstream_requests_per_second = 0

[[inventory.pods]]
ip = "{POD}"
namespace = "web"
name = "frontend-0"
labels = {{ app = "frontend" }}

[[rules]]
name = "frontend: metadata, nothing secret"
pod_labels = {{ app = "frontend" }}
allow = [{allow}]
deny = [{deny}]
"#,
            cloud = self.name,
            allow = toml_list(self.allow),
            deny = toml_list(self.deny),
        )
    }

    fn health_request(&self) -> Vec<u8> {
        let (head, _) = self.health.split_once("\r\n\r\n").unwrap();
        format!("{head}\r\nConnection: close\r\n\r\n").into_bytes()
    }
}

pub fn gcp() -> Profile {
    Profile {
        cloud: Cloud::Gcp,
        name: "gcp",
        allow: &["/**"],
        deny: &[
            "/computeMetadata/v1/instance/attributes/kube-env",
            "/computeMetadata/v1/instance/attributes/startup-script",
            "/computeMetadata/v1/instance/service-accounts/*/identity",
        ],
        health: "GET /computeMetadata/v1/project/project-id HTTP/1.1\r\nHost: metadata.google.internal\r\nMetadata-Flavor: Google\r\n\r\n",
        forwardable: &["host", "user-agent", "accept", "metadata-flavor"],
        gate: Some(("metadata-flavor", "Google")),
        token_ttl: None,
    }
}

pub fn azure() -> Profile {
    Profile {
        cloud: Cloud::Azure,
        name: "azure",
        allow: &["/metadata/**"],
        deny: &[
            "/metadata/instance/compute/userData",
            "/metadata/identity/oauth2/token?resource=https://vault.azure.net",
            "/metadata/identity/oauth2/token?client_id=*",
            "/metadata/identity/oauth2/token?object_id=*",
            "/metadata/identity/oauth2/token?msi_res_id=*",
            "/metadata/identity/oauth2/token?mi_res_id=*",
        ],
        health: "GET /metadata/instance/compute/vmId?api-version=2021-02-01&format=text HTTP/1.1\r\nHost: 169.254.169.254\r\nMetadata: true\r\n\r\n",
        forwardable: &["host", "user-agent", "accept", "metadata"],
        gate: Some(("metadata", "true")),
        token_ttl: None,
    }
}

pub fn oci() -> Profile {
    Profile {
        cloud: Cloud::Oci,
        name: "oci",
        allow: &["/opc/v2/**", "/opc/v1/**"],
        deny: &["/opc/*/instance/metadata/user_data", "/opc/*/identity/**"],
        health: "GET /opc/v2/instance/region HTTP/1.1\r\nHost: 169.254.169.254\r\nAuthorization: Bearer Oracle\r\n\r\n",
        forwardable: &["host", "user-agent", "accept", "authorization"],
        gate: Some(("authorization", "Bearer Oracle")),
        token_ttl: None,
    }
}

pub fn alibaba() -> Profile {
    Profile {
        cloud: Cloud::Alibaba,
        name: "alibaba",
        allow: &["/latest/meta-data/**"],
        deny: &["/latest/meta-data/ram/**"],
        health: "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 100.100.100.200\r\n\r\n",
        forwardable: &[
            "host",
            "user-agent",
            "accept",
            "x-aliyun-ecs-metadata-token",
            "x-aliyun-ecs-metadata-token-ttl-seconds",
        ],
        gate: None,
        token_ttl: Some(("x-aliyun-ecs-metadata-token-ttl-seconds", 21_600)),
    }
}

pub fn openstack() -> Profile {
    Profile {
        cloud: Cloud::Openstack,
        name: "openstack",
        allow: &["/openstack/**", "/latest/meta-data/**"],
        deny: &["/openstack/*/user_data", "/openstack/*/password"],
        health: "GET /openstack/latest/meta_data.json HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        forwardable: &["host", "user-agent", "accept"],
        gate: None,
        token_ttl: None,
    }
}

/// DigitalOcean: the whole `/metadata/v1` tree, and its document `/metadata/v1.json` by name, so
/// that what refuses the document is the aggregate check (it holds `user_data` and `vendor_data`,
/// which the denies name), not the allow.
pub fn digitalocean() -> Profile {
    Profile {
        cloud: Cloud::Digitalocean,
        name: "digitalocean",
        allow: &["/metadata/v1/**", "/metadata/v1.json"],
        deny: &["/metadata/v1/user-data", "/metadata/v1/vendor-data"],
        health: "GET /metadata/v1/id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        forwardable: &["host", "user-agent", "accept"],
        gate: None,
        token_ttl: None,
    }
}

/// Hetzner: the metadata document (`/hetzner/v1/metadata`, which `**` matches too) and its keys;
/// not the user data beside it.
pub fn hetzner() -> Profile {
    Profile {
        cloud: Cloud::Hetzner,
        name: "hetzner",
        allow: &["/hetzner/v1/metadata/**"],
        deny: &["/hetzner/v1/userdata"],
        health: "GET /hetzner/v1/metadata/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        forwardable: &["host", "user-agent", "accept"],
        gate: None,
        token_ttl: None,
    }
}

/// Tencent: the EC2-style tree at 169.254.0.23, but for the CAM role's credentials (the
/// `security-credentials/` listing too: it names the role) and the user data, which lies outside
/// the allow as well.
pub fn tencent() -> Profile {
    Profile {
        cloud: Cloud::Tencent,
        name: "tencent",
        allow: &["/latest/meta-data/**"],
        deny: &[
            "/latest/meta-data/cam/security-credentials/**",
            "/latest/user-data",
        ],
        health: "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.0.23\r\n\r\n",
        forwardable: &["host", "user-agent", "accept"],
        gate: None,
        token_ttl: None,
    }
}

/// Huawei: OpenStack's tree (every version) and the EC2-style meta-data, but for the agency's
/// temporary AK/SK (`securitykey`), the user data and the admin password.
pub fn huawei() -> Profile {
    Profile {
        cloud: Cloud::Huawei,
        name: "huawei",
        allow: &["/openstack/**", "/latest/meta-data/**"],
        deny: &[
            "/openstack/*/securitykey",
            "/openstack/*/user_data",
            "/openstack/*/password",
        ],
        health: "GET /openstack/latest/meta_data.json HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        forwardable: &["host", "user-agent", "accept"],
        gate: None,
        token_ttl: None,
    }
}

/// Exoscale: the EC2-style meta-data under `/1.0/` and `/latest/`; the user data beside it in
/// any version.
pub fn exoscale() -> Profile {
    Profile {
        cloud: Cloud::Exoscale,
        name: "exoscale",
        allow: &["/1.0/meta-data/**", "/latest/meta-data/**"],
        deny: &["/*/user-data"],
        health: "GET /1.0/meta-data/instance-id HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        forwardable: &["host", "user-agent", "accept"],
        gate: None,
        token_ttl: None,
    }
}

/// Linode (Akamai): everything under `/v1/` (instance, network, SSH keys) but the user data. Its
/// own token flow passes through: `PUT /v1/token` with `Metadata-Token-Expiry-Seconds` (up to a
/// day), reads with `Metadata-Token`. The health read is one request, so it carries no token, as
/// Alibaba's does (the recorder takes any).
pub fn linode() -> Profile {
    Profile {
        cloud: Cloud::Linode,
        name: "linode",
        allow: &["/v1/**"],
        deny: &["/v1/user-data"],
        health: "GET /v1/instance HTTP/1.1\r\nHost: 169.254.169.254\r\n\r\n",
        forwardable: &[
            "host",
            "user-agent",
            "accept",
            "metadata-token",
            "metadata-token-expiry-seconds",
        ],
        gate: None,
        token_ttl: Some(("metadata-token-expiry-seconds", 86_400)),
    }
}

/// Everything wrong with what reached the upstream.
pub fn forwarded_problems(profile: &Profile, seen: &[Seen]) -> Vec<String> {
    let mut problems = Vec::new();
    for s in seen {
        let t = &s.target;
        let (path, query) = match t.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (t.as_str(), None),
        };
        let mut bad = canonical::canonical_problems(path);
        bad.extend(canonical::decoding_problems(path));
        if let Some(q) = query {
            bad.extend(canonical::query_problems(q));
        }
        if !bad.is_empty() {
            problems.push(format!(
                "forwarded non-canonical {} {t:?}: {bad:?}",
                s.method
            ));
        }
        let secrets = oracle::secrets_reached(profile.cloud, &s.method, t);
        if !secrets.is_empty() {
            problems.push(format!(
                "forwarded {} {t:?}, from which a lenient server hands out {secrets:?}",
                s.method
            ));
        }
        for outside in oracle::outside_policy(profile.cloud, &s.method, t) {
            problems.push(format!(
                "forwarded {} {t:?}, which a lenient server reads as {outside}, outside the policy",
                s.method
            ));
        }
        for name in s.headers.keys() {
            if !profile.forwardable.contains(&name.as_str()) {
                problems.push(format!("forwarded header {name} with {t:?}"));
            }
        }
        if let Some((gate, value)) = profile.gate {
            let values: Vec<_> = s.headers.get_all(gate).iter().collect();
            if values.len() > 1 || values.iter().any(|v| v.as_bytes() != value.as_bytes()) {
                problems.push(format!("forwarded {gate} as {values:?} with {t:?}"));
            }
        }
        if let (Some((ttl, max)), "PUT") = (profile.token_ttl, s.method.as_str()) {
            let values: Vec<_> = s.headers.get_all(ttl).iter().collect();
            let seconds = |v: &&http::HeaderValue| {
                let text = std::str::from_utf8(v.as_bytes()).unwrap_or("");
                text.bytes().all(|b| b.is_ascii_digit())
                    && text.parse::<u32>().is_ok_and(|n| (1..=max).contains(&n))
            };
            if values.len() != 1 || !values.iter().all(seconds) {
                problems.push(format!(
                    "forwarded PUT {t:?} with {ttl} {values:?}, not once from 1 to {max}"
                ));
            }
        }
    }
    problems
}

/// Everything wrong with what the client got back.
pub fn answer_problems(profile: &Profile, reply: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if reply.contains(SECRET_MARKER) {
        problems.push("client received denied material".to_owned());
    }
    if profile.cloud == Cloud::Gcp {
        // Every answer the guard makes; not the bare 400 that the HTTP parser gives a request
        // it cannot read (no handler runs for it, and it closes the connection).
        let lower = reply.to_ascii_lowercase();
        for (at, _) in lower.match_indices("http/1.") {
            let head = lower[at..].split("\r\n\r\n").next().unwrap_or("");
            let parser_refusal =
                head.starts_with("http/1.1 400") && head.contains("\r\ncontent-length: 0");
            if !parser_refusal && !head.contains("\r\nmetadata-flavor: google") {
                problems.push(format!(
                    "an answer without Metadata-Flavor: Google: {head:?}"
                ));
            }
        }
    }
    problems
}

/// Sends one case to a guard of its own for `profile`, then the health request; checks what was
/// forwarded and what came back.
pub async fn run_case(profile: Arc<Profile>, name: String, bytes: Vec<u8>) -> Outcome {
    let cloud = profile.cloud;
    let answer = Arc::new(move |target: &str| {
        let secrets = oracle::secrets_reached(cloud, "GET", target);
        if secrets.is_empty() {
            format!("recorded {target}")
        } else {
            format!("{SECRET_MARKER} {secrets:?} for {target}")
        }
    });
    let rec = recorder_answering(std::time::Duration::ZERO, answer).await;
    let guard = Guard::start(&profile.config(), rec.addr).await;
    let reply = send(POD, guard.proxy, &bytes, QUIET).await;
    let mut problems = answer_problems(&profile, &reply);

    let health = send(POD, guard.proxy, &profile.health_request(), CLOSE_WAIT).await;
    if statuses(&health).first() != Some(&200) || !health.contains("recorded /") {
        problems.push(format!(
            "an allowed request afterwards was not served: {health:?}"
        ));
    }
    if let Err(e) = guard.stop().await {
        problems.push(format!("the guard did not stop cleanly: {e}"));
    }
    let seen = rec.seen();
    problems.extend(forwarded_problems(&profile, &seen));
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

/// Runs `cases` against `profile` concurrently; panics listing every problem.
pub async fn check_corpus(profile: Profile, cases: Vec<super::corpus::Case>, at_least: usize) {
    let count = cases.len();
    assert!(
        count >= at_least,
        "the {} corpus has only {count} cases",
        profile.name
    );
    let mut names: Vec<&str> = cases.iter().map(|(n, _)| n.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), count, "case names must be distinct");

    let profile = Arc::new(profile);
    let mut tasks = tokio::task::JoinSet::new();
    for (index, (name, bytes)) in cases.into_iter().enumerate() {
        let profile = Arc::clone(&profile);
        tasks.spawn(async move { (index, run_case(profile, name, bytes).await) });
    }
    let mut outcomes = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        outcomes.push(joined.expect("a case panicked"));
    }
    outcomes.sort_by_key(|(index, _)| *index);
    let mut failures = Vec::new();
    for (_, o) in &outcomes {
        println!(
            "{:<56} {:?} forwarded {:?}",
            o.name, o.statuses, o.forwarded
        );
        for problem in &o.problems {
            failures.push(format!("{}: {problem}", o.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} problems in {count} {} cases:\n{}",
        failures.len(),
        profile.name,
        failures.join("\n")
    );
}

/// `request_line` with a Host header, `headers` (each ending in CRLF) and `body`, as given.
pub fn raw(request_line: &str, headers: &str, body: &str) -> Vec<u8> {
    raw_to("169.254.169.254", request_line, headers, body)
}

/// [`raw`] with `Host: {host}`.
pub fn raw_to(host: &str, request_line: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("{request_line}\r\nHost: {host}\r\n{headers}\r\n{body}").into_bytes()
}

/// The smuggling shapes of the AWS corpus, each hiding `inner` (a whole request) behind an
/// allowed `outer` target, with `gate` (a header line or "") on both.
pub fn smuggling(outer: &str, inner: &str, gate: &str) -> Vec<(String, Vec<u8>)> {
    let smuggled = format!("{inner}\r\nHost: 169.254.169.254\r\n{gate}\r\n");
    let n = smuggled.len();
    let get = format!("GET {outer} HTTP/1.1");
    let post = format!("POST {outer} HTTP/1.1");
    let mut out = vec![
        (
            "smuggle: CL.TE",
            raw(
                &post,
                &format!(
                    "{gate}Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                    5 + n
                ),
                &format!("0\r\n\r\n{smuggled}"),
            ),
        ),
        (
            "smuggle: TE.CL",
            raw(
                &get,
                &format!("{gate}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n"),
                &format!("{n:x}\r\n{smuggled}\r\n0\r\n\r\n"),
            ),
        ),
        (
            "smuggle: body is a request",
            raw(&get, &format!("{gate}Content-Length: {n}\r\n"), &smuggled),
        ),
        (
            "smuggle: duplicate Content-Length",
            raw(
                &get,
                &format!("{gate}Content-Length: 0\r\nContent-Length: {n}\r\n"),
                &smuggled,
            ),
        ),
        (
            "smuggle: Content-Length list",
            raw(
                &get,
                &format!("{gate}Content-Length: 0, {n}\r\n"),
                &smuggled,
            ),
        ),
        (
            "smuggle: TE chunked, identity",
            raw(
                &get,
                &format!("{gate}Transfer-Encoding: chunked, identity\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
        ),
        (
            "smuggle: obs-fold Transfer-Encoding",
            raw(
                &get,
                &format!("{gate}Transfer-Encoding:\r\n chunked\r\n"),
                &format!("0\r\n\r\n{smuggled}"),
            ),
        ),
        (
            "smuggle: obs-fold carrying a request line",
            raw(&get, &format!("{gate}User-Agent: x\r\n {inner}\r\n"), ""),
        ),
        (
            "smuggle: bare LF header then request",
            format!("{get}\r\nHost: x\r\n{gate}X: a\n{inner}\r\nHost: x\r\n{gate}\r\n")
                .into_bytes(),
        ),
        (
            "pipeline: allowed then denied",
            [
                raw(&get, gate, ""),
                format!("{inner}\r\nHost: x\r\n{gate}\r\n").into_bytes(),
            ]
            .concat(),
        ),
    ];
    out.push((
        "smuggle: CRLF in target",
        raw(
            &format!("GET {outer}%0d%0a{} HTTP/1.1", inner.replace(' ', "%20")),
            gate,
            "",
        ),
    ));
    out.into_iter().map(|(n, b)| (n.to_owned(), b)).collect()
}
