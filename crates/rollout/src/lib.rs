//! Closing the loop from audit mode to a least-privilege policy: `policy suggest` reads what each
//! workload really asked for and writes the narrowest rules that allow it; `policy replay`
//! decides every recorded request again under a new config and says what would change.
//!
//! ```text
//! audit lines ─► record::read     one line into a Record (log lines skipped, broken ones counted)
//!             ─► Log::add         tallied by pod and request: memory grows with distinct
//!                                 requests, not with lines
//! Log ─► suggest::suggest         workloads, their reads generalised (generalise), as [[rules]]
//! Log × Config ─► replay::replay  each request decided again; what changed, by workload and path
//! ```
//!
//! Nothing here does IO: the command line (the main crate's `cli::rollout`) reads the files,
//! parses configs and prints.

pub mod generalise;
pub mod record;
pub mod replay;
pub mod suggest;
#[cfg(test)]
mod tests;
mod text;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

// The core's modules, by the names the rest of this crate uses.
use imds_guard_core::{cloud, disposition, imds, index, policy, query};

use crate::disposition::Disposal;
use crate::index::{Labels, Owner, Pod, DEFAULT_WORKLOAD_LABELS, MAX_LABEL_VALUE};
use record::{Line, Record};

/// How pods are grouped into workloads (`--group-by`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// The first of `app.kubernetes.io/name`, `app` the pod has, else the first other label
    /// carried, else its owner, else its namespace.
    #[default]
    Default,
    /// This label; pods without it by their owner, else by namespace.
    Label(String),
    /// The owner (`--group-by owner`); pods without one as by default.
    Owner,
}

impl GroupBy {
    /// `owner`, or a label key.
    pub fn parse(text: &str) -> Self {
        match text {
            "owner" => Self::Owner,
            key => Self::Label(key.to_owned()),
        }
    }
}

/// What a workload is known by, within its namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum By {
    Label {
        key: String,
        value: String,
    },
    Owner(Owner),
    /// Pods with no label carried and no owner: only their namespace tells them apart.
    Namespace,
}

/// A group of pods that run the same thing: `namespace` and what the pods share.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    pub namespace: String,
    pub by: By,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.by {
            By::Label { key, value } => write!(f, "{} {key}={value}", self.namespace),
            By::Owner(o) => write!(f, "{} {}/{}", self.namespace, o.kind, o.name),
            By::Namespace => write!(f, "{} (namespace)", self.namespace),
        }
    }
}

/// A pod as the lines show it: who it is and what it carried.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodFacts {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Carried workload labels, those cut short in the line left out (they cannot select).
    pub labels: Labels,
    pub owner: Option<Owner>,
}

impl PodFacts {
    fn of(record: &Record) -> Option<Self> {
        let (namespace, name) = record.pod.clone()?;
        let uid = record
            .pod_uid
            .clone()
            .unwrap_or_else(|| format!("{namespace}/{name}"));
        let labels = record
            .labels
            .iter()
            .filter(|(_, v)| !cut_short(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Some(Self {
            namespace,
            name,
            uid,
            labels,
            owner: record.owner.clone(),
        })
    }

    /// The pod as the policy sees it: namespace labels are not in audit lines.
    pub fn pod(&self) -> Pod {
        Pod {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            labels: self.labels.clone(),
            namespace_labels: Labels::new(),
            owner: self.owner.clone(),
            host_network: false,
        }
    }

    /// The workload the pod belongs to.
    pub fn workload(&self, group_by: &GroupBy) -> Workload {
        let label = |key: &str| {
            self.labels.get(key).map(|value| By::Label {
                key: key.to_owned(),
                value: value.clone(),
            })
        };
        let owner = || self.owner.clone().map(By::Owner);
        let default = || {
            DEFAULT_WORKLOAD_LABELS
                .iter()
                .find_map(|k| label(k))
                .or_else(|| self.labels.keys().next().and_then(|k| label(k)))
                .or_else(owner)
        };
        let by = match group_by {
            GroupBy::Default => default(),
            GroupBy::Label(key) => label(key).or_else(owner),
            GroupBy::Owner => owner().or_else(default),
        };
        Workload {
            namespace: self.namespace.clone(),
            by: by.unwrap_or(By::Namespace),
        }
    }
}

/// Whether an audit line cut this label value short (it then ends in `…`).
fn cut_short(value: &str) -> bool {
    value.len() > MAX_LABEL_VALUE && value.ends_with('…')
}

/// What became of a recorded request.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Was {
    /// Forwarded (`allow`, or `would-deny` in audit mode).
    Served,
    /// Refused by the policy, for this reason.
    Denied(String),
}

/// One distinct request of one pod.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Request {
    /// Index into [`Log::pods`].
    pub pod: u32,
    pub method: String,
    /// As in the line: the canonical path, `?` and the canonical query.
    pub path: String,
    pub tokened: bool,
    pub was: Was,
}

