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
mod forward;
mod relay;
#[cfg(test)]
mod tests;
mod tokens;

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;
use imds_guard_net::HopLimit;

use crate::audit;
use crate::cloud::{self, Cloud};
use crate::disposition::{Disposal, Refusal};
use crate::imds::Kind;
use crate::inventory::{Index, Lookup, Origin, Wait as _};
use crate::metrics::Metrics;
use crate::policy::{Facts, Reason};
use crate::query::{self, Query};
use crate::reload::{Current, Live};
use crate::target::CanonicalPath;
use crate::upstream::{Forward, Pool};
use exchange::{shorten, Exchange};
pub use forward::MAX_LONG_POLL;
use relay::{protocol_refusal, target_text};

/// Everything a request needs, shared by all connections of a worker.
pub struct Proxy<U = Pool> {
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
    /// becomes an answer. An answer that carries a token, when `[imdsv2] hop_limit` is set, has
    /// the [`HopLimit`] it must leave with in its extensions.
    pub async fn handle<B: Body>(
        &self,
        peer: IpAddr,
        request: Request<B>,
    ) -> Response<Full<Bytes>> {
        self.handle_from(peer, &Source::Address, request).await
    }

    /// Handles one request from `peer`, identified as `source` says: read, identify, decide,
    /// admit, tokens, forward — then answer and audit.
    pub async fn handle_from<B: Body>(
        &self,
        peer: IpAddr,
        source: &Source,
        request: Request<B>,
    ) -> Response<Full<Bytes>> {
        // The interception canary is the guard's own business: no pod, no policy, no audit line.
        if let Some(response) = canary::answer(&request, &self.live, &self.metrics) {
            return response;
        }
        // One snapshot for the whole request: a reload mid-request cannot mix two policies.
        let current = self.live.load();
        let cloud = current.policy.cloud();
        let mut exchange = Exchange::new(peer, &request, cloud, source.origin());
        let target = target_text(request.uri());
        let read = query::read(cloud, &target);
        let (mut response, audit_path) = match &read {
            Err(e) => {
                tracing::info!(src = %exchange.src(), target = %shorten(&target), error = %e, "refused request target");
                let response = self.refuse_unidentified(&mut exchange, Reason::BadRequest);
                (response, Cow::Owned(shorten(&target)))
            }
            // Boxed: hyper keeps room for a request's whole future on every open connection,
            // idle ones included, so the state of the steps is allocated only while they run.
            Ok((path, query)) => (
                Box::pin(self.steps(&current, &mut exchange, &request, path, query)).await,
                audit_path(path, query),
            ),
        };
        answer_headers(&current, &exchange, &mut response);
        exchange.finish(
            &audit_path,
            &current.workload_labels,
            &response,
            &*self.audit,
            &self.metrics,
        );
        response
    }

    /// The steps after the target is read; each refusal is answered where it is made.
    async fn steps<B: Body>(
        &self,
        current: &Current,
        exchange: &mut Exchange<'_>,
        request: &Request<B>,
        path: &CanonicalPath,
        query: &Query,
    ) -> Response<Full<Bytes>> {
        // Read: what cannot be read safely is refused before the source is looked up.
        if let Some(reason) = unreadable(exchange, request, path) {
            return self.refuse_unidentified(exchange, reason);
        }
        // Identify.
        let lookup = self
            .inventory
            .identify_or_wait(exchange.src(), exchange.origin(), self.unknown_source_grace)
            .await;
        exchange.identify(&lookup);
        // Decide.
        let facts = Facts::in_cloud(
            exchange.cloud(),
            exchange.method(),
            path,
            query,
            exchange.has_token(),
        );
        let decision = current.policy.decide_for(&lookup, &facts);
        let disposal = Disposal::of(&decision, current.mode);
        exchange.decided(&decision, disposal);
        if !disposal.forwards() {
            return exchange.answer(Refusal::Denied(decision.reason));
        }
        // Admit: within the pod's rate.
        let holder = tokens::holder(&lookup, exchange.src());
        if !self.front.limits.admit_pod(&holder, Instant::now()) {
            forward::limited(&self.metrics, crate::front::Scope::Pod);
            return exchange.refuse(Reason::RateLimited);
        }
        // Tokens: with guard tokens, the token PUT is answered here and a pod's token checked.
        if let Some(issuer) = &self.front.issuer {
            if facts.kind == Kind::TokenRequest {
                let cap = decision
                    .max_token_ttl_seconds
                    .min(self.front.max_token_ttl_seconds);
                return tokens::issue(issuer, cap, exchange, request, &holder, &self.metrics);
            }
            if let Err(reason) = tokens::check(issuer, exchange, request, &holder, &self.metrics) {
                return exchange.refuse(reason);
            }
        }
        // Forward.
        self.forward(
            exchange,
            request,
            (path, query),
            (&decision, facts.kind, disposal),
        )
        .await
    }

    /// Refuses before the pod is decided on; the source is named if the inventory knows it now,
    /// never waited for.
    fn refuse_unidentified(
        &self,
        exchange: &mut Exchange<'_>,
        reason: Reason,
    ) -> Response<Full<Bytes>> {
        let lookup: Lookup = self.inventory.identify(exchange.src(), exchange.origin());
        exchange.identify(&lookup);
        exchange.refuse(reason)
    }
}

/// Why a request is refused as it is read: a body (the metadata service takes none; the token PUT
/// is empty — a body is a mistake or a smuggling attempt), or `cloud`'s protocol rules.
fn unreadable<B: Body>(
    exchange: &Exchange<'_>,
    request: &Request<B>,
    path: &CanonicalPath,
) -> Option<Reason> {
    let cloud = exchange.cloud();
    if !request.body().is_end_stream() || request.headers().contains_key(header::TRANSFER_ENCODING)
    {
        return Some(Reason::BadRequest);
    }
    let reason = protocol_refusal(cloud, request.headers(), path)?;
    tracing::info!(src = %exchange.src(), reason = reason.as_str(), "refused by the {cloud} protocol rules");
    Some(reason)
}

/// The path the audit line shows: the canonical path, with the canonical query when there is one.
fn audit_path<'p>(path: &'p CanonicalPath, query: &Query) -> Cow<'p, str> {
    if query.is_empty() {
        Cow::Borrowed(path.as_str())
    } else {
        Cow::Owned(shorten(&format!("{path}?{}", query.canonical())))
    }
}

/// What every answer gets on its way out: GCP's flavor header, and for an answer carrying a token
/// the hop limit (with the connection closed after it).
fn answer_headers(
    current: &Current,
    exchange: &Exchange<'_>,
    response: &mut Response<Full<Bytes>>,
) {
    if exchange.cloud() == Cloud::Gcp {
        // Client libraries reject an answer without it, refusals included.
        response.headers_mut().insert(
            HeaderName::from_static(cloud::GCP_FLAVOR_HEADER),
            HeaderValue::from_static(cloud::GCP_FLAVOR),
        );
    }
    if let Some(hops) = current.token_hop_limit.filter(|_| exchange.carried_token()) {
        // The TTL goes back up only a flush after a reset, and a retransmitted segment could
        // carry the higher one: a connection that carried a token ends with it.
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        response.extensions_mut().insert(HopLimit(hops));
    }
}
