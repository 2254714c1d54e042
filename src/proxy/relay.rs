//! What crosses the guard unchanged and what does not: the request headers passed upstream, the
//! target sent upstream, and the answer relayed to the pod without connection-level headers.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Response;
use http_body_util::Full;

use crate::imds;
use crate::target::CanonicalPath;
use crate::upstream::{Answer, UpstreamError};

/// Request headers passed to the metadata service; everything else (X-Forwarded-For, hop-by-hop
/// headers, cookies, Host…) is dropped. The service needs nothing more, and an allowlist cannot be
/// outwitted by a header nobody thought of.
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
) -> Result<http::Uri, UpstreamError> {
    match (asked.scheme(), asked.authority(), asked.path_and_query()) {
        (None, None, Some(pq)) if pq.as_str() == path.as_str() => Ok(asked.clone()),
        _ => http::Uri::try_from(path.as_str())
            .map_err(|e| UpstreamError::Broken(format!("cannot build upstream URI: {e}"))),
    }
}

pub(super) fn forwarded_headers(incoming: &HeaderMap) -> HeaderMap {
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
pub(super) fn relay(answer: Answer, granted_ttl: Option<u32>) -> Response<Full<Bytes>> {
    let (status, headers, body) = relay_parts(answer, granted_ttl);
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// [`relay`]'s answer in parts, for keeping.
pub(super) fn relay_parts(
    answer: Answer,
    granted_ttl: Option<u32>,
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
    if let (Some(ttl), true) = (granted_ttl, status.is_success()) {
        headers
            .entry(TOKEN_TTL)
            .or_insert_with(|| HeaderValue::from(ttl));
    }
    (status, headers, body)
}
