//! The iptables commands of the backend the host uses, and `conntrack`.
//!
//! Linux has two iptables backends, legacy (`x_tables`) and nf_tables, with one set of commands
//! each (`iptables-legacy-*`, `iptables-nft-*`). Rules written with one are invisible to the
//! other's tools, so the guard writes with the backend the node's other tools (kubelet, kube-proxy,
//! the CNI) write with. Detection follows kube-proxy's iptables wrapper: the kubelet's hint chain
//! decides; otherwise the backend that already holds our chain; otherwise the one with more rules;
//! nf_tables on a tie.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::rules::{Family, CHAIN};
use super::Backend;
use super::NetfilterError;

/// How long `iptables-restore` waits for the xtables lock held by another writer.
pub const LOCK_WAIT_SECONDS: u32 = 10;

/// A set of iptables commands: `iptables-legacy-*`, `iptables-nft-*`, or plain `iptables-*` on
/// hosts that ship only one backend under the plain names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Legacy,
    Nft,
    Plain,
}

impl Variant {
    fn suffix(self) -> &'static str {
        match self {
            Variant::Legacy => "-legacy",
            Variant::Nft => "-nft",
            Variant::Plain => "",
        }
    }

    /// The command name for a family and tool: `iptables-nft-restore`, `ip6tables-save`, …
    pub fn program(self, family: Family, tool: &str) -> String {
        format!("{}{}-{tool}", family.command(), self.suffix())
    }

    /// The family's base command, as `status` shows it (`iptables-nft`).
    pub fn name(self, family: Family) -> String {
        format!("{}{}", family.command(), self.suffix())
    }
}

/// Which of legacy and nf_tables to use, given each one's `iptables-save` output (IPv4 and IPv6
/// together), `None` when its commands are not installed.
pub fn choose(legacy: Option<&str>, nft: Option<&str>) -> Option<Variant> {
    let (legacy, nft) = match (legacy, nft) {
        (None, None) => return None,
        (Some(_), None) => return Some(Variant::Legacy),
        (None, Some(_)) => return Some(Variant::Nft),
        (Some(l), Some(n)) => (l, n),
    };
    let has_chain = |save: &str, chains: &[&str]| {
        save.lines().any(|line| {
            line.strip_prefix(':')
                .and_then(|d| d.split(' ').next())
                .is_some_and(|c| chains.contains(&c))
        })
    };
    // The kubelet creates these in the backend it uses, for exactly this question.
    let hints = ["KUBE-IPTABLES-HINT", "KUBE-KUBELET-CANARY"];
    for chains in [&hints[..], &[CHAIN][..]] {
        match (has_chain(legacy, chains), has_chain(nft, chains)) {
            (true, false) => return Some(Variant::Legacy),
            (false, true) => return Some(Variant::Nft),
            _ => {}
        }
    }
    let rules = |save: &str| save.lines().filter(|l| l.starts_with("-A ")).count();
    if rules(legacy) > rules(nft) {
        Some(Variant::Legacy)
    } else {
        Some(Variant::Nft)
    }
}

/// The commands of one backend, and whether the node has IPv6.
#[derive(Debug, Clone, Copy)]
pub struct Tools {
    pub variant: Variant,
    /// `ip6tables` is installed and IPv6 is enabled, so IPv6 rules are managed too.
    pub ipv6: bool,
}

impl Tools {
    /// The tools for `backend`; with `Auto`, the backend the host uses.
    pub fn detect(backend: Backend) -> Result<Tools, NetfilterError> {
        let variant = match backend {
            Backend::Legacy => require(Variant::Legacy)?,
            Backend::Nft => require(Variant::Nft)?,
            Backend::Auto => {
                // A backend whose rules cannot be read (its kernel modules are missing, say)
                // cannot be the one the host uses; only when neither can be read is it an error.
                let (legacy, nft) = (read_all(Variant::Legacy), read_all(Variant::Nft));
                // Not being allowed to read one (legacy needs CAP_NET_RAW too) says nothing about
                // which one the host uses: guessing would write our rules where nothing reads
                // them, so that is an error, not a skip.
                let (legacy, nft) = match (legacy, nft) {
                    (Err(e), _) | (_, Err(e)) if is_permission(&e) => return Err(e),
                    pair => pair,
                };
                let readable = |r: &Result<Option<String>, NetfilterError>| match r {
                    Ok(text) => text.clone(),
                    Err(_) => None,
                };
                match choose(readable(&legacy).as_deref(), readable(&nft).as_deref()) {
                    Some(variant) => variant,
                    None => match (legacy, nft) {
                        (Err(e), _) | (_, Err(e)) => return Err(e),
                        _ => require(Variant::Plain)?,
                    },
                }
            }
        };
        let ipv6 = find(&variant.program(Family::V6, "restore")).is_some() && ipv6_enabled();
        Ok(Tools { variant, ipv6 })
    }

