use super::*;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn per_source_and_total_caps() {
    let limits = ConnCaps::new(3, 2);
    let a1 = limits.acquire(ip("10.0.0.1")).unwrap();
    let _a2 = limits.acquire(ip("10.0.0.1")).unwrap();
    assert_eq!(limits.acquire(ip("10.0.0.1")).unwrap_err(), Cap::PerSource);
    // The IPv4-mapped form is the same source.
    assert_eq!(
        limits.acquire(ip("::ffff:10.0.0.1")).unwrap_err(),
        Cap::PerSource
    );
    let _b1 = limits.acquire(ip("10.0.0.2")).unwrap();
    assert_eq!(limits.acquire(ip("10.0.0.3")).unwrap_err(), Cap::Total);
    assert_eq!(limits.open(), 3);
    drop(a1);
    assert_eq!(limits.open(), 2);
    let _c1 = limits.acquire(ip("10.0.0.3")).unwrap();
}
