//! Session tokens handed out by `PUT /latest/api/token`.
//!
//! Tokens are stateless, so issuing never runs out of room however fast clients ask (a load test
//! issues tens of thousands a second) and checking one needs no memory of what was issued. A token
//! carries its expiry and a random nonce, sealed by a keyed tag: SipHash with keys drawn at random
//! when the emulator starts (std's `RandomState`). A token is valid only for the emulator that
//! issued it, only until its expiry, and only unaltered. That is a keyed hash, not a signature
//! scheme, and serves an emulator; the tokens are shaped like AWS ones (`AQAEA…`, 56 characters).

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, Instant};

use rand::Rng;

/// The shortest and longest token lifetimes AWS accepts, in seconds.
pub(crate) const MIN_TTL_SECS: u64 = 1;
pub(crate) const MAX_TTL_SECS: u64 = 21_600;

/// Token length and alphabet, shaped like AWS tokens (`AQAEA...`, 56 chars).
const TOKEN_PREFIX: &str = "AQAEA";
const TOKEN_LEN: usize = 56;
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Characters that carry a 64-bit number (6 bits each).
const NUMBER_LEN: usize = 11;
/// Prefix, expiry, nonce: the part the tag covers. The tag takes the last [`NUMBER_LEN`].
const SEALED_LEN: usize = TOKEN_LEN - NUMBER_LEN;

/// Issues and checks tokens.
#[derive(Debug)]
pub(crate) struct TokenStore {
    /// The tag key, random per emulator.
    key: RandomState,
    /// Expiries are milliseconds after this instant.
    epoch: Instant,
}

impl Default for TokenStore {
    fn default() -> Self {
        TokenStore {
            key: RandomState::new(),
            epoch: Instant::now(),
        }
    }
}

impl TokenStore {
    /// Issues a token valid for `ttl` from `now`.
    pub(crate) fn issue(&self, ttl: Duration, now: Instant) -> String {
        let expiry = self
            .millis(now)
            .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(TOKEN_PREFIX);
        push_number(&mut token, expiry);
        let mut rng = rand::rng();
        while token.len() < SEALED_LEN {
            token.push(char::from(
                TOKEN_ALPHABET[rng.random_range(0..TOKEN_ALPHABET.len())],
            ));
        }
        let tag = self.tag(&token);
        push_number(&mut token, tag);
        token
    }

    /// Whether `token` was issued here, unaltered, and has not expired at `now`.
    pub(crate) fn is_valid(&self, token: &str, now: Instant) -> bool {
        // ASCII first: the splits below are at byte offsets.
        if !token.is_ascii() || token.len() != TOKEN_LEN || !token.starts_with(TOKEN_PREFIX) {
            return false;
        }
        let (sealed, tag) = token.split_at(SEALED_LEN);
        let expiry = &sealed[TOKEN_PREFIX.len()..TOKEN_PREFIX.len() + NUMBER_LEN];
        match (read_number(tag), read_number(expiry)) {
            (Some(tag), Some(expiry)) => tag == self.tag(sealed) && self.millis(now) < expiry,
            _ => false,
        }
    }

    fn tag(&self, sealed: &str) -> u64 {
        let mut hasher = self.key.build_hasher();
        hasher.write(sealed.as_bytes());
        hasher.finish()
    }

    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }
}

/// Appends `n` as [`NUMBER_LEN`] characters of the token alphabet, most significant first.
fn push_number(token: &mut String, n: u64) {
    for i in (0..NUMBER_LEN).rev() {
        let digit = (n >> (6 * i)) & 0x3f;
        token.push(char::from(TOKEN_ALPHABET[digit as usize]));
    }
}

/// Reads what [`push_number`] wrote; `None` for a character outside the alphabet.
fn read_number(text: &str) -> Option<u64> {
    text.bytes().try_fold(0u64, |n, c| {
        let digit = TOKEN_ALPHABET.iter().position(|a| *a == c)?;
        Some((n << 6) | digit as u64)
    })
}

#[cfg(test)]
mod tests {
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
}