/// The reasons that are the policy's own: a request refused for any other (a malformed target,
/// a refused method, a bad token, a rate limit…) is refused whatever the rules, so it is not
/// decided again.
const POLICY_REASONS: &[&str] = &[
    "no-rule",
    "path-not-allowed",
    "denied-by-rule",
    "token-required",
    "aggregate-denied",
    "concealed-path",
];

/// Every line read, tallied.
#[derive(Debug, Default)]
pub struct Log {
    /// Lines that looked like audit lines and were not whole ones.
    pub malformed: u64,
    /// The first few reasons, for the message.
    pub malformed_examples: Vec<String>,
    /// Audit lines read.
    pub lines: u64,
    /// Audit lines of sources that were no known pod (nothing to group or select them by).
    pub unidentified: u64,
    /// Audit lines whose path the guard shortened (too long to be written whole).
    pub shortened: u64,
    /// Audit lines refused before the policy, by reason.
    pub refused_before_policy: BTreeMap<String, u64>,
    pub pods: Vec<PodFacts>,
    pod_index: HashMap<PodFacts, u32>,
    /// Distinct requests, with how many times each was made.
    pub requests: HashMap<Request, u64>,
}

impl Log {
    /// Reads one line of a log.
    pub fn add_line(&mut self, line: &str) {
        match record::read(line) {
            Line::Other => {}
            Line::Malformed(why) => self.add_malformed(why),
            Line::Audit(record) => self.add(&record),
        }
    }

    /// Counts a line that looked like an audit line and was not one, for `why`.
    pub fn add_malformed(&mut self, why: String) {
        self.malformed += 1;
        if self.malformed_examples.len() < 3 {
            self.malformed_examples.push(why);
        }
    }

    /// Tallies one audit record.
    pub fn add(&mut self, record: &Record) {
        self.lines += 1;
        let Some(pod) = PodFacts::of(record) else {
            self.unidentified += 1;
            return;
        };
        if record.path.ends_with('…') {
            self.shortened += 1;
            return;
        }
        let was = match record.decision {
            Disposal::Forward | Disposal::WouldDeny => Was::Served,
            Disposal::Refuse if POLICY_REASONS.contains(&record.reason.as_str()) => {
                Was::Denied(record.reason.clone())
            }
            Disposal::Refuse => {
                *self
                    .refused_before_policy
                    .entry(record.reason.clone())
                    .or_default() += 1;
                return;
            }
        };
        let next = u32::try_from(self.pods.len()).unwrap_or(u32::MAX);
        let pod = *self.pod_index.entry(pod).or_insert_with_key(|pod| {
            self.pods.push(pod.clone());
            next
        });
        let request = Request {
            pod,
            method: record.method.clone(),
            path: record.path.clone(),
            tokened: record.tokened,
            was,
        };
        *self.requests.entry(request).or_default() += 1;
    }

    /// The distinct requests in a stable order, with their counts.
    pub fn sorted(&self) -> Vec<(&Request, u64)> {
        let mut all: Vec<(&Request, u64)> = self.requests.iter().map(|(r, n)| (r, *n)).collect();
        all.sort();
        all
    }

    /// What was read but not used, for the message on stderr: empty when everything was.
    pub fn skipped(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.malformed > 0 {
            out.push(format!(
                "{} malformed audit line(s) skipped (first: {})",
                self.malformed,
                self.malformed_examples.join("; ")
            ));
        }
        if self.unidentified > 0 {
            out.push(format!(
                "{} request(s) from sources that were no known pod skipped",
                self.unidentified
            ));
        }
        if self.shortened > 0 {
            out.push(format!(
                "{} request(s) whose path the audit line shortened skipped",
                self.shortened
            ));
        }
        if !self.refused_before_policy.is_empty() {
            let reasons: Vec<String> = self
                .refused_before_policy
                .iter()
                .map(|(r, n)| format!("{r} {n}"))
                .collect();
            out.push(format!(
                "request(s) refused whatever the policy skipped: {}",
                reasons.join(", ")
            ));
        }
        out
    }
}
