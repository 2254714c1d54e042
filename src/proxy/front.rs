//! The proxy's side of the metadata front (`[imdsv2] tokens = "guard"`): the token PUT answered by
//! the guard, pods' tokens checked against the pod, reads answered from the cache or forwarded
//! with the guard's own token, and the node's upstream budget.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::Full;

use crate::cache::CacheClass;
use crate::disposition::{Disposal, Refusal, UpstreamFailure};
use crate::front::cache::{follow, Found, Join, Outcome, Stored};
use crate::front::{Check, Front, Issuer, Scope};
use crate::imds;
use crate::inventory::Lookup;
use crate::metrics::{ErrorLabels, Metrics, ResultLabels, ScopeLabels};
use crate::policy::{Decision, Reason};
use crate::target::CanonicalPath;
use crate::upstream::{Answer, Forward, UpstreamError};

use super::exchange::Exchange;
use super::relay::{forwarded_headers, relay, relay_parts, upstream_target, TOKEN, TOKEN_TTL};
use crate::cloud::Cloud;
use crate::query::Query;

/// Who a guard token is bound to: the pod's uid; in audit mode, where an unknown source may be
/// forwarded, its address.
pub(super) fn holder<'l>(lookup: &'l Lookup, exchange: &Exchange<'_>) -> Cow<'l, str> {
    match lookup {
        Lookup::Found(pod) => Cow::Borrowed(pod.uid.as_str()),
        _ => Cow::Owned(format!("src:{}", exchange.src)),
    }
}

/// Why a fetch from the service gave no answer.
pub(super) enum Failed {
    Upstream(UpstreamFailure),
    RateLimited,
}

/// `PUT /latest/api/token`, answered by the guard: a token bound to `holder`, with the TTL rules
/// and the TTL header of the service.
pub(super) fn issue_token<B>(
    issuer: &Issuer,
    max_ttl: u32,
    exchange: &mut Exchange<'_>,
    request: &Request<B>,
    decision: &Decision,
    holder: &str,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    // The service refuses a token request that came through a proxy; so does its front.
    if request.headers().contains_key("x-forwarded-for") {
        return exchange.refuse(Reason::ForwardedTokenRequest);
    }
    let ttl = match imds::parse_ttl(request.headers().get(TOKEN_TTL).map(HeaderValue::as_bytes)) {
        Ok(ttl) => ttl.min(decision.max_token_ttl_seconds).min(max_ttl),
        Err(e) => {
            tracing::debug!(error = %e, "refused token request");
            return exchange.refuse(Reason::BadRequest);
        }
    };
    let token = issuer.issue(
        holder,
        Duration::from_secs(u64::from(ttl)),
        SystemTime::now(),
    );
    metrics.tokens_issued.inc();
    exchange.token = Some("issued");
    exchange.carried_token = true;
    let mut response = Response::new(Full::new(Bytes::from(token)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(TOKEN_TTL, HeaderValue::from(ttl));
    response
}

/// Checks the pod's token, when it sent one. `Some` is the 401 to answer.
pub(super) fn check_token<B>(
    issuer: &Issuer,
    exchange: &mut Exchange<'_>,
    request: &Request<B>,
    holder: &str,
    metrics: &Metrics,
) -> Option<Response<Full<Bytes>>> {
    let value = request.headers().get(TOKEN)?;
    let check = issuer.check(value.as_bytes(), holder, SystemTime::now());
    exchange.token = Some(check.as_str());
    metrics
        .token_checks
        .get_or_create(&ResultLabels {
            result: check.as_str(),
        })
        .inc();
    if check == Check::Valid {
        return None;
    }
    tracing::info!(src = %exchange.src, token = check.as_str(), "refused a token the guard did not issue to this pod");
    Some(exchange.refuse(Reason::TokenInvalid))
}

/// A read in guard mode: from the cache when it may be (an allowed GET of a cacheable path),
/// else forwarded with the guard's token.
#[allow(clippy::too_many_arguments)]
pub(super) async fn read<U: Forward + Clone, B>(
    front: &Arc<Front>,
    upstream: &U,
    metrics: &Arc<Metrics>,
    exchange: &mut Exchange<'_>,
    request: &Request<B>,
    path: &CanonicalPath,
    disposal: Disposal,
) -> Response<Full<Bytes>> {
    // A read without a token goes to the service without one too (IMDSv1), so the instance's own
    // setting (`HttpTokens = required`: 401) still decides it, and it is never answered from the
    // cache, which holds what only a token could get.
    let with_token = request.headers().contains_key(TOKEN);
    let cached = front
        .cache
        .as_ref()
        .filter(|_| with_token && disposal == Disposal::Forward && request.method() == Method::GET)
        .map(|cache| (cache, cache.class(path)))
        .filter(|(_, class)| *class != CacheClass::Never);
    let key = path.as_str();
    // Looked up before anything a forward needs is built: a hit needs none of it.
    let mut found = cached.map(|(cache, _)| cache.get(key, Instant::now()));
    if let Some(Found::Fresh(stored)) = &found {
        return hit(exchange, metrics, stored);
    }
    let target = match upstream_target(request.uri(), path, &Query::none()) {
        Ok(target) => target,
        Err(e) => return failed(exchange, metrics, &e),
    };
    let headers = guard_headers(request.headers());
    let Some((cache, class)) = cached else {
        let fetched = fetch_as(
            front,
            upstream,
            metrics,
            request.method().clone(),
            target,
            headers,
            with_token,
        )
        .await;
        return answer(exchange, metrics, fetched);
    };

    // A follower whose leader went away asks again; twice at most, then on its own.
    for _ in 0..3 {
        match found
            .take()
            .unwrap_or_else(|| cache.get(key, Instant::now()))
        {
            Found::Fresh(stored) => return hit(exchange, metrics, &stored),
            Found::Refresh(stored) => {
                refresh_in_background(
                    front,
                    upstream,
                    metrics,
                    key,
                    class,
                    target.clone(),
                    headers.clone(),
                );
                return hit(exchange, metrics, &stored);
            }
            Found::Missing => {}
        }
        match cache.join(key) {
            Join::Lead(lead) => {
                exchange.cache = Some("miss");
                count(metrics, "miss");
                let fetched = fetch(
                    front,
                    upstream,
                    metrics,
                    Method::GET,
                    target.clone(),
                    headers.clone(),
                )
                .await;
                let outcome = match fetched {
                    Ok(answer) => {
                        observe(exchange, metrics, &answer);
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
                    exchange.cache = Some("shared");
                    count(metrics, "shared");
                    return from_outcome(exchange, outcome);
                }
            },
        }
    }
    let fetched = fetch(front, upstream, metrics, Method::GET, target, headers).await;
    answer(exchange, metrics, fetched)
}

/// Sends one request to the service with the guard's token, within the node's budget. A 401
/// means the service no longer takes the token: it is fetched anew and the request sent once more.
pub(super) async fn fetch<U: Forward>(
    front: &Front,
    upstream: &U,
    metrics: &Metrics,
    method: Method,
    target: Uri,
    headers: HeaderMap,
) -> Result<Answer, Failed> {
    fetch_as(front, upstream, metrics, method, target, headers, true).await
}

/// [`fetch`], with the guard's token (`with_token`) or as a tokenless (IMDSv1) read.
async fn fetch_as<U: Forward>(
    front: &Front,
    upstream: &U,
    metrics: &Metrics,
    method: Method,
    target: Uri,
    headers: HeaderMap,
    with_token: bool,
) -> Result<Answer, Failed> {
    if !front.limits.admit_upstream(Instant::now()) {
        limited(metrics, Scope::Upstream);
        return Err(Failed::RateLimited);
    }
    if !with_token {
        return upstream.send(method, target, headers).await.map_err(|e| {
            tracing::warn!(error = %e, "forwarding to the metadata service failed");
            count_error(metrics, &e);
            Failed::Upstream(e.failure())
        });
    }
    for attempt in 0..2 {
        let token = front
            .upstream_token
            .get(upstream, metrics)
            .await
            .map_err(Failed::Upstream)?;
        let mut sent = headers.clone();
        sent.insert(TOKEN, token.clone());
        let answer = upstream
            .send(method.clone(), target.clone(), sent)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "forwarding to the metadata service failed");
                count_error(metrics, &e);
                Failed::Upstream(e.failure())
            })?;
        if answer.status == StatusCode::UNAUTHORIZED && attempt == 0 {
            tracing::info!("the metadata service refused the guard's token: fetching a new one");
            front.upstream_token.refused(&token);
            continue;
        }
        return Ok(answer);
    }
    unreachable!("the loop returns on its second pass")
}

