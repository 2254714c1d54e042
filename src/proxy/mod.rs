//! The proxy: one HTTP/1 request in, one decision, one answer out, one audit line.
//!
//! Order of work for each request: read the target strictly (400), refuse bodies (400), identify
//! the pod from the source address, decide, then either forward to the metadata service or refuse.
//! Audit mode forwards what the policy would deny, never what could not be read safely.

pub mod respond;
pub mod upstream;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::{Body as _, Incoming};

use crate::audit::{self, Event};
use crate::config::Mode;
use crate::imds::{self, Kind, Method};
use crate::inventory::{Index, Lookup, Wait as _};
use crate::metrics::{ErrorLabels, Metrics, RequestLabels};
use crate::net::TtlHandle;
use crate::policy::{Decision, Facts, Reason, Verdict};
use crate::reload::{Current, Live};
use crate::target::{parse_target, CanonicalPath};
use upstream::{Answer, Upstream, UpstreamError};

/// Request headers passed to the metadata service; everything else (X-Forwarded-For, hop-by-hop
/// headers, cookies, Host…) is dropped. The service needs nothing more, and an allowlist cannot be
/// outwitted by a header nobody thought of.
const FORWARDED_REQUEST_HEADERS: [HeaderName; 4] =
    [header::USER_AGENT, header::ACCEPT, TOKEN, TOKEN_TTL];

/// The IMDSv2 headers as names, looked up without parsing a string each time.
const TOKEN: HeaderName = HeaderName::from_static(imds::TOKEN_HEADER);
const TOKEN_TTL: HeaderName = HeaderName::from_static(imds::TOKEN_TTL_HEADER);

/// Response headers that describe one connection, not the answer (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Everything a request needs, shared by all connections.
pub struct Proxy {
    /// The policy, mode and hop limit in force; swapped whole on reload.
    pub live: Arc<Live>,
    pub inventory: Arc<Index>,
    pub upstream: Upstream,
    pub audit: Arc<dyn audit::Sink>,
    pub metrics: Arc<Metrics>,
    /// How long a request from an unknown address waits for the inventory to learn it (the pod
    /// may have started a moment before the watch delivered it). Zero for static inventories.
    pub unknown_source_grace: std::time::Duration,
}

/// What the audit line and metrics need to know once the answer is made.
struct Outcome {
    decision: &'static str,
    reason: Reason,
    rule: Option<Arc<str>>,
    upstream_ms: Option<f64>,
    error: Option<&'static str>,
    /// The answer carries a token from the service.
    token: bool,
}

