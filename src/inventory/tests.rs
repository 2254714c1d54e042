//! Waiting on the shared index: paused-clock tests, no API server.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::*;

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

#[tokio::test(start_paused = true)]
async fn an_unknown_ip_waits_for_the_index_to_learn_it() {
    let index = Arc::new(Index::new());
    index.reset([]);
    let waiter = {
        let index = Arc::clone(&index);
        tokio::spawn(async move {
            index
                .lookup_or_wait(ip("10.0.0.9"), Duration::from_secs(1))
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Unrelated updates wake the waiter, which goes back to waiting.
    index.apply(pod("u0", "other"), vec![ip("10.0.0.8")]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    index.apply(pod("u1", "late"), vec![ip("10.0.0.9")]);
    let found = waiter.await.unwrap();
    assert!(matches!(found, Lookup::Found(p) if p.name == "late"));
}

#[tokio::test(start_paused = true)]
async fn the_wait_ends_at_the_grace_deadline() {
    let index = Index::new();
    index.reset([]);
    let started = tokio::time::Instant::now();
    assert_eq!(
        index
            .lookup_or_wait(ip("10.0.0.9"), Duration::from_millis(800))
            .await,
        Lookup::Unknown
    );
    assert_eq!(started.elapsed(), Duration::from_millis(800));
    // No grace: no wait.
    let started = tokio::time::Instant::now();
    assert_eq!(
        index.lookup_or_wait(ip("10.0.0.9"), Duration::ZERO).await,
        Lookup::Unknown
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn not_ready_and_ambiguous_answer_at_once() {
    let index = Index::new();
    let started = tokio::time::Instant::now();
    assert_eq!(
        index
            .lookup_or_wait(ip("10.0.0.1"), Duration::from_secs(1))
            .await,
        Lookup::NotReady
    );
    index.reset([
        (pod("u1", "a"), vec![ip("10.0.0.1")]),
        (pod("u2", "b"), vec![ip("10.0.0.1")]),
    ]);
    assert_eq!(
        index
            .lookup_or_wait(ip("10.0.0.1"), Duration::from_secs(1))
            .await,
        Lookup::Ambiguous
    );
    assert_eq!(started.elapsed(), Duration::ZERO);
}
