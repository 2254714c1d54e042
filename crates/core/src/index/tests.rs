//! Index tests: plain `#[test]`s, no API server.

use super::*;

/// The index as a plain structure, telling no one of its changes.
type Index = super::Index<()>;

fn pod(uid: &str, name: &str) -> Pod {
    Pod {
        namespace: "ns".into(),
        name: name.into(),
        uid: uid.into(),
        labels: Default::default(),
        namespace_labels: Default::default(),
        owner: None,
        host_network: false,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn found_name(index: &Index, addr: &str) -> String {
    match index.lookup(ip(addr)) {
        Lookup::Found(p) => p.name.clone(),
        other => panic!("{addr}: {other:?}"),
    }
}

#[test]
fn not_ready_until_reset() {
    let index = Index::new();
    assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::NotReady);
    assert!(!index.is_ready());
    index.reset([]);
    assert!(index.is_ready());
    assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::Unknown);
}

#[test]
fn finds_by_every_ip_and_by_mapped_ipv4() {
    let index = Index::new();
    index.reset([(pod("u1", "a"), vec![ip("10.0.0.1"), ip("fd00::1")])]);
    for addr in ["10.0.0.1", "fd00::1", "::ffff:10.0.0.1"] {
        assert_eq!(found_name(&index, addr), "a");
    }
    assert_eq!(index.lookup(ip("10.0.0.2")), Lookup::Unknown);
    assert_eq!(index.ip_count(), 2);
}

#[test]
fn two_claims_are_ambiguous_until_one_goes() {
    let index = Index::new();
    index.reset([(pod("u1", "a"), vec![ip("10.0.0.1")])]);
    index.apply(pod("u2", "b"), vec![ip("10.0.0.1")]);
    assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::Ambiguous);
    index.delete("u1");
    assert_eq!(found_name(&index, "10.0.0.1"), "b");
    assert_eq!(index.len(), 1);
}

#[test]
fn apply_replaces_a_pods_ips() {
    let index = Index::new();
    index.reset([(pod("u1", "a"), vec![ip("10.0.0.1")])]);
    index.apply(pod("u1", "a"), vec![ip("10.0.0.2")]);
    assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::Unknown);
    assert_eq!(found_name(&index, "10.0.0.2"), "a");
    // A pod that lost its IPs (terminal phase) stays known by uid but holds no address.
    index.apply(pod("u1", "a"), vec![]);
    assert_eq!(index.lookup(ip("10.0.0.2")), Lookup::Unknown);
    assert_eq!(index.len(), 1);
    index.delete("u1");
    assert!(index.is_empty());
    assert_eq!(index.ip_count(), 0);
}

#[test]
fn reset_replaces_everything() {
    let index = Index::new();
    index.reset([
        (pod("u1", "a"), vec![ip("10.0.0.1")]),
        (pod("u2", "b"), vec![ip("10.0.0.2")]),
    ]);
    index.reset([(pod("u3", "c"), vec![ip("10.0.0.1")])]);
    assert_eq!(found_name(&index, "10.0.0.1"), "c");
    assert_eq!(index.lookup(ip("10.0.0.2")), Lookup::Unknown);
    assert_eq!(index.len(), 1);
}

#[test]
fn namespace_labels_are_joined_and_gate_readiness() {
    let index = Index::with_namespace_labels();
    index.reset([(pod("u1", "a"), vec![ip("10.0.0.1")])]);
    // Pods are synced but namespaces are not: not ready.
    assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::NotReady);
    index.reset_namespaces([("ns".to_string(), labels(&[("team", "infra")]))]);
    let Lookup::Found(p) = index.lookup(ip("10.0.0.1")) else {
        panic!()
    };
    assert_eq!(p.namespace_labels, labels(&[("team", "infra")]));

    index.apply_namespace("ns", labels(&[("team", "web")]));
    let Lookup::Found(p) = index.lookup(ip("10.0.0.1")) else {
        panic!()
    };
    assert_eq!(p.namespace_labels, labels(&[("team", "web")]));

    // A pod added later picks up its namespace's labels.
    index.apply(pod("u2", "b"), vec![ip("10.0.0.2")]);
    let Lookup::Found(p) = index.lookup(ip("10.0.0.2")) else {
        panic!()
    };
    assert_eq!(p.namespace_labels, labels(&[("team", "web")]));

    index.delete_namespace("ns");
    let Lookup::Found(p) = index.lookup(ip("10.0.0.1")) else {
        panic!()
    };
    assert!(p.namespace_labels.is_empty());
}

#[test]
fn untracked_namespaces_keep_the_sources_labels() {
    let index = Index::new();
    let mut p = pod("u1", "a");
    p.namespace_labels = labels(&[("from", "config")]);
    index.reset([(p, vec![ip("10.0.0.1")])]);
    index.apply_namespace("ns", labels(&[("team", "x")]));
    let Lookup::Found(p) = index.lookup(ip("10.0.0.1")) else {
        panic!()
    };
    assert_eq!(p.namespace_labels, labels(&[("from", "config")]));
}

#[test]
fn a_suspended_index_answers_not_ready_until_resumed() {
    let index = Index::new();
    index.reset([(pod("u1", "a"), vec![ip("10.0.0.1")])]);
    index.suspend();
    assert!(!index.is_ready());
    assert_eq!(index.lookup(ip("10.0.0.1")), Lookup::NotReady);
    index.resume();
    assert!(index.is_ready());
    assert_eq!(found_name(&index, "10.0.0.1"), "a");
}
