//! Temporary role credentials that expire and rotate like real ones: AWS's IAM role credentials,
//! and in their own shapes Alibaba's RAM role, Tencent's CAM role and Huawei's agency keys.
//!
//! Time is cut into windows of half the credentials' lifetime. Within a
//! window every request sees the same credentials; the next window brings new
//! ones. That way a client always gets credentials with at least half their
//! lifetime left, and tests and SDK refresh logic see real rotation. The
//! credentials are derived from the window number, the role and a per-process
//! random seed, so nothing needs to be stored.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Characters of access key ids (after `ASIA`), as AWS uses.
const KEY_ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// Characters of secret keys and session tokens.
const SECRET_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The credentials document, with AWS's key order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Credentials {
    code: &'static str,
    last_updated: String,
    #[serde(rename = "Type")]
    kind: &'static str,
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

/// The Alibaba credentials document, with the key order of Alibaba's documentation.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct AlibabaCredentials {
    access_key_id: String,
    access_key_secret: String,
    expiration: String,
    security_token: String,
    last_updated: String,
    code: &'static str,
}

/// Characters of Alibaba key ids and secrets.
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// Characters of Huawei access keys.
const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/// Characters of Tencent session tokens.
const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The Tencent CAM role credentials document, with the key order of Tencent's documentation.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct TencentCredentials {
    tmp_secret_id: String,
    tmp_secret_key: String,
    /// Unix seconds, a JSON number.
    expired_time: u64,
    expiration: String,
    token: String,
    code: &'static str,
}

/// Huawei's `securitykey` document: the agency's temporary AK/SK under `credential`.
#[derive(serde::Serialize)]
struct HuaweiSecurityKey {
    credential: HuaweiCredential,
}

#[derive(serde::Serialize)]
struct HuaweiCredential {
    access: String,
    secret: String,
    securitytoken: String,
    expires_at: String,
}

/// Generates the credentials of any role for any moment.
#[derive(Debug)]
pub(crate) struct CredentialSource {
    seed: [u8; 32],
    ttl: Duration,
}

impl CredentialSource {
    /// A source with a fresh random seed; `ttl` must be at least 2 ms so a
    /// window is never empty.
    pub(crate) fn new(ttl: Duration) -> Self {
        CredentialSource {
            seed: rand::rng().random(),
            ttl,
        }
    }

    /// The credentials JSON of `role` as seen at `now`.
    pub(crate) fn document(&self, role: &str, now: SystemTime) -> String {
        let (start, expiration, mut rng) = self.window(role, now);
        let credentials = Credentials {
            code: "Success",
            last_updated: humantime::format_rfc3339_seconds(start).to_string(),
            kind: "AWS-HMAC",
            access_key_id: format!("ASIA{}", random_string(&mut rng, KEY_ID_ALPHABET, 16)),
            secret_access_key: random_string(&mut rng, SECRET_ALPHABET, 40),
            token: random_string(&mut rng, SECRET_ALPHABET, 600),
            expiration: humantime::format_rfc3339_seconds(expiration).to_string(),
        };
        // Serialising plain strings cannot fail.
        serde_json::to_string_pretty(&credentials).unwrap_or_default()
    }

    /// The credentials JSON of an Alibaba RAM role as seen at `now`: the same windows, Alibaba's
    /// shape (an `STS.` key id, `AccessKeySecret`, `SecurityToken`, `Code` last).
    pub(crate) fn alibaba_document(&self, role: &str, now: SystemTime) -> String {
        let (start, expiration, mut rng) = self.window(role, now);
        let credentials = AlibabaCredentials {
            access_key_id: format!("STS.{}", random_string(&mut rng, ALNUM, 24)),
            access_key_secret: random_string(&mut rng, ALNUM, 40),
            expiration: humantime::format_rfc3339_seconds(expiration).to_string(),
            security_token: format!("CAIS{}", random_string(&mut rng, SECRET_ALPHABET, 600)),
            last_updated: humantime::format_rfc3339_seconds(start).to_string(),
            code: "Success",
        };
        serde_json::to_string_pretty(&credentials).unwrap_or_default()
    }

    /// The credentials JSON of a Tencent CAM role as seen at `now`: the same windows, Tencent's
    /// shape (an `AKID` secret id, `ExpiredTime` in Unix seconds beside the RFC 3339
    /// `Expiration`, `Code` last), as tencentcloud-sdk's CVM role credential reads it.
    pub(crate) fn tencent_document(&self, role: &str, now: SystemTime) -> String {
        let (_, expiration, mut rng) = self.window(role, now);
        let credentials = TencentCredentials {
            tmp_secret_id: format!("AKID{}", random_string(&mut rng, ALNUM, 32)),
            tmp_secret_key: random_string(&mut rng, ALNUM, 32),
            expired_time: expiration
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            expiration: humantime::format_rfc3339_seconds(expiration).to_string(),
            token: random_string(&mut rng, URL_SAFE, 400),
            code: "Success",
        };
        serde_json::to_string_pretty(&credentials).unwrap_or_default()
    }

    /// Huawei's `securitykey` JSON of the agency `agency` as seen at `now`: the same windows,
    /// `expires_at` in RFC 3339 with microseconds (the format huaweicloudsdkcore parses, `%f`
    /// required), compact.
    pub(crate) fn huawei_document(&self, agency: &str, now: SystemTime) -> String {
        let (_, expiration, mut rng) = self.window(agency, now);
        let key = HuaweiSecurityKey {
            credential: HuaweiCredential {
                access: random_string(&mut rng, UPPER_ALNUM, 20),
                secret: random_string(&mut rng, ALNUM, 40),
                securitytoken: format!("gQ{}", random_string(&mut rng, SECRET_ALPHABET, 600)),
                expires_at: humantime::format_rfc3339_micros(expiration).to_string(),
            },
        };
        serde_json::to_string(&key).unwrap_or_default()
    }

    /// The window `now` falls in: its start, the expiration of its credentials, and the random
    /// source of the credentials of `role` in it.
    fn window(&self, role: &str, now: SystemTime) -> (SystemTime, SystemTime, StdRng) {
        let half_ms = (self.ttl.as_millis() / 2).max(1);
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let window = since_epoch.as_millis() / half_ms;
        let start_ms = u64::try_from(window * half_ms).unwrap_or(u64::MAX);
        let start = UNIX_EPOCH + Duration::from_millis(start_ms);
        let rng = StdRng::from_seed(self.window_seed(window, role));
        (start, start + self.ttl, rng)
    }

    /// The per-process seed, changed by the window and the role. The window
    /// goes in whole so consecutive windows can never share a seed.
    fn window_seed(&self, window: u128, role: &str) -> [u8; 32] {
        let mut seed = self.seed;
        let mut hasher = DefaultHasher::new();
        role.hash(&mut hasher);
        let role_hash = hasher.finish().to_le_bytes();
        let window = window.to_le_bytes();
        for (i, byte) in seed.iter_mut().enumerate() {
            if i < 16 {
                *byte ^= window[i];
            } else if i < 24 {
                *byte ^= role_hash[i - 16];
            }
        }
        seed
    }
}

fn random_string(rng: &mut StdRng, alphabet: &[u8], len: usize) -> String {
    (0..len)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

#[cfg(test)]
mod tests;
