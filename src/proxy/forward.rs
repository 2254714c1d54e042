//! The proxy's forward step, one path for both token modes: a request allowed (or forwarded in
//! audit mode) goes to the metadata service within the node's upstream budget — as the pod sent
//! it with passthrough tokens, or with the guard's own token (and through the response cache)
//! with guard tokens — and the service's answer, or the failure, becomes the pod's answer.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;

use crate::cacheable::CacheClass;
use crate::cloud::Cloud;
use crate::disposition::{Disposal, Refusal, UpstreamFailure};
use crate::front::cache::{follow, Found, Join, Outcome, Stored};
use crate::front::{Front, Scope};
use crate::imds::Kind;
use crate::metrics::{ErrorLabels, Metrics, ResultLabels, ScopeLabels};
use crate::policy::{Decision, Reason};
use crate::query::Query;
use crate::target::CanonicalPath;
use crate::upstream::{Answer, Forward, UpstreamError};

use super::exchange::{CacheUse, Exchange};
use super::relay::{forwarded_headers, relay, relay_parts, upstream_target, TOKEN, TOKEN_TTL};
use super::tokens::granted_ttl;
use super::Proxy;

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

/// Whose token goes to the service with a forwarded request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenSource {
    /// The pod's own headers, as sent (passthrough tokens, and tokenless IMDSv1 reads).
    Pod,
    /// The guard's own token with the service, fetched anew when the service turns it down.
    Guard,
}

/// Why a fetch from the service gave no answer.
enum Failed {
    Upstream(UpstreamFailure),
    RateLimited,
}

impl<U: Forward + Clone> Proxy<U> {
    /// Forwards an allowed request (`decision`, of `kind`) and makes the pod's answer.
    pub(super) async fn forward<B>(
        &self,
        exchange: &mut Exchange<'_>,
        request: &Request<B>,
        (path, query): (&CanonicalPath, &Query),
        (decision, kind, disposal): (&Decision, Kind, Disposal),
    ) -> Response<Full<Bytes>> {
        if self.front.issuer.is_some() {
            return self.read_as_guard(exchange, request, path, disposal).await;
        }
        let fetcher = self.fetcher();
        let cloud = exchange.cloud();
        let mut headers = forwarded_headers(request.headers(), cloud);
        let flow = cloud.token_flow();
        let ttl_header = match flow {
            Some(flow) if cloud != Cloud::Aws => HeaderName::from_static(flow.ttl_header),
            _ => TOKEN_TTL,
        };
        let max_ttl = flow.map_or(crate::imds::MAX_TOKEN_TTL_SECONDS, |f| f.max_ttl);
        let mut granted = None;
        if kind == Kind::TokenRequest {
            match granted_ttl(
                request.headers(),
                &ttl_header,
                max_ttl,
                decision.max_token_ttl_seconds,
            ) {
                Ok(ttl) => {
                    headers.insert(ttl_header.clone(), HeaderValue::from(ttl));
                    granted = Some(ttl);
                }
                Err(reason) => return exchange.refuse(reason),
            }
        }
        let target = match upstream_target(request.uri(), path, query) {
            Ok(target) => target,
            Err(e) => return fetcher.unsent(exchange, &e),
        };
        let fetched = fetcher
            .fetch(
                request.method().clone(),
                target,
                headers,
                TokenSource::Pod,
                long_poll(cloud, query),
            )
            .await;
        fetcher.answered(exchange, fetched, granted.map(|ttl| (&ttl_header, ttl)))
    }

