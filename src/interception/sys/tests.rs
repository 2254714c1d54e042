#[test]
fn this_namespace_has_a_cookie() {
    // Every kernel these tests run on has SO_NETNS_COOKIE; the value is never 0.
    let cookie = super::own_netns_cookie()
        .expect("getsockopt")
        .expect("5.14+");
    assert_ne!(cookie, 0);
    assert_eq!(super::own_netns_cookie().unwrap(), Some(cookie));
}

#[test]
fn loopback_has_an_index() {
    assert!(super::ifindex("lo").is_some());
    assert_eq!(super::ifindex("no-such-interface0"), None);
}
