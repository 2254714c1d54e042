//! Every metric an alert or a dashboard panel reads is one that a real guard exposes. A family
//! appears in `/metrics` only once it has a series, so guards run in process on loopback in the
//! situations that make every family appear: the front with its cache, tokens and limits (allowed,
//! cached, denied, rate limited, over the connection cap, a refused reload, credentials refreshed
//! in the background), a metadata service that is down, and the Kubernetes inventory with its API
//! server gone; their `/metrics` are read as Prometheus reads them.
//!
//! The canary's families come from another process: the real `imds-guard canary` is run against
//! one of these guards and its `/metrics` read as well, and an alert may read them only as
//! `name{job="imds-guard-canary"…}` (the canary PodMonitor's job). One guard family appears only
//! where these guards cannot be (a pod interface with another BPF program): it is listed in
//! [`ELSEWHERE`], with the job and labels the alerts may read it with, and nothing else is.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use imds_guard::reload::Reload;
use imds_guard_emulator::EmulatorOptions;

use super::support::controlplane::ControlPlane;
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
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
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
const TARGET_LABELS: &[&str] = &[
    "job",
    "instance",
    "node",
    "namespace",
    "pod",
    "container",
    "endpoint",
];

/// Guard families an alert reads that the guards run here cannot expose, each with the job that
/// scrapes it and the labels it has. An alert may read one only as `name{job="JOB"…}`, with no
/// label but those; and only while the scrapes here lack it: once they have it, the guard's own
/// exposition is checked as for every other family.
struct Elsewhere {
    name: &'static str,
    job: &'static str,
    labels: &'static [&'static str],
}

const ELSEWHERE: &[Elsewhere] = &[
    // A guard with the netfilter method, one series per pod interface whose ingress has a foreign
    // tc or tcx BPF program: these guards run on loopback, with no pod interface
    // (tests/netfilter_bypass.rs stages one for real).
    Elsewhere {
        name: "imds_guard_netfilter_bypass_suspected",
        job: "imds-guard",
        labels: &["interface"],
    },
];

/// The job the canary's PodMonitor (deploy/components/monitoring/canary-podmonitor.yaml) gives
/// the canary's series.
const CANARY_JOB: &str = "imds-guard-canary";

/// The canary, the real binary, kept running for as long as this lives.
struct Canary(std::process::Child);

impl Drop for Canary {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What Prometheus scrapes from a canary (`imds-guard canary`, the real binary) probing a guard
/// every second: its `/metrics` once the guard has answered it, with every family it has.
async fn canary() -> String {
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&config(""), emu.addr).await;
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let _canary = Canary(
        std::process::Command::new(env!("CARGO_BIN_EXE_imds-guard"))
            .args(["canary", "--interval-seconds", "1", "--node", "node-a"])
            .arg("--url")
            .arg(format!("http://{}", guard.proxy))
            .arg("--metrics-listen")
            .arg(metrics.to_string())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run imds-guard canary"),
    );
    wait_listening(metrics).await;
    let text = scrape_until(metrics, "imds_guard_canary_protected 1").await;
    // And the guard counted it.
    let guard_text = scrape(guard.admin).await;
    assert!(
        !guard_text.contains("imds_guard_canary_probes_total 0"),
        "the guard counted no canary probe:\n{guard_text}"
    );
    text
}

/// The admin port's `/metrics`.
async fn scrape(admin: std::net::SocketAddr) -> String {
    let answer = get(TEST, admin, "/metrics").await;
    assert_eq!(answer.status, 200);
    answer.text()
}

