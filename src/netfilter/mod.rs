//! Netfilter rules that send pods' metadata traffic to the proxy (`imds-guard iptables …`).
//!
//! ```text
//! node mode:    pod ─► PREROUTING -i <pod interface> ─► IMDS-GUARD ─► DNAT 169.254.169.254:80 ─► proxy
//! sidecar mode: process in the pod ─► OUTPUT ─► IMDS-GUARD ─► (unless the sidecar's UID) DNAT ─► sidecar
//! ```
//!
//! The addresses are `[upstream] cloud`'s (Alibaba's is 100.100.100.200), and what the guard cannot
//! inspect there (GCP's HTTPS port) is rejected in `filter` on the same paths.
//!
//! `rules` is the rule set as data and the restore text that installs or removes it; `save` reads
//! what is installed (both pure, tested without root). `tools` finds the iptables backend the host
//! uses and runs its commands. This module puts them together: install, status, remove, and the
//! clearing of connections older than the rules.

pub mod bypass;
pub mod keeper;
pub mod tools;

pub use imds_guard_core::iptables::rules;

use std::net::SocketAddr;

pub use crate::config::Backend;
use crate::config::Config;
use imds_guard_core::cloud::Cloud;
use rules::{Diff, Family, RuleError, RuleSet, IMDS_PORT};
use tools::{Tools, Variant};

/// Why the rules could not be installed, removed or checked.
#[derive(Debug, thiserror::Error)]
pub enum NetfilterError {
    #[error("{key}: {0}", key = .0.key())]
    Rules(#[from] RuleError),
    /// The command line does not say enough (sidecar mode without a UID, say).
    #[error("{0}")]
    Usage(&'static str),
    #[error("{program} not found: apt-get install {package}")]
    NotFound {
        program: String,
        package: &'static str,
    },
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("after install the rules are not as expected (did another writer change them?):\n{0}")]
    NotInPlace(Diff),
    /// The rules are in place, but connections opened before them may still reach the service.
    #[error(
        "the rules are installed, but connections opened before them could not be cleared: {0}"
    )]
    Conntrack(Box<NetfilterError>),
    #[error("netfilter task failed: {0}")]
    Task(String),
}

/// What the rules are made from: `server.listen`, `upstream.cloud` and the `[netfilter]` section.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whose metadata server is intercepted: its addresses and the ports rejected.
    pub cloud: Cloud,
    pub listen: SocketAddr,
    pub interfaces: Vec<String>,
    pub backend: Backend,
    /// Sidecar mode, with the sidecar's UID (whose traffic is not redirected); `None`: node mode.
    pub sidecar_uid: Option<u32>,
}

impl Settings {
    /// The node-mode settings of a validated config.
    pub fn from_config(config: &Config) -> Settings {
        Settings {
            cloud: config.upstream.cloud,
            listen: config.server.listen,
            interfaces: config.netfilter.interfaces.clone(),
            backend: config.netfilter.backend,
            sidecar_uid: None,
        }
    }

    /// The sidecar-mode settings of a validated config, for the sidecar running as `uid`.
    pub fn sidecar(config: &Config, uid: u32) -> Settings {
        Settings {
            sidecar_uid: Some(uid),
            ..Settings::from_config(config)
        }
    }

    /// The rule set these settings ask for.
    pub fn rule_set(&self) -> Result<RuleSet, RuleError> {
        match self.sidecar_uid {
            Some(uid) => RuleSet::sidecar_for_cloud(self.cloud, self.listen, uid),
            None => RuleSet::for_cloud(self.cloud, self.listen, &self.interfaces),
        }
    }
}

/// The restore input `install` would apply now, per family, with the commands that apply it.
pub struct Plan {
    pub tools: Tools,
    pub rules: RuleSet,
    pub payloads: Vec<(Family, String)>,
}

impl Plan {
    /// Reads the current rules and works out what `install` would apply.
    pub fn new(settings: &Settings) -> Result<Plan, NetfilterError> {
        let rules = settings.rule_set()?;
        let tools = Tools::detect(settings.backend)?;
        let mut payloads = Vec::new();
        for family in tools.families() {
            let current = tools.save(family)?;
            payloads.push((family, rules.install_payload(family, &current)));
        }
        Ok(Plan {
            tools,
            rules,
            payloads,
        })
    }

    /// The payloads as `iptables install --dry-run` prints them.
    pub fn render(&self) -> String {
        render(self.tools.variant, &self.payloads)
    }
}

/// Restore payloads as a listing: each command as a comment line, then its input. The format of
/// `iptables install --dry-run` and of `iptables/install.sh --print`.
pub fn render(variant: Variant, payloads: &[(Family, String)]) -> String {
    let args = tools::restore_args().join(" ");
    let mut out = String::new();
    for (family, payload) in payloads {
        let program = variant.program(*family, "restore");
        out.push_str(&format!("# {program} {args}\n{payload}"));
    }
    out
}

/// What `install` did.
#[derive(Debug)]
pub struct Installed {
    pub variant: Variant,
    pub ipv6: bool,
    /// Rules in place (all families).
    pub rules: usize,
    /// Connection-tracking entries of connections older than the rules, deleted.
    pub cleared: u64,
}