    /// The families this host has rules for.
    pub fn families(&self) -> Vec<Family> {
        if self.ipv6 {
            vec![Family::V4, Family::V6]
        } else {
            vec![Family::V4]
        }
    }

    /// The family's current rules, all tables, as `iptables-save` prints them.
    pub fn save(&self, family: Family) -> Result<String, NetfilterError> {
        save(self.variant, family)
    }

    /// Applies `payload` atomically with `iptables-restore --noflush`, waiting for the xtables
    /// lock if another writer holds it.
    pub fn restore(&self, family: Family, payload: &str) -> Result<(), NetfilterError> {
        let program = self.variant.program(family, "restore");
        let args = restore_args();
        run(&program, &args, Some(payload)).map(drop)
    }
}

/// The arguments of every restore, so printed payloads show them as applied.
pub fn restore_args() -> Vec<String> {
    vec!["--noflush".into(), format!("--wait={LOCK_WAIT_SECONDS}")]
}

fn require(variant: Variant) -> Result<Variant, NetfilterError> {
    let program = variant.program(Family::V4, "restore");
    match find(&program) {
        Some(_) => Ok(variant),
        None => Err(NetfilterError::NotFound {
            program,
            package: "iptables",
        }),
    }
}

/// Both families' rules of a backend; `None` when its commands are not installed. IPv6 is left
/// out when it cannot be read (no IPv6 in the kernel).
fn read_all(variant: Variant) -> Result<Option<String>, NetfilterError> {
    if find(&variant.program(Family::V4, "save")).is_none() {
        return Ok(None);
    }
    let mut text = save(variant, Family::V4)?;
    if find(&variant.program(Family::V6, "save")).is_some() && ipv6_enabled() {
        if let Ok(v6) = save(variant, Family::V6) {
            text.push_str(&v6);
        }
    }
    Ok(Some(text))
}

fn save(variant: Variant, family: Family) -> Result<String, NetfilterError> {
    run(&variant.program(family, "save"), &[], None).map(|ran| ran.stdout)
}

/// Whether the kernel has IPv6 and it is not switched off for the network namespace.
fn ipv6_enabled() -> bool {
    match std::fs::read_to_string("/proc/sys/net/ipv6/conf/all/disable_ipv6") {
        Ok(text) => text.trim() == "0",
        Err(_) => false,
    }
}

/// Looks a program up in `$PATH`, and in the sbin directories, which a non-root `$PATH` often
/// lacks.
pub fn find(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// What a command that succeeded printed.
#[derive(Debug)]
pub struct Ran {
    pub stdout: String,
    pub stderr: String,
}

/// Runs `program` with `args`, feeding it `input`; what it printed, or an error naming the command
/// and what it said.
pub fn run(program: &str, args: &[String], input: Option<&str>) -> Result<Ran, NetfilterError> {
    let package = if program.starts_with("conntrack") {
        "conntrack"
    } else {
        "iptables"
    };
    let path = find(program).ok_or_else(|| NetfilterError::NotFound {
        program: program.to_owned(),
        package,
    })?;
    let command = std::iter::once(program.to_owned())
        .chain(args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let spawn_error = |source| NetfilterError::Spawn {
        command: command.clone(),
        source,
    };
    let mut child = Command::new(path)
        .args(args)
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(spawn_error)?;
    if let (Some(text), Some(mut stdin)) = (input, child.stdin.take()) {
        // A write error shows up as the command's failure below, with its own message.
        let _ = stdin.write_all(text.as_bytes());
    }
    let output = child.wait_with_output().map_err(spawn_error)?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let mut stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    if stderr.contains("Permission denied") || stderr.contains("must be root") {
        stderr.push_str(" (netfilter needs root, or CAP_NET_ADMIN)");
    }
    if output.status.success() {
        Ok(Ran { stdout, stderr })
    } else {
        Err(NetfilterError::Failed {
            command,
            status: output.status.to_string(),
            stderr,
        })
    }
}

/// Whether a failed command was refused for lack of privilege.
fn is_permission(err: &NetfilterError) -> bool {
    matches!(err, NetfilterError::Failed { stderr, .. }
        if stderr.contains("Permission denied") || stderr.contains("must be root"))
}

#[cfg(test)]
mod tests;
