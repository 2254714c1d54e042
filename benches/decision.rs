//! The pure hot path: reading a request target, and deciding with 10, 100 and 1,000 rules.
//!
//! `cargo bench --bench decision`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use imds_guard::imds::Method;
use imds_guard::inventory::Pod;
use imds_guard::policy::pattern::PathPattern;
use imds_guard::policy::{Facts, Imdsv2, Policy, Rule, Selector, Verdict};
use imds_guard::target::parse_target;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `n` rules, each selecting one app in one namespace; the benchmarked pod matches the last one,
/// so every rule's selector is tried.
fn policy(n: usize) -> Policy {
    let rules = (0..n)
        .map(|i| Rule {
            name: format!("rule-{i}").into(),
            selector: Selector {
                namespaces: Some(vec![format!("ns-{}", i % 10)]),
                pod_labels: labels(&[("app", &format!("app-{i}"))]),
                ..Selector::default()
            },
            allow: [
                "/latest/meta-data/**",
                "/latest/dynamic/instance-identity/document",
            ]
            .iter()
            .map(|p| PathPattern::parse(p).unwrap())
            .collect(),
            deny: ["/latest/meta-data/iam/**"]
                .iter()
                .map(|p| PathPattern::parse(p).unwrap())
                .collect(),
            require_tokens: false,
            max_token_ttl_seconds: None,
        })
        .collect();
    Policy::new(rules, Imdsv2::default())
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("decide");
    for n in [10usize, 100, 1_000] {
        let policy = policy(n);
        let pod = Pod {
            namespace: format!("ns-{}", (n - 1) % 10),
            name: "p".into(),
            uid: "u".into(),
            labels: labels(&[("app", &format!("app-{}", n - 1))]),
            namespace_labels: BTreeMap::new(),
        };
        let path = parse_target("/latest/meta-data/placement/availability-zone/").unwrap();
        group.bench_with_input(BenchmarkId::new("rules", n), &n, |b, _| {
            b.iter(|| {
                let facts = Facts::new(Method::Get, black_box(&path), false);
                assert_eq!(
                    policy.decide(black_box(&pod), &facts).verdict,
                    Verdict::Allow
                );
            })
        });
    }
    group.finish();
}

fn target(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_target");
    group.bench_function("sdk_path", |b| {
        b.iter(|| {
            parse_target(black_box(
                "/latest/meta-data/iam/security-credentials/my-role",
            ))
        })
    });
    group.bench_function("refused_escape", |b| {
        b.iter(|| parse_target(black_box("/latest/meta-data/%2e%2e/user-data")))
    });
    group.finish();
}

criterion_group!(benches, decide, target);
criterion_main!(benches);
