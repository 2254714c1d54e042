//! Inventory lookup cost, and the time from an index update to a changed decision.
//!
//! `cargo bench --bench inventory`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use imds_guard::inventory::{Index, Lookup, Pod};

fn pod(i: u32) -> (Pod, Vec<IpAddr>) {
    let pod = Pod {
        namespace: format!("ns-{}", i % 20),
        name: format!("pod-{i}"),
        uid: format!("uid-{i}"),
        labels: BTreeMap::from([("app".to_string(), format!("app-{}", i % 50))]),
        namespace_labels: BTreeMap::new(),
        owner: None,
        host_network: false,
    };
    (pod, vec![ip(i)])
}

fn ip(i: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
}

fn lookup(c: &mut Criterion) {
    let mut group = c.benchmark_group("inventory_lookup");
    for size in [250u32, 5_000] {
        let index = Index::new();
        index.reset((0..size).map(pod));
        group.bench_with_input(BenchmarkId::new("found", size), &size, |b, &size| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 7) % size;
                assert!(matches!(index.lookup(black_box(ip(i))), Lookup::Found(_)));
            })
        });
        group.bench_with_input(BenchmarkId::new("unknown", size), &size, |b, &size| {
            b.iter(|| index.lookup(black_box(ip(size + 1))))
        });
    }
    group.finish();
}

/// An update (as a watch event applies it) followed by the lookup that sees it: the time from a
/// watch event reaching the index to the next request being decided on the new state.
fn update_to_decision(c: &mut Criterion) {
    let index = Index::new();
    index.reset((0..250).map(pod));
    let mut flip = false;
    c.bench_function("inventory_apply_then_lookup_250", |b| {
        b.iter(|| {
            flip = !flip;
            let (mut p, ips) = pod(42);
            p.labels
                .insert("allow-node-metadata-lookup".into(), flip.to_string());
            index.apply(p, ips);
            match index.lookup(ip(42)) {
                Lookup::Found(p) => {
                    assert_eq!(p.labels["allow-node-metadata-lookup"], flip.to_string())
                }
                other => panic!("{other:?}"),
            }
        })
    });
}

criterion_group!(benches, lookup, update_to_decision);
criterion_main!(benches);
