use super::*;

#[test]
fn tokens_look_like_aws_tokens_and_differ() {
    let store = TokenStore::default();
    let now = Instant::now();
    let a = store.issue(Duration::from_secs(60), now);
    let b = store.issue(Duration::from_secs(60), now);
    assert_eq!(a.len(), TOKEN_LEN);
    assert!(a.starts_with(TOKEN_PREFIX));
    assert!(a.bytes().all(|c| TOKEN_ALPHABET.contains(&c)));
    assert_ne!(a, b);
}

#[test]
fn tokens_expire() {
    let store = TokenStore::default();
    let now = Instant::now();
    let token = store.issue(Duration::from_secs(2), now);
    assert!(store.is_valid(&token, now + Duration::from_secs(1)));
    assert!(!store.is_valid(&token, now + Duration::from_secs(2)));
    assert!(!store.is_valid("AQAEAbogus", now));
}

#[test]
fn altered_forged_and_foreign_tokens_are_refused() {
    let store = TokenStore::default();
    let now = Instant::now();
    let token = store.issue(Duration::from_secs(60), now);
    assert!(store.is_valid(&token, now));
    // Every single-character change is caught: expiry, nonce and tag alike.
    for i in TOKEN_PREFIX.len()..TOKEN_LEN {
        let mut bytes = token.clone().into_bytes();
        bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
        let altered = String::from_utf8(bytes).unwrap();
        assert!(!store.is_valid(&altered, now), "changed at {i}");
    }
    // A later expiry cannot be forged without the key.
    let mut longer = String::from(TOKEN_PREFIX);
    push_number(&mut longer, u64::MAX);
    longer.push_str(&token[TOKEN_PREFIX.len() + NUMBER_LEN..]);
    assert!(!store.is_valid(&longer, now));
    // Another emulator (another key) does not accept it.
    assert!(!TokenStore::default().is_valid(&token, now));
    assert!(!store.is_valid(&format!("{token}x"), now));
    assert!(!store.is_valid(&token.replace('A', "é"), now));
    // Same byte length, not ASCII: refused, not a panic.
    let wide = format!("{}é{}", &token[..10], &token[12..]);
    assert_eq!(wide.len(), TOKEN_LEN);
    assert!(!store.is_valid(&wide, now));
}

#[test]
fn issuing_needs_no_room() {
    let store = TokenStore::default();
    let now = Instant::now();
    let tokens: Vec<String> = (0..200_000)
        .map(|_| store.issue(Duration::from_secs(21_600), now))
        .collect();
    assert!(tokens.iter().step_by(997).all(|t| store.is_valid(t, now)));
}

#[test]
fn numbers_round_trip() {
    for n in [0, 1, 63, 64, u64::MAX, 0x0123_4567_89ab_cdef] {
        let mut text = String::new();
        push_number(&mut text, n);
        assert_eq!(text.len(), NUMBER_LEN);
        assert_eq!(read_number(&text), Some(n));
    }
}
