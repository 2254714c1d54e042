use super::*;

#[test]
fn nonces_are_fresh_and_valid() {
    let (a, b) = (nonce(), nonce());
    assert_eq!(a.len(), 32);
    assert!(valid_nonce(a.as_bytes()) && valid_nonce(b.as_bytes()));
    assert_ne!(a, b);
}

#[test]
fn nonce_bounds_and_alphabet() {
    assert!(valid_nonce(b"0123456789abcdef"));
    assert!(valid_nonce(&[b'A'; 64]));
    assert!(valid_nonce(b"abc_DEF-0123456789"));
    for bad in [
        &b"0123456789abcde"[..],
        &[b'a'; 65][..],
        b"0123456789abcdef ",
        b"0123456789abcdef\"",
        b"0123456789abcd/f",
        "0123456789abcdeé".as_bytes(),
    ] {
        assert!(!valid_nonce(bad), "{bad:?}");
    }
}

#[test]
fn urls_become_targets() {
    let t = Target::parse("http://127.0.0.1:8181").unwrap();
    assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 8181));
    assert_eq!(t.to_string(), "http://127.0.0.1:8181/.imds-guard/canary");
    let t = Target::parse("http://[::1]/prefix/").unwrap();
    assert_eq!((t.host.as_str(), t.port), ("::1", 80));
    assert_eq!(t.to_string(), "http://[::1]/prefix/.imds-guard/canary");
    let t = Target::of_cloud(Cloud::Alibaba);
    assert_eq!(t.to_string(), "http://100.100.100.200/.imds-guard/canary");
    for bad in [
        "https://169.254.169.254",
        "169.254.169.254",
        "http://u:p@169.254.169.254",
        "http://169.254.169.254/?a=b",
        "http:// nope",
    ] {
        assert!(Target::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn verdicts_name_the_reason_and_the_node() {
    assert_eq!(
        verdict(Ok(()), Some("node-a")),
        "protected: the node's guard answered (node node-a)"
    );
    assert_eq!(
        verdict(Err(Unprotected::Status(404)), None),
        "NOT protected: status-404"
    );
}