    /// A read with guard tokens: from the cache when it may be (an allowed GET of a cacheable
    /// path), else forwarded with the guard's token.
    async fn read_as_guard<B>(
        &self,
        exchange: &mut Exchange<'_>,
        request: &Request<B>,
        path: &CanonicalPath,
        disposal: Disposal,
    ) -> Response<Full<Bytes>> {
        let fetcher = self.fetcher();
        // A read without a token goes to the service without one too (IMDSv1), so the instance's
        // own setting (`HttpTokens = required`: 401) still decides it, and it is never answered
        // from the cache, which holds what only a token could get.
        let with_token = request.headers().contains_key(TOKEN);
        let cached = self
            .front
            .cache
            .as_ref()
            .filter(|_| {
                with_token && disposal == Disposal::Forward && request.method() == Method::GET
            })
            .map(|cache| (cache, cache.class(path)))
            .filter(|(_, class)| *class != CacheClass::Never);
        let key = path.as_str();
        // Looked up before anything a forward needs is built: a hit needs none of it.
        let mut found = cached.map(|(cache, _)| cache.get(key, Instant::now()));
        if let Some(Found::Fresh(stored)) = &found {
            return fetcher.hit(exchange, stored);
        }
        let target = match upstream_target(request.uri(), path, &Query::none()) {
            Ok(target) => target,
            Err(e) => return fetcher.unsent(exchange, &e),
        };
        let headers = guard_headers(request.headers());
        let Some((cache, class)) = cached else {
            let source = if with_token {
                TokenSource::Guard
            } else {
                TokenSource::Pod
            };
            let fetched = fetcher
                .fetch(request.method().clone(), target, headers, source, None)
                .await;
            return fetcher.answered(exchange, fetched, None);
        };

        // A follower whose leader went away asks again; twice at most, then on its own.
        for _ in 0..3 {
            match found
                .take()
                .unwrap_or_else(|| cache.get(key, Instant::now()))
            {
                Found::Fresh(stored) => return fetcher.hit(exchange, &stored),
                Found::Refresh(stored) => {
                    self.refresh_in_background(key, class, target.clone(), headers.clone());
                    return fetcher.hit(exchange, &stored);
                }
                Found::Missing => {}
            }
            match cache.join(key) {
                Join::Lead(lead) => {
                    exchange.cache(CacheUse::Miss);
                    fetcher.count_cache(CacheUse::Miss);
                    let fetched = fetcher
                        .fetch(
                            Method::GET,
                            target.clone(),
                            headers.clone(),
                            TokenSource::Guard,
                            None,
                        )
                        .await;
                    let outcome = match fetched {
                        Ok(answer) => {
                            fetcher.observe(exchange, &answer);
                            let stored = Arc::new(stored_of(answer));
                            cache.store(key, class, &stored, Instant::now());
                            Outcome::Answer(stored)
                        }
                        Err(Failed::Upstream(failure)) => Outcome::Failed(failure),
                        Err(Failed::RateLimited) => Outcome::RateLimited,
                    };
                    lead.finish(outcome.clone());
                    return from_outcome(exchange, outcome);
                }
                Join::Follow(rx) => match follow(rx).await {
                    Outcome::Abandoned => continue,
                    outcome => {
                        exchange.cache(CacheUse::Shared);
                        fetcher.count_cache(CacheUse::Shared);
                        return from_outcome(exchange, outcome);
                    }
                },
            }
        }
        let fetched = fetcher
            .fetch(Method::GET, target, headers, TokenSource::Guard, None)
            .await;
        fetcher.answered(exchange, fetched, None)
    }

    /// Fetches `key` again without anyone waiting for it, and keeps the answer.
    fn refresh_in_background(&self, key: &str, class: CacheClass, target: Uri, headers: HeaderMap) {
        let (front, upstream, metrics, key) = (
            Arc::clone(&self.front),
            self.upstream.clone(),
            Arc::clone(&self.metrics),
            key.to_owned(),
        );
        tokio::spawn(async move {
            let Some(cache) = front.cache.as_ref() else {
                return;
            };
            let fetcher = Fetcher {
                front: &front,
                upstream: &upstream,
                metrics: &metrics,
            };
            let fetched = fetcher
                .fetch(Method::GET, target, headers, TokenSource::Guard, None)
                .await;
            let kept = match fetched {
                Ok(answer) => {
                    cache.store(&key, class, &Arc::new(stored_of(answer)), Instant::now())
                }
                Err(_) => {
                    cache.refresh_failed(&key);
                    false
                }
            };
            metrics
                .cache_refreshes
                .get_or_create(&ResultLabels {
                    result: if kept { "ok" } else { "failed" },
                })
                .inc();
        });
    }

    fn fetcher(&self) -> Fetcher<'_, U> {
        Fetcher {
            front: &self.front,
            upstream: &self.upstream,
            metrics: &self.metrics,
        }
    }
}

/// What a forward needs: the node's budget and the guard's token (the front), the service, the
/// counters. Borrowed from the proxy, or from what a background refresh owns.
struct Fetcher<'a, U> {
    front: &'a Front,
    upstream: &'a U,
    metrics: &'a Metrics,
}

