//! Refusals on the request path: every denial, malformed requests, failed forwards.

use super::*;

#[tokio::test]
async fn each_denial_is_refused_with_its_status_and_reason_and_nothing_is_forwarded() {
    // From, request, status, reason, the rule named.
    type Case = (
        &'static str,
        Request<Empty<Bytes>>,
        u16,
        &'static str,
        Option<&'static str>,
    );
    let cases: [Case; 9] = [
        (
            "10.0.0.9",
            request("GET", "/latest/meta-data/", &[]),
            403,
            "unknown-source",
            None,
        ),
        (
            "10.0.0.5",
            request("GET", "/latest/meta-data/", &[]),
            403,
            "ambiguous-source",
            None,
        ),
        (
            "10.0.0.3",
            request("GET", "/latest/meta-data/", &[]),
            403,
            "no-rule",
            None,
        ),
        (
            "10.0.0.2",
            request("GET", "/latest/user-data", &[]),
            403,
            "path-not-allowed",
            None,
        ),
        (
            "10.0.0.2",
            request("GET", "/latest/meta-data/iam/info", &[]),
            403,
            "denied-by-rule",
            Some("prod"),
        ),
        (
            "10.0.0.2",
            request("POST", "/latest/meta-data/", &[]),
            405,
            "method-not-allowed",
            None,
        ),
        (
            "10.0.0.4",
            request("GET", "/latest/meta-data/", &[]),
            401,
            "token-required",
            Some("strict"),
        ),
        (
            "10.0.0.2",
            request("GET", "/latest/meta-data/../iam/", &[]),
            400,
            "bad-request",
            None,
        ),
        (
            "10.0.0.7",
            request(
                "PUT",
                "/latest/api/token",
                &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
            ),
            403,
            "path-not-allowed",
            None,
        ),
    ];
    for (from, req, status, reason, rule) in cases {
        let h = harness("", index(), ok());
        let answer = h.send(from, req).await;
        assert_eq!(answer.status, status, "{from} {reason}");
        assert_eq!(answer.headers["content-type"], "application/json");
        let body = json(&answer.body);
        assert_eq!(body["reason"], reason);
        assert_eq!(body["rule"].as_str(), rule, "{reason}");
        assert!(h.sent().is_empty(), "{reason}: forwarded");
        let line = h.line();
        assert_eq!(
            (line["decision"].as_str(), line["reason"].as_str()),
            (Some("deny"), Some(reason))
        );
        assert_eq!(line["status"], status);
    }
}

#[tokio::test]
async fn not_ready_asks_to_come_back_and_a_405_names_the_methods() {
    let h = harness("", Index::new(), ok());
    let answer = h.get("10.0.0.2", "/latest/meta-data/").await;
    assert_eq!(answer.status, 503);
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(json(&answer.body)["reason"], "not-ready");
    let h = harness("", index(), ok());
    let answer = h
        .send("10.0.0.2", request("DELETE", "/latest/meta-data/", &[]))
        .await;
    assert_eq!(answer.status, 405);
    assert_eq!(answer.headers["allow"], "GET, HEAD, PUT");
}

#[tokio::test]
async fn bodies_and_bad_token_ttls_are_bad_requests() {
    let h = harness("", index(), ok());
    let with_body = Request::builder()
        .method("GET")
        .uri("/latest/meta-data/")
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(h.send("10.0.0.2", with_body).await.status, 400);
    let chunked = request(
        "GET",
        "/latest/meta-data/",
        &[("transfer-encoding", "chunked")],
    );
    assert_eq!(h.send("10.0.0.2", chunked).await.status, 400);
    for ttl in [None, Some("0"), Some("21601"), Some("+5")] {
        let headers: Vec<(&str, &str)> = ttl
            .map(|t| vec![("x-aws-ec2-metadata-token-ttl-seconds", t)])
            .unwrap_or_default();
        let answer = h
            .send("10.0.0.2", request("PUT", "/latest/api/token", &headers))
            .await;
        assert_eq!(answer.status, 400, "{ttl:?}");
        // The rule that allowed the token request is named.
        assert_eq!(json(&answer.body)["rule"], "prod", "{ttl:?}");
    }
    assert!(h.sent().is_empty());
    assert!(h
        .audit
        .events()
        .iter()
        .all(|l| l["reason"] == "bad-request" && l["decision"] == "deny"));
}

#[tokio::test]
async fn a_failed_forward_is_answered_from_the_table_and_audited_with_its_error() {
    // The failure, the status, the JSON error word, the reason.
    type Case = (fn() -> UpstreamError, u16, &'static str, &'static str);
    let cases: [Case; 3] = [
        (
            || UpstreamError::Timeout,
            504,
            "gateway-timeout",
            "upstream-timeout",
        ),
        (
            || UpstreamError::Unreachable("refused".into()),
            502,
            "bad-gateway",
            "upstream-unreachable",
        ),
        (
            || UpstreamError::TooLarge,
            502,
            "bad-gateway",
            "upstream-too-large",
        ),
    ];
    for (error, status, word, kind) in cases {
        let h = harness("", index(), Script::Fail(error));
        let answer = h.get("10.0.0.2", "/latest/meta-data/instance-id").await;
        assert_eq!(answer.status, status);
        let body = json(&answer.body);
        assert_eq!(
            (body["error"].as_str(), body["reason"].as_str()),
            (Some(word), Some(kind))
        );
        assert_eq!(
            (body["pod"].as_str(), body["rule"].as_str()),
            (Some("ns/prod"), Some("prod"))
        );
        // The request was allowed; forwarding is what failed.
        let line = h.line();
        assert_eq!(line["decision"], "allow");
        assert_eq!(line["reason"], "path-allowed");
        assert_eq!(line["error"], kind);
        assert_eq!(line["status"], status);
        assert!(line["upstream_ms"].is_null());
    }
}

#[tokio::test(start_paused = true)]
async fn a_malformed_request_from_an_unknown_address_is_refused_without_waiting() {
    let mut h = harness("", index(), ok());
    h.proxy.unknown_source_grace = Duration::from_secs(30);
    let started = tokio::time::Instant::now();
    let answer = h.get("10.0.0.9", "/latest/meta-data/..%2f").await;
    assert_eq!(answer.status, 400);
    assert_eq!(started.elapsed(), Duration::ZERO);
    // A well-formed one from the same address waits out the grace before its refusal.
    let answer = h.get("10.0.0.9", "/latest/meta-data/").await;
    assert_eq!(
        (answer.status, json(&answer.body)["reason"].as_str()),
        (403, Some("unknown-source"))
    );
    assert_eq!(started.elapsed(), Duration::from_secs(30));
}
