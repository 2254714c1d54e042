use super::*;

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn good_for_its_pod_until_it_expires() {
    let issuer = Issuer::with_key(&[7; 32]);
    let now = SystemTime::now();
    let token = issuer.issue("uid-a", HOUR, now);
    assert_eq!(token.len(), 55, "{token}");
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    assert_eq!(issuer.check(token.as_bytes(), "uid-a", now), Check::Valid);
    assert_eq!(
        issuer.check(
            token.as_bytes(),
            "uid-a",
            now + HOUR - Duration::from_secs(1)
        ),
        Check::Valid
    );
    assert_eq!(
        issuer.check(
            token.as_bytes(),
            "uid-a",
            now + HOUR + Duration::from_secs(1)
        ),
        Check::Expired
    );
    assert_eq!(issuer.check(token.as_bytes(), "uid-b", now), Check::Invalid);
}

#[test]
fn forged_altered_and_foreign_tokens_are_invalid() {
    let issuer = Issuer::with_key(&[7; 32]);
    let other = Issuer::with_key(&[8; 32]);
    let now = SystemTime::now();
    let token = issuer.issue("uid-a", HOUR, now);
    assert_eq!(other.check(token.as_bytes(), "uid-a", now), Check::Invalid);
    // A later expiry written in: the tag no longer matches.
    let mut raw = URL_SAFE_NO_PAD.decode(&token).unwrap();
    raw[1] ^= 0x01;
    let altered = URL_SAFE_NO_PAD.encode(&raw);
    assert_eq!(
        issuer.check(altered.as_bytes(), "uid-a", now),
        Check::Invalid
    );
    for junk in [
        &b""[..],
        b"AQ",
        b"not a token at all!",
        b"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5",
        &token.as_bytes()[..54],
    ] {
        assert_eq!(issuer.check(junk, "uid-a", now), Check::Invalid, "{junk:?}");
    }
    let mut v2 = raw.clone();
    v2[0] = 2;
    assert_eq!(
        issuer.check(URL_SAFE_NO_PAD.encode(&v2).as_bytes(), "uid-a", now),
        Check::Invalid
    );
}

#[test]
fn a_key_file_makes_tokens_outlive_the_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key");
    std::fs::write(&path, [42u8; 32]).unwrap();
    let now = SystemTime::now();
    let token = Issuer::from_file(&path).unwrap().issue("u", HOUR, now);
    let again = Issuer::from_file(&path).unwrap();
    assert_eq!(again.check(token.as_bytes(), "u", now), Check::Valid);
    let random = Issuer::random().unwrap();
    assert_eq!(random.check(token.as_bytes(), "u", now), Check::Invalid);

    std::fs::write(&path, [1u8; 31]).unwrap();
    let err = Issuer::from_file(&path).err().unwrap().to_string();
    assert!(
        err.contains("31 bytes") && err.contains("at least 32"),
        "{err}"
    );
    let err = Issuer::from_file(&dir.path().join("missing"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot read"), "{err}");
}
