//! One request as the guard handles it: read once from the request's parts, carried through the
//! decision and the answer, and written out whole as one audit line and its metrics.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;

use crate::audit::{self, Event};
use crate::cloud::Cloud;
use crate::disposition::{Disposal, Refusal};
use crate::front::Check;
use crate::imds::Method;
use crate::inventory::{Lookup, Origin, Pod};
use crate::metrics::{Metrics, RequestLabels, RuleLabels};
use crate::policy::{Decision, Reason};
use crate::respond;

use super::relay::TOKEN;

/// Everything known about one request, from its first byte to its audit line.
pub(super) struct Exchange<'r> {
    /// Whose server's protocol the answers follow.
    cloud: Cloud,
    started: Instant,
    /// The source address, IPv4-mapped addresses read as IPv4.
    src: IpAddr,
    /// How the pod is identified: by address, or by the cgroup the kernel recorded.
    origin: Origin<'r>,
    /// The method as sent (shortened for the audit line when written).
    method_name: &'r str,
    method: Method,
    /// Whether the request carries an IMDSv2 token header.
    has_token: bool,
    /// `v2` for token requests and reads with a token, `v1` otherwise.
    imds_version: &'static str,
    /// The pod the inventory named, when it named exactly one.
    pod: Option<Arc<Pod>>,
    /// `namespace/name` of that pod, made once for the refusal body and the audit line.
    pod_name: Option<String>,
    /// What becomes of the request; a refusal until a decision says otherwise.
    disposal: Disposal,
    reason: Reason,
    rule: Option<Arc<str>>,
    /// Time the metadata service took, when it answered.
    upstream_ms: Option<f64>,
    /// Why forwarding failed, when it did.
    error: Option<&'static str>,
    /// The answer carries a token (so the hop limit applies to it).
    carried_token: bool,
    /// How the cache took part, when it did.
    cache: Option<CacheUse>,
    /// Guard tokens: issued here, or how the pod's token checked out.
    token: Option<TokenUse>,
}

/// How the response cache took part in an answer (the audit line's `cache`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CacheUse {
    /// Answered from the cache.
    Hit,
    /// Fetched, by this request, for it and any that joined it.
    Miss,
    /// Answered with what another request's fetch brought.
    Shared,
}

impl CacheUse {
    pub fn as_str(self) -> &'static str {
        match self {
            CacheUse::Hit => "hit",
            CacheUse::Miss => "miss",
            CacheUse::Shared => "shared",
        }
    }
}

/// What became of a guard token in a request (the audit line's `token`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum TokenUse {
    /// The guard issued one to the pod.
    Issued,
    /// The pod sent one, and it checked out so.
    Checked(Check),
}

impl TokenUse {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenUse::Issued => "issued",
            TokenUse::Checked(check) => check.as_str(),
        }
    }
}

impl<'r> Exchange<'r> {
    /// Reads what every request has: source, method, token header.
    pub fn new<B>(peer: IpAddr, request: &'r Request<B>, cloud: Cloud, origin: Origin<'r>) -> Self {
        let method_name = request.method().as_str();
        let method = Method::from_name(method_name);
        let has_token = match cloud {
            Cloud::Aws => request.headers().contains_key(TOKEN),
            _ => cloud
                .token_headers()
                .is_some_and(|(token, _)| request.headers().contains_key(token)),
        };
        Self {
            cloud,
            started: Instant::now(),
            src: peer.to_canonical(),
            origin,
            method_name,
            method,
            has_token,
            imds_version: if has_token || method == Method::Put {
                "v2"
            } else {
                "v1"
            },
            pod: None,
            pod_name: None,
            disposal: Disposal::Refuse,
            reason: Reason::BadRequest,
            rule: None,
            upstream_ms: None,
            error: None,
            carried_token: false,
            cache: None,
            token: None,
        }
    }

    /// Whose server's protocol the answers follow.
    pub fn cloud(&self) -> Cloud {
        self.cloud
    }

    /// The source address, IPv4-mapped addresses read as IPv4.
    pub fn src(&self) -> IpAddr {
        self.src
    }