/// Fetches `key` again without anyone waiting for it, and keeps the answer.
fn refresh_in_background<U: Forward + Clone>(
    front: &Arc<Front>,
    upstream: &U,
    metrics: &Arc<Metrics>,
    key: &str,
    class: CacheClass,
    target: Uri,
    headers: HeaderMap,
) {
    let (front, upstream, metrics, key) = (
        Arc::clone(front),
        upstream.clone(),
        Arc::clone(metrics),
        key.to_owned(),
    );
    tokio::spawn(async move {
        let Some(cache) = front.cache.as_ref() else {
            return;
        };
        let fetched = fetch(&front, &upstream, &metrics, Method::GET, target, headers).await;
        let kept = match fetched {
            Ok(answer) => cache.store(&key, class, &Arc::new(stored_of(answer)), Instant::now()),
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

fn hit(exchange: &mut Exchange<'_>, metrics: &Metrics, stored: &Stored) -> Response<Full<Bytes>> {
    exchange.cache = Some("hit");
    count(metrics, "hit");
    respond(stored)
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

fn answer(
    exchange: &mut Exchange<'_>,
    metrics: &Metrics,
    fetched: Result<Answer, Failed>,
) -> Response<Full<Bytes>> {
    match fetched {
        Ok(answer) => {
            observe(exchange, metrics, &answer);
            relay(answer, None)
        }
        Err(Failed::Upstream(failure)) => {
            exchange.failed(failure.as_str());
            exchange.answer(Refusal::Upstream(failure))
        }
        Err(Failed::RateLimited) => exchange.refuse(Reason::RateLimited),
    }
}

fn failed(
    exchange: &mut Exchange<'_>,
    metrics: &Metrics,
    e: &UpstreamError,
) -> Response<Full<Bytes>> {
    count_error(metrics, e);
    exchange.failed(e.kind());
    exchange.answer(Refusal::Upstream(e.failure()))
}

fn observe(exchange: &mut Exchange<'_>, metrics: &Metrics, answer: &Answer) {
    metrics
        .upstream_duration
        .observe(answer.elapsed.as_secs_f64());
    exchange.answered_after(answer.elapsed);
}

fn count(metrics: &Metrics, result: &'static str) {
    metrics
        .cache_requests
        .get_or_create(&ResultLabels { result })
        .inc();
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
