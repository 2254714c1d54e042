use super::*;
use crate::target::parse_target;

fn kind(method: &str, path: &str) -> Kind {
    classify(Method::from_name(method), &parse_target(path).unwrap())
}

#[test]
fn classifies_methods_and_paths() {
    assert_eq!(kind("PUT", "/latest/api/token"), Kind::TokenRequest);
    assert_eq!(kind("PUT", "/latest/api/token/"), Kind::TokenRequest);
    assert_eq!(kind("PUT", "//latest//api/token"), Kind::TokenRequest);
    assert_eq!(kind("GET", "/latest/meta-data/"), Kind::Read);
    assert_eq!(kind("HEAD", "/latest/user-data"), Kind::Read);
    assert_eq!(kind("GET", "/latest/api/token"), Kind::NotAllowed);
    assert_eq!(kind("PUT", "/latest/meta-data/"), Kind::NotAllowed);
    assert_eq!(kind("PUT", "/latest/api/token2"), Kind::NotAllowed);
    assert_eq!(kind("POST", "/latest/api/token"), Kind::NotAllowed);
    assert_eq!(kind("get", "/latest/meta-data/"), Kind::NotAllowed);
    assert_eq!(kind("DELETE", "/latest/meta-data/"), Kind::NotAllowed);
}

#[test]
fn ttl_is_strict() {
    assert_eq!(parse_ttl(Some(b"1")), Ok(1));
    assert_eq!(parse_ttl(Some(b"21600")), Ok(21600));
    assert_eq!(parse_ttl(None), Err(TtlError::Missing));
    for bad in [
        &b""[..],
        b"0",
        b"21601",
        b"99999",
        b"100000",
        b"-1",
        b"+5",
        b" 5",
        b"5 ",
        b"1e3",
        b"abc",
    ] {
        assert_eq!(parse_ttl(Some(bad)), Err(TtlError::OutOfRange), "{bad:?}");
    }
}

#[test]
fn a_cloud_s_own_token_endpoint_and_ttl_range() {
    let path = |p: &str| crate::target::parse_target(p).unwrap();
    assert_eq!(
        classify_at(Method::Put, &path("/v1/token"), "/v1/token"),
        Kind::TokenRequest
    );
    assert_eq!(
        classify_at(Method::Get, &path("/v1/token/"), "/v1/token"),
        Kind::NotAllowed
    );
    // AWS's endpoint is an ordinary path there.
    assert_eq!(
        classify_at(Method::Get, &path(TOKEN_PATH), "/v1/token"),
        Kind::Read
    );
    assert_eq!(
        classify_at(Method::Put, &path(TOKEN_PATH), "/v1/token"),
        Kind::NotAllowed
    );
    assert_eq!(parse_ttl_within(Some(b"86400"), 86_400), Ok(86_400));
    assert_eq!(
        parse_ttl_within(Some(b"86401"), 86_400),
        Err(TtlError::OutOfRange)
    );
    assert_eq!(parse_ttl(Some(b"86400")), Err(TtlError::OutOfRange));
}

#[test]
fn a_read_of_the_token_endpoint_in_any_spelling_is_no_read() {
    let path = |p: &str| crate::target::parse_target(p).unwrap();
    for spelling in [
        "/v1/TOKEN",
        "/v1/token.",
        "/v1/token%20",
        "/v1/.../token",
        "/V1/Token",
    ] {
        assert_eq!(
            classify_at(Method::Get, &path(spelling), "/v1/token"),
            Kind::NotAllowed,
            "{spelling}"
        );
        assert_eq!(
            classify_at(Method::Put, &path(spelling), "/v1/token"),
            Kind::NotAllowed,
            "{spelling}"
        );
    }
    assert_eq!(
        classify_at(Method::Get, &path("/latest/api/TOKEN"), TOKEN_PATH),
        Kind::NotAllowed
    );
    // Near misses are reads.
    for other in ["/v1/tokens", "/v1/instance", "/v1/token-info"] {
        assert_eq!(
            classify_at(Method::Get, &path(other), "/v1/token"),
            Kind::Read,
            "{other}"
        );
    }
}

#[test]
fn every_known_token_endpoint_is_compiled_and_odd_endpoints_do_not_panic() {
    assert_eq!(ENDPOINTS.len(), 2);
    let path = crate::target::parse_target("/v1/token").unwrap();
    for odd in ["/v1/token/", "/", ""] {
        let _ = classify_at(Method::Get, &path, odd);
    }
}
