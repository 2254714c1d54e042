//! Session tokens handed out by `PUT /latest/api/token`.
//!
//! Tokens are random strings remembered with their expiry. Expired tokens
//! are pruned as new ones are issued (amortised, so issuing stays cheap),
//! and the store refuses new tokens past a fixed size so a client looping on
//! PUT cannot grow it without bound.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::Rng;

/// Most tokens alive at once; beyond this, issuing fails until some expire.
pub(crate) const MAX_TOKENS: usize = 100_000;

/// The shortest and longest token lifetimes AWS accepts, in seconds.
pub(crate) const MIN_TTL_SECS: u64 = 1;
pub(crate) const MAX_TTL_SECS: u64 = 21_600;

/// Token length and alphabet, shaped like AWS tokens (`AQAEA...`, 56 chars).
const TOKEN_PREFIX: &str = "AQAEA";
const TOKEN_LEN: usize = 56;
const TOKEN_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Prune once the store reaches this size at the least.
const MIN_PRUNE_AT: usize = 1024;

/// Why a token could not be issued.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum IssueError {
    /// The store is full of live tokens.
    Full,
}

#[derive(Debug)]
struct Inner {
    tokens: HashMap<String, Instant>,
    /// Size at which the next insert prunes expired tokens first. Doubling it
    /// after each prune keeps the cost per insert constant on average.
    prune_at: usize,
    /// No token expires before this, so pruning earlier finds nothing. This
    /// keeps a full store from being scanned on every refused request.
    earliest_expiry: Option<Instant>,
}

/// The issued tokens and their expiry.
#[derive(Debug)]
pub(crate) struct TokenStore {
    inner: Mutex<Inner>,
}

impl Default for TokenStore {
    fn default() -> Self {
        TokenStore {
            inner: Mutex::new(Inner {
                tokens: HashMap::new(),
                prune_at: MIN_PRUNE_AT,
                earliest_expiry: None,
            }),
        }
    }
}

impl TokenStore {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; a poisoned map is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Issues a token valid for `ttl` from `now`.
    pub(crate) fn issue(&self, ttl: Duration, now: Instant) -> Result<String, IssueError> {
        let token = new_token();
        let mut inner = self.lock();
        let something_expired = inner.earliest_expiry.is_some_and(|e| e <= now);
        if something_expired && inner.tokens.len() >= inner.prune_at.min(MAX_TOKENS) {
            let mut earliest = None::<Instant>;
            inner.tokens.retain(|_, expiry| {
                let keep = *expiry > now;
                if keep {
                    earliest = Some(earliest.map_or(*expiry, |e| e.min(*expiry)));
                }
                keep
            });
            inner.earliest_expiry = earliest;
            inner.prune_at = (inner.tokens.len() * 2).max(MIN_PRUNE_AT);
        }
        if inner.tokens.len() >= MAX_TOKENS {
            return Err(IssueError::Full);
        }
        let expiry = now + ttl;
        inner.earliest_expiry = Some(inner.earliest_expiry.map_or(expiry, |e| e.min(expiry)));
        inner.tokens.insert(token.clone(), expiry);
        Ok(token)
    }

    /// Whether `token` was issued here and has not expired at `now`.
    /// An expired token is forgotten on the way.
    pub(crate) fn is_valid(&self, token: &str, now: Instant) -> bool {
        let mut inner = self.lock();
        match inner.tokens.get(token) {
            Some(expiry) if *expiry > now => true,
            Some(_) => {
                inner.tokens.remove(token);
                false
            }
            None => false,
        }
    }

    /// How many tokens are stored, expired or not.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().tokens.len()
    }
}

/// A fresh random token from the thread's cryptographically secure generator.
fn new_token() -> String {
    let mut rng = rand::rng();
    let mut token = String::with_capacity(TOKEN_LEN);
    token.push_str(TOKEN_PREFIX);
    while token.len() < TOKEN_LEN {
        let index = rng.random_range(0..TOKEN_ALPHABET.len());
        token.push(char::from(TOKEN_ALPHABET[index]));
    }
    token
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_look_like_aws_tokens_and_differ() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(a.starts_with(TOKEN_PREFIX));
        assert!(a.bytes().all(|c| TOKEN_ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }

    #[test]
    fn tokens_expire() {
        let store = TokenStore::default();
        let now = Instant::now();
        let token = store.issue(Duration::from_secs(2), now).expect("issue");
        assert!(store.is_valid(&token, now + Duration::from_secs(1)));
        assert!(!store.is_valid(&token, now + Duration::from_secs(2)));
        assert!(!store.is_valid("AQAEAbogus", now));
        assert_eq!(store.len(), 0, "expired token is forgotten");
    }

    #[test]
    fn expired_tokens_are_pruned_so_the_store_stays_bounded() {
        let store = TokenStore::default();
        let start = Instant::now();
        for i in 0..10 * MIN_PRUNE_AT {
            // Each token is dead by the time the next one is issued.
            let now = start + Duration::from_secs(2 * i as u64);
            store.issue(Duration::from_secs(1), now).expect("issue");
        }
        assert!(store.len() <= MIN_PRUNE_AT, "{} tokens kept", store.len());
    }

    #[test]
    fn a_full_store_refuses_new_tokens() {
        let store = TokenStore::default();
        let now = Instant::now();
        for _ in 0..MAX_TOKENS {
            store.issue(Duration::from_secs(60), now).expect("issue");
        }
        assert_eq!(
            store.issue(Duration::from_secs(60), now),
            Err(IssueError::Full)
        );
        // Once they expire there is room again.
        let later = now + Duration::from_secs(61);
        assert!(store.issue(Duration::from_secs(60), later).is_ok());
    }
}
