//! Finding what goes around the netfilter rules: BPF programs on the ingress of pod interfaces.
//!
//! ```text
//! pod ─► veth (node side) ─► tc/tcx ingress BPF ─► redirect to the uplink ─► 169.254.169.254
//!                                 └─ netfilter never sees the packet: the DNAT is skipped
//! ```
//!
//! Cilium with BPF host routing and Calico's eBPF dataplane attach such programs to every pod
//! interface; they may hand pods' packets straight to the uplink, and then `nat PREROUTING` (our
//! DNAT) never runs. Whether a program does redirect cannot be read from outside, so the guard
//! reports a *suspected* bypass: a BPF program on the ingress of an interface that
//! `[netfilter] interfaces` matches, as a tcx program (kernel 6.6 and later) or as a `tc` filter of
//! kind `bpf` (clsact). The check only reads; it changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use parking_lot::Mutex;

use aya::programs::tc::{SchedClassifier, TcAttachType};
use serde::Deserialize;

use crate::metrics::{InterfaceLabels, Metrics};
use crate::upstream::error_chain as chain;

/// Programs that do not open the hole: the cgroup method's own backstop
/// (`src/interception/bpf`) only drops pods' packets to the metadata service.
const OURS: &[&str] = &["imds_backstop"];

/// Where a program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// A tcx link or attachment (kernel 6.6 and later).
    Tcx,
    /// A `tc` filter of kind `bpf` under the clsact qdisc.
    Tc,
}

/// A BPF program found on the ingress of a pod interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub hook: Hook,
    /// The program's name as the kernel has it (up to 15 characters; empty when unnamed).
    pub name: String,
    /// The kernel's id of the program, when known.
    pub id: Option<u32>,
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hook = match self.hook {
            Hook::Tcx => "tcx",
            Hook::Tc => "tc",
        };
        let name = if self.name.is_empty() {
            "?"
        } else {
            &self.name
        };
        match self.id {
            Some(id) => write!(f, "{hook} {name} (id {id})"),
            None => write!(f, "{hook} {name}"),
        }
    }
}

/// Why part of the check could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot list the interfaces in /proc/net/dev: {0}")]
    Interfaces(std::io::Error),
    #[error("tc not found (apt-get install iproute2): tc ingress filters are not checked")]
    TcMissing,
    #[error("`tc -j filter show dev {interface} ingress`: {reason}")]
    Tc { interface: String, reason: String },
    #[error(
        "cannot list the tcx programs on {interface} (kernel 6.6 and later; bpf() with CAP_BPF and \
         CAP_NET_ADMIN, and a seccomp profile that allows it: docs/deploy.md): {reason}"
    )]
    Tcx { interface: String, reason: String },
}

impl ScanError {
    /// One name per kind of problem, so that each kind is logged once, not at every check.
    fn kind(&self) -> &'static str {
        match self {
            ScanError::Interfaces(_) => "interfaces",
            ScanError::TcMissing => "tc-missing",
            ScanError::Tc { .. } => "tc",
            ScanError::Tcx { .. } => "tcx",
        }
    }
}

/// What one check found.
#[derive(Debug, Default)]
pub struct Scan {
    /// The node's interfaces that `[netfilter] interfaces` matches.
    pub interfaces: Vec<String>,
    /// Those with BPF programs on their ingress, with the programs.
    pub suspected: BTreeMap<String, Vec<Program>>,
    /// What could not be checked.
    pub problems: Vec<ScanError>,
}

/// Whether `name` matches an `[netfilter] interfaces` pattern, as `iptables -i` does: `cali+` is
/// every name starting with `cali`, anything else is one exact name.
pub fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => name == pattern,
    }
}

