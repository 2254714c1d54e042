//! The node's metadata front, end to end on real sockets: tokens the guard issues and binds to the
//! pod, its own token with the service, the cache with one upstream request for many, and the
//! per-pod and node-wide limits. The upstream is a recorder (it counts what reached "the
//! service") or the emulator (real token, credential and throttling rules).
//!
//! Pods of the seed scenario: `PROD` may read `/latest/meta-data/**` but not `iam/**`, `TEST` has
//! no rule, `LABELLED` (the inspector) may read `/latest/**`.

use crate::support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use imds_guard_emulator::EmulatorOptions;
use support::*;

const TTL: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN: &str = "x-aws-ec2-metadata-token";
const ROLE: &str = "/latest/meta-data/iam/security-credentials/imds-guard-node-role";

async fn put_token(from: &str, guard: &Guard, ttl: &str) -> Answer {
    request(from, guard.proxy, "PUT", "/latest/api/token", &[(TTL, ttl)]).await
}

async fn read(from: &str, guard: &Guard, path: &str, token: &str) -> Answer {
    request(from, guard.proxy, "GET", path, &[(TOKEN, token)]).await
}

/// A token the guard issued to `from`.
async fn token(from: &str, guard: &Guard) -> String {
    let put = put_token(from, guard, "120").await;
    assert_eq!(put.status, 200, "{}", put.text());
    put.text()
}

/// The requests that reached the recorder for `target`.
fn reached(rec: &Recorder, target: &str) -> usize {
    rec.seen().iter().filter(|s| s.target == target).count()
}

/// A metric's value (0 when absent).
async fn metric(guard: &Guard, series: &str) -> f64 {
    support::metric(guard.admin, series).await.0.unwrap_or(0.0)
}

