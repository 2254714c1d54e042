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
mod tests;
