//! `[audit]`: what audit lines carry beyond the request itself.

use std::sync::Arc;

use serde::Deserialize;

use super::{invalid, ConfigError};

pub use crate::index::DEFAULT_WORKLOAD_LABELS;

/// The most labels a line may carry: lines stay bounded whatever the pods' labels are.
pub const MAX_WORKLOAD_LABELS: usize = 8;

/// The longest label key Kubernetes allows: a 253-character prefix, `/`, a 63-character name.
const MAX_KEY_LEN: usize = 253 + 1 + 63;

/// `[audit]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The pod labels each audit line carries (those of them the pod has), so that `policy
    /// suggest` can group pods into workloads and `policy replay` can select them again.
    pub workload_labels: Arc<[String]>,
}

impl Default for Audit {
    fn default() -> Self {
        Self {
            workload_labels: DEFAULT_WORKLOAD_LABELS.map(String::from).into(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawAudit {
    workload_labels: Option<Vec<String>>,
}

/// Checks `[audit]`: at most [`MAX_WORKLOAD_LABELS`] label keys, each a Kubernetes label key,
/// none twice.
pub(super) fn validate(raw: RawAudit) -> Result<Audit, ConfigError> {
    let Some(keys) = raw.workload_labels else {
        return Ok(Audit::default());
    };
    if keys.len() > MAX_WORKLOAD_LABELS {
        return Err(invalid(
            "audit.workload_labels",
            format!("at most {MAX_WORKLOAD_LABELS} labels (every audit line carries them)"),
        ));
    }
    for (i, key) in keys.iter().enumerate() {
        let at = || format!("audit.workload_labels[{i}]");
        check_label_key(key).map_err(|reason| invalid(at(), format!("`{key}`: {reason}")))?;
        if keys[..i].contains(key) {
            return Err(invalid(at(), format!("`{key}` is listed twice")));
        }
    }
    Ok(Audit {
        workload_labels: keys.into(),
    })
}

/// A Kubernetes label key: `[prefix/]name`, the name of letters, digits, `-`, `_` and `.`
/// (alphanumeric at both ends), the prefix a DNS subdomain.
fn check_label_key(key: &str) -> Result<(), &'static str> {
    if key.len() > MAX_KEY_LEN {
        return Err("longer than a Kubernetes label key may be");
    }
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let alnum_ends = |s: &str| {
        s.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
            && s.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
    };
    if name.len() > 63
        || !alnum_ends(name)
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("not a label key: a name of up to 63 letters, digits, `-`, `_` and `.`, beginning and ending with a letter or digit, after an optional `prefix/`");
    }
    if let Some(prefix) = prefix {
        if prefix.len() > 253
            || !prefix.split('.').all(|part| {
                alnum_ends(part)
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
        {
            return Err("not a label key: the prefix before `/` must be a DNS subdomain (`app.kubernetes.io`)");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