/// The audit events for `path`, in order, once `n` of them exist.
async fn events_for(guard: &Guard, path: &str, n: usize) -> Vec<serde_json::Value> {
    for _ in 0..300 {
        let events: Vec<_> = guard
            .events()
            .into_iter()
            .filter(|e| e["path"] == path)
            .collect();
        if events.len() >= n {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "fewer than {n} audit events for {path}: {:?}",
        guard.events()
    );
}

#[tokio::test]
async fn tokens_are_the_guards_own_and_good_only_for_the_pod_that_asked() {
    let rec = recorder(Duration::ZERO).await;
    let guard = Guard::start(&config(""), rec.addr).await;

    let put = put_token(LABELLED, &guard, "600").await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(
        put.headers[TTL], "120",
        "the TTL header, as the service sends it: at most two minutes with a key random per start"
    );
    let token = put.text();
    assert_eq!(token.len(), 55, "{token}");
    assert!(
        rec.seen().is_empty(),
        "the token PUT reached the service: {:?}",
        rec.seen()
    );

    // Its own pod's read goes through, with the guard's token in place of the pod's.
    let answer = read(LABELLED, &guard, "/latest/user-data", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    let seen = rec.seen();
    let targets: Vec<&str> = seen.iter().map(|s| s.target.as_str()).collect();
    assert_eq!(targets, ["/latest/api/token", "/latest/user-data"]);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(
        seen[0].headers[TTL], "21600",
        "the guard asks for the longest"
    );
    assert_eq!(
        seen[1].headers[TOKEN], "recorded /latest/api/token",
        "the guard's own token"
    );
    assert!(seen
        .iter()
        .all(|s| s.headers.get(TOKEN).is_none_or(|t| t != token.as_str())));

    // Another pod with the inspector's token: refused, nothing forwarded.
    let stolen = read(PROD, &guard, "/latest/meta-data/instance-id", &token).await;
    assert_eq!(stolen.status, 401, "{}", stolen.text());
    assert_eq!(stolen.json()["reason"], "token-invalid");
    let forged = read(
        LABELLED,
        &guard,
        "/latest/user-data",
        "AQAAAABpZ3VhcmQtZm9yZ2VkLXRva2VuLXRoYXQtbG9va3MtcmlnaHQ",
    )
    .await;
    assert_eq!(forged.status, 401);
    let junk = read(LABELLED, &guard, "/latest/user-data", "x").await;
    assert_eq!(junk.status, 401);
    assert_eq!(rec.seen().len(), 2, "a refused token was forwarded");

    // Many reads, one token request to the service.
    for _ in 0..5 {
        assert_eq!(
            read(LABELLED, &guard, "/latest/user-data", &token)
                .await
                .status,
            200
        );
    }
    assert_eq!(reached(&rec, "/latest/api/token"), 1);

    let events = guard.wait_events(10).await;
    let tokens: Vec<&str> = events
        .iter()
        .map(|e| e["token"].as_str().unwrap_or("null"))
        .collect();
    assert_eq!(
        tokens[..5],
        ["issued", "valid", "invalid", "invalid", "invalid"],
        "{events:?}"
    );
    let all = serde_json::to_string(&events).unwrap();
    assert!(!all.contains(&token), "a token value in the audit lines");
    assert!(!all.contains("recorded /latest/api/token"));
    assert_eq!(metric(&guard, "imds_guard_tokens_issued_total").await, 1.0);
    assert_eq!(
        metric(&guard, r#"imds_guard_token_checks_total{result="invalid"}"#).await,
        3.0
    );
    assert_eq!(
        metric(
            &guard,
            r#"imds_guard_upstream_token_fetches_total{result="ok"}"#
        )
        .await,
        1.0
    );
    assert!(metric(&guard, "imds_guard_upstream_token_expiry_seconds").await > 1.0e9);
}

#[tokio::test]
async fn expired_tokens_and_tokens_of_another_key_are_refused_and_a_key_file_carries_them_over() {
    let rec = recorder(Duration::ZERO).await;
    let guard = Guard::start(&config(""), rec.addr).await;
    let short = put_token(LABELLED, &guard, "1").await.text();
    let long = put_token(LABELLED, &guard, "600").await.text();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let expired = read(LABELLED, &guard, "/latest/user-data", &short).await;
    assert_eq!(expired.status, 401);
    assert_eq!(expired.json()["reason"], "token-invalid");
    assert_eq!(guard.last_event().await["token"], "expired");
    assert_eq!(
        read(LABELLED, &guard, "/latest/user-data", &long)
            .await
            .status,
        200
    );

    // A guard with another (random) key takes none of them.
    let other = Guard::start(&config(""), rec.addr).await;
    assert_eq!(
        read(LABELLED, &other, "/latest/user-data", &long)
            .await
            .status,
        401
    );
    assert_eq!(other.last_event().await["token"], "invalid");

    // With a key file, a token outlives the guard that issued it.
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("token.key");
    std::fs::write(&key, [0x5a; 32]).unwrap();
    let keyed = format!("[imdsv2]\ntoken_key_file = \"{}\"\n", key.display());
    let first = Guard::start(&config(&keyed), rec.addr).await;
    let token = put_token(LABELLED, &first, "600").await.text();
    first.stop().await.unwrap();
    let second = Guard::start(&config(&keyed), rec.addr).await;
    let answer = read(LABELLED, &second, "/latest/user-data", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(second.last_event().await["token"], "valid");
}

#[tokio::test]
async fn the_token_request_follows_the_services_rules() {
    let rec = recorder(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("token.key");
    std::fs::write(&key, [0x11; 32]).unwrap();
    let guard = Guard::start(
        &config(&format!(
            "[imdsv2]\nmax_token_ttl_seconds = 900\ntoken_key_file = \"{}\"",
            key.display()
        )),
        rec.addr,
    )
    .await;
    for ttl in ["0", "21601", "abc", "", "-1", "+5"] {
        let answer = put_token(LABELLED, &guard, ttl).await;
        assert_eq!(answer.status, 400, "ttl {ttl:?}");
        assert_eq!(answer.json()["reason"], "bad-request");
    }
    let missing = request(LABELLED, guard.proxy, "PUT", "/latest/api/token", &[]).await;
    assert_eq!(missing.status, 400);
    let capped = put_token(LABELLED, &guard, "21600").await;
    assert_eq!(capped.status, 200);
    assert_eq!(capped.headers[TTL], "900", "capped by the policy");
    let smallest = put_token(LABELLED, &guard, "1").await;
    assert_eq!(smallest.headers[TTL], "1");
    // Without a key file tokens die with the process: granted two minutes at most.
    let ephemeral = Guard::start(&config(""), rec.addr).await;
    let short = put_token(LABELLED, &ephemeral, "21600").await;
    assert_eq!(short.headers[TTL], "120");
    assert_eq!(
        put_token(LABELLED, &ephemeral, "60").await.headers[TTL],
        "60"
    );
    let proxied = request(
        LABELLED,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[(TTL, "60"), ("x-forwarded-for", "10.0.0.7")],
    )
    .await;
    assert_eq!(proxied.status, 403, "refused as the service refuses it");
    assert_eq!(proxied.json()["reason"], "forwarded-token-request");
    assert_eq!(
        put_token(TEST, &guard, "60").await.status,
        403,
        "no rule, no token"
    );
    assert!(rec.seen().is_empty(), "{:?}", rec.seen());
}

#[tokio::test]
async fn required_tokens_are_the_guards() {
    let rec = recorder(Duration::ZERO).await;
    let guard = Guard::start(&config("[imdsv2]\nrequire_tokens = true"), rec.addr).await;
    let tokenless = get(LABELLED, guard.proxy, "/latest/user-data").await;
    assert_eq!(tokenless.status, 401);
    assert_eq!(tokenless.json()["reason"], "token-required");
    let token = put_token(LABELLED, &guard, "60").await.text();
    assert_eq!(
        read(LABELLED, &guard, "/latest/user-data", &token)
            .await
            .status,
        200
    );
    assert_eq!(reached(&rec, "/latest/user-data"), 1);
}

#[tokio::test]
async fn stable_answers_are_kept_for_their_age_and_the_rest_always_forwarded() {
    let rec = recorder(Duration::ZERO).await;
    let guard = Guard::start(&config("[cache]\nmax_age_seconds = 1"), rec.addr).await;
    let id = "/latest/meta-data/instance-id";
    let t = token(LABELLED, &guard).await;
    for _ in 0..3 {
        let answer = read(LABELLED, &guard, id, &t).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), format!("recorded {id}"));
    }
    assert_eq!(reached(&rec, id), 1);
    for _ in 0..2 {
        assert_eq!(
            get(LABELLED, guard.proxy, "/latest/user-data").await.status,
            200
        );
    }
    assert_eq!(
        reached(&rec, "/latest/user-data"),
        2,
        "user-data is never kept"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(read(LABELLED, &guard, id, &t).await.status, 200);
    assert_eq!(reached(&rec, id), 2, "asked again after max_age");
    // A read without a token goes to the service as one (IMDSv1): never from the cache.
    assert_eq!(get(LABELLED, guard.proxy, id).await.status, 200);
    assert_eq!(reached(&rec, id), 3);
    let tokenless = rec
        .seen()
        .into_iter()
        .filter(|s| s.target == id)
        .last()
        .unwrap();
    assert!(tokenless.headers.get(TOKEN).is_none(), "{tokenless:?}");

    let caches: Vec<String> = events_for(&guard, id, 5)
        .await
        .iter()
        .map(|e| e["cache"].to_string())
        .collect();
    assert_eq!(
        caches,
        [r#""miss""#, r#""hit""#, r#""hit""#, r#""miss""#, "null"]
    );
    let user_data = events_for(&guard, "/latest/user-data", 2).await;
    assert!(user_data.iter().all(|e| e["cache"].is_null()));
    assert_eq!(
        metric(&guard, r#"imds_guard_cache_requests_total{result="hit"}"#).await,
        2.0
    );
    assert_eq!(
        metric(&guard, r#"imds_guard_cache_requests_total{result="miss"}"#).await,
        2.0
    );
    assert!(metric(&guard, "imds_guard_cache_entries").await >= 1.0);
}

#[tokio::test]
async fn the_policy_decides_before_the_cache_answers() {
    let rec = recorder(Duration::ZERO).await;
    let guard = Guard::start(&config(""), rec.addr).await;
    let roles = "/latest/meta-data/iam/security-credentials/";
    let t = token(LABELLED, &guard).await;
    assert_eq!(read(LABELLED, &guard, roles, &t).await.status, 200);
    assert_eq!(events_for(&guard, roles, 1).await[0]["cache"], "miss");
    // PROD may not read iam/**: the kept answer is not its to have.
    let p = token(PROD, &guard).await;
    let denied = read(PROD, &guard, roles, &p).await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.json()["reason"], "denied-by-rule");
    assert!(!denied.text().contains("recorded"));
    let events = events_for(&guard, roles, 2).await;
    assert_eq!(events[1]["cache"], serde_json::Value::Null);
    assert_eq!(reached(&rec, roles), 1);

    // In audit mode a request the policy would deny is forwarded, never answered from the cache.
    let audit = Guard::start(&config("[server]\nmode = \"audit\""), rec.addr).await;
    let id = "/latest/meta-data/instance-id";
    let t = token(LABELLED, &audit).await;
    assert_eq!(read(LABELLED, &audit, id, &t).await.status, 200);
    assert_eq!(read(LABELLED, &audit, id, &t).await.status, 200);
    assert_eq!(events_for(&audit, id, 2).await[1]["cache"], "hit");
    let before = reached(&rec, id);
    let own = token(TEST, &audit).await;
    let would_deny = read(TEST, &audit, id, &own).await;
    assert_eq!(would_deny.status, 200);
    assert_eq!(reached(&rec, id), before + 1);
    let event = &events_for(&audit, id, 3).await[2];
    assert_eq!(event["decision"], "would-deny");
    assert!(event["cache"].is_null(), "{event}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_misses_make_one_upstream_request() {
    let rec = recorder(Duration::from_millis(300)).await;
    let guard = Arc::new(
        Guard::start(
            &config("[limits]\npod_requests_per_second = 0\n[server]\nworkers = 2"),
            rec.addr,
        )
        .await,
    );
    let id = "/latest/meta-data/instance-id";
    let t = Arc::new(token(LABELLED, &guard).await);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (guard, t) = (Arc::clone(&guard), Arc::clone(&t));
        tasks.spawn(async move { read(LABELLED, &guard, id, &t).await });
    }
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), format!("recorded {id}"));
    }
    assert_eq!(reached(&rec, id), 1, "one upstream exchange for 100 misses");
    assert_eq!(reached(&rec, "/latest/api/token"), 1);
    let events = events_for(&guard, id, 100).await;
    let count = |what: &str| events.iter().filter(|e| e["cache"] == what).count();
    assert_eq!(count("miss"), 1);
    assert_eq!(count("shared") + count("hit"), 99);
    assert!(count("shared") >= 1, "nobody waited for the miss");
}

#[tokio::test]
async fn a_failed_fetch_is_not_kept() {
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&config(""), emu.addr).await;
    // A cacheable path the service does not have: 404, and asked again next time.
    let path = "/latest/meta-data/placement/nowhere";
    let t = token(LABELLED, &guard).await;
    for _ in 0..2 {
        assert_eq!(read(LABELLED, &guard, path, &t).await.status, 404);
    }
    let events = events_for(&guard, path, 2).await;
    assert!(events.iter().all(|e| e["cache"] == "miss"), "{events:?}");
}

#[tokio::test]
async fn credentials_are_never_served_past_their_expiration_and_refreshed_ahead() {
    // Credentials good for 4 s, new ones every 2 s; kept until 1 s before they expire.
    let emu = emulator(EmulatorOptions {
        credentials_ttl: Duration::from_secs(4),
        ..EmulatorOptions::default()
    })
    .await;
    let guard = Guard::start(
        &config("[cache]\ncredentials_refresh_seconds = 1\n[limits]\npod_requests_per_second = 0"),
        emu.addr,
    )
    .await;
    let started = Instant::now();
    let mut keys = BTreeSet::new();
    let mut reads = 0;
    let t = token(LABELLED, &guard).await;
    while started.elapsed() < Duration::from_secs(9) {
        let answer = read(LABELLED, &guard, ROLE, &t).await;
        let received = SystemTime::now();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let doc = answer.json();
        let expiration = humantime::parse_rfc3339(doc["Expiration"].as_str().unwrap()).unwrap();
        assert!(
            expiration > received,
            "served {:?} past their Expiration",
            received.duration_since(expiration).unwrap_or_default()
        );
        keys.insert(doc["AccessKeyId"].as_str().unwrap().to_owned());
        reads += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(keys.len() >= 3, "the credentials rotated: {keys:?}");
    let events = events_for(&guard, ROLE, reads).await;
    let misses = events.iter().filter(|e| e["cache"] == "miss").count();
    assert_eq!(
        misses, 1,
        "only the first read waited for the service; refreshes happen in the background"
    );
    assert!(
        metric(&guard, r#"imds_guard_cache_refreshes_total{result="ok"}"#).await >= 3.0,
        "background refreshes"
    );
}

#[tokio::test]
async fn a_noisy_pod_is_limited_alone() {
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(
        &config("[limits]\npod_requests_per_second = 5\npod_burst = 5"),
        emu.addr,
    )
    .await;
    let id = "/latest/meta-data/instance-id";
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..20 {
        let answer = get(PROD, guard.proxy, id).await;
        if answer.status == 429 {
            limited.get_or_insert(answer.json());
            assert_eq!(answer.headers["retry-after"], "1");
        }
        statuses.push(answer.status.as_u16());
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(limited.unwrap()["reason"], "rate-limited");
    // The other pods are not slowed.
    assert_eq!(get(LABELLED, guard.proxy, id).await.status, 200);
    assert_eq!(get(LABELLED, guard.proxy, id).await.status, 200);
    assert_eq!(
        metric(&guard, r#"imds_guard_rate_limited_total{scope="pod"}"#).await,
        15.0
    );
    // And the noisy one gets its rate back.
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(get(PROD, guard.proxy, id).await.status, 200);
}

/// `n` reads of user-data (never cached) from the inspector at once; their statuses and reasons.
async fn burst(guard: &Guard, n: usize) -> Vec<(u16, String)> {
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        let proxy = guard.proxy;
        tasks.spawn(async move { get(LABELLED, proxy, "/latest/user-data").await });
    }
    let mut out = Vec::new();
    while let Some(answer) = tasks.join_next().await {
        let answer = answer.unwrap();
        let reason = match answer.status.as_u16() {
            429 if answer.headers.contains_key("content-type")
                && answer.headers["content-type"] == "application/json" =>
            {
                answer.json()["reason"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            }
            _ => String::new(),
        };
        out.push((answer.status.as_u16(), reason));
    }
    out
}

#[tokio::test]
async fn the_node_budget_keeps_the_service_from_throttling() {
    // A service that answers 8 requests a second, as the real one throttles an instance.
    let emu = emulator(EmulatorOptions {
        throttle: Some(8),
        ..EmulatorOptions::default()
    })
    .await;
    let no_limits = "[limits]\npod_requests_per_second = 0\nupstream_requests_per_second = 0";
    // Without a budget, a burst reaches the service and it throttles (its 429 is not the guard's).
    let open = Guard::start(&config(no_limits), emu.addr).await;
    let answers = burst(&open, 30).await;
    assert!(
        answers.iter().any(|(s, r)| *s == 429 && r.is_empty()),
        "the service never throttled: {answers:?}"
    );
    open.stop().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;

    // With a budget below it, the guard refuses the excess itself and the service never throttles.
    let budget = "[limits]\npod_requests_per_second = 0\nupstream_requests_per_second = 4";
    let guard = Guard::start(&config(budget), emu.addr).await;
    let answers = burst(&guard, 30).await;
    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    assert!(
        (1..=4).contains(&served),
        "{served} served within a budget of 4: {answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|(s, r)| *s == 200 || (*s == 429 && r == "rate-limited")),
        "the service throttled: {answers:?}"
    );
    assert_eq!(
        metric(&guard, r#"imds_guard_rate_limited_total{scope="upstream"}"#).await,
        (30 - served) as f64
    );
}

#[tokio::test]
async fn an_instance_that_requires_tokens_still_refuses_tokenless_reads() {
    // The service requires IMDSv2 (`HttpTokens = required`).
    let emu = emulator(EmulatorOptions {
        tokens: imds_guard_emulator::TokenMode::Required,
        ..EmulatorOptions::default()
    })
    .await;
    let guard = Guard::start(&config(""), emu.addr).await;
    let id = "/latest/meta-data/instance-id";
    let t = token(LABELLED, &guard).await;
    assert_eq!(read(LABELLED, &guard, id, &t).await.status, 200);
    // Kept now; a tokenless read is still the service's to refuse, and it does.
    let tokenless = get(LABELLED, guard.proxy, id).await;
    assert_eq!(tokenless.status, 401, "{}", tokenless.text());
    let event = &events_for(&guard, id, 2).await[1];
    assert!(
        event["cache"].is_null() && event["token"].is_null(),
        "{event}"
    );
}