/// The names matching any of `patterns`, sorted.
pub fn pod_interfaces<'a>(
    patterns: &[String],
    names: impl IntoIterator<Item = &'a str>,
) -> Vec<String> {
    let mut found: Vec<String> = names
        .into_iter()
        .filter(|name| patterns.iter().any(|p| matches(p, name)))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

#[derive(Deserialize)]
struct TcFilter {
    kind: Option<String>,
    options: Option<TcOptions>,
}

#[derive(Deserialize)]
struct TcOptions {
    bpf_name: Option<String>,
    prog: Option<TcProg>,
}

#[derive(Deserialize)]
struct TcProg {
    id: Option<u32>,
    name: Option<String>,
}

/// The BPF programs in `tc -j filter show dev IFACE ingress` output. tc prints a header entry
/// (kind, priority, chain) before each filter's own entry; only the latter has `options`.
pub fn parse_tc_filters(json: &str) -> Result<Vec<Program>, serde_json::Error> {
    // An interface without a clsact qdisc prints nothing at all with some iproute2 versions.
    if json.trim().is_empty() {
        return Ok(Vec::new());
    }
    let filters: Vec<TcFilter> = serde_json::from_str(json)?;
    Ok(filters
        .into_iter()
        .filter(|f| f.kind.as_deref() == Some("bpf"))
        .filter_map(|f| f.options)
        .map(|o| {
            let (id, name) = match o.prog {
                Some(p) => (p.id, p.name),
                None => (None, None),
            };
            Program {
                hook: Hook::Tc,
                name: name.or(o.bpf_name).unwrap_or_default(),
                id,
            }
        })
        .collect())
}

/// The interfaces of this process's network namespace, from `/proc/net/dev` (which, unlike
/// `/sys/class/net`, shows the reader's namespace whoever mounted `/sys`).
pub fn interface_names() -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string("/proc/net/dev")?;
    Ok(text
        .lines()
        .skip(2)
        .filter_map(|line| line.split_once(':'))
        .map(|(name, _)| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .collect())
}

/// Whether interface `name` is still there.
fn exists(name: &str) -> bool {
    interface_names().is_ok_and(|names| names.iter().any(|n| n == name))
}

/// Looks at the ingress of every interface of this network namespace that `patterns` match.
/// Blocking: runs `tc` once per interface.
pub fn scan(patterns: &[String]) -> Scan {
    let mut scan = Scan::default();
    let names = match interface_names() {
        Ok(names) => names,
        Err(e) => {
            scan.problems.push(ScanError::Interfaces(e));
            return scan;
        }
    };
    scan.interfaces = pod_interfaces(patterns, names.iter().map(String::as_str));
    let tc = super::tools::find("tc");
    if tc.is_none() {
        scan.problems.push(ScanError::TcMissing);
    }
    for interface in &scan.interfaces {
        let mut programs = Vec::new();
        match tcx_ingress(interface) {
            Ok(found) => programs.extend(found),
            Err(e) => scan.problems.push(e),
        }
        if let Some(tc) = &tc {
            match tc_ingress(tc, interface) {
                Ok(found) => programs.extend(found),
                Err(e) => scan.problems.push(e),
            }
        }
        programs.retain(|p| !OURS.contains(&p.name.as_str()));
        if !programs.is_empty() {
            scan.suspected.insert(interface.clone(), programs);
        }
    }
    scan
}

fn tcx_ingress(interface: &str) -> Result<Vec<Program>, ScanError> {
    match SchedClassifier::query_tcx(interface, TcAttachType::Ingress) {
        Ok((_revision, infos)) => Ok(infos
            .iter()
            .map(|info| Program {
                hook: Hook::Tcx,
                name: info.name_as_str().unwrap_or_default().to_owned(),
                id: Some(info.id()),
            })
            .collect()),
        // The interface went away between the listing and the query (a pod deleted): nothing
        // to report on it.
        Err(_) if !exists(interface) => Ok(Vec::new()),
        Err(e) => Err(ScanError::Tcx {
            interface: interface.to_owned(),
            reason: chain(e),
        }),
    }
}

fn tc_ingress(tc: &std::path::Path, interface: &str) -> Result<Vec<Program>, ScanError> {
    let failed = |reason: String| ScanError::Tc {
        interface: interface.to_owned(),
        reason,
    };
    let out = std::process::Command::new(tc)
        .args(["-j", "filter", "show", "dev", interface, "ingress"])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| failed(e.to_string()))?;
    if !out.status.success() {
        // Gone meanwhile, as above.
        if !exists(interface) {
            return Ok(Vec::new());
        }
        let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(failed(format!("{}: {said}", out.status)));
    }
    parse_tc_filters(&String::from_utf8_lossy(&out.stdout)).map_err(|e| failed(e.to_string()))
}

/// The pod interfaces last found with BPF programs on their ingress, shared with `/readyz`.
#[derive(Clone, Default)]
pub struct Suspected(Arc<Mutex<Vec<String>>>);

