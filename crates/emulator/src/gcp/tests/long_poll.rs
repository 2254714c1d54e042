//! Long polls (`wait_for_change`), on tokio's paused clock: they return at the change, at the
//! timeout, or when a write lands.

use std::sync::Arc;
use std::time::Duration;

use http::{Method, StatusCode};
use tokio::time::Instant;

use super::{get, send, state, FLAVOR, MAINTENANCE};

#[tokio::test(start_paused = true)]
async fn a_long_poll_returns_when_the_value_changes() {
    let state = state(Some(Duration::from_secs(10)));
    let first = get(&state, MAINTENANCE).await;
    assert_eq!(first.body, "NONE");
    let started = Instant::now();
    let changed = get(
        &state,
        &format!("{MAINTENANCE}?wait_for_change=true&timeout_sec=60"),
    )
    .await;
    assert_eq!(changed.body, "MIGRATE_ON_HOST_MAINTENANCE");
    assert_ne!(changed.etag(), first.etag());
    assert_eq!(started.elapsed(), Duration::from_secs(10), "at the flip");
    // With the ETag the client had, the change is answered at once.
    let at_once = get(
        &state,
        &format!(
            "{MAINTENANCE}?wait_for_change=true&last_etag={}",
            first.etag()
        ),
    )
    .await;
    assert_eq!(at_once.body, "MIGRATE_ON_HOST_MAINTENANCE");
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    // Back to NONE at the next flip.
    let back = get(
        &state,
        &format!(
            "{MAINTENANCE}?wait_for_change=true&last_etag={}",
            changed.etag()
        ),
    )
    .await;
    assert_eq!((back.body.as_str(), back.etag()), ("NONE", first.etag()));
    assert_eq!(started.elapsed(), Duration::from_secs(20));
}

#[tokio::test(start_paused = true)]
async fn a_long_poll_times_out_with_the_current_value() {
    let state = state(None);
    let started = Instant::now();
    let got = get(
        &state,
        &format!("{MAINTENANCE}?wait_for_change=true&timeout_sec=5"),
    )
    .await;
    assert_eq!((got.status, got.body.as_str()), (StatusCode::OK, "NONE"));
    assert_eq!(got.etag(), get(&state, MAINTENANCE).await.etag());
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    let default = get(&state, &format!("{MAINTENANCE}?wait_for_change=true")).await;
    assert_eq!(default.status, StatusCode::OK);
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(65),
        "60 s without timeout_sec"
    );
    get(
        &state,
        &format!("{MAINTENANCE}?wait_for_change=true&timeout_sec=100000"),
    )
    .await;
    assert_eq!(
        started.elapsed(),
        Duration::from_secs(365),
        "capped at 300 s"
    );
}

#[tokio::test(start_paused = true)]
async fn a_guest_attribute_write_wakes_a_long_poll() {
    let state = state(None);
    let dir = "/computeMetadata/v1/instance/guest-attributes/?recursive=true&wait_for_change=true&timeout_sec=30";
    let waiting = {
        let state = Arc::clone(&state);
        tokio::spawn(async move { get(&state, dir).await })
    };
    for _ in 0..5 {
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let path = "/computeMetadata/v1/instance/guest-attributes/ns/key";
    assert_eq!(
        send(&state, Method::PUT, path, &[FLAVOR], "v").await.status,
        StatusCode::OK
    );
    let woken = waiting.await.expect("poll");
    assert_eq!(woken.json()["ns"]["key"], "v");
    assert!(started.elapsed() < Duration::from_secs(30));
}