impl<U: Forward> Fetcher<'_, U> {
    /// Sends one request to the service within the node's budget, with the token `source` says.
    /// With the guard's token, a 401 means the service no longer takes it: it is fetched anew and
    /// the request sent once more.
    async fn fetch(
        &self,
        method: Method,
        target: Uri,
        headers: HeaderMap,
        source: TokenSource,
        deadline: Option<Duration>,
    ) -> Result<Answer, Failed> {
        if !self.front.limits.admit_upstream(Instant::now()) {
            limited(self.metrics, Scope::Upstream);
            return Err(Failed::RateLimited);
        }
        if source == TokenSource::Pod {
            return self.send(method, target, headers, deadline).await;
        }
        for attempt in 0..2 {
            let token = self
                .front
                .upstream_token
                .get(self.upstream, self.metrics)
                .await
                .map_err(Failed::Upstream)?;
            let mut sent = headers.clone();
            sent.insert(TOKEN, token.clone());
            let answer = self
                .send(method.clone(), target.clone(), sent, deadline)
                .await?;
            if answer.status == StatusCode::UNAUTHORIZED && attempt == 0 {
                tracing::info!(
                    "the metadata service refused the guard's token: fetching a new one"
                );
                self.front.upstream_token.refused(&token);
                continue;
            }
            return Ok(answer);
        }
        unreachable!("the loop returns on its second pass")
    }

    /// One exchange with the service; a failure is logged and counted here, once.
    async fn send(
        &self,
        method: Method,
        target: Uri,
        headers: HeaderMap,
        deadline: Option<Duration>,
    ) -> Result<Answer, Failed> {
        self.upstream
            .send(method, target, headers, deadline)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "forwarding to the metadata service failed");
                count_error(self.metrics, &e);
                Failed::Upstream(e.failure())
            })
    }

    /// The pod's answer to what a fetch gave: the service's answer relayed (with the TTL header
    /// of a `granted` token TTL), or the guard's refusal.
    fn answered(
        &self,
        exchange: &mut Exchange<'_>,
        fetched: Result<Answer, Failed>,
        granted: Option<(&HeaderName, u32)>,
    ) -> Response<Full<Bytes>> {
        match fetched {
            Ok(answer) => {
                self.observe(exchange, &answer);
                let response = relay(answer, granted);
                if granted.is_some() && response.status().is_success() {
                    exchange.carries_token();
                }
                response
            }
            Err(Failed::Upstream(failure)) => {
                exchange.failed(failure.as_str());
                exchange.answer(Refusal::Upstream(failure))
            }
            Err(Failed::RateLimited) => exchange.refuse(Reason::RateLimited),
        }
    }

    /// The answer to a request that could not even be sent (its target could not be built).
    fn unsent(&self, exchange: &mut Exchange<'_>, e: &UpstreamError) -> Response<Full<Bytes>> {
        count_error(self.metrics, e);
        exchange.failed(e.kind());
        exchange.answer(Refusal::Upstream(e.failure()))
    }

    fn hit(&self, exchange: &mut Exchange<'_>, stored: &Stored) -> Response<Full<Bytes>> {
        exchange.cache(CacheUse::Hit);
        self.count_cache(CacheUse::Hit);
        respond(stored)
    }

    fn observe(&self, exchange: &mut Exchange<'_>, answer: &Answer) {
        self.metrics
            .upstream_duration
            .observe(answer.elapsed.as_secs_f64());
        exchange.answered_after(answer.elapsed);
    }

    fn count_cache(&self, used: CacheUse) {
        self.metrics
            .cache_requests
            .get_or_create(&ResultLabels {
                result: used.as_str(),
            })
            .inc();
    }
}

/// The pod's headers that go to the service, without its own token headers (the guard sends its
/// own token).
fn guard_headers(incoming: &HeaderMap) -> HeaderMap {
    let mut headers = forwarded_headers(incoming, Cloud::Aws);
    headers.remove(TOKEN);
    headers.remove(TOKEN_TTL);
    headers
}

fn stored_of(answer: Answer) -> Stored {
    let (status, headers, body) = relay_parts(answer, None);
    Stored {
        status,
        headers,
        body,
    }
}

fn respond(stored: &Stored) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(stored.body.clone()));
    *response.status_mut() = stored.status;
    *response.headers_mut() = stored.headers.clone();
    response
}

fn from_outcome(exchange: &mut Exchange<'_>, outcome: Outcome) -> Response<Full<Bytes>> {
    match outcome {
        Outcome::Answer(stored) => respond(&stored),
        Outcome::Failed(failure) => {
            exchange.failed(failure.as_str());
            exchange.answer(Refusal::Upstream(failure))
        }
        Outcome::RateLimited => exchange.refuse(Reason::RateLimited),
        // Followers ask again rather than take this; here only for completeness.
        Outcome::Abandoned => {
            exchange.failed(UpstreamFailure::Unreachable.as_str());
            exchange.answer(Refusal::Upstream(UpstreamFailure::Unreachable))
        }
    }
}

fn count_error(metrics: &Metrics, e: &UpstreamError) {
    metrics
        .upstream_errors
        .get_or_create(&ErrorLabels { kind: e.kind() })
        .inc();
}

/// Counts a request refused for going over a limit.
pub(super) fn limited(metrics: &Metrics, scope: Scope) {
    metrics
        .rate_limited
        .get_or_create(&ScopeLabels {
            scope: scope.as_str(),
        })
        .inc();
}