/// Scrapes `admin` until `series` appears (the guard counts some things in the background).
async fn scrape_until(admin: std::net::SocketAddr, series: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = scrape(admin).await;
        if text.contains(series) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {series} within 15 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A guard with the cache, its own tokens, the pod limit and a connection cap, after a little
/// of everything: a token and reads with it (from the service, then cached), credentials
/// refreshed in the background, a denied pod, a pod over its limit, a pod over its connection cap
/// and a refused reload.
async fn front() -> String {
    let emu = emulator(EmulatorOptions {
        credentials_ttl: Duration::from_secs(4),
        ..EmulatorOptions::default()
    })
    .await;
    let config = config(
        "[server]\nmax_connections_per_source = 2\nheader_read_timeout_ms = 30000\n\
         [cache]\nmax_age_seconds = 300\ncredentials_refresh_seconds = 1\n\
         [limits]\npod_requests_per_second = 5\npod_burst = 5",
    )
    .replace("{upstream}", &format!("http://{}", emu.addr));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &config).unwrap();
    let (ask, requests) = tokio::sync::mpsc::unbounded_channel();
    let extras = Extras {
        reload: Some(Reload {
            path: file.clone(),
            loaded: config.clone(),
            poll: None,
            requests,
        }),
        ..Extras::default()
    };
    let guard = Guard::start_with(&config, emu.addr, extras).await;
    let id = "/latest/meta-data/instance-id";
    let role = "/latest/meta-data/iam/security-credentials/imds-guard-node-role";
    // The pod's token and reads on one connection: under this config's cap of 2 connections a
    // source, a new connection per request can meet the cap while the last one is still closing.
    let mut labelled = Kept::connect(LABELLED, guard.proxy).await;
    let put = labelled
        .send(
            "PUT",
            "/latest/api/token",
            &[("x-aws-ec2-metadata-token-ttl-seconds", "120")],
        )
        .await
        .expect("the token answer");
    assert_eq!(put.status, 200, "{}", put.text());
    let token = put.text();
    for path in [id, id, role] {
        let read = labelled
            .send("GET", path, &[("x-aws-ec2-metadata-token", &token)])
            .await
            .expect("an answer");
        assert_eq!(read.status, 200, "{path}: {}", read.text());
    }
    assert_eq!(get(TEST, guard.proxy, id).await.status, 403);
    // On one connection: the pod's rate limit is what is met, never its connection cap.
    let statuses = gets_on_one_connection(PROD, guard.proxy, id, 8).await;
    assert!(statuses.contains(&429), "{statuses:?}");
    let _held = [
        connect_from(STRANGER, guard.proxy).await,
        connect_from(STRANGER, guard.proxy).await,
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;
    let over = raw(STRANGER, guard.proxy, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").await;
    assert!(over.starts_with("HTTP/1.1 429"), "{over}");
    std::fs::write(&file, "[server]\nmode = \"bogus\"\n").unwrap();
    ask.send(()).unwrap();
    scrape_until(
        guard.admin,
        r#"imds_guard_config_reloads_total{result="refused"}"#,
    )
    .await;
    // Credentials good for 4 s are refreshed 1 s before they expire, when read meanwhile.
    let refreshed = r#"imds_guard_cache_refreshes_total{result="ok"}"#;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = scrape(guard.admin).await;
        if text.contains(refreshed) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {refreshed} within 15 s:\n{text}"
        );
        let read = request(
            LABELLED,
            guard.proxy,
            "GET",
            role,
            &[("x-aws-ec2-metadata-token", &token)],
        )
        .await;
        assert_eq!(read.status, 200, "{}", read.text());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A guard whose metadata service is down, after one read.
async fn upstream_down() -> String {
    let guard = Guard::start(&config(""), closed_port().await).await;
    assert_eq!(
        get(PROD, guard.proxy, "/latest/meta-data/instance-id")
            .await
            .status,
        502
    );
    scrape_until(guard.admin, "imds_guard_upstream_errors_total{").await
}

/// A guard with the Kubernetes inventory (a real API server), after the API server went away.
async fn kubernetes() -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut plane = ControlPlane::start().await;
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&kube_config("node-a", &plane.kubeconfig, 0, ""), emu.addr).await;
    scrape_until(guard.admin, "imds_guard_watch_relists_total{").await;
    plane.stop_apiserver();
    scrape_until(guard.admin, "imds_guard_watch_errors_total{").await
}

/// What Prometheus would scrape from guards in those three situations, one after the other.
async fn exposition() -> String {
    let mut text = front().await;
    text.push_str(&upstream_down().await);
    text.push_str(&kubernetes().await);
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_alerts_and_the_dashboard_read_is_exposed() {
    let text = exposition().await;
    let stored = stored_names(&text);
    let series = series(&text);
    let canary_text = canary().await;
    let canary_stored = stored_names(&canary_text);
    let canary_series = self::series(&canary_text);
    for name in series.keys() {
        assert!(
            stored.contains_key(name),
            "{name} is sampled without a # TYPE family"
        );
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
        r#"imds_guard_cache_refreshes_total{result="ok"}"#,
        r#"imds_guard_connections_refused_total{limit="per-source"}"#,
        r#"imds_guard_config_reloads_total{result="refused"}"#,
        r#"imds_guard_upstream_errors_total{kind="upstream-unreachable"}"#,
        r#"imds_guard_watch_relists_total{watch="pods"}"#,
        r#"imds_guard_watch_errors_total{watch="pods"}"#,
    ] {
        assert!(
            text.contains(wanted),
            "no {wanted} after the traffic:\n{text}"
        );
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
            if expr.contains(&format!("{}{{job=\"{CANARY_JOB}\"", s.name)) {
                // The canary's: its own exposition, with its labels.
                assert!(
                    canary_stored.contains_key(&s.name),
                    "{what} reads {} from the canary's job, which the canary does not expose:\n{expr}\n\n{canary_text}",
                    s.name
                );
                for label in &s.labels {
                    assert!(
                        TARGET_LABELS.contains(&label.as_str())
                            || canary_series
                                .get(&s.name)
                                .is_some_and(|v| v.iter().any(|l| l.contains_key(label))),
                        "{what}: the canary's {} has no label {label}:\n{expr}",
                        s.name
                    );
                }
                continue;
            }
            if !stored.contains_key(&s.name) {
                let elsewhere = ELSEWHERE.iter().find(|e| {
                    e.name == s.name && expr.contains(&format!("{}{{job=\"{}\"", e.name, e.job))
                });
                if let Some(e) = elsewhere {
                    for label in &s.labels {
                        assert!(
                            TARGET_LABELS.contains(&label.as_str())
                                || e.labels.contains(&label.as_str()),
                            "{what}: {} (job {}) has no label {label}:\n{expr}",
                            s.name,
                            e.job
                        );
                    }
                    continue;
                }
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
    assert!(
        unread.is_empty(),
        "families no panel or alert shows: {unread:?}"
    );
}
