//! What the emulators of the clouds other than AWS share: building answers, walking JSON
//! documents by path, JWT-shaped tokens, ETags and random text.

use std::hash::{DefaultHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use rand::Rng as _;
use serde_json::Value;

/// An answer of the emulator.
pub(crate) type Answer = Response<Full<Bytes>>;

/// Characters of random tokens: base64url's.
pub(crate) const URL_SAFE: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// An answer with `body`, its type and its length.
pub(crate) fn answer(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Answer {
    let body = body.into();
    let length = body.len();
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// `status` as one line of text (`404 Not Found`), as the servers that answer in text give it.
pub(crate) fn status_line(status: StatusCode, content_type: &'static str) -> Answer {
    let reason = status.canonical_reason().unwrap_or("Error");
    answer(
        status,
        content_type,
        format!("{} {reason}\n", status.as_u16()),
    )
}

/// `response` (a 405) naming the methods the path takes.
pub(crate) fn allowing(mut response: Answer, methods: &'static str) -> Answer {
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(methods));
    response
}

/// `response` without its body when the request was a HEAD (status and headers kept).
pub(crate) fn strip_if_head(method: &Method, mut response: Answer) -> Answer {
    if method == Method::HEAD {
        *response.body_mut() = Full::new(Bytes::new());
    }
    response
}

/// A JSON answer, compact as the metadata servers send it.
pub(crate) fn json(status: StatusCode, content_type: &'static str, value: &Value) -> Answer {
    answer(status, content_type, value.to_string())
}

/// The segments of a path below a service's root (`rest` is what follows the root's `/`): one
/// trailing slash is dropped (it is reported), any other empty segment makes the path unknown.
pub(crate) fn segments(rest: &str) -> Option<(Vec<&str>, bool)> {
    if rest.is_empty() {
        return Some((Vec::new(), false));
    }
    let (rest, slash) = match rest.strip_suffix('/') {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    if rest.is_empty() {
        return Some((Vec::new(), slash));
    }
    let parts: Vec<&str> = rest.split('/').collect();
    (!parts.iter().any(|p| p.is_empty())).then_some((parts, slash))
}

/// The node of `value` at `segments`: object members by name (ASCII case ignored when
/// `ignore_case`), array elements by a decimal index without leading zeros.
pub(crate) fn walk<'a>(
    value: &'a Value,
    segments: &[&str],
    ignore_case: bool,
) -> Option<&'a Value> {
    segments.iter().try_fold(value, |node, segment| match node {
        Value::Object(map) => map.get(*segment).or_else(|| {
            ignore_case
                .then(|| {
                    map.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(segment))
                        .map(|(_, v)| v)
                })
                .flatten()
        }),
        Value::Array(items) => index(segment).and_then(|i| items.get(i)),
        _ => None,
    })
}

/// A decimal array index: digits only, no leading zero (so `00` and `+0` name nothing).
pub(crate) fn index(segment: &str) -> Option<usize> {
    let canonical = segment == "0" || (!segment.starts_with('0') && !segment.is_empty());
    (canonical && segment.bytes().all(|b| b.is_ascii_digit()))
        .then(|| segment.parse().ok())
        .flatten()
}

/// A JWT-shaped string: base64url JSON header and payload, and 256 random bytes standing in for
/// an RS256 signature. Nothing can verify it; clients that only decode the payload accept it.
pub(crate) fn jwt(header: &Value, payload: &Value) -> String {
    let mut signature = [0u8; 256];
    rand::rng().fill(&mut signature[..]);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

/// `len` random characters of `alphabet`.
pub(crate) fn random_text(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// An ETag of `body`: 16 hex digits of a hash that is the same in every run.
pub(crate) fn etag(body: &[u8]) -> String {
    // `DefaultHasher::new` has fixed keys, so equal bodies get equal tags across restarts.
    let mut hasher = DefaultHasher::new();
    hasher.write(body);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests;
