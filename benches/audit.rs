//! Formatting one audit line: the hand-written writer the guard uses, beside `serde_json` making
//! the same text (a unit test holds the two byte for byte together).
//!
//! `cargo bench --bench audit`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use imds_guard::audit::{now, Event, OwnerOf, WorkloadLabels};
use imds_guard::index::{Labels, Owner};

fn event<'a>(keys: &'a [String], labels: &'a Labels, owner: &'a Owner) -> Event<'a> {
    Event {
        ts: now(),
        src: "10.1.0.17".parse().unwrap(),
        pod: Some("payments/api-7d9c6b5f4-x2kqz"),
        pod_uid: Some("5d0c2a3e-8f3b-4e2a-9a57-0c9f1e6d2b41"),
        labels: Some(WorkloadLabels { keys, labels }),
        owner: Some(OwnerOf(owner)),
        method: "GET",
        path: "/latest/meta-data/iam/security-credentials/node-role",
        decision: "deny",
        reason: "denied-by-rule",
        rule: Some("payments: instance identity only"),
        status: 403,
        imds_version: "v2",
        upstream_ms: None,
        error: None,
        cache: None,
        token: Some("valid"),
        identity: "address",
        bytes: 112,
        duration_ms: 0.042,
    }
}

fn line(c: &mut Criterion) {
    let keys = ["app.kubernetes.io/name".to_owned(), "app".to_owned()];
    let labels: Labels = [
        ("app.kubernetes.io/name", "payments-api"),
        ("pod-template-hash", "7d9c6b5f4"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let owner = Owner {
        kind: "Deployment".into(),
        name: "api".into(),
    };
    let event = event(&keys, &labels, &owner);
    let mut out = Vec::with_capacity(512);
    let mut group = c.benchmark_group("audit line");
    group.bench_function("write_line", |b| {
        b.iter(|| {
            out.clear();
            black_box(&event).write_line(&mut out);
            black_box(out.len())
        })
    });
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut out, black_box(&event)).unwrap();
            out.push(b'\n');
            black_box(out.len())
        })
    });
    group.finish();
}

criterion_group!(benches, line);
criterion_main!(benches);
