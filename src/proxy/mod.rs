//! The proxy: one HTTP/1 request in, one decision, one answer out, one audit line.
//!
//! Order of work for each request: read the target strictly (400) and refuse bodies (400) — at
//! once, before the source is looked up, so a malformed request never waits for the inventory —
//! then identify the pod from the source address, decide, and either forward to the metadata
//! service or refuse. Audit mode forwards what the policy would deny, never what could not be read
//! safely ([`Disposal::of`]). The request is one [`Exchange`], built from the request's parts and
//! carried to its audit line.

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
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Body;

use crate::audit;
use crate::disposition::{Disposal, Refusal};
use crate::imds::{self, Kind};
use crate::inventory::{Index, Wait as _};
use crate::metrics::{ErrorLabels, Metrics};
use crate::policy::{Facts, Reason};
use crate::reload::{Current, Live};
use crate::target::{parse_target, CanonicalPath};
use crate::upstream::{Forward, Upstream};
use exchange::{shorten, Exchange};
use relay::{forwarded_headers, relay, target_text, upstream_target, TOKEN_TTL};

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

impl<U: Forward + Clone> Proxy<U> {
    /// Handles one request from `peer`. Never fails: every problem becomes an answer. With the
    /// answer comes the IP TTL it must leave with, when it carries a token and `[imdsv2]
    /// hop_limit` is set.
    pub async fn handle<B: Body>(
        &self,
        peer: IpAddr,
        request: Request<B>,
    ) -> (Response<Full<Bytes>>, Option<u8>) {
        // One snapshot for the whole request: a reload mid-request cannot mix two policies.
        let current = self.live.load();
        let mut exchange = Exchange::new(peer, &request);
        let target = target_text(request.uri());
        let parsed = parse_target(&target);
        let (mut response, audit_path) = match &parsed {
            Err(e) => {
                tracing::info!(src = %exchange.src, target = %shorten(&target), error = %e, "refused request target");
                // Named if the inventory knows the source now; never waited for.
                exchange.identify(&self.inventory.lookup(exchange.src));
                let response = exchange.refuse(Reason::BadRequest);
                (response, Cow::Owned(shorten(&target)))
            }
            Ok(path) => {
                // Boxed: hyper keeps room for a request's whole future on every open connection,
                // idle ones included, so the state of deciding and forwarding is allocated only
                // while a request is decided and forwarded (one allocation, as the upstream
                // exchange alone needed before).
                let response =
                    Box::pin(self.decide_and_answer(&current, &mut exchange, &request, path)).await;
                (response, Cow::Borrowed(path.as_str()))
            }
        };
        let hops = current.token_hop_limit.filter(|_| exchange.carried_token);
        if hops.is_some() {
            // The TTL goes back up only a flush after a reset, and a retransmitted segment could
            // carry the higher one: a connection that carried a token ends with it.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        exchange.finish(&audit_path, &response, &*self.audit, &self.metrics);
        (response, hops)
    }

    async fn decide_and_answer<B: Body>(
        &self,
        current: &Current,
        exchange: &mut Exchange<'_>,
        request: &Request<B>,
        path: &CanonicalPath,
    ) -> Response<Full<Bytes>> {
        // The metadata service takes no request bodies (the token PUT is empty); a body is either
        // a mistake or a smuggling attempt. Refused before the source is looked up.
        if !request.body().is_end_stream()
            || request.headers().contains_key(header::TRANSFER_ENCODING)
        {
            exchange.identify(&self.inventory.lookup(exchange.src));
            return exchange.refuse(Reason::BadRequest);
        }
        let lookup = self
            .inventory
            .lookup_or_wait(exchange.src, self.unknown_source_grace)
            .await;
        exchange.identify(&lookup);
        let facts = Facts::new(exchange.method, path, exchange.has_token);
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

        let mut headers = forwarded_headers(request.headers());
        let mut granted_ttl = None;
        if facts.kind == Kind::TokenRequest {
            match imds::parse_ttl(request.headers().get(TOKEN_TTL).map(HeaderValue::as_bytes)) {
                Ok(ttl) => {
                    let ttl = ttl.min(decision.max_token_ttl_seconds);
                    headers.insert(TOKEN_TTL, HeaderValue::from(ttl));
                    granted_ttl = Some(ttl);
                }
                Err(e) => {
                    tracing::debug!(error = %e, "refused token request");
                    return exchange.refuse(Reason::BadRequest);
                }
            }
        }

        let sent = match upstream_target(request.uri(), path) {
            Ok(target) => {
                self.upstream
                    .send(request.method().clone(), target, headers)
                    .await
            }
            Err(e) => Err(e),
        };
        match sent {
            Ok(answer) => {
                self.metrics
                    .upstream_duration
                    .observe(answer.elapsed.as_secs_f64());
                exchange.answered_after(answer.elapsed);
                let response = relay(answer, granted_ttl);
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
