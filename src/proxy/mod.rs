//! The proxy: one HTTP/1 request in, one decision, one answer out, one audit line.
//!
//! Order of work for each request: read the target strictly (400) and refuse bodies (400) — at
//! once, before the source is looked up, so a malformed request never waits for the inventory —
//! then identify the pod from the source address, decide, and either forward to the metadata
//! service or refuse. Audit mode forwards what the policy would deny, never what could not be read
//! safely ([`Disposal::of`]). The request is one [`Exchange`], built from the request's parts and
//! carried to its audit line.

mod canary;
mod exchange;
mod front;
mod relay;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;

use crate::audit;
use crate::cloud::{self, Cloud};
use crate::disposition::{Disposal, Refusal};
use crate::imds::{self, Kind};
use crate::inventory::{Index, Origin, Wait as _};
use crate::metrics::{ErrorLabels, Metrics};
use crate::policy::{Facts, Reason};
use crate::query::{self, Query};
use crate::reload::{Current, Live};
use crate::target::CanonicalPath;
use crate::upstream::{Forward, Upstream};
use exchange::{shorten, Exchange};
use relay::{forwarded_headers, protocol_refusal, relay, target_text, upstream_target, TOKEN_TTL};

/// The longest a GCP long poll (`wait_for_change=true`) is held open, whatever its
/// `timeout_sec`; the server's own default when none is given is longer than any client waits.
pub const MAX_LONG_POLL: Duration = Duration::from_secs(300);

/// For a GCP long poll: how long the upstream exchange may take — its `timeout_sec` (at most
/// [`MAX_LONG_POLL`]) and a few seconds for the answer to arrive after it.
fn long_poll(cloud: Cloud, query: &Query) -> Option<Duration> {
    if cloud != Cloud::Gcp || query.get("wait_for_change") != Some("true") {
        return None;
    }
    let asked = query
        .get("timeout_sec")
        .and_then(|s| s.parse::<u64>().ok())
        .map_or(MAX_LONG_POLL, Duration::from_secs);
    Some(asked.min(MAX_LONG_POLL) + Duration::from_secs(5))
}

/// Everything a request needs, shared by all connections of a worker.
pub struct Proxy<U = Upstream> {
    /// The policy, mode and hop limit in force; swapped whole on reload.
    pub live: Arc<Live>,
    pub inventory: Arc<Index>,
    /// Where allowed requests go: the metadata service, or a fake in tests.
    pub upstream: U,
    pub audit: Arc<dyn audit::Sink>,
    pub metrics: Arc<Metrics>,
    /// How long a request from an unknown address waits for the inventory to learn it (the pod
    /// may have started a moment before the watch delivered it). Zero for static inventories.
    pub unknown_source_grace: Duration,
    /// Guard tokens, the cache and the limits, shared by every worker.
    pub front: Arc<crate::front::Front>,
}

/// How the connection a request came on is to be identified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// By its source address (netfilter interception, sidecars, local runs).
    Address,
    /// By the cgroup the kernel recorded for it (cgroup interception): the pod UID, or `None`
    /// when there was no record or the cgroup is no pod's.
    Cgroup(Option<Arc<str>>),
}

impl Source {
    /// The index's view of it.
    pub fn origin(&self) -> Origin<'_> {
        match self {
            Source::Address => Origin::Address,
            Source::Cgroup(uid) => Origin::Cgroup(uid.as_deref()),
        }
    }
}

impl<U: Forward + Clone> Proxy<U> {
    /// Handles one request from `peer`, identified by its address. Never fails: every problem
    /// becomes an answer. With the answer comes the IP TTL it must leave with, when it carries a
    /// token and `[imdsv2] hop_limit` is set.
    pub async fn handle<B: Body>(
        &self,
        peer: IpAddr,
        request: Request<B>,
    ) -> (Response<Full<Bytes>>, Option<u8>) {
        self.handle_from(peer, &Source::Address, request).await
    }

    /// Handles one request from `peer`, identified as `source` says.
    pub async fn handle_from<B: Body>(
        &self,
        peer: IpAddr,
        source: &Source,
        request: Request<B>,
    ) -> (Response<Full<Bytes>>, Option<u8>) {
        // The interception canary is the guard's own business: no pod, no policy, no audit line.
        if let Some(response) = canary::answer(&request, &self.live, &self.metrics) {
            return (response, None);
        }
        // One snapshot for the whole request: a reload mid-request cannot mix two policies.
        let current = self.live.load();
        let cloud = current.policy.cloud();
        let mut exchange = Exchange::new(peer, &request, cloud, source.origin());
        let target = target_text(request.uri());
        let parsed = query::read(cloud, &target);
        let (mut response, audit_path) = match &parsed {
            Err(e) => {
                tracing::info!(src = %exchange.src, target = %shorten(&target), error = %e, "refused request target");
                // Named if the inventory knows the source now; never waited for.
                exchange.identify(&self.inventory.identify(exchange.src, exchange.origin));
                let response = exchange.refuse(Reason::BadRequest);
                (response, Cow::Owned(shorten(&target)))
            }
            Ok((path, query)) => {
                // Boxed: hyper keeps room for a request's whole future on every open connection,
                // idle ones included, so the state of deciding and forwarding is allocated only
                // while a request is decided and forwarded (one allocation, as the upstream
                // exchange alone needed before).
                let response = Box::pin(self.decide_and_answer(
                    &current,
                    &mut exchange,
                    &request,
                    path,
                    query,
                ))
                .await;
                let audit_path = if query.is_empty() {
                    Cow::Borrowed(path.as_str())
                } else {
                    Cow::Owned(shorten(&format!("{path}?{}", query.canonical())))
                };
                (response, audit_path)
            }
        };
        if cloud == Cloud::Gcp {
            // Client libraries reject an answer without it, refusals included.
            response.headers_mut().insert(
                HeaderName::from_static(cloud::GCP_FLAVOR_HEADER),
                HeaderValue::from_static(cloud::GCP_FLAVOR),
            );
        }
        let hops = current.token_hop_limit.filter(|_| exchange.carried_token);
        if hops.is_some() {
            // The TTL goes back up only a flush after a reset, and a retransmitted segment could
            // carry the higher one: a connection that carried a token ends with it.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        exchange.finish(
            &audit_path,
            &current.workload_labels,
            &response,
            &*self.audit,
            &self.metrics,
        );
        (response, hops)
    }

