//! Every metric an alert or a dashboard panel reads is one that a real guard exposes: the guard
//! runs in process on loopback with the cache, its own tokens and the pod limit on, serves a few
//! requests (allowed, cached, with a token, denied, rate limited) so that labelled series exist,
//! and its `/metrics` is read as Prometheus reads it.

use std::collections::{BTreeMap, BTreeSet};

use imds_guard::emulator::EmulatorOptions;

use super::support::*;
use super::{alerts, dashboard, promql, rules};

/// The names Prometheus stores from an OpenMetrics exposition, per `# TYPE` line: a counter
/// `x` is sampled as `x_total` (and `x_created`), a histogram as `x_bucket`, `x_sum` and `x_count`,
/// a gauge as `x`. Each maps to the family's name.
fn stored_names(text: &str) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let (family, kind) = rest.split_once(' ').expect("# TYPE name kind");
        let suffixes: &[&str] = match kind {
            "counter" => &["_total", "_created"],
            "histogram" => &["_bucket", "_sum", "_count", "_created"],
            "gauge" | "unknown" => &[""],
            other => panic!("a {other} family in the guard's metrics: {line}"),
        };
        for suffix in suffixes {
            names.insert(format!("{family}{suffix}"), family.to_owned());
        }
    }
    names
}

/// Series as exposed: `name → label sets`, each label set as its label names and values.
fn series(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let key = line.rsplit_once(' ').expect("name value").0;
        let (name, labels) = match key.split_once('{') {
            Some((name, labels)) => (name, labels.trim_end_matches('}')),
            None => (key, ""),
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once('=').expect("label=value");
                (k.to_owned(), v.trim_matches('"').to_owned())
            })
            .collect();
        out.entry(name.to_owned()).or_default().push(labels);
    }
    out
}

/// Labels every scraped series has from the PodMonitor (and Prometheus), not from the guard.
const TARGET_LABELS: &[&str] = &["job", "instance", "node", "namespace", "pod", "container", "endpoint"];

/// The guard's exposition after a little of everything.
async fn exposition() -> String {
    let emu = emulator(EmulatorOptions::default()).await;
    let config = config(
        "[cache]\nmax_age_seconds = 300\n\
         [limits]\npod_requests_per_second = 5\npod_burst = 5",
    );
    let guard = Guard::start(&config, emu.addr).await;
    let id = "/latest/meta-data/instance-id";
    // A token issued to the labelled pod, then reads with it: one from the service, one cached.
    let put = request(
        LABELLED,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "120")],
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text());
    let token = put.text();
    for _ in 0..2 {
        let read = request(LABELLED, guard.proxy, "GET", id, &[("x-aws-ec2-metadata-token", &token)]).await;
        assert_eq!(read.status, 200, "{}", read.text());
    }
    // A denied pod, and a noisy one over its limit.
    assert_eq!(get(TEST, guard.proxy, id).await.status, 403);
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(get(PROD, guard.proxy, id).await.status.as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    guard.wait_events(11).await;
    let answer = get(TEST, guard.admin, "/metrics").await;
    assert_eq!(answer.status, 200);
    answer.text()
}

#[tokio::test]
async fn every_metric_the_alerts_and_the_dashboard_read_is_exposed() {
    let text = exposition().await;
    let stored = stored_names(&text);
    let series = series(&text);
    for name in series.keys() {
        assert!(stored.contains_key(name), "{name} is sampled without a # TYPE family");
    }
    // The traffic made the labelled series the panels break down by.
    for wanted in [
        r#"imds_guard_requests_total{decision="allow""#,
        r#"imds_guard_requests_total{decision="deny",reason="no-rule",status="403"}"#,
        r#"imds_guard_requests_total{decision="deny",reason="rate-limited",status="429"}"#,
        r#"imds_guard_rate_limited_total{scope="pod"}"#,
        r#"imds_guard_cache_requests_total{result="hit"}"#,
        r#"imds_guard_cache_requests_total{result="miss"}"#,
        r#"imds_guard_token_checks_total{result="valid"}"#,
        r#"imds_guard_upstream_token_fetches_total{result="ok"}"#,
        "imds_guard_tokens_issued_total ",
        "imds_guard_cache_entries ",
    ] {
        assert!(text.contains(wanted), "no {wanted} after the traffic:\n{text}");
    }

    let rules = rules();
    let mut expressions: Vec<(String, String)> = alerts(&rules)
        .iter()
        .map(|a| {
            (
                format!("alert {}", a["alert"].as_str().unwrap()),
                a["expr"].as_str().expect("expr").to_owned(),
            )
        })
        .collect();
    expressions.extend(dashboard::expressions(&dashboard::dashboard()));
    let mut read = BTreeSet::new();
    for (what, expr) in &expressions {
        let selectors = promql::selectors(expr);
        assert!(!selectors.is_empty(), "{what} reads no metric: {expr}");
        for s in selectors {
            if s.name == "up" {
                // Prometheus' own series of each scrape: only the guard's.
                assert!(
                    expr.contains(r#"up{job="imds-guard""#),
                    "{what}: `up` of the guard's job only: {expr}"
                );
                continue;
            }
            assert!(
                stored.contains_key(&s.name),
                "{what} reads {}, which the guard does not expose (as Prometheus stores it: \
                 counters end in _total, histograms in _bucket/_sum/_count):\n{expr}\n\n{text}",
                s.name
            );
            // A label the matchers name is the target's or the guard's on that family.
            if let Some(sampled) = series.get(&s.name) {
                for label in &s.labels {
                    assert!(
                        TARGET_LABELS.contains(&label.as_str())
                            || sampled.iter().any(|l| l.contains_key(label)),
                        "{what}: {} has no label {label}:\n{expr}",
                        s.name
                    );
                }
            }
            read.insert(stored[&s.name].clone());
        }
    }
    // And between them the dashboard and the alerts show every family the guard exports.
    let families: BTreeSet<String> = stored.values().cloned().collect();
    let unread: Vec<&String> = families.difference(&read).collect();
    assert!(unread.is_empty(), "families no panel or alert shows: {unread:?}");
}