/// Installs the rules (idempotently), checks they are in place, then clears the connection
/// tracking entries of pod connections that reached the metadata service before the rules did.
pub fn install(settings: &Settings) -> Result<Installed, NetfilterError> {
    let plan = Plan::new(settings)?;
    for (family, payload) in &plan.payloads {
        plan.tools.restore(*family, payload)?;
    }
    let status = check(&plan.tools, &plan.rules)?;
    if !status.diff.is_empty() {
        return Err(NetfilterError::NotInPlace(status.diff));
    }
    let cleared = clear_conntrack(&plan.rules, &plan.tools.families())
        .map_err(|e| NetfilterError::Conntrack(Box::new(e)))?;
    Ok(Installed {
        variant: plan.tools.variant,
        ipv6: plan.tools.ipv6,
        rules: status.expected,
        cleared,
    })
}

/// How the installed rules compare with the wanted ones.
#[derive(Debug)]
pub struct Status {
    pub variant: Variant,
    pub ipv6: bool,
    /// Rules wanted (all families).
    pub expected: usize,
    pub diff: Diff,
}

/// Compares the rules in place with the rules `settings` want.
pub fn status(settings: &Settings) -> Result<Status, NetfilterError> {
    let rules = settings.rule_set()?;
    let tools = Tools::detect(settings.backend)?;
    check(&tools, &rules)
}

fn check(tools: &Tools, rules: &RuleSet) -> Result<Status, NetfilterError> {
    let mut diff = Diff::default();
    let mut expected = 0;
    for family in tools.families() {
        expected += rules.expected(family).len();
        diff.merge(rules.diff(family, &tools.save(family)?));
    }
    Ok(Status {
        variant: tools.variant,
        ipv6: tools.ipv6,
        expected,
        diff,
    })
}

/// Removes our chain and every jump to it, in every backend that has them (or only in
/// `backend`, when one is set). Returns the backends that held any, and how many rules of ours
/// each held (chains not counted).
pub fn remove(backend: Backend) -> Result<Vec<(Variant, usize)>, NetfilterError> {
    let installed = |v: &Variant| tools::find(&v.program(Family::V4, "restore")).is_some();
    let variants: Vec<Variant> = match backend {
        Backend::Legacy => vec![Variant::Legacy],
        Backend::Nft => vec![Variant::Nft],
        Backend::Auto => {
            let both: Vec<Variant> = [Variant::Legacy, Variant::Nft]
                .into_iter()
                .filter(installed)
                .collect();
            // The plain names are one of the two (an alternative) wherever both exist.
            if both.is_empty() {
                [Variant::Plain].into_iter().filter(installed).collect()
            } else {
                both
            }
        }
    };
    if variants.is_empty() {
        return Err(NetfilterError::NotFound {
            program: "iptables-restore".into(),
            package: "iptables",
        });
    }
    let mut removed = Vec::new();
    let mut unreadable = None;
    let tried = variants.len();
    for variant in variants {
        let tools = Tools {
            variant,
            ipv6: tools::find(&variant.program(Family::V6, "restore")).is_some(),
        };
        let mut count = None;
        for family in tools.families() {
            let current = match tools.save(family) {
                Ok(text) => text,
                // No IPv6 in this kernel: there is nothing of ours to remove there.
                Err(_) if family == Family::V6 => continue,
                // A backend whose rules cannot be read (its kernel modules are missing, say)
                // cannot hold ours; if none can be read, that is the error.
                Err(e) if backend == Backend::Auto => {
                    unreadable.get_or_insert((0, e)).0 += 1;
                    break;
                }
                Err(e) => return Err(e),
            };
            let ours = rules::ours(family, &current);
            if ours.is_empty() {
                continue;
            }
            tools.restore(family, &rules::remove_payload(&current))?;
            let rules = ours.iter().filter(|l| !l.rule.starts_with("-N ")).count();
            count = Some(count.unwrap_or(0) + rules);
        }
        if let Some(count) = count {
            removed.push((variant, count));
        }
    }
    match unreadable {
        Some((failed, e)) if failed == tried => Err(e),
        _ => Ok(removed),
    }
}

/// Deletes the tracked connections to the metadata service that were not redirected to the
/// proxy (their reply still comes from the service). Without this, a pod connection opened before
/// the rules keeps reaching the service: NAT is decided on a connection's first packet only.
/// (The `filter` rejects need no clearing: `filter` sees every packet of a connection.)
fn clear_conntrack(rules: &RuleSet, families: &[Family]) -> Result<u64, NetfilterError> {
    let mut cleared = 0;
    for &family in families {
        let Some(addr) = rules.intercepted(family) else {
            continue;
        };
        let name = match family {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        };
        let args: Vec<String> = [
            "-D",
            "-f",
            name,
            "-p",
            "tcp",
            "--orig-dst",
            &addr.to_string(),
            "--orig-port-dst",
            &IMDS_PORT.to_string(),
            "--reply-src",
            &addr.to_string(),
        ]
        .map(String::from)
        .to_vec();
        let said = match tools::run("conntrack", &args, None) {
            Ok(ran) => ran.stderr,
            // conntrack exits 1 when nothing matched.
            Err(NetfilterError::Failed { stderr, .. }) if stderr.contains(" 0 flow entries") => {
                stderr
            }
            Err(e) => return Err(e),
        };
        cleared += deleted_count(&said);
    }
    Ok(cleared)
}

/// Reads "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted."
fn deleted_count(said: &str) -> u64 {
    said.split("): ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