    async fn decide_and_answer<B: Body>(
        &self,
        current: &Current,
        exchange: &mut Exchange<'_>,
        request: &Request<B>,
        path: &CanonicalPath,
        query: &Query,
    ) -> Response<Full<Bytes>> {
        let cloud = current.policy.cloud();
        // The metadata service takes no request bodies (the token PUT is empty); a body is either
        // a mistake or a smuggling attempt. Refused before the source is looked up.
        if !request.body().is_end_stream()
            || request.headers().contains_key(header::TRANSFER_ENCODING)
        {
            exchange.identify(&self.inventory.identify(exchange.src, exchange.origin));
            return exchange.refuse(Reason::BadRequest);
        }
        if let Some(reason) = protocol_refusal(cloud, request.headers(), path) {
            tracing::info!(src = %exchange.src, reason = reason.as_str(), "refused by the {cloud} protocol rules");
            exchange.identify(&self.inventory.identify(exchange.src, exchange.origin));
            return exchange.refuse(reason);
        }
        let lookup = self
            .inventory
            .identify_or_wait(exchange.src, exchange.origin, self.unknown_source_grace)
            .await;
        exchange.identify(&lookup);
        let facts = Facts::in_cloud(cloud, exchange.method, path, query, exchange.has_token);
        let decision = current.policy.decide_for(&lookup, &facts);
        let disposal = Disposal::of(&decision, current.mode);
        exchange.decided(&decision, disposal);
        if !disposal.forwards() {
            return exchange.answer(Refusal::Denied(decision.reason));
        }
        // Allowed (or forwarded in audit mode): within the pod's rate?
        let holder = front::holder(&lookup, exchange);
        if !self.front.limits.admit_pod(&holder, Instant::now()) {
            front::limited(&self.metrics, crate::front::Scope::Pod);
            return exchange.refuse(Reason::RateLimited);
        }
        if let Some(issuer) = &self.front.issuer {
            if facts.kind == Kind::TokenRequest {
                return front::issue_token(
                    issuer,
                    self.front.max_token_ttl_seconds,
                    exchange,
                    request,
                    &decision,
                    &holder,
                    &self.metrics,
                );
            }
            if let Some(refused) =
                front::check_token(issuer, exchange, request, &holder, &self.metrics)
            {
                return refused;
            }
            return front::read(
                &self.front,
                &self.upstream,
                &self.metrics,
                exchange,
                request,
                path,
                disposal,
            )
            .await;
        }

        // Passthrough tokens: the pod's request goes to the service as it is, within the node's
        // budget.
        if !self.front.limits.admit_upstream(Instant::now()) {
            front::limited(&self.metrics, crate::front::Scope::Upstream);
            return exchange.refuse(Reason::RateLimited);
        }

        let mut headers = forwarded_headers(request.headers(), cloud);
        let mut granted_ttl = None;
        let ttl_header = match cloud.token_headers() {
            Some((_, ttl)) if cloud != Cloud::Aws => HeaderName::from_static(ttl),
            _ => TOKEN_TTL,
        };
        if facts.kind == Kind::TokenRequest {
            match imds::parse_ttl(
                request
                    .headers()
                    .get(&ttl_header)
                    .map(HeaderValue::as_bytes),
            ) {
                Ok(ttl) => {
                    let ttl = ttl.min(decision.max_token_ttl_seconds);
                    headers.insert(ttl_header.clone(), HeaderValue::from(ttl));
                    granted_ttl = Some(ttl);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "refused token request");
                    return exchange.refuse(Reason::BadRequest);
                }
            }
        }

        let sent = match upstream_target(request.uri(), path, query) {
            Ok(target) => match long_poll(cloud, query) {
                Some(wait) => {
                    self.upstream
                        .send_within(request.method().clone(), target, headers, wait)
                        .await
                }
                None => {
                    self.upstream
                        .send(request.method().clone(), target, headers)
                        .await
                }
            },
            Err(e) => Err(e),
        };
        match sent {
            Ok(answer) => {
                self.metrics
                    .upstream_duration
                    .observe(answer.elapsed.as_secs_f64());
                exchange.answered_after(answer.elapsed);
                let response = relay(answer, granted_ttl.map(|ttl| (&ttl_header, ttl)));
                exchange.carried_token = granted_ttl.is_some() && response.status().is_success();
                response
            }
            Err(err) => {
                tracing::warn!(error = %err, "forwarding to the metadata service failed");
                self.metrics
                    .upstream_errors
                    .get_or_create(&ErrorLabels { kind: err.kind() })
                    .inc();
                exchange.failed(err.kind());
                exchange.answer(Refusal::Upstream(err.failure()))
            }
        }
    }
}
