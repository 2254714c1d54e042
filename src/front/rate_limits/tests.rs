use super::*;
use std::time::Duration;

#[test]
fn a_noisy_pod_does_not_slow_another() {
    let limits = RateLimits::new(Limits {
        pod_requests_per_second: 10.0,
        pod_burst: 20,
        upstream_requests_per_second: 0.0,
    });
    let now = Instant::now();
    let admitted = (0..1000).filter(|_| limits.admit_pod("noisy", now)).count();
    assert_eq!(admitted, 20, "the burst, then nothing");
    assert!(limits.admit_pod("quiet", now));
    assert!(limits.admit_pod("noisy", now + Duration::from_millis(150)));
    assert!(limits.admit_upstream(now), "no node-wide limit configured");
}

#[test]
fn the_node_budget_is_a_second_of_its_rate() {
    let limits = RateLimits::new(Limits {
        pod_requests_per_second: 0.0,
        pod_burst: 1,
        upstream_requests_per_second: 5.0,
    });
    let now = Instant::now();
    assert_eq!((0..100).filter(|_| limits.admit_upstream(now)).count(), 5);
    assert!(limits.admit_upstream(now + Duration::from_millis(201)));
    assert!((0..100).all(|_| limits.admit_pod("p", now)), "no pod limit");
}

#[test]
fn idle_pods_are_forgotten_when_many() {
    let limits = RateLimits::new(Limits {
        pod_requests_per_second: 1000.0,
        pod_burst: 1,
        upstream_requests_per_second: 0.0,
    });
    let now = Instant::now();
    for i in 0..PRUNE_AT {
        assert!(limits.admit_pod(&i.to_string(), now));
    }
    let later = now + Duration::from_secs(1);
    assert!(limits.admit_pod("new", later));
    assert_eq!(limits.pods.lock().len(), 1);
}
