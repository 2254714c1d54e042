//! The pure hot path: reading a request target, and deciding with 10, 100 and 1,000 rules; the
//! other clouds' strict queries and aggregate check.
//!
//! `cargo bench --bench decision`

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use imds_guard::cloud::Cloud;
use imds_guard::imds::Method;
use imds_guard::inventory::Pod;
use imds_guard::policy::pattern::PathPattern;
use imds_guard::policy::{Facts, Imdsv2, Policy, Rule, Selector, Verdict};
use imds_guard::query;
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
            owner: None,
            host_network: false,
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

/// The other clouds' reading: a strict query parsed, checked against the endpoint and written
/// canonically; and a GCP recursive read decided with its aggregate check.
fn clouds(c: &mut Criterion) {
    let mut group = c.benchmark_group("clouds");
    let azure = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net";
    group.bench_function("read_azure_token_target", |b| {
        b.iter(|| {
            let (path, query) = query::read(Cloud::Azure, black_box(azure)).unwrap();
            black_box((path, query.canonical()))
        })
    });
    let gcp = "/computeMetadata/v1/instance/service-accounts/default/?recursive=true";
    group.bench_function("read_gcp_recursive_target", |b| {
        b.iter(|| query::read(Cloud::Gcp, black_box(gcp)).unwrap())
    });
    let compile = |list: &[&str]| -> Vec<PathPattern> {
        list.iter()
            .map(|p| PathPattern::parse_with_query(p).unwrap())
            .collect()
    };
    let policy = Policy::new(
        vec![Rule {
            name: "gcp".into(),
            selector: Selector {
                namespaces: Some(vec!["imds".into()]),
                ..Selector::default()
            },
            allow: compile(&["/computeMetadata/v1/**"]),
            deny: compile(&["/computeMetadata/v1/instance/attributes/cluster-location"]),
            require_tokens: false,
            max_token_ttl_seconds: None,
        }],
        Imdsv2::default(),
    )
    .for_cloud(Cloud::Gcp);
    let pod = Pod {
        namespace: "imds".into(),
        name: "p".into(),
        uid: "u".into(),
        labels: BTreeMap::new(),
        namespace_labels: BTreeMap::new(),
        owner: None,
        host_network: false,
    };
    let (path, q) = query::read(Cloud::Gcp, gcp).unwrap();
    group.bench_function("decide_gcp_recursive", |b| {
        b.iter(|| {
            let facts = Facts::in_cloud(Cloud::Gcp, Method::Get, black_box(&path), &q, false);
            assert_eq!(policy.decide(&pod, &facts).verdict, Verdict::Allow);
        })
    });
    group.finish();
}

criterion_group!(benches, decide, target, clouds);
criterion_main!(benches);
