//! The admin port's `/metrics`: valid Prometheus text, counters that move with traffic, and label
//! values from fixed sets only (no pod names or paths).

use crate::support;

use std::collections::BTreeMap;

use imds_guard_emulator::EmulatorOptions;
use support::*;

/// Parses the text exposition into `series → value`, checking every line's shape on the way.
fn parse(text: &str) -> BTreeMap<String, f64> {
    let mut series = BTreeMap::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            assert!(
                ["counter", "gauge", "histogram", "unknown", "info"].contains(&kind),
                "{line}"
            );
            typed.push(name.to_owned());
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = key.split('{').next().unwrap();
        assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "bad name: {line}"
        );
        assert!(
            typed.iter().any(|t| name.starts_with(t.as_str())),
            "series without a TYPE: {line}"
        );
        if let Some(labels) = key.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        series.insert(key.to_owned(), value);
    }
    assert_eq!(
        text.lines().last(),
        Some("# EOF"),
        "OpenMetrics text ends with # EOF"
    );
    series
}

async fn scrape(guard: &Guard) -> (String, BTreeMap<String, f64>) {
    let answer = get(PROD, guard.admin, "/metrics").await;
    assert_eq!(answer.status, 200);
    assert!(answer.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let text = answer.text();
    let parsed = parse(&text);
    (text, parsed)
}

fn value(series: &BTreeMap<String, f64>, key: &str) -> f64 {
    series.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_with_traffic() {
    let emu = emulator(EmulatorOptions::default()).await;
    // Every allowed read forwarded (the cache's counters: tests/front.rs).
    let guard = Guard::start(&passthrough(&config("")), emu.addr).await;
    let (_, before) = scrape(&guard).await;
    assert_eq!(value(&before, "imds_guard_inventory_pods"), 3.0);
    assert_eq!(value(&before, "imds_guard_inventory_ready"), 1.0);
    assert_eq!(
        value(&before, "imds_guard_request_duration_seconds_count"),
        0.0
    );

    for _ in 0..3 {
        assert_eq!(
            get(PROD, guard.proxy, "/latest/meta-data/instance-id")
                .await
                .status,
            200
        );
    }
    assert_eq!(
        get(TEST, guard.proxy, "/latest/meta-data/instance-id")
            .await
            .status,
        403
    );
    assert_eq!(
        request(PROD, guard.proxy, "POST", "/latest/meta-data/", &[])
            .await
            .status,
        405
    );
    guard.wait_events(5).await;

    let (text, after) = scrape(&guard).await;
    let allow = r#"imds_guard_requests_total{decision="allow",reason="path-allowed",status="200"}"#;
    let no_rule = r#"imds_guard_requests_total{decision="deny",reason="no-rule",status="403"}"#;
    let method =
        r#"imds_guard_requests_total{decision="deny",reason="method-not-allowed",status="405"}"#;
    assert_eq!(value(&after, allow), 3.0, "{text}");
    assert_eq!(value(&after, no_rule), 1.0, "{text}");
    assert_eq!(value(&after, method), 1.0, "{text}");
    // Rule names only in the per-rule family, only for requests a rule decided (not the
    // unselected pod's, not the refused method's).
    let by_rule = r#"imds_guard_rule_decisions_total{rule="imds-prod",decision="allow"}"#;
    assert_eq!(value(&after, by_rule), 3.0, "{text}");
    let ruled: f64 = after
        .iter()
        .filter(|(k, _)| k.starts_with("imds_guard_rule_decisions_total{"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(ruled, 3.0, "{text}");
    assert_eq!(
        value(&after, "imds_guard_request_duration_seconds_count"),
        5.0,
        "{text}"
    );
    assert_eq!(
        value(&after, "imds_guard_upstream_duration_seconds_count"),
        3.0,
        "{text}"
    );
    assert!(value(&after, "imds_guard_request_duration_seconds_sum") > 0.0);
    assert_eq!(
        after.get("imds_guard_audit_dropped_lines"),
        Some(&0.0),
        "{text}"
    );
    // Bounded label sets: no pod names, addresses or paths.
    for leak in [
        "prod-5c7b9",
        "test-6d8f",
        "127.0.0.2",
        "/latest",
        "instance-id",
    ] {
        assert!(!text.contains(leak), "{leak} in metrics:\n{text}");
    }
}

#[tokio::test]
async fn upstream_errors_are_counted_by_kind() {
    let down = closed_port().await;
    let guard = Guard::start(&config(""), down).await;
    assert_eq!(
        get(PROD, guard.proxy, "/latest/meta-data/instance-id")
            .await
            .status,
        502
    );
    assert_eq!(
        get(PROD, guard.proxy, "/latest/meta-data/ami-id")
            .await
            .status,
        502
    );
    guard.wait_events(2).await;
    let (text, series) = scrape(&guard).await;
    assert_eq!(
        value(
            &series,
            r#"imds_guard_upstream_errors_total{kind="upstream-unreachable"}"#
        ),
        2.0,
        "{text}"
    );
    assert_eq!(
        value(
            &series,
            r#"imds_guard_requests_total{decision="allow",reason="path-allowed",status="502"}"#
        ),
        2.0
    );
}
