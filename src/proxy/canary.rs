//! The guard's answer to the interception canary (`crate::canary`): proof to a pod that its
//! metadata request reached the guard.
//!
//! `GET /.imds-guard/canary` with an `X-Imds-Guard-Canary` nonce is answered here, before the pod
//! is identified or the policy consulted, for any source and in front of any cloud: the question is
//! whether the request arrived at all, and a canary pod needs no rule to ask it. The answer
//! echoes the nonce and nothing else, and nothing is forwarded, so it tells a pod no more than that
//! the guard is there. A nonce that is not 16 to 64 of `[0-9a-zA-Z_-]` is refused with 400 in the
//! guard's usual shape.
//!
//! No audit line is written: the canary is a liveness probe sent every few seconds from every node,
//! and its lines would bury the requests the audit is for. It is counted instead, in
//! `imds_guard_canary_probes_total`. The same path without the header, with another method, or
//! with a body is no probe: it takes the normal path and is refused there as any unknown path is.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response};
use http_body_util::Full;
use hyper::body::Body;

use crate::canary::{valid_nonce, HEADER, PATH};
use crate::cloud::{self, Cloud};
use crate::disposition::Refusal;
use crate::metrics::Metrics;
use crate::policy::Reason;
use crate::reload::Live;
use crate::respond;

/// The guard's own answer when `request` is a canary probe; `None` for every other request.
pub fn answer<B: Body>(
    request: &Request<B>,
    live: &Live,
    metrics: &Metrics,
) -> Option<Response<Full<Bytes>>> {
    let nonce = probe_nonce(request)?;
    metrics.canary_probes.inc();
    let cloud = live.load().policy.cloud();
    let mut response = match nonce.to_str() {
        Ok(text) if valid_nonce(text.as_bytes()) => {
            // The nonce's alphabet needs no escaping in a JSON string.
            let mut response =
                Response::new(Full::new(Bytes::from(format!("{{\"canary\":\"{text}\"}}"))));
            let headers = response.headers_mut();
            headers.insert(HeaderName::from_static(HEADER), nonce.clone());
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        _ => {
            tracing::debug!("refused a canary probe with a malformed nonce");
            respond::refusal(Refusal::Denied(Reason::BadRequest), cloud, None, None)
        }
    };
    if cloud == Cloud::Gcp {
        // Every answer in front of GCP carries it, as the request path adds to its own.
        response.headers_mut().insert(
            HeaderName::from_static(cloud::GCP_FLAVOR_HEADER),
            HeaderValue::from_static(cloud::GCP_FLAVOR),
        );
    }
    Some(response)
}

/// The nonce header of a canary probe: a bodiless `GET` of exactly [`PATH`] with one nonce header.
/// Several nonce headers make a probe with a malformed nonce: an empty value, which no nonce is.
fn probe_nonce<B: Body>(request: &Request<B>) -> Option<HeaderValue> {
    if request.method() != Method::GET
        || request.uri().path() != PATH
        || request.uri().query().is_some()
        || !request.body().is_end_stream()
        || request.headers().contains_key(header::TRANSFER_ENCODING)
    {
        return None;
    }
    let mut values = request.headers().get_all(HEADER).iter();
    let first = values.next()?;
    Some(match values.next() {
        None => first.clone(),
        Some(_) => HeaderValue::from_static(""),
    })
}
