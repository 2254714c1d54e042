use super::*;
use http_body_util::BodyExt;
use imds_guard_core::disposition::UpstreamFailure;
use imds_guard_core::policy::Reason;

async fn body_json(response: Response<Full<Bytes>>) -> serde_json::Value {
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn refusal_shape() {
    let r = refusal(
        Refusal::Denied(Reason::PathNotAllowed),
        Cloud::Aws,
        Some("imds/test-6d8f"),
        None,
    );
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        body_json(r).await,
        serde_json::json!({"error":"forbidden","reason":"path-not-allowed","pod":"imds/test-6d8f","rule":null})
    );
}

#[tokio::test]
async fn azure_refusals_carry_a_description_for_msal() {
    let r = refusal(
        Refusal::Denied(Reason::PathNotAllowed),
        Cloud::Azure,
        Some("imds/prod"),
        None,
    );
    let json = body_json(r).await;
    assert_eq!(json["error"], "forbidden");
    assert_eq!(
        json["error_description"],
        "imds-guard refused this request: path-not-allowed (pod imds/prod, rule -)"
    );
    let aws = body_json(refusal(
        Refusal::Denied(Reason::PathNotAllowed),
        Cloud::Aws,
        None,
        None,
    ))
    .await;
    assert!(aws.get("error_description").is_none());
}

#[tokio::test]
async fn linode_refusals_carry_the_linode_api_s_error_form() {
    let json = body_json(refusal(
        Refusal::Denied(Reason::NoRule),
        Cloud::Linode,
        Some("imds/test"),
        None,
    ))
    .await;
    assert_eq!(json["reason"], "no-rule");
    assert_eq!(
        json["errors"],
        serde_json::json!([{"reason": "imds-guard refused this request: no-rule (pod imds/test, rule -)"}])
    );
    assert!(json.get("error_description").is_none());
    for other in [Cloud::Aws, Cloud::Azure, Cloud::Alibaba] {
        let json = body_json(refusal(Refusal::Denied(Reason::NoRule), other, None, None)).await;
        assert!(json.get("errors").is_none(), "{other}");
    }
}

#[test]
fn a_missing_gate_header_is_answered_as_each_server_does() {
    let missing =
        |cloud| refusal(Refusal::Denied(Reason::HeaderMissing), cloud, None, None).status();
    assert_eq!(missing(Cloud::Gcp), 403);
    assert_eq!(missing(Cloud::Azure), 400);
    assert_eq!(missing(Cloud::Oci), 401);
}

#[tokio::test]
async fn statuses_and_extra_headers() {
    let r = refusal(
        Refusal::Denied(Reason::MethodNotAllowed),
        Cloud::Aws,
        None,
        None,
    );
    assert_eq!(
        (r.status().as_u16(), &r.headers()[header::ALLOW]),
        (405, &HeaderValue::from_static("GET, HEAD, PUT"))
    );
    let r = refusal(Refusal::Denied(Reason::NotReady), Cloud::Aws, None, None);
    assert_eq!(
        (r.status().as_u16(), &r.headers()[header::RETRY_AFTER]),
        (503, &HeaderValue::from_static("1"))
    );
    assert_eq!(
        refusal(
            Refusal::Denied(Reason::TokenRequired),
            Cloud::Aws,
            None,
            Some("r")
        )
        .status(),
        401
    );
    assert_eq!(
        refusal(Refusal::Denied(Reason::BadRequest), Cloud::Aws, None, None).status(),
        400
    );
    let r = refusal(
        Refusal::Upstream(UpstreamFailure::Timeout),
        Cloud::Aws,
        Some("a/b"),
        Some("r"),
    );
    assert_eq!(r.status(), 504);
    assert_eq!(body_json(r).await["reason"], "upstream-timeout");
    let r = refusal(
        Refusal::Upstream(UpstreamFailure::Unreachable),
        Cloud::Aws,
        None,
        None,
    );
    assert_eq!(r.status(), 502);
    let body = body_json(r).await;
    assert_eq!(
        (body["error"].as_str(), body["reason"].as_str()),
        (Some("bad-gateway"), Some("upstream-unreachable"))
    );
}

#[test]
fn the_connection_refusal_is_well_formed() {
    let text = std::str::from_utf8(&CONNECTION_REFUSAL).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 429 "));
    assert!(head.contains(&format!("content-length: {}", body.len())));
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(json["reason"], "connection-limit");
    let gcp = std::str::from_utf8(connection_refusal(Cloud::Gcp)).unwrap();
    let (gcp_head, gcp_body) = gcp.split_once("\r\n\r\n").unwrap();
    assert!(
        gcp_head.contains("\r\nmetadata-flavor: Google\r\n"),
        "{gcp_head}"
    );
    assert_eq!(gcp_body, body);
    assert!(!head.contains("metadata-flavor"));
}