impl Proxy {
    /// Handles one request from `peer` on the connection whose TTL `ttl` controls. Never fails:
    /// every problem becomes an answer.
    pub async fn handle(
        &self,
        peer: IpAddr,
        request: Request<Incoming>,
        ttl: &TtlHandle,
    ) -> Response<Full<Bytes>> {
        let started = Instant::now();
        let src = peer.to_canonical();
        let method_name = request.method().as_str();
        let method = Method::from_name(method_name);
        let has_token = request.headers().contains_key(TOKEN);
        let imds_version = if has_token || method == Method::Put {
            "v2"
        } else {
            "v1"
        };

        let target = target_text(request.uri());
        let lookup = self
            .inventory
            .lookup_or_wait(src, self.unknown_source_grace)
            .await;
        let (pod_name, pod_uid) = match &lookup {
            Lookup::Found(pod) => (Some(pod.qualified_name()), Some(pod.uid.as_str())),
            _ => (None, None),
        };

        // One snapshot for the whole request: a reload mid-request cannot mix two policies.
        let current = self.live.load();
        let parsed = parse_target(&target);
        let (mut response, outcome, audit_path) = match &parsed {
            Err(e) => {
                tracing::info!(%src, target = %shorten(&target), error = %e, "refused request target");
                let outcome = refused(Reason::BadRequest, None);
                let response = respond::refusal(Reason::BadRequest, pod_name.as_deref(), None);
                (response, outcome, Cow::Owned(shorten(&target)))
            }
            Ok(path) => {
                let (response, outcome) = self
                    .decide_and_answer(
                        &current,
                        &request,
                        &lookup,
                        pod_name.as_deref(),
                        method,
                        path,
                        has_token,
                    )
                    .await;
                (response, outcome, Cow::Borrowed(path.as_str()))
            }
        };

        if let (true, Some(hops)) = (outcome.token, current.token_hop_limit) {
            // The TTL goes back up only a flush after a reset, and a retransmitted segment could
            // carry the higher one: a connection that carried a token ends with it.
            ttl.set(u32::from(hops));
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let status = response.status().as_u16();
        let bytes = usize::try_from(response.body().size_hint().exact().unwrap_or(0)).unwrap_or(0);
        let elapsed = started.elapsed();
        self.audit.record(&Event {
            ts: audit::now(),
            src,
            pod: pod_name.as_deref(),
            pod_uid,
            method: shorten_method(method_name),
            path: &audit_path,
            decision: outcome.decision,
            reason: outcome.reason.as_str(),
            rule: outcome.rule.as_deref(),
            status,
            imds_version,
            upstream_ms: outcome.upstream_ms,
            error: outcome.error,
            bytes,
            duration_ms: millis(elapsed),
        });
        self.metrics
            .requests
            .get_or_create(&RequestLabels {
                decision: outcome.decision,
                reason: outcome.reason.as_str(),
                status,
            })
            .inc();
        self.metrics.request_duration.observe(elapsed.as_secs_f64());
        response
    }

    #[allow(clippy::too_many_arguments)]
    async fn decide_and_answer(
        &self,
        current: &Current,
        request: &Request<Incoming>,
        lookup: &Lookup,
        pod_name: Option<&str>,
        method: Method,
        path: &CanonicalPath,
        has_token: bool,
    ) -> (Response<Full<Bytes>>, Outcome) {
        // The metadata service takes no request bodies (the token PUT is empty); a body is either
        // a mistake or a smuggling attempt.
        if !request.body().is_end_stream()
            || request.headers().contains_key(header::TRANSFER_ENCODING)
        {
            return (
                respond::refusal(Reason::BadRequest, pod_name, None),
                refused(Reason::BadRequest, None),
            );
        }
        let facts = Facts {
            method,
            path,
            has_token,
        };
        let decision = current.policy.decide_for(lookup, &facts);
        let would_deny = decision.verdict == Verdict::Deny;
        if would_deny && !(current.mode == Mode::Audit && decision.reason.audit_mode_may_forward())
        {
            let response = respond::refusal(decision.reason, pod_name, decision.rule.as_deref());
            return (response, refused(decision.reason, decision.rule));
        }
        let label = if would_deny { "would-deny" } else { "allow" };

        let mut headers = forwarded_headers(request.headers());
        let kind = imds::classify(method, path);
        let mut granted_ttl = None;
        if kind == Kind::TokenRequest {
            match imds::parse_ttl(request.headers().get(TOKEN_TTL).map(HeaderValue::as_bytes)) {
                Ok(ttl) => {
                    let ttl = ttl.min(decision.max_token_ttl_seconds);
                    headers.insert(TOKEN_TTL, HeaderValue::from(ttl));
                    granted_ttl = Some(ttl);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "refused token request");
                    let response =
                        respond::refusal(Reason::BadRequest, pod_name, decision.rule.as_deref());
                    return (response, refused(Reason::BadRequest, decision.rule));
                }
            }
        }

        let sent = match upstream_target(request.uri(), path) {
            // Boxed: hyper keeps room for a request's whole future on every open connection, so
            // the exchange's state is allocated only while a request is forwarded.
            Ok(target) => {
                Box::pin(
                    self.upstream
                        .send(request.method().clone(), target, headers),
                )
                .await
            }
            Err(e) => Err(e),
        };
        match sent {
            Ok(answer) => {
                self.metrics
                    .upstream_duration
                    .observe(answer.elapsed.as_secs_f64());
                let outcome = Outcome {
                    decision: label,
                    reason: decision.reason,
                    upstream_ms: Some(millis(answer.elapsed)),
                    rule: decision.rule,
                    error: None,
                    token: false,
                };
                let response = relay(answer, granted_ttl);
                let outcome = Outcome {
                    token: granted_ttl.is_some() && response.status().is_success(),
                    ..outcome
                };
                (response, outcome)
            }
            Err(err) => (
                self.upstream_failed(&err, pod_name, &decision),
                Outcome {
                    decision: label,
                    reason: decision.reason,
                    upstream_ms: None,
                    error: Some(err.kind()),
                    rule: decision.rule,
                    token: false,
                },
            ),
        }
    }

