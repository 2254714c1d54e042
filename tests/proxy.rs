//! The request path end to end: the real server on `127.0.0.1:0`, the real emulator (or a
//! recording upstream) behind it, pods told apart by their loopback source address.

use crate::support;

use std::time::Duration;

use imds_guard_emulator::EmulatorOptions;
use support::*;

async fn seed_guard(extra: &str) -> (Guard, Emulator) {
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&config(extra), emu.addr).await;
    (guard, emu)
}

#[tokio::test]
async fn seed_scenario_prod_reads_test_is_refused() {
    let (guard, _emu) = seed_guard("").await;

    let prod = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(prod.status, 200, "{}", prod.text());
    assert!(
        prod.text().starts_with("i-"),
        "instance id, got {}",
        prod.text()
    );

    let test = get(TEST, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(test.status, 403);
    assert_eq!(test.headers["content-type"], "application/json");
    assert_eq!(
        test.json(),
        serde_json::json!({"error": "forbidden", "reason": "no-rule", "pod": "imds/test-6d8f", "rule": null})
    );

    let labelled = get(LABELLED, guard.proxy, "/latest/user-data").await;
    assert_eq!(labelled.status, 200);
    assert!(
        labelled.text().contains("NODE_BOOTSTRAP_SECRET"),
        "{}",
        labelled.text()
    );

    let stranger = get(STRANGER, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(stranger.status, 403);
    assert_eq!(stranger.json()["reason"], "unknown-source");
    assert_eq!(stranger.json()["pod"], serde_json::Value::Null);
}

#[tokio::test]
async fn per_path_rules() {
    let (guard, _emu) = seed_guard("").await;
    let answer = get(PROD, guard.proxy, "/latest/user-data").await;
    assert_eq!(
        (answer.status.as_u16(), answer.json()["reason"].as_str()),
        (403, Some("path-not-allowed"))
    );

    let answer = get(
        PROD,
        guard.proxy,
        "/latest/meta-data/iam/security-credentials/",
    )
    .await;
    assert_eq!(answer.status, 403);
    assert_eq!(answer.json()["reason"], "denied-by-rule");
    assert_eq!(answer.json()["rule"], "imds-prod");
    assert!(!answer.text().contains("AccessKeyId"));

    // A case variant of a denied path is denied as well.
    let answer = get(PROD, guard.proxy, "/latest/meta-data/IAM/info").await;
    assert_eq!(answer.json()["reason"], "denied-by-rule");

    let doc = get(
        PROD,
        guard.proxy,
        "/latest/dynamic/instance-identity/document",
    )
    .await;
    assert_eq!(doc.status, 200);
    assert!(doc.json()["region"].is_string());

    // botocore asks for the zone with a trailing slash.
    let zone = get(
        PROD,
        guard.proxy,
        "/latest/meta-data/placement/availability-zone/",
    )
    .await;
    assert_eq!(zone.status, 200);
    assert!(zone.text().starts_with("us-"), "{}", zone.text());

    // Directory listings come through untouched.
    let listing = get(PROD, guard.proxy, "/latest/meta-data/").await;
    assert_eq!(listing.status, 200);
    assert!(
        listing.text().lines().any(|l| l == "placement/"),
        "{}",
        listing.text()
    );

    let head = request(
        PROD,
        guard.proxy,
        "HEAD",
        "/latest/meta-data/instance-id",
        &[],
    )
    .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert!(head.headers.contains_key("content-length"));
}

#[tokio::test]
async fn imdsv2_token_flow_with_passthrough_tokens() {
    // The service's tokens, through the guard (the guard's own are in tests/front.rs).
    let (guard, _emu) = seed_guard(&passthrough("[imdsv2]\nmax_token_ttl_seconds = 900")).await;

    let put = request(
        PROD,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    // Capped by the policy, and echoed (the Rust SDK fails without the header).
    assert_eq!(put.headers["x-aws-ec2-metadata-token-ttl-seconds"], "900");
    let token = put.text();
    assert!(token.len() > 20);

    let read = request(
        PROD,
        guard.proxy,
        "GET",
        "/latest/meta-data/instance-id",
        &[("x-aws-ec2-metadata-token", &token)],
    )
    .await;
    assert_eq!(read.status, 200);
    let bad = request(
        PROD,
        guard.proxy,
        "GET",
        "/latest/meta-data/instance-id",
        &[("x-aws-ec2-metadata-token", "forged")],
    )
    .await;
    assert_eq!(bad.status, 401, "the emulator refuses unknown tokens");

    // The emulator refuses token PUTs that carry X-Forwarded-For; the guard strips it.
    let xff = request(
        PROD,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[
            ("x-aws-ec2-metadata-token-ttl-seconds", "60"),
            ("x-forwarded-for", "10.0.0.7"),
        ],
    )
    .await;
    assert_eq!(xff.status, 200);
    assert_eq!(xff.headers["x-aws-ec2-metadata-token-ttl-seconds"], "60");

    // Pods with no access get no token.
    let refused = request(
        TEST,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(refused.status, 403);

    // Bad TTLs are refused by the guard itself.
    for ttl in ["0", "21601", "abc", ""] {
        let answer = request(
            PROD,
            guard.proxy,
            "PUT",
            "/latest/api/token",
            &[("x-aws-ec2-metadata-token-ttl-seconds", ttl)],
        )
        .await;
        assert_eq!(answer.status, 400, "ttl {ttl:?}");
        assert_eq!(answer.json()["reason"], "bad-request");
    }
    let missing = request(PROD, guard.proxy, "PUT", "/latest/api/token", &[]).await;
    assert_eq!(missing.status, 400);

    // No audit line carries the token.
    let events = guard.wait_events(10).await;
    let all = serde_json::to_string(&events).unwrap();
    assert!(
        !all.contains(&token),
        "token value leaked into the audit log"
    );
    let put_event = &events[0];
    assert_eq!(put_event["imds_version"], "v2");
    assert_eq!(put_event["reason"], "token-allowed");
}

#[tokio::test]
async fn require_tokens_answers_401_and_forwards_nothing() {
    let rec = recorder(Duration::ZERO).await;
    let guard = Guard::start(
        &passthrough(&config("[imdsv2]\nrequire_tokens = true")),
        rec.addr,
    )
    .await;

    let answer = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 401);
    assert_eq!(answer.json()["reason"], "token-required");
    assert!(
        rec.seen().is_empty(),
        "a tokenless read was forwarded: {:?}",
        rec.seen()
    );

    let with_token = request(
        PROD,
        guard.proxy,
        "GET",
        "/latest/meta-data/instance-id",
        &[("x-aws-ec2-metadata-token", "t")],
    )
    .await;
    assert_eq!(with_token.status, 200);
    assert_eq!(rec.seen().len(), 1);
    // The token PUT needs no token.
    let put = request(
        PROD,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(put.status, 200);
}

#[tokio::test]
async fn forwarded_requests_are_clean() {
    let rec = recorder(Duration::ZERO).await;
    // The pod's token goes through as it is (guard tokens: tests/front.rs).
    let guard = Guard::start(&passthrough(&config("")), rec.addr).await;
    let answer = request(
        PROD,
        guard.proxy,
        "GET",
        "//latest/meta-data//placement/",
        &[
            ("x-forwarded-for", "10.1.1.1"),
            ("forwarded", "for=10.1.1.1"),
            ("x-aws-ec2-metadata-token", "tok"),
            ("user-agent", "aws-sdk-test"),
            ("cookie", "a=b"),
            ("proxy-authorization", "Basic eA=="),
            ("te", "trailers"),
        ],
    )
    .await;
    assert_eq!(answer.status, 200);
    // Hop-by-hop headers of the upstream answer, and those its Connection header names, are gone.
    assert!(!answer.headers.contains_key("x-secret-hop"));
    let seen = rec.seen();
    assert_eq!(seen.len(), 1);
    let seen = &seen[0];
    assert_eq!(seen.method, "GET");
    // The path checked is the path forwarded: canonical, byte for byte.
    assert_eq!(seen.target, "/latest/meta-data/placement/");
    assert_eq!(seen.headers["x-aws-ec2-metadata-token"], "tok");
    assert_eq!(seen.headers["user-agent"], "aws-sdk-test");
    for name in [
        "x-forwarded-for",
        "forwarded",
        "cookie",
        "proxy-authorization",
        "te",
    ] {
        assert!(!seen.headers.contains_key(name), "{name} was forwarded");
    }
    assert_eq!(seen.headers["host"], rec.addr.to_string());
}

#[tokio::test]
async fn methods_other_than_get_head_and_token_put_are_405() {
    let rec = recorder(Duration::ZERO).await;
    let guard = Guard::start(&config(""), rec.addr).await;
    for (method, path) in [
        ("POST", "/latest/meta-data/"),
        ("DELETE", "/latest/meta-data/instance-id"),
        ("PATCH", "/latest/api/token"),
        ("OPTIONS", "/latest/meta-data/"),
        ("PUT", "/latest/meta-data/instance-id"),
        ("GET", "/latest/api/token"),
    ] {
        let answer = request(LABELLED, guard.proxy, method, path, &[]).await;
        assert_eq!(answer.status, 405, "{method} {path}");
        assert_eq!(answer.headers["allow"], "GET, HEAD, PUT");
        assert_eq!(answer.json()["reason"], "method-not-allowed");
    }
    assert!(
        rec.seen().is_empty(),
        "refused methods were forwarded: {:?}",
        rec.seen()
    );
}

#[tokio::test]
async fn malformed_requests_are_400_and_not_forwarded() {
    let rec = recorder(Duration::ZERO).await;
    let guard = Guard::start(&config(""), rec.addr).await;
    let requests: &[&[u8]] = &[
        b"GET /latest/meta-data/../user-data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /latest/meta-data/%2e%2e/user-data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /latest/meta-data%2f..%2fuser-data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /latest/user-d%61ta HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /latest/user-data;x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /latest/meta-data/?x=/../user-data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET http://169.254.169.254/latest/user-data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        b"GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
    ];
    for raw_request in requests {
        let text = raw(LABELLED, guard.proxy, raw_request).await;
        assert_eq!(
            raw_status(&text),
            400,
            "{}\n=> {text}",
            String::from_utf8_lossy(raw_request)
        );
    }
    assert!(
        rec.seen().is_empty(),
        "malformed requests were forwarded: {:?}",
        rec.seen()
    );
    let events = guard.wait_events(requests.len()).await;
    assert!(
        events
            .iter()
            .all(|e| e["reason"] == "bad-request" && e["decision"] == "deny"),
        "{events:?}"
    );
    // The guard is still up.
    assert_eq!(
        get(LABELLED, guard.proxy, "/latest/meta-data/")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn upstream_down_is_502_and_black_hole_is_504() {
    let down = closed_port().await;
    let guard = Guard::start(&config(""), down).await;
    let answer = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 502);
    assert_eq!(answer.json()["reason"], "upstream-unreachable");
    assert_eq!(guard.last_event().await["error"], "upstream-unreachable");

    let (hole, _task) = black_hole().await;
    let guard = Guard::start(&config(""), hole).await;
    let started = std::time::Instant::now();
    let answer = get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 504);
    assert_eq!(answer.json()["reason"], "upstream-timeout");
    // The configured deadline (1.5 s in `config`) was applied, not some default.
    assert!(
        started.elapsed() >= Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    // Refusals still work while the upstream is gone.
    assert_eq!(
        get(TEST, guard.proxy, "/latest/meta-data/").await.status,
        403
    );
}

#[tokio::test]
async fn audit_lines_for_every_request() {
    let (guard, _emu) = seed_guard("").await;
    get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    get(TEST, guard.proxy, "/latest/user-data").await;
    let events = guard.wait_events(2).await;

    let allow = &events[0];
    assert_eq!(allow["src"], PROD);
    assert_eq!(allow["pod"], "imds/prod-5c7b9");
    assert_eq!(allow["pod_uid"], "static:imds/prod-5c7b9");
    assert_eq!(allow["labels"], serde_json::json!({"app": "prod"}));
    assert_eq!(allow["owner"], serde_json::Value::Null);
    assert_eq!(allow["method"], "GET");
    assert_eq!(allow["path"], "/latest/meta-data/instance-id");
    assert_eq!(allow["decision"], "allow");
    assert_eq!(allow["reason"], "path-allowed");
    assert_eq!(allow["rule"], "imds-prod");
    assert_eq!(allow["status"], 200);
    assert_eq!(allow["imds_version"], "v1");
    assert!(allow["upstream_ms"].as_f64().unwrap() >= 0.0);
    assert!(allow["bytes"].as_u64().unwrap() > 0);
    assert!(allow["ts"].as_str().unwrap().ends_with('Z'));

    let deny = &events[1];
    assert_eq!(deny["pod"], "imds/test-6d8f");
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["reason"], "no-rule");
    assert_eq!(deny["status"], 403);
    assert_eq!(deny["upstream_ms"], serde_json::Value::Null);
}

#[tokio::test]
async fn audit_lines_carry_the_chosen_labels_and_the_configured_owner() {
    let emu = emulator(EmulatorOptions::default()).await;
    let config =
        "[upstream]\nurl = \"{upstream}\"\n\n[audit]\nworkload_labels = [\"team\", \"app\"]\n\n\
        [[inventory.pods]]\nip = \"127.0.0.2\"\nnamespace = \"shop\"\nname = \"web-0\"\n\
        labels = { app = \"web\", team = \"checkout\", tier = \"front\" }\n\
        owner = { kind = \"StatefulSet\", name = \"web\" }\n";
    let guard = Guard::start(config, emu.addr).await;
    get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    get(STRANGER, guard.proxy, "/latest/meta-data/instance-id").await;
    let events = guard.wait_events(2).await;
    assert_eq!(
        events[0]["labels"],
        serde_json::json!({"team": "checkout", "app": "web"})
    );
    assert_eq!(
        events[0]["owner"],
        serde_json::json!({"kind": "StatefulSet", "name": "web"})
    );
    // An unknown source has neither.
    assert_eq!(events[1]["pod"], serde_json::Value::Null);
    assert_eq!(events[1]["labels"], serde_json::Value::Null);
    assert_eq!(events[1]["owner"], serde_json::Value::Null);
}

#[tokio::test]
async fn audit_mode_forwards_and_logs_would_deny() {
    let (guard, _emu) = seed_guard("[server]\nmode = \"audit\"").await;
    let answer = get(TEST, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 200);
    let event = guard.last_event().await;
    assert_eq!(
        (event["decision"].as_str(), event["reason"].as_str()),
        (Some("would-deny"), Some("no-rule"))
    );

    let answer = get(STRANGER, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(answer.status, 200);

    // What could not be read safely is refused in every mode.
    let text = raw(
        TEST,
        guard.proxy,
        b"GET /latest/meta-data/../user-data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&text), 400);
    assert_eq!(
        request(TEST, guard.proxy, "POST", "/latest/meta-data/", &[])
            .await
            .status,
        405
    );
    // Allowed requests are plain allows.
    get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(guard.last_event().await["decision"], "allow");
}

#[tokio::test]
async fn each_request_on_a_kept_alive_connection_is_decided_alone() {
    let (guard, _emu) = seed_guard("").await;
    let text = raw(
        PROD,
        guard.proxy,
        b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\nGET /latest/user-data HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .map(|(i, _)| &text[i + 9..i + 12])
        .collect();
    assert_eq!(statuses, ["200", "403"], "{text}");
    assert!(!text.contains("NODE_BOOTSTRAP_SECRET"));
}

#[tokio::test]
async fn admin_port() {
    let (guard, _emu) = seed_guard("").await;
    assert_eq!(get(PROD, guard.admin, "/healthz").await.status, 200);
    assert_eq!(get(PROD, guard.admin, "/readyz").await.status, 200);
    get(PROD, guard.proxy, "/latest/meta-data/instance-id").await;
    let metrics = get(PROD, guard.admin, "/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(text.contains("imds_guard_requests_total{decision=\"allow\",reason=\"path-allowed\",status=\"200\"} 1"), "{text}");
    assert!(text.contains("imds_guard_inventory_pods 3"), "{text}");
    assert_eq!(
        request(PROD, guard.admin, "POST", "/healthz", &[])
            .await
            .status,
        405
    );
    assert_eq!(get(PROD, guard.admin, "/nothing").await.status, 404);
}

#[tokio::test]
async fn graceful_shutdown_finishes_requests_in_flight() {
    let rec = recorder(Duration::from_millis(700)).await;
    let guard = Guard::start(&config("[server]\nshutdown_grace_seconds = 5"), rec.addr).await;
    let proxy = guard.proxy;
    let in_flight =
        tokio::spawn(async move { get(PROD, proxy, "/latest/meta-data/instance-id").await });
    // Let the request reach the upstream, then ask the guard to stop.
    for _ in 0..100 {
        if !rec.seen().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let stopping = tokio::spawn(guard.stop());
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 200, "the request in flight was cut");
    stopping.await.unwrap().unwrap();
    // The listener is closed now.
    assert!(
        tokio::net::TcpStream::connect(proxy).await.is_err(),
        "still accepting after shutdown"
    );
}