impl Suspected {
    /// The interfaces, sorted; empty when none (or not checked).
    pub fn interfaces(&self) -> Vec<String> {
        self.0.lock().clone()
    }

    fn set(&self, interfaces: Vec<String>) {
        *self.0.lock() = interfaces;
    }
}

/// The gauge series after a check: 1 for each suspected interface, 0 for one that had a series
/// and is still there, none (removed) for one that is gone, so the series follow the pods.
fn series(
    shown: &BTreeSet<String>,
    interfaces: &[String],
    suspected: &BTreeSet<String>,
) -> (BTreeMap<String, i64>, Vec<String>) {
    let mut set: BTreeMap<String, i64> = suspected.iter().map(|i| (i.clone(), 1)).collect();
    let mut remove = Vec::new();
    for interface in shown.difference(suspected) {
        if interfaces.contains(interface) {
            set.insert(interface.clone(), 0);
        } else {
            remove.push(interface.clone());
        }
    }
    (set, remove)
}

/// Checks again and again, and tells: the gauge, `/readyz`'s text, and the log when the answer
/// changes (so a standing finding is not repeated every interval).
pub struct Watch {
    patterns: Vec<String>,
    metrics: Arc<Metrics>,
    suspected: Suspected,
    /// Interfaces with a gauge series.
    shown: BTreeSet<String>,
    /// The finding last logged.
    reported: BTreeSet<String>,
    /// Kinds of problem already logged.
    said: BTreeSet<&'static str>,
}

impl Watch {
    /// A watch of the interfaces `patterns` match, reporting to `metrics` and `suspected`.
    pub fn new(patterns: Vec<String>, metrics: Arc<Metrics>, suspected: Suspected) -> Watch {
        Watch {
            patterns,
            metrics,
            suspected,
            shown: BTreeSet::new(),
            reported: BTreeSet::new(),
            said: BTreeSet::new(),
        }
    }

    /// One check, off the async threads (it runs `tc`).
    pub async fn check(&mut self) {
        let patterns = self.patterns.clone();
        match tokio::task::spawn_blocking(move || scan(&patterns)).await {
            Ok(scan) => self.apply(scan),
            Err(e) => tracing::error!(error = %e, "netfilter bypass check task failed"),
        }
    }

    fn apply(&mut self, scan: Scan) {
        let complete = if scan.problems.is_empty() {
            "true"
        } else {
            "false"
        };
        self.metrics
            .netfilter_bypass_checks
            .get_or_create(&crate::metrics::CheckLabels { complete })
            .inc();
        for problem in &scan.problems {
            if self.said.insert(problem.kind()) {
                tracing::warn!(error = %problem, "netfilter bypass check incomplete");
            }
        }
        let found: BTreeSet<String> = scan.suspected.keys().cloned().collect();
        let (set, remove) = series(&self.shown, &scan.interfaces, &found);
        let family = &self.metrics.netfilter_bypass_suspected;
        for (interface, value) in &set {
            let labels = InterfaceLabels {
                interface: interface.clone(),
            };
            family.get_or_create(&labels).set(*value);
        }
        for interface in remove {
            family.remove(&InterfaceLabels { interface });
        }
        self.shown = set.into_keys().collect();
        if found != self.reported {
            if found.is_empty() {
                tracing::info!("netfilter bypass: no BPF programs left on pod interfaces' ingress");
            } else {
                let programs: Vec<String> = scan
                    .suspected
                    .iter()
                    .flat_map(|(i, ps)| ps.iter().map(move |p| format!("{i}: {p}")))
                    .collect();
                tracing::warn!(
                    interfaces = %found.iter().cloned().collect::<Vec<_>>().join(", "),
                    programs = %programs.join("; "),
                    "netfilter may be bypassed: BPF programs on the ingress of pod interfaces can \
                     send pods' packets past the DNAT (Cilium BPF host routing, Calico eBPF). Use \
                     [interception] method = \"cgroup\", or Cilium bpf.hostLegacyRouting=true, \
                     and confirm with `imds-guard canary` from a pod"
                );
            }
            self.reported = found.clone();
        }
        self.suspected.set(found.into_iter().collect());
    }
}

#[cfg(test)]
mod tests;