    /// How the pod is to be identified.
    pub fn origin(&self) -> Origin<'r> {
        self.origin
    }

    pub fn method(&self) -> Method {
        self.method
    }

    /// Whether the request carries an IMDSv2 token header.
    pub fn has_token(&self) -> bool {
        self.has_token
    }

    /// Notes that the answer carries a token, so that the hop limit applies to it.
    pub fn carries_token(&mut self) {
        self.carried_token = true;
    }

    /// Whether the answer carries a token.
    pub fn carried_token(&self) -> bool {
        self.carried_token
    }

    /// Notes how the cache took part.
    pub fn cache(&mut self, used: CacheUse) {
        self.cache = Some(used);
    }

    /// Notes what became of a guard token.
    pub fn token(&mut self, used: TokenUse) {
        self.token = Some(used);
    }

    /// Notes whom the inventory says the source is.
    pub fn identify(&mut self, lookup: &Lookup) {
        // A mismatch names the pod the kernel named: the one that tried.
        if let Lookup::Found(pod) | Lookup::Mismatch(pod) = lookup {
            self.pod_name = Some(pod.qualified_name());
            self.pod = Some(Arc::clone(pod));
        }
    }

    /// Notes the decision and what becomes of it.
    pub fn decided(&mut self, decision: &Decision, disposal: Disposal) {
        self.disposal = disposal;
        self.reason = decision.reason;
        self.rule = decision.rule.clone();
    }

    /// Refuses for `reason` (keeping the rule already noted, if any) and makes the answer.
    pub fn refuse(&mut self, reason: Reason) -> Response<Full<Bytes>> {
        self.disposal = Disposal::Refuse;
        self.reason = reason;
        self.answer(Refusal::Denied(reason))
    }

    /// The guard's own answer for `refusal`, naming the pod and the rule noted so far.
    pub fn answer(&self, refusal: Refusal) -> Response<Full<Bytes>> {
        respond::refusal(
            refusal,
            self.cloud,
            self.pod_name.as_deref(),
            self.rule.as_deref(),
        )
    }

    /// Notes how long the metadata service took.
    pub fn answered_after(&mut self, elapsed: Duration) {
        self.upstream_ms = Some(millis(elapsed));
    }

    /// Notes why forwarding failed.
    pub fn failed(&mut self, error: &'static str) {
        self.error = Some(error);
    }

    /// Writes the audit line and the request metrics for the answer given. `path` is the
    /// canonical path, or the (shortened) target as sent when it could not be read;
    /// `workload_labels` the pod labels the line carries (`[audit] workload_labels`).
    pub fn finish(
        self,
        path: &str,
        workload_labels: &[String],
        response: &Response<Full<Bytes>>,
        sink: &dyn audit::Sink,
        metrics: &Metrics,
    ) {
        let status = response.status().as_u16();
        let bytes = usize::try_from(response.body().size_hint().exact().unwrap_or(0)).unwrap_or(0);
        let elapsed = self.started.elapsed();
        let decision = self.disposal.as_str();
        sink.record(&Event {
            ts: audit::now(),
            src: self.src,
            pod: self.pod_name.as_deref(),
            pod_uid: self.pod.as_deref().map(|pod| pod.uid.as_str()),
            labels: self.pod.as_deref().map(|pod| audit::WorkloadLabels {
                keys: workload_labels,
                labels: &pod.labels,
            }),
            owner: self
                .pod
                .as_deref()
                .and_then(|pod| pod.owner.as_ref())
                .map(audit::OwnerOf),
            method: shorten_method(self.method_name),
            path,
            decision,
            reason: self.reason.as_str(),
            rule: self.rule.as_deref(),
            status,
            imds_version: self.imds_version,
            upstream_ms: self.upstream_ms,
            error: self.error,
            cache: self.cache.map(CacheUse::as_str),
            token: self.token.map(TokenUse::as_str),
            identity: self.origin.as_str(),
            bytes,
            duration_ms: millis(elapsed),
        });
        metrics
            .requests
            .get_or_create(&RequestLabels {
                decision,
                reason: self.reason.as_str(),
                status,
            })
            .inc();
        if let Some(rule) = self.rule.as_deref() {
            metrics
                .rule_decisions
                .get_or_create(&RuleLabels {
                    rule: rule.to_owned(),
                    decision,
                })
                .inc();
        }
        metrics.request_duration.observe(elapsed.as_secs_f64());
    }
}

/// Milliseconds with microsecond precision, as audit lines show them.
fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1_000_000.0).round() / 1000.0
}

/// Bounds what a hostile target can put in a log or audit line.
pub(super) fn shorten(text: &str) -> String {
    audit::bounded(text, 256).into_owned()
}

fn shorten_method(method: &str) -> &str {
    &method[..method.floor_char_boundary(32)]
}
