//! What crosses the guard unchanged and what does not: the request headers passed upstream, the
//! target sent upstream, and the answer relayed to the pod without connection-level headers.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Response;
use http_body_util::Full;

use crate::cloud::{self, Cloud};
use crate::imds;
use crate::policy::Reason;
use crate::query::Query;
use crate::target::CanonicalPath;
use crate::upstream::{Answer, UpstreamError};

/// Request headers passed to the metadata service in front of AWS; everything else
/// (X-Forwarded-For, hop-by-hop headers, cookies, Host…) is dropped. The service needs nothing
/// more, and an allowlist cannot be outwitted by a header nobody thought of. Other clouds: the
/// same two plus [`Cloud::passed_headers`].
const FORWARDED_REQUEST_HEADERS: [HeaderName; 4] =
    [header::USER_AGENT, header::ACCEPT, TOKEN, TOKEN_TTL];

/// The IMDSv2 headers as names, looked up without parsing a string each time.
pub(super) const TOKEN: HeaderName = HeaderName::from_static(imds::TOKEN_HEADER);
pub(super) const TOKEN_TTL: HeaderName = HeaderName::from_static(imds::TOKEN_TTL_HEADER);

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

/// The request target as the client sent it, in a form the strict reader can judge: origin-form
/// as is; absolute-, authority- and asterisk-form in full so that they are recognised and refused.
pub(super) fn target_text(uri: &http::Uri) -> Cow<'_, str> {
    match (uri.scheme(), uri.authority(), uri.path_and_query()) {
        (None, None, Some(pq)) => Cow::Borrowed(pq.as_str()),
        _ => Cow::Owned(uri.to_string()),
    }
}

/// The target sent upstream: the canonical path. When the client wrote it exactly so (the usual
/// case), its already-read form is reused rather than read again.
pub(super) fn upstream_target(
    asked: &http::Uri,
    path: &CanonicalPath,
    query: &Query,
) -> Result<http::Uri, UpstreamError> {
    let broken =
        |e: http::uri::InvalidUri| UpstreamError::Broken(format!("cannot build upstream URI: {e}"));
    if !query.is_empty() {
        // The canonical query, as checked: never the text the pod sent.
        return http::Uri::try_from(format!("{path}?{}", query.canonical())).map_err(broken);
    }
    match (asked.scheme(), asked.authority(), asked.path_and_query()) {
        (None, None, Some(pq)) if pq.as_str() == path.as_str() => Ok(asked.clone()),
        _ => http::Uri::try_from(path.as_str()).map_err(broken),
    }
}

/// The request headers passed on to `cloud`'s server. A gate header goes only with its one value
/// (so OCI's `Authorization` is never anything but `Bearer Oracle`).
pub(super) fn forwarded_headers(incoming: &HeaderMap, cloud: Cloud) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(FORWARDED_REQUEST_HEADERS.len());
    // One value each: a repeated token or TTL header is not something a real client sends, and
    // passing several would let upstream and guard read different ones.
    if cloud == Cloud::Aws {
        for name in FORWARDED_REQUEST_HEADERS {
            if let Some(value) = incoming.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        return headers;
    }
    let gate = cloud.gate();
    let names = [header::USER_AGENT, header::ACCEPT].into_iter().chain(
        cloud
            .passed_headers()
            .iter()
            .map(|n| HeaderName::from_static(n)),
    );
    for name in names {
        let Some(value) = incoming.get(&name) else {
            continue;
        };
        match gate.filter(|g| g.header == name.as_str()) {
            // The gate header goes with its one value, as the server spells it.
            Some(g) if Cloud::gate_accepts(&g, value.as_bytes()) => {
                headers.insert(name, HeaderValue::from_static(g.value));
            }
            Some(_) => {}
            None => {
                headers.insert(name, value.clone());
            }
        }
    }
    headers
}

/// Why a request is refused before its pod is looked up, for `cloud`'s protocol: a legacy tree,
/// a forwarding header (outside AWS, whose service refuses only token requests carrying one, as
/// the guard does in front of it), or a missing or wrong gate header.
pub(super) fn protocol_refusal(
    cloud: Cloud,
    incoming: &HeaderMap,
    path: &CanonicalPath,
) -> Option<Reason> {
    if cloud.is_legacy(path) {
        return Some(Reason::LegacyEndpoint);
    }
    if cloud != Cloud::Aws
        && incoming
            .keys()
            .any(|name| cloud::is_forwarding_header(name.as_str()))
    {
        return Some(Reason::ForwardedRequest);
    }
    let gate = cloud.gated(path)?;
    let mut values = incoming.get_all(gate.header).iter();
    match (values.next(), values.next()) {
        (Some(v), None) if Cloud::gate_accepts(&gate, v.as_bytes()) => None,
        _ => Some(Reason::HeaderMissing),
    }
}

/// The upstream answer as the client gets it, without connection-level headers.
pub(super) fn relay(
    answer: Answer,
    granted_ttl: Option<(&HeaderName, u32)>,
) -> Response<Full<Bytes>> {
    let (status, headers, body) = relay_parts(answer, granted_ttl);
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// [`relay`]'s answer in parts, for keeping.
pub(super) fn relay_parts(
    answer: Answer,
    granted_ttl: Option<(&HeaderName, u32)>,
) -> (http::StatusCode, HeaderMap, Bytes) {
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
    if let (Some((name, ttl)), true) = (granted_ttl, status.is_success()) {
        headers
            .entry(name)
            .or_insert_with(|| HeaderValue::from(ttl));
    }
    (status, headers, body)
}
