//! `policy replay`: every recorded request decided again under a new policy, and what would
//! change — served requests that would be denied (which the roll-out must not do), and refused
//! ones that would be allowed — by workload and path, with counts.
//!
//! A request is rebuilt from its line: the pod with the workload labels the line carries (and no
//! namespace labels: lines do not carry them), the method, the path and query read for the new
//! policy's cloud, and whether it carried a token. The mode is not looked at: the question is
//! what enforcing the new rules would do. Token validity, rate limits and malformed requests are
//! not the policy's business, and requests refused for them are not replayed.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::{GroupBy, Log, Was, Workload};
use crate::imds::Method;
use crate::policy::{Facts, Policy, Reason, Verdict};

/// One change: requests of one workload to one path that the new policy decides otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    pub workload: Workload,
    pub method: String,
    pub path: String,
    pub was: Was,
    /// The new decision's reason and rule.
    pub reason: &'static str,
    pub rule: Option<String>,
    pub count: u64,
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (was, now) = match &self.was {
            Was::Served => ("allowed".to_owned(), "denied"),
            Was::Denied(reason) => (format!("denied ({reason})"), "allowed"),
        };
        let method = if self.method == "GET" {
            String::new()
        } else {
            format!("{} ", self.method)
        };
        write!(
            f,
            "{}  {method}{}  {was} → {now} ({}, {})  {}",
            self.workload,
            self.path,
            self.reason,
            self.rule.as_deref().unwrap_or("-"),
            self.count
        )
    }
}

/// What the new policy would change.
#[derive(Debug, Default)]
pub struct Report {
    /// Served, now denied.
    pub broken: Vec<Change>,
    /// Refused by the policy, now allowed.
    pub opened: Vec<Change>,
    pub unchanged_served: u64,
    pub unchanged_denied: u64,
}

impl Report {
    /// Whether nothing that was served would be denied: the gate before `mode = "enforce"`.
    pub fn ok(&self) -> bool {
        self.broken.is_empty()
    }

    /// The report as printed.
    pub fn render(&self) -> String {
        let total = |changes: &[Change]| changes.iter().map(|c| c.count).sum::<u64>();
        let mut out = String::new();
        for (title, changes) in [
            ("allowed → denied", &self.broken),
            ("denied → allowed", &self.opened),
        ] {
            out.push_str(&format!(
                "{title}: {} request(s) to {} path(s)\n",
                total(changes),
                changes.len()
            ));
            for change in changes {
                out.push_str(&format!("  {change}\n"));
            }
        }
        out.push_str(&format!(
            "unchanged: {} request(s) allowed, {} denied\n",
            self.unchanged_served, self.unchanged_denied
        ));
        out
    }
}

/// Decides every request of `log` again under `policy`.
pub fn replay(log: &Log, policy: &Policy, group_by: &GroupBy) -> Report {
    let cloud = policy.cloud();
    let pods: Vec<_> = log.pods.iter().map(|p| p.pod()).collect();
    let workloads: Vec<Workload> = log.pods.iter().map(|p| p.workload(group_by)).collect();
    // Changes without their counts, counted.
    let mut changes: BTreeMap<Change, u64> = BTreeMap::new();
    let mut report = Report::default();
    for (request, count) in log.sorted() {
        let pod = &pods[request.pod as usize];
        let decision = match crate::query::read(cloud, &request.path) {
            Err(_) => policy.refuse(Reason::BadRequest),
            Ok((path, query)) => {
                let method = Method::from_name(&request.method);
                let facts = Facts::in_cloud(cloud, method, &path, &query, request.tokened);
                policy.decide(pod, &facts)
            }
        };
        let allowed = decision.verdict == Verdict::Allow;
        match (&request.was, allowed) {
            (Was::Served, true) => report.unchanged_served += count,
            (Was::Denied(_), false) => report.unchanged_denied += count,
            _ => {
                let key = Change {
                    workload: workloads[request.pod as usize].clone(),
                    method: request.method.clone(),
                    path: request.path.clone(),
                    was: request.was.clone(),
                    reason: decision.reason.as_str(),
                    rule: decision.rule.as_deref().map(str::to_owned),
                    count: 0,
                };
                *changes.entry(key).or_default() += count;
            }
        }
    }
    for (change, count) in changes {
        let change = Change { count, ..change };
        if change.was == Was::Served {
            report.broken.push(change);
        } else {
            report.opened.push(change);
        }
    }
    report
}

/// What about `policy` cannot be replayed exactly from these lines: rules that select on labels
/// no line carries, or on namespace labels.
pub fn warnings(log: &Log, policy: &Policy) -> Vec<String> {
    let carried: BTreeSet<&str> = log
        .pods
        .iter()
        .flat_map(|p| p.labels.keys().map(String::as_str))
        .collect();
    let mut out = Vec::new();
    for (i, rule) in policy.rules().iter().enumerate() {
        for key in rule.selector.pod_labels.keys() {
            if !carried.contains(key.as_str()) {
                out.push(format!(
                    "rules[{i}] ({}) selects on label {key:?}, which no audit line carries: replayed as if no pod had it (add it to [audit] workload_labels)",
                    rule.name
                ));
            }
        }
        if !rule.selector.namespace_labels.is_empty() {
            out.push(format!(
                "rules[{i}] ({}) selects on namespace labels, which audit lines do not carry: replayed as selecting no pod",
                rule.name
            ));
        }
    }
    out
}
