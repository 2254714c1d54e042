use super::*;

#[test]
fn a_burst_then_the_rate() {
    let t0 = Instant::now();
    let mut b = Bucket::new(10.0, 5, t0);
    for _ in 0..5 {
        assert!(b.take(t0).is_ok());
    }
    let wait = b.take(t0).unwrap_err();
    assert!(
        (wait.as_secs_f64() - 0.1).abs() < 1e-9,
        "one token every 100 ms: {wait:?}"
    );
    assert!(b.take(t0 + Duration::from_millis(99)).is_err());
    assert!(b.take(t0 + Duration::from_millis(101)).is_ok());
    assert!(b.take(t0 + Duration::from_millis(102)).is_err());
}

#[test]
fn refills_up_to_the_burst_only() {
    let t0 = Instant::now();
    let mut b = Bucket::new(100.0, 3, t0);
    for _ in 0..3 {
        b.take(t0).unwrap();
    }
    assert!(!b.is_full(t0));
    let later = t0 + Duration::from_secs(60);
    assert!(b.is_full(later));
    for _ in 0..3 {
        assert!(b.take(later).is_ok());
    }
    assert!(
        b.take(later).is_err(),
        "a minute idle gives the burst, no more"
    );
}

#[test]
fn a_vanishing_rate_waits_forever_without_panicking() {
    let t0 = Instant::now();
    let mut b = Bucket::new(1e-300, 1, t0);
    b.take(t0).unwrap();
    assert_eq!(b.take(t0), Err(Duration::MAX));
}

#[test]
fn time_going_backwards_takes_nothing_extra() {
    let t0 = Instant::now() + Duration::from_secs(10);
    let mut b = Bucket::new(1.0, 1, t0);
    b.take(t0).unwrap();
    assert!(b.take(t0 - Duration::from_secs(5)).is_err());
    assert!(b.take(t0 + Duration::from_millis(1001)).is_ok());
}
