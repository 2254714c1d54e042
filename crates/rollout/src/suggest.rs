//! `policy suggest`: one `[[rules]]` block per workload, allowing what its pods were served and
//! nothing wider than the generalisation needs ([`super::generalise`]).
//!
//! - Only what was served counts (`allow`, and `would-deny` in audit mode); what the policy in
//!   force refused is counted in a comment, not allowed.
//! - Token requests need no pattern (any access earns a token); a workload that only asked for
//!   tokens gets the token path itself, which allows nothing else.
//! - `require_tokens = true` when every read of every pod the rule selects carried a token.
//! - Queries: the keys that choose what is handed out stay as constraints (`resource`,
//!   `client_id`, `object_id`, `msi_res_id`, `mi_res_id`, `audience`); the others
//!   (`api-version`, `format`, `recursive`, `alt`, …) are dropped.
//! - Aggregates (GCP `recursive=true`, Azure's instance document, OCI's, Alibaba's
//!   `meta-data/all`) pass only with an allow ending in `**` that covers their root: they get
//!   `ROOT/**`, which allows nothing the read did not return already — except, on GCP, the
//!   service accounts' tokens, which a recursive answer leaves out: those get a deny unless the
//!   workload read them.
//!
//! The output is checked before it is printed: parsed as a config for the cloud and replayed
//! against the same log ([`super::replay`]); anything it would still refuse is said.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::generalise::{self, Reads, Seg};
use super::text::{constraints, key, list, quoted};
use super::{By, GroupBy, Log, Was, Workload};
use crate::cloud::Cloud;
use crate::imds::{self, Kind, Method};
use crate::index::Labels;
use crate::policy::{Facts, Policy, Selector};

/// The rules, and what to tell the operator beside them.
#[derive(Debug)]
pub struct Suggestion {
    /// TOML: comments and `[[rules]]` blocks.
    pub text: String,
    /// For stderr: requests the rules cannot allow, lines skipped.
    pub notes: Vec<String>,
}

/// What one workload was served.
#[derive(Default)]
struct Seen {
    pods: BTreeSet<u32>,
    reads: u64,
    tokenless_reads: u64,
    token_requests: u64,
    /// Refused by the policy in force: not allowed by the suggestion.
    refused: u64,
    /// Served, but not a path a pattern can name (read differently for this cloud).
    unreadable: u64,
    paths: BTreeMap<(Vec<String>, String), Reads>,
    /// Aggregate reads by the root of what they return.
    aggregates: BTreeMap<Vec<String>, Reads>,
}

/// How a config text becomes the policy it holds: the guard's own config check (the command
/// line passes `config::parse`), with its complaint as text.
pub type Parse<'a> = dyn Fn(&str) -> Result<std::sync::Arc<Policy>, String> + 'a;

