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
mod tests {
    use super::*;

    const LINE: &str = r#"{"ts":"2026-11-23T11:02:03.456Z","src":"10.1.0.5","pod":"shop/web-1","pod_uid":"u-1","labels":{"app":"web"},"owner":{"kind":"Deployment","name":"web"},"method":"GET","path":"/latest/meta-data/instance-id","decision":"would-deny","reason":"no-rule","rule":null,"status":200,"imds_version":"v2","upstream_ms":0.3,"error":null,"cache":null,"token":"valid","bytes":19,"duration_ms":0.5}"#;

    fn record(line: &str) -> Record {
        match read(line) {
            Line::Audit(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_what_suggest_and_replay_need() {
        let r = record(LINE);
        assert_eq!(r.pod, Some(("shop".into(), "web-1".into())));
        assert_eq!(r.pod_uid.as_deref(), Some("u-1"));
        assert_eq!(r.labels.get("app").map(String::as_str), Some("web"));
        assert_eq!(r.owner.as_ref().map(|o| o.name.as_str()), Some("web"));
        assert_eq!(
            (r.method.as_str(), r.path.as_str(), r.decision, r.status),
            (
                "GET",
                "/latest/meta-data/instance-id",
                Disposal::WouldDeny,
                200
            )
        );
        assert!(r.tokened);
    }

    #[test]
    fn prefixes_older_lines_and_unknown_sources() {
        let prefixed = format!("[pod/imds-guard-x/imds-guard] {LINE}");
        assert_eq!(record(&prefixed), record(LINE));
        let stamped = format!("2026-11-23T11:02:03.456789Z {LINE}\r");
        assert_eq!(record(&stamped), record(LINE));
        // Lines written before labels and owners were carried.
        let old = LINE.replace(
            r#""labels":{"app":"web"},"owner":{"kind":"Deployment","name":"web"},"#,
            "",
        );
        let r = record(&old);
        assert!(r.labels.is_empty() && r.owner.is_none());
        let unknown = LINE.replace(r#""pod":"shop/web-1""#, r#""pod":null"#);
        assert_eq!(record(&unknown).pod, None);
    }

    #[test]
    fn log_lines_are_other_and_broken_audit_lines_malformed() {
        for other in [
            "",
            "2026-11-23T11:02:03Z  INFO imds_guard::server: serving",
            "42",
        ] {
            assert_eq!(read(other), Line::Other, "{other}");
        }
        for broken in [
            &LINE[..LINE.len() / 2],
            r#"{"foo": 1}"#,
            &LINE.replace(r#""pod":"shop/web-1","#, ""),
            &LINE.replace("would-deny", "maybe"),
            &LINE.replace(r#""status":200"#, r#""status":"200""#),
            &LINE.replace("shop/web-1", "web-1"),
            "{not json",
        ] {
            assert!(matches!(read(broken), Line::Malformed(_)), "{broken}");
        }
    }
}
