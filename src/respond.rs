//! The guard's own answers as HTTP: refusals, failed forwards, and the refusal of a connection
//! over a limit.
//!
//! What each answer says (status, JSON words, extra headers) comes from the core's one table,
//! [`Refusal::disposition`]; this module only writes it out. Every answer the guard makes itself
//! is a short JSON object with a fixed shape, so clients and operators can tell it from the
//! metadata service's own answers. Internal detail (error chains, addresses) goes to the log,
//! never to the pod.

use std::sync::LazyLock;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use imds_guard_core::cloud::{self, Cloud};
use imds_guard_core::disposition::{Refusal, RefusalAnswer};

#[derive(Serialize)]
struct Body<'a> {
    error: &'static str,
    reason: &'a str,
    pod: Option<&'a str>,
    rule: Option<&'a str>,
    /// In front of Azure: the OAuth-style description MSAL-based clients show (they read a token
    /// answer's body as an OAuth error, whatever its status).
    #[serde(skip_serializing_if = "Option::is_none")]
    error_description: Option<String>,
    /// In front of Linode: the same description in the Linode API's error form, which its
    /// clients put in their exception's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    errors: Option<[ApiError; 1]>,
}

#[derive(Serialize)]
struct ApiError {
    reason: String,
}

/// The answer for `refusal`, naming the pod and the rule when there are.
pub fn refusal(
    refusal: Refusal,
    cloud: Cloud,
    pod: Option<&str>,
    rule: Option<&str>,
) -> Response<Full<Bytes>> {
    let d = refusal.answer_in(cloud);
    let status = StatusCode::from_u16(d.status).unwrap_or(StatusCode::FORBIDDEN);
    let description = matches!(cloud, Cloud::Azure | Cloud::Linode).then(|| {
        format!(
            "imds-guard refused this request: {} (pod {}, rule {})",
            d.reason,
            pod.unwrap_or("-"),
            rule.unwrap_or("-")
        )
    });
    let mut response = Response::new(Full::new(Bytes::from(body(
        &d,
        pod,
        rule,
        description.map(|text| (cloud, text)),
    ))));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(allow) = d.allow {
        headers.insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    if let Some(seconds) = d.retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// The whole HTTP/1.1 answer written to a connection refused by a connection limit, before any
/// request is read (so hyper is not involved): made once, from the same table.
pub static CONNECTION_REFUSAL: LazyLock<Vec<u8>> = LazyLock::new(|| connection_refusal_text(None));

/// [`CONNECTION_REFUSAL`] in front of GCP: with `Metadata-Flavor: Google`, as every answer there.
static GCP_CONNECTION_REFUSAL: LazyLock<Vec<u8>> =
    LazyLock::new(|| connection_refusal_text(Some((cloud::GCP_FLAVOR_HEADER, cloud::GCP_FLAVOR))));

/// The connection refusal in front of `cloud`'s server.
pub fn connection_refusal(cloud: Cloud) -> &'static [u8] {
    match cloud {
        Cloud::Gcp => &GCP_CONNECTION_REFUSAL,
        _ => &CONNECTION_REFUSAL,
    }
}

fn connection_refusal_text(extra: Option<(&str, &str)>) -> Vec<u8> {
    let d = Refusal::ConnectionLimit.answer();
    let body = body(&d, None, None, None);
    let reason = StatusCode::from_u16(d.status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut head = format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        d.status,
        body.len()
    );
    if let Some(seconds) = d.retry_after {
        head.push_str(&format!("retry-after: {seconds}\r\n"));
    }
    if let Some((name, value)) = extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    out
}

/// The JSON body; `described` is the description of the refusal in front of the cloud whose
/// clients read one (Azure's `error_description`, Linode's `errors`).
fn body(
    d: &RefusalAnswer,
    pod: Option<&str>,
    rule: Option<&str>,
    described: Option<(Cloud, String)>,
) -> Vec<u8> {
    let (error_description, errors) = match described {
        Some((Cloud::Linode, text)) => (None, Some([ApiError { reason: text }])),
        Some((_, text)) => (Some(text), None),
        None => (None, None),
    };
    let body = Body {
        error: d.error,
        reason: d.reason,
        pod,
        rule,
        error_description,
        errors,
    };
    // Serialising four strings cannot fail; fall back to a fixed body rather than panic anyway.
    serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"error\"}".to_vec())
}

#[cfg(test)]
mod tests;
