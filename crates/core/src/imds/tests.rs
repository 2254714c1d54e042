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
