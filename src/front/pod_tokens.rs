//! IMDSv2 tokens issued by the guard (`[imdsv2] tokens = "guard"`): sealed, carrying their expiry,
//! bound to the pod that asked.
//!
//! A token is `base64url(version ‖ expiry ‖ tag)`: one version byte, the expiry in Unix seconds
//! (8 bytes, big-endian), and an HMAC-SHA256 tag over the version, the expiry and the pod's uid.
//! The uid is not in the token: checking one recomputes the tag with the uid of the pod that
//! presents it, so a token is good only for the pod it was issued to, and a token is as long as
//! the service's own (55 characters). The key is random per start, or read from
//! `[imdsv2] token_key_file` so tokens outlive a restart.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

const VERSION: u8 = 1;
const EXPIRY_LEN: usize = 8;
const TAG_LEN: usize = 32;
const TOKEN_LEN: usize = 1 + EXPIRY_LEN + TAG_LEN;
/// The shortest key file accepted.
pub const MIN_KEY_BYTES: usize = 32;

/// Why the key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read [imdsv2] token_key_file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("[imdsv2] token_key_file {path} holds {len} bytes; at least {MIN_KEY_BYTES} are needed (e.g. `head -c 32 /dev/urandom > FILE`)")]
    Short { path: String, len: usize },
    #[error("no random key could be made: the system's random source failed")]
    Random,
}

/// What a presented token turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Valid,
    /// Not one the guard made for this pod with this key (forged, another pod's, another key's,
    /// or not a guard token at all).
    Invalid,
    /// Made for this pod, but past its expiry.
    Expired,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Expired => "expired",
        }
    }
}

/// Issues and checks tokens with one key.
pub struct Issuer {
    key: hmac::Key,
}

impl Issuer {
    /// A fresh random key: tokens die with the process.
    pub fn random() -> Result<Self, KeyError> {
        let mut bytes = [0u8; MIN_KEY_BYTES];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| KeyError::Random)?;
        Ok(Self::with_key(&bytes))
    }

    /// The key in `path` (its bytes as they are, at least [`MIN_KEY_BYTES`]).
    pub fn from_file(path: &Path) -> Result<Self, KeyError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|source| KeyError::Read {
            path: shown.clone(),
            source,
        })?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::Short {
                path: shown,
                len: bytes.len(),
            });
        }
        Ok(Self::with_key(&bytes))
    }

    /// An issuer with this key.
    pub fn with_key(bytes: &[u8]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        }
    }

    /// A token for the pod with `uid`, good for `ttl` from `now`.
    pub fn issue(&self, uid: &str, ttl: Duration, now: SystemTime) -> String {
        let expiry = (now + ttl)
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut token = [0u8; TOKEN_LEN];
        token[0] = VERSION;
        token[1..=EXPIRY_LEN].copy_from_slice(&expiry.to_be_bytes());
        let tag = self.tag(&token[..=EXPIRY_LEN], uid);
        token[1 + EXPIRY_LEN..].copy_from_slice(tag.as_ref());
        URL_SAFE_NO_PAD.encode(token)
    }

    /// Whether `token` is one this issuer made for the pod with `uid`, and unexpired at `now`.
    pub fn check(&self, token: &[u8], uid: &str, now: SystemTime) -> Check {
        let mut raw = [0u8; TOKEN_LEN + 1];
        let decoded = match URL_SAFE_NO_PAD.decode_slice(token, &mut raw) {
            Ok(len) if len == TOKEN_LEN && raw[0] == VERSION => &raw[..TOKEN_LEN],
            _ => return Check::Invalid,
        };
        let (signed, tag) = decoded.split_at(1 + EXPIRY_LEN);
        let mut message = Vec::with_capacity(signed.len() + 1 + uid.len());
        message.extend_from_slice(signed);
        message.push(0);
        message.extend_from_slice(uid.as_bytes());
        if hmac::verify(&self.key, &message, tag).is_err() {
            return Check::Invalid;
        }
        let mut expiry = [0u8; EXPIRY_LEN];
        expiry.copy_from_slice(&signed[1..]);
        let expiry = UNIX_EPOCH + Duration::from_secs(u64::from_be_bytes(expiry));
        if now >= expiry {
            Check::Expired
        } else {
            Check::Valid
        }
    }

    fn tag(&self, signed: &[u8], uid: &str) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(signed);
        context.update(&[0]);
        context.update(uid.as_bytes());
        context.sign()
    }
}

#[cfg(test)]
mod tests;