/// Suggests rules for every workload in `log`, for `cloud`'s server; the suggestion is parsed with
/// `parse` and replayed against `log`, and what it would still refuse is said in its notes.
pub fn suggest(log: &Log, cloud: Cloud, group_by: &GroupBy, parse: &Parse<'_>) -> Suggestion {
    let mut workloads: BTreeMap<Workload, Seen> = BTreeMap::new();
    let pod_workloads: Vec<Workload> = log.pods.iter().map(|p| p.workload(group_by)).collect();
    for (request, count) in log.sorted() {
        let seen = workloads
            .entry(pod_workloads[request.pod as usize].clone())
            .or_default();
        seen.pods.insert(request.pod);
        if request.was != Was::Served {
            seen.refused += count;
            continue;
        }
        let Ok((path, query)) = crate::query::read(cloud, &request.path) else {
            seen.unreadable += count;
            continue;
        };
        let method = Method::from_name(&request.method);
        match Facts::in_cloud(cloud, method, &path, &query, request.tokened).kind {
            Kind::TokenRequest => {
                seen.token_requests += count;
                continue;
            }
            Kind::NotAllowed => {
                seen.unreadable += count;
                continue;
            }
            Kind::Read => {}
        }
        let segments: Vec<String> = path.segments().map(str::to_owned).collect();
        if segments.iter().any(|s| s.contains('*')) {
            seen.unreadable += count;
            continue;
        }
        seen.reads += count;
        if !request.tokened {
            seen.tokenless_reads += count;
        }
        let reads = match cloud.aggregate_root(&path, &query) {
            Some(root) => seen
                .aggregates
                .entry(
                    root.split('/')
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
                .or_default(),
            None => seen
                .paths
                .entry((segments, constraints(&query)))
                .or_default(),
        };
        if reads.requests == 0 {
            reads.paths += 1;
        }
        reads.requests += count;
        reads.pods.insert(request.pod);
    }

    let selectors: Vec<(Selector, String)> = workloads
        .iter()
        .map(|(w, seen)| selector(w, seen, log))
        .collect();
    let mut text = String::new();
    let _ = writeln!(
        text,
        "# imds-guard policy suggest: {} workload(s) from {} audit line(s), for [upstream] cloud = \"{cloud}\".\n\
         # Check with `imds-guard check`, then `imds-guard policy replay` before mode = \"enforce\".",
        workloads.len(),
        log.lines,
    );
    for ((workload, seen), (selector, how)) in workloads.iter().zip(&selectors) {
        // What the rule's selector picks among the pods seen: their workloads' reads count too.
        let touched: Vec<&Seen> = workloads
            .iter()
            .filter(|(_, other)| {
                other
                    .pods
                    .iter()
                    .any(|p| selector.selects(&log.pods[*p as usize].pod()))
            })
            .map(|(_, other)| other)
            .collect();
        rule(&mut text, cloud, workload, seen, selector, how, &touched);
    }
    let mut notes = log.skipped();
    notes.extend(self_check(&text, cloud, log, group_by, parse));
    Suggestion { text, notes }
}

/// The selector of a workload's rule, and a comment on how it selects when that is not plain.
fn selector(workload: &Workload, seen: &Seen, log: &Log) -> (Selector, String) {
    let namespaces = Some(vec![workload.namespace.clone()]);
    let (pod_labels, how) = match &workload.by {
        By::Label { key, value } => (Labels::from([(key.clone(), value.clone())]), String::new()),
        By::Owner(owner) => {
            // The owner is no selector: the labels every pod of it carries are.
            let mut common: Option<Labels> = None;
            for p in &seen.pods {
                let labels = &log.pods[*p as usize].labels;
                common = Some(match common {
                    None => labels.clone(),
                    Some(c) => c
                        .into_iter()
                        .filter(|(k, v)| labels.get(k) == Some(v))
                        .collect(),
                });
            }
            let common = common.unwrap_or_default();
            let how = if common.is_empty() {
                format!("# grouped by owner {}/{}, which is no selector, and its pods share no carried label: this rule selects the whole namespace\n", owner.kind, owner.name)
            } else {
                format!("# grouped by owner {}/{}, which is no selector: selected by the labels its pods share\n", owner.kind, owner.name)
            };
            (common, how)
        }
        By::Namespace => (
            Labels::new(),
            "# no workload label or owner carried: this rule selects the whole namespace\n".into(),
        ),
    };
    let selector = Selector {
        all_pods: false,
        namespaces,
        pod_labels,
        namespace_labels: Labels::new(),
    };
    (selector, how)
}

/// Writes one workload's block.
fn rule(
    out: &mut String,
    cloud: Cloud,
    workload: &Workload,
    seen: &Seen,
    selector: &Selector,
    how: &str,
    touched: &[&Seen],
) {
    let served = seen.reads + seen.token_requests;
    let _ = write!(
        out,
        "\n# {workload}: {} pod(s); served {} read(s), {} token request(s)",
        seen.pods.len(),
        seen.reads,
        seen.token_requests
    );
    if seen.refused > 0 {
        let _ = write!(
            out,
            "; {} refused by the policy in force (not included)",
            seen.refused
        );
    }
    if seen.unreadable > 0 {
        let _ = write!(
            out,
            "; {} not readable as {cloud} paths (not included)",
            seen.unreadable
        );
    }
    out.push('\n');
    if served == 0 {
        out.push_str("# nothing was served: no rule suggested\n");
        return;
    }
    out.push_str(how);
    let mut allow: Vec<(String, String)> = Vec::new();
    for made in generalise::generalise(cloud, seen.paths.clone()) {
        let mut note = format!("{} request(s)", made.reads.requests);
        if made.reads.paths > 1 {
            let _ = write!(
                note,
                ", {} paths, {} pod(s)",
                made.reads.paths,
                made.reads.pods.len()
            );
        }
        if made.sensitive {
            note.push_str("; sensitive (credentials or concealed): listed explicitly");
        }
        allow.push((generalise::text(&made.segments) + &made.query, note));
    }
    let mut deny: Vec<(String, String)> = Vec::new();
    for (root, reads) in &seen.aggregates {
        let root_segs: Vec<Seg> = root.iter().cloned().map(Seg::Lit).collect();
        let mut all = root_segs.clone();
        all.push(Seg::Any);
        allow.push((
            generalise::text(&all),
            format!(
                "{} request(s); an aggregate read returns everything below, so it needs `**`",
                reads.requests
            ),
        ));
        for (candidate, read) in outside_aggregate_credentials(cloud, &root_segs, touched) {
            if !read {
                deny.push((
                    candidate,
                    "not returned by the aggregate read, and not read".into(),
                ));
            } else if candidate.split('/').any(|s| s == "*") {
                // Read for some accounts: allowed for all of them (a deny would refuse those read).
                let _ = writeln!(
                    out,
                    "# note: {} also allows {candidate} for every account, which an aggregate read does not return; this workload reads some of them",
                    generalise::text(&all)
                );
            }
            // Read, and named exactly: allowing it allows only what was read.
        }
    }
    if seen.reads == 0 {
        let token_path = cloud.token_flow().map_or(imds::TOKEN_PATH, |f| f.path);
        allow.push((
            token_path.to_owned(),
            "only token requests were seen; a token comes with any allow pattern, and this one allows nothing else".into(),
        ));
    }
    allow.sort();
    allow.dedup_by(|a, b| a.0 == b.0);
    deny.sort();
    deny.dedup_by(|a, b| a.0 == b.0);
    let _ = writeln!(out, "[[rules]]");
    let _ = writeln!(out, "name = {}", quoted(&format!("suggested: {workload}")));
    if let Some(namespaces) = &selector.namespaces {
        let list: Vec<String> = namespaces.iter().map(|n| quoted(n)).collect();
        let _ = writeln!(out, "namespaces = [{}]", list.join(", "));
    }
    if !selector.pod_labels.is_empty() {
        let pairs: Vec<String> = selector
            .pod_labels
            .iter()
            .map(|(k, v)| format!("{} = {}", key(k), quoted(v)))
            .collect();
        let _ = writeln!(out, "pod_labels = {{ {} }}", pairs.join(", "));
    }
    list(out, "allow", &allow);
    if !deny.is_empty() {
        list(out, "deny", &deny);
    }
    let reads: u64 = touched.iter().map(|s| s.reads).sum();
    let tokenless: u64 = touched.iter().map(|s| s.tokenless_reads).sum();
    if reads > 0 && tokenless == 0 {
        let _ = writeln!(out, "require_tokens = true  # every read carried a token");
    }
}

/// On GCP, the service accounts' tokens below an aggregate root (a recursive answer leaves them
/// out, so the `**` its read needs would allow them): each as a pattern, and whether a workload
/// the rule selects read it.
fn outside_aggregate_credentials(
    cloud: Cloud,
    root: &[Seg],
    touched: &[&Seen],
) -> Vec<(String, bool)> {
    let concealed: Vec<Vec<Seg>> = cloud
        .concealed()
        .iter()
        .map(|p| generalise::segments(p))
        .collect();
    let mut out = Vec::new();
    for pattern in cloud.credential_patterns() {
        let c = generalise::segments(pattern);
        if c.contains(&Seg::Any) || c.len() <= root.len() {
            continue;
        }
        let fits = root.iter().zip(&c).all(|(r, c)| c == &Seg::One || r == c);
        if !fits {
            continue;
        }
        let mut candidate: Vec<Seg> = root.to_vec();
        candidate.extend(c[root.len()..].iter().cloned());
        let text = generalise::text(&candidate);
        // Concealed paths are out of reach of `**` anyway; what an aggregate holds cannot be
        // denied without refusing the aggregate.
        if concealed.iter().any(|s| generalise::within(&candidate, s))
            || !cloud.outside_aggregates(&text)
        {
            continue;
        }
        let read = touched.iter().any(|seen| {
            seen.paths.keys().any(|(path, _)| {
                let segs: Vec<Seg> = path.iter().cloned().map(Seg::Lit).collect();
                generalise::within(&segs, &candidate)
            })
        });
        out.push((text, read));
    }
    out
}

/// Parses the suggestion as a config for `cloud` and replays the log against it: what it would
/// still refuse of what was served, said plainly.
fn self_check(
    text: &str,
    cloud: Cloud,
    log: &Log,
    group_by: &GroupBy,
    parse: &Parse<'_>,
) -> Vec<String> {
    let policy = match parse(&format!("[upstream]\ncloud = \"{cloud}\"\n{text}")) {
        Ok(policy) => policy,
        Err(e) => {
            return vec![format!(
                "the suggestion does not pass the config check ({e}): please report this"
            )]
        }
    };
    let report = super::replay::replay(log, &policy, group_by);
    if report.broken.is_empty() {
        return Vec::new();
    }
    let total: u64 = report.broken.iter().map(|c| c.count).sum();
    let mut notes = vec![format!(
        "{total} served request(s) cannot be allowed by these rules (refused whatever the rules say, or by a neighbouring rule):"
    )];
    notes.extend(report.broken.iter().take(20).map(|c| format!("  {c}")));
    notes
}
