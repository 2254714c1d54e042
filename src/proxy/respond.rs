//! The one place where the proxy's own answers are made: refusals and upstream failures.
//!
//! Every answer the guard makes itself is a short JSON object with a fixed shape, so clients and
//! operators can tell it from the metadata service's own answers. Internal detail (error chains,
//! addresses) goes to the log, never to the pod.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::policy::Reason;

use super::upstream::UpstreamError;

#[derive(Serialize)]
struct Body<'a> {
    error: &'static str,
    reason: &'a str,
    pod: Option<&'a str>,
    rule: Option<&'a str>,
}

/// The `error` word for a status.
fn error_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        405 => "method-not-allowed",
        502 => "bad-gateway",
        503 => "unavailable",
        504 => "gateway-timeout",
        _ => "error",
    }
}

/// A refusal for a policy or protocol reason.
pub fn refusal(reason: Reason, pod: Option<&str>, rule: Option<&str>) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(reason.status()).unwrap_or(StatusCode::FORBIDDEN);
    let mut response = json(status, reason.as_str(), pod, rule);
    match reason {
        Reason::MethodNotAllowed => {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD, PUT"));
        }
        // Not ready is temporary: ask well-behaved clients to come back shortly.
        Reason::NotReady => {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        _ => {}
    }
    response
}

/// The answer when forwarding failed.
pub fn upstream_failure(
    err: &UpstreamError,
    pod: Option<&str>,
    rule: Option<&str>,
) -> Response<Full<Bytes>> {
    let status = match err {
        UpstreamError::Timeout => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    json(status, err.kind(), pod, rule)
}

fn json(
    status: StatusCode,
    reason: &str,
    pod: Option<&str>,
    rule: Option<&str>,
) -> Response<Full<Bytes>> {
    let body = Body {
        error: error_name(status),
        reason,
        pod,
        rule,
    };
    // Serialising four strings cannot fail; fall back to a fixed body rather than panic anyway.
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|_| b"{\"error\":\"error\"}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_json(response: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn refusal_shape() {
        let r = refusal(Reason::PathNotAllowed, Some("imds/test-6d8f"), None);
        assert_eq!(r.status(), 403);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(
            body_json(r).await,
            serde_json::json!({"error":"forbidden","reason":"path-not-allowed","pod":"imds/test-6d8f","rule":null})
        );
    }

    #[tokio::test]
    async fn statuses_and_extra_headers() {
        let r = refusal(Reason::MethodNotAllowed, None, None);
        assert_eq!(
            (r.status().as_u16(), &r.headers()[header::ALLOW]),
            (405, &HeaderValue::from_static("GET, HEAD, PUT"))
        );
        let r = refusal(Reason::NotReady, None, None);
        assert_eq!(
            (r.status().as_u16(), &r.headers()[header::RETRY_AFTER]),
            (503, &HeaderValue::from_static("1"))
        );
        assert_eq!(
            refusal(Reason::TokenRequired, None, Some("r")).status(),
            401
        );
        assert_eq!(refusal(Reason::BadRequest, None, None).status(), 400);
        let r = upstream_failure(&UpstreamError::Timeout, Some("a/b"), Some("r"));
        assert_eq!(r.status(), 504);
        assert_eq!(body_json(r).await["reason"], "upstream-timeout");
        let r = upstream_failure(&UpstreamError::Unreachable("refused".into()), None, None);
        assert_eq!(r.status(), 502);
        let body = body_json(r).await;
        assert_eq!(
            (body["error"].as_str(), body["reason"].as_str()),
            (Some("bad-gateway"), Some("upstream-unreachable"))
        );
    }
}