    fn upstream_failed(
        &self,
        err: &UpstreamError,
        pod: Option<&str>,
        decision: &Decision,
    ) -> Response<Full<Bytes>> {
        tracing::warn!(error = %err, "forwarding to the metadata service failed");
        self.metrics
            .upstream_errors
            .get_or_create(&ErrorLabels { kind: err.kind() })
            .inc();
        respond::upstream_failure(err, pod, decision.rule.as_deref())
    }
}

fn refused(reason: Reason, rule: Option<Arc<str>>) -> Outcome {
    Outcome {
        decision: "deny",
        reason,
        rule,
        upstream_ms: None,
        error: None,
        token: false,
    }
}

/// The request target as the client sent it, in a form the strict reader can judge: origin-form
/// as is; absolute-, authority- and asterisk-form in full so that they are recognised and refused.
fn target_text(uri: &http::Uri) -> Cow<'_, str> {
    match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, None, Some(pq)) => Cow::Borrowed(pq.as_str()),
        _ => Cow::Owned(uri.to_string()),
    }
}

/// The target sent upstream: the canonical path. When the client wrote it exactly so (the usual
/// case), its already-read form is reused rather than read again.
fn upstream_target(asked: &http::Uri, path: &CanonicalPath) -> Result<http::Uri, UpstreamError> {
    match (asked.scheme(), asked.authority(), asked.path_and_query()) {
        (None, None, Some(pq)) if pq.as_str() == path.as_str() => Ok(asked.clone()),
        _ => http::Uri::try_from(path.as_str())
            .map_err(|e| UpstreamError::Broken(format!("cannot build upstream URI: {e}"))),
    }
}

fn forwarded_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(FORWARDED_REQUEST_HEADERS.len());
    for name in FORWARDED_REQUEST_HEADERS {
        // One value each: a repeated token or TTL header is not something a real client sends, and
        // passing several would let upstream and guard read different ones.
        if let Some(value) = incoming.get(&name) {
            headers.insert(name, value.clone());
        }
    }
    headers
}

/// The upstream answer as the client gets it, without connection-level headers.
fn relay(answer: Answer, granted_ttl: Option<u32>) -> Response<Full<Bytes>> {
    let Answer {
        status,
        mut headers,
        body,
        ..
    } = answer;
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    // One look at the (few) headers there are, rather than a lookup for each that might be.
    let unwanted: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(&name.as_str()) || listed.contains(name))
        .cloned()
        .collect();
    for name in unwanted {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
    // Some SDKs (the Rust one) fail on a token answer without the TTL header.
    if let (Some(ttl), true) = (granted_ttl, status.is_success()) {
        headers
            .entry(TOKEN_TTL)
            .or_insert_with(|| HeaderValue::from(ttl));
    }
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// Milliseconds with microsecond precision, as audit lines show them.
fn millis(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Bounds what a hostile target can put in a log or audit line.
fn shorten(text: &str) -> String {
    const MAX: usize = 256;
    if text.len() <= MAX {
        return text.to_owned();
    }
    let mut end = MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn shorten_method(method: &str) -> &str {
    let mut end = method.len().min(32);
    while !method.is_char_boundary(end) {
        end -= 1;
    }
    &method[..end]
}
