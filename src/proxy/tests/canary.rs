//! The interception canary on the request path: answered by the guard itself, for any source,
//! with nothing forwarded and no audit line; everything else on its path goes the normal way.

use http_body_util::Full;

use super::*;

const NONCE: &str = "0123456789abcdef0123456789ABCDEF";

fn probe(headers: &[(&str, &str)]) -> Request<Empty<Bytes>> {
    request("GET", crate::canary::PATH, headers)
}

#[tokio::test]
async fn a_probe_is_answered_with_its_nonce_from_any_source_and_counted_not_audited() {
    // An address no pod has, and an inventory that has not even synced: neither matters.
    for index in [index(), Index::new()] {
        let h = harness("", index, ok());
        let answer = h
            .send("10.0.0.9", probe(&[("x-imds-guard-canary", NONCE)]))
            .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.headers["x-imds-guard-canary"], NONCE);
        assert_eq!(answer.headers["content-type"], "application/json");
        assert_eq!(json(&answer.body), serde_json::json!({ "canary": NONCE }));
        assert_eq!(answer.hops, None);
        assert!(h.sent().is_empty(), "forwarded: {:?}", h.sent());
        assert!(h.audit.events().is_empty(), "{:?}", h.audit.events());
        assert_eq!(h.proxy.metrics.canary_probes.get(), 1);
        assert!(h
            .proxy
            .metrics
            .encode()
            .lines()
            .any(|l| l == "imds_guard_canary_probes_total 1"));
    }
}

#[tokio::test]
async fn a_malformed_nonce_is_refused_with_400_in_the_usual_shape() {
    let h = harness("", index(), ok());
    let too_long = "a".repeat(65);
    let bad: [&[(&str, &str)]; 5] = [
        &[("x-imds-guard-canary", "0123456789abcde")],
        &[("x-imds-guard-canary", &too_long)],
        &[("x-imds-guard-canary", "0123456789abcdef/")],
        &[("x-imds-guard-canary", "0123456789abcdef\"}")],
        &[
            ("x-imds-guard-canary", NONCE),
            ("x-imds-guard-canary", NONCE),
        ],
    ];
    for (n, headers) in bad.into_iter().enumerate() {
        let answer = h.send("10.0.0.2", probe(headers)).await;
        assert_eq!(answer.status, 400, "{headers:?}");
        assert_eq!(answer.headers["content-type"], "application/json");
        assert!(!answer.headers.contains_key("x-imds-guard-canary"));
        let body = json(&answer.body);
        assert_eq!(body["reason"], Reason::BadRequest.as_str(), "{body}");
        assert!(body["error"].is_string(), "{body}");
        assert_eq!(h.proxy.metrics.canary_probes.get(), n as u64 + 1);
    }
    assert!(h.sent().is_empty());
    assert!(h.audit.events().is_empty());
}

#[tokio::test]
async fn other_requests_on_the_canary_path_take_the_normal_path() {
    let header = ("x-imds-guard-canary", NONCE);
    let cases: [(&str, Request<Empty<Bytes>>); 4] = [
        ("no header", probe(&[])),
        ("PUT", request("PUT", crate::canary::PATH, &[header])),
        ("HEAD", request("HEAD", crate::canary::PATH, &[header])),
        (
            "a query",
            request("GET", &format!("{}?x=1", crate::canary::PATH), &[header]),
        ),
    ];
    for (what, req) in cases {
        let h = harness("", index(), ok());
        let answer = h.send("10.0.0.2", req).await;
        assert_ne!(answer.status, 200, "{what}: {}", answer.body);
        assert!(
            !answer.headers.contains_key("x-imds-guard-canary"),
            "{what}"
        );
        // Decided and audited like any request; nothing of the canary's.
        assert_eq!(
            h.line()["path"]
                .as_str()
                .map(|p| p.starts_with(crate::canary::PATH)),
            Some(true),
            "{what}"
        );
        assert_eq!(h.proxy.metrics.canary_probes.get(), 0, "{what}");
        assert!(h.sent().is_empty(), "{what}");
    }

    // A body makes it no probe either: the normal path refuses every body.
    let h = harness("", index(), ok());
    let with_body = Request::get(crate::canary::PATH)
        .header(header.0, header.1)
        .body(Full::new(Bytes::from_static(b"x")))
        .unwrap();
    assert_eq!(h.send("10.0.0.2", with_body).await.status, 400);
    assert_eq!(h.line()["reason"], "bad-request");
    assert_eq!(h.proxy.metrics.canary_probes.get(), 0);
}

#[tokio::test]
async fn requests_elsewhere_are_untouched_by_the_canary() {
    let h = harness("", index(), ok());
    let answer = h
        .send(
            "10.0.0.2",
            request(
                "GET",
                "/latest/meta-data/instance-id",
                &[("x-imds-guard-canary", NONCE)],
            ),
        )
        .await;
    assert_eq!((answer.status, answer.body.as_str()), (200, "i-0123"));
    assert!(!answer.headers.contains_key("x-imds-guard-canary"));
    assert_eq!(h.sent().len(), 1);
    assert_eq!(h.line()["reason"], "path-allowed");
    assert_eq!(h.proxy.metrics.canary_probes.get(), 0);
}

#[tokio::test]
async fn in_front_of_gcp_the_answer_carries_the_flavor_header() {
    // No rules: the canary needs none (and the shared policy's are AWS paths).
    let config = config::parse("[upstream]\ncloud = \"gcp\"\n").unwrap();
    let audit = Arc::new(Memory::default());
    let h = Harness {
        proxy: Proxy {
            live: Arc::new(Live::new(&config)),
            inventory: Arc::new(index()),
            upstream: Arc::new(Fake {
                script: ok(),
                sent: Mutex::new(Vec::new()),
            }),
            audit: audit.clone(),
            metrics: Arc::new(Metrics::new()),
            unknown_source_grace: Duration::ZERO,
            front: crate::front::Front::passthrough(),
        },
        audit,
    };
    let answer = h
        .send("10.0.0.9", probe(&[("x-imds-guard-canary", NONCE)]))
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.headers["metadata-flavor"], "Google");
    let answer = h
        .send("10.0.0.9", probe(&[("x-imds-guard-canary", "short")]))
        .await;
    assert_eq!(answer.status, 400);
    assert_eq!(answer.headers["metadata-flavor"], "Google");
    assert!(h.sent().is_empty());
    assert!(h.audit.events().is_empty());
}
