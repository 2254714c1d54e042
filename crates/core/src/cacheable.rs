//! Which answers of the metadata service the guard may keep (`[cache]`), and for how long in kind.
//!
//! What does not change during an instance's life is `Stable` and kept for `max_age_seconds`; IAM
//! role credentials are kept until shortly before their own `Expiration`; everything else —
//! spot and maintenance events, network interfaces, tags, user data — changes or matters too much,
//! and is always forwarded. Operators add patterns (kept as stable) and remove them (never kept,
//! whatever else matches; removal compares the lenient way a deny does, so a spelling variant of a
//! removed path is not kept either).

use crate::policy::pattern::{PathPattern, PatternError};
use crate::target::CanonicalPath;

/// How the answer for a path may be kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheClass {
    /// Fixed for the instance's life: kept for the configured age.
    Stable,
    /// A role's temporary credentials: kept until shortly before they expire.
    Credentials,
    /// Always forwarded.
    Never,
}

/// Paths whose answers do not change while the instance runs.
pub const STABLE_PATHS: &[&str] = &[
    "/latest/meta-data/instance-id",
    "/latest/meta-data/ami-id",
    "/latest/meta-data/instance-type",
    "/latest/meta-data/placement/**",
    "/latest/meta-data/local-ipv4",
    "/latest/meta-data/mac",
    "/latest/meta-data/hostname",
    "/latest/meta-data/local-hostname",
    "/latest/meta-data/services/**",
    "/latest/dynamic/instance-identity/**",
    // The role name list.
    "/latest/meta-data/iam/security-credentials",
];

/// Paths whose answers are credentials documents with an `Expiration`.
pub const CREDENTIALS_PATHS: &[&str] = &[
    "/latest/meta-data/iam/security-credentials/*",
    "/latest/meta-data/identity-credentials/ec2/security-credentials/*",
];

/// The compiled classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachePaths {
    stable: Vec<PathPattern>,
    credentials: Vec<PathPattern>,
    removed: Vec<PathPattern>,
}

impl CachePaths {
    /// The built-in lists, with `add` kept as stable and `remove` never kept. A bad pattern is
    /// returned with its place in the list it came from (`("add", 2, error)`).
    pub fn new(
        add: &[String],
        remove: &[String],
    ) -> Result<Self, (&'static str, usize, PatternError)> {
        let compile = |list: &'static str, items: &[String]| {
            items
                .iter()
                .enumerate()
                .map(|(i, p)| PathPattern::parse(p).map_err(|e| (list, i, e)))
                .collect::<Result<Vec<_>, _>>()
        };
        let builtin = |items: &[&str]| {
            items
                .iter()
                .map(|p| PathPattern::parse(p).expect("built-in pattern"))
                .collect::<Vec<_>>()
        };
        let mut stable = builtin(STABLE_PATHS);
        stable.extend(compile("add", add)?);
        Ok(Self {
            stable,
            credentials: builtin(CREDENTIALS_PATHS),
            removed: compile("remove", remove)?,
        })
    }

    /// How the answer for `path` may be kept.
    pub fn class(&self, path: &CanonicalPath) -> CacheClass {
        if self.removed.iter().any(|p| p.matches(path, true)) {
            CacheClass::Never
        } else if self.credentials.iter().any(|p| p.matches(path, false)) {
            CacheClass::Credentials
        } else if self.stable.iter().any(|p| p.matches(path, false)) {
            CacheClass::Stable
        } else {
            CacheClass::Never
        }
    }
}

impl Default for CachePaths {
    fn default() -> Self {
        Self::new(&[], &[]).expect("built-in patterns")
    }
}

#[cfg(test)]
mod tests;
