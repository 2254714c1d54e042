//! The proxy's token step: who a request's tokens are bound to, the token TTL granted (both token
//! modes), and with `[imdsv2] tokens = "guard"` the token PUT answered here and pods' tokens
//! checked against the pod that shows them.

use std::borrow::Cow;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;

use crate::front::{Check, Issuer};
use crate::imds;
use crate::inventory::Lookup;
use crate::metrics::{Metrics, ResultLabels};
use crate::policy::Reason;

use super::exchange::{Exchange, TokenUse};
use super::relay::{TOKEN, TOKEN_TTL};

/// Who a guard token (and a pod's rate) is bound to: the pod's uid; in audit mode, where an
/// unknown source may be forwarded, its address.
pub(super) fn holder(lookup: &Lookup, src: IpAddr) -> Cow<'_, str> {
    match lookup {
        Lookup::Found(pod) => Cow::Borrowed(pod.uid.as_str()),
        _ => Cow::Owned(format!("src:{src}")),
    }
}

/// The TTL granted to a token request: what its `ttl_header` asks for, within the service's
/// bounds (`1..=max`), capped at `cap`. `Err` is the refusal of a request whose TTL cannot be
/// read.
pub(super) fn granted_ttl(
    headers: &HeaderMap,
    ttl_header: &HeaderName,
    max: u32,
    cap: u32,
) -> Result<u32, Reason> {
    match imds::parse_ttl_within(headers.get(ttl_header).map(HeaderValue::as_bytes), max) {
        Ok(ttl) => Ok(ttl.min(cap)),
        Err(e) => {
            tracing::debug!(error = %e, "refused token request");
            Err(Reason::BadRequest)
        }
    }
}

/// `PUT /latest/api/token`, answered by the guard: a token bound to `holder`, with the TTL rules
/// and the TTL header of the service, capped at `cap` (the rule's and the guard's).
pub(super) fn issue<B>(
    issuer: &Issuer,
    cap: u32,
    exchange: &mut Exchange<'_>,
    request: &Request<B>,
    holder: &str,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    // The service refuses a token request that came through a proxy; so does its front.
    if request.headers().contains_key("x-forwarded-for") {
        return exchange.refuse(Reason::ForwardedTokenRequest);
    }
    let ttl = match granted_ttl(
        request.headers(),
        &TOKEN_TTL,
        imds::MAX_TOKEN_TTL_SECONDS,
        cap,
    ) {
        Ok(ttl) => ttl,
        Err(reason) => return exchange.refuse(reason),
    };
    let token = issuer.issue(
        holder,
        Duration::from_secs(u64::from(ttl)),
        SystemTime::now(),
    );
    metrics.tokens_issued.inc();
    exchange.token(TokenUse::Issued);
    exchange.carries_token();
    let mut response = Response::new(Full::new(Bytes::from(token)));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers.insert(TOKEN_TTL, HeaderValue::from(ttl));
    response
}

/// Checks the pod's token, when it sent one. `Err` is the reason to refuse it for (a 401).
pub(super) fn check<B>(
    issuer: &Issuer,
    exchange: &mut Exchange<'_>,
    request: &Request<B>,
    holder: &str,
    metrics: &Metrics,
) -> Result<(), Reason> {
    let Some(value) = request.headers().get(TOKEN) else {
        return Ok(());
    };
    let check = issuer.check(value.as_bytes(), holder, SystemTime::now());
    exchange.token(TokenUse::Checked(check));
    metrics
        .token_checks
        .get_or_create(&ResultLabels {
            result: check.as_str(),
        })
        .inc();
    if check == Check::Valid {
        return Ok(());
    }
    tracing::info!(src = %exchange.src(), token = check.as_str(), "refused a token the guard did not issue to this pod");
    Err(Reason::TokenInvalid)
}
