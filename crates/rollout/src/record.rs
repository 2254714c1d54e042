//! Reading audit lines back: one line of the guard's stdout (or of `kubectl logs`, which mixes
//! in the text log and may put a prefix before each line) into the few facts `policy suggest` and
//! `policy replay` need.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::disposition::Disposal;
use crate::index::Owner;

/// One audit line, as much of it as is read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The pod's namespace and name; `None` when the source was no known pod.
    pub pod: Option<(String, String)>,
    /// The pod's uid, when the line has one.
    pub pod_uid: Option<String>,
    /// The workload labels the line carries (`[audit] workload_labels`); lines written before
    /// the guard carried them have none.
    pub labels: BTreeMap<String, String>,
    pub owner: Option<Owner>,
    pub method: String,
    /// The canonical path, with `?` and the canonical query where there was one.
    pub path: String,
    pub decision: Disposal,
    pub reason: String,
    pub rule: Option<String>,
    pub status: u16,
    /// The request carried a token (or asked for one): `imds_version` is `v2`.
    pub tokened: bool,
}

/// What one line of a log is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    Audit(Box<Record>),
    /// Looks like an audit line (a JSON object) but is not a whole one: cut short, or missing a
    /// field every audit line has.
    Malformed(String),
    /// Something else: a log line, an empty line.
    Other,
}

/// The fields read; every audit line the guard writes has the required ones.
#[derive(Deserialize)]
struct Raw {
    /// Required, null for an unknown source: `Option` with no default.
    #[serde(deserialize_with = "nullable")]
    pod: Option<String>,
    #[serde(default)]
    pod_uid: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    owner: Option<RawOwner>,
    method: String,
    path: String,
    decision: String,
    reason: String,
    #[serde(default)]
    rule: Option<String>,
    status: u16,
    imds_version: String,
}

#[derive(Deserialize)]
struct RawOwner {
    kind: String,
    name: String,
}

/// A field that must be present, and may be null.
fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Option::<String>::deserialize(d)
}

/// Reads one line. An audit line may follow a prefix (`kubectl logs --prefix` or
/// `--timestamps`): it is found by its first field. Never fails: what cannot be read is
/// [`Line::Malformed`] or [`Line::Other`].
pub fn read(line: &str) -> Line {
    let line = line.trim();
    let json = if line.starts_with('{') {
        line
    } else {
        match line.find("{\"ts\":") {
            Some(at) => &line[at..],
            None => return Line::Other,
        }
    };
    let raw: Raw = match serde_json::from_str(json) {
        Ok(raw) => raw,
        Err(e) => return Line::Malformed(e.to_string()),
    };
    // The line's `decision` is the word of what became of the request.
    let decision = match raw.decision.as_str() {
        "allow" => Disposal::Forward,
        "would-deny" => Disposal::WouldDeny,
        "deny" => Disposal::Refuse,
        other => return Line::Malformed(format!("unknown decision {other:?}")),
    };
    let pod = match raw.pod {
        None => None,
        Some(qualified) => match qualified.split_once('/') {
            Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                Some((ns.to_owned(), name.to_owned()))
            }
            _ => return Line::Malformed(format!("pod {qualified:?} is not namespace/name")),
        },
    };
    Line::Audit(Box::new(Record {
        pod,
        pod_uid: raw.pod_uid,
        labels: raw.labels.unwrap_or_default(),
        owner: raw.owner.map(|o| Owner {
            kind: o.kind,
            name: o.name,
        }),
        method: raw.method,
        path: raw.path,
        decision,
        reason: raw.reason,
        rule: raw.rule,
        status: raw.status,
        tokened: raw.imds_version == "v2",
    }))
}

#[cfg(test)]
mod tests;
