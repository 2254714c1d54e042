//! `[interception]`: how pods' traffic to the metadata service reaches the guard.
//!
//! `netfilter` (the default) is the `[netfilter]` section's DNAT in the node's `PREROUTING`.
//! `cgroup` redirects at `connect()` with cgroup socket hooks, which no dataplane can skip (see
//! `crate::interception`); its keys are read here and checked against the machine at start.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

use super::validate::check_interface;
use super::{invalid, ConfigError};

/// Which interception method the guard installs and expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    /// iptables DNAT in `nat PREROUTING` (the `[netfilter]` section).
    #[default]
    Netfilter,
    /// cgroup connect hooks (kernel ≥ 5.8, pure cgroup v2).
    Cgroup,
}

impl Method {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Netfilter => "netfilter",
            Method::Cgroup => "cgroup",
        }
    }
}

/// `[interception]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Interception {
    pub method: Method,
    /// Where the cgroup v2 hierarchy is mounted; unset: found in `/proc/self/mountinfo`.
    pub cgroup_root: Option<PathBuf>,
    /// The pods' cgroup below the root (`kubepods.slice`, `kubepods`); unset: found. The hooks are
    /// attached there, so only pods' sockets are redirected.
    pub pods_cgroup: Option<PathBuf>,
    /// The bpffs directory the programs' links and maps are pinned in, so that they outlive the
    /// guard (pods fail closed while it is away).
    pub bpf_pin_dir: PathBuf,
    /// Redirect hostNetwork pods too (known by their cgroup). Off by default: CNI and cloud agents
    /// run hostNetwork and read the metadata service themselves.
    pub host_network_pods: bool,
    /// Drop pod packets to the metadata addresses on the pod interfaces (raw sockets and
    /// sandboxed runtimes go around the connect hooks, never around this).
    pub backstop: bool,
    /// The pod interfaces the backstop is attached to; unset: `[netfilter] interfaces`.
    pub interfaces: Option<Vec<String>>,
}

impl Default for Interception {
    fn default() -> Self {
        Self {
            method: Method::Netfilter,
            cgroup_root: None,
            pods_cgroup: None,
            bpf_pin_dir: PathBuf::from("/sys/fs/bpf/imds-guard"),
            host_network_pods: false,
            backstop: true,
            interfaces: None,
        }
    }
}

impl Interception {
    /// The backstop's interface patterns.
    pub fn backstop_interfaces<'a>(&'a self, netfilter: &'a [String]) -> &'a [String] {
        self.interfaces.as_deref().unwrap_or(netfilter)
    }
}

/// The checks that need no machine: the listener the hooks redirect to, the paths, the
/// interface names.
pub(super) fn validate(raw: &Interception, listen: SocketAddr) -> Result<(), ConfigError> {
    if raw.method == Method::Cgroup {
        redirect_target(listen).map_err(|reason| invalid("server.listen", reason))?;
    }
    if !raw.bpf_pin_dir.is_absolute() {
        return Err(invalid(
            "interception.bpf_pin_dir",
            "must be an absolute path (a directory in a bpffs mount)",
        ));
    }
    if let Some(root) = &raw.cgroup_root {
        if !root.is_absolute() {
            return Err(invalid(
                "interception.cgroup_root",
                "must be an absolute path",
            ));
        }
    }
    if let Some(pods) = &raw.pods_cgroup {
        let bad = pods.is_absolute()
            || pods.as_os_str().is_empty()
            || pods
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)));
        if bad {
            return Err(invalid(
                "interception.pods_cgroup",
                "must be a path below the cgroup root, such as \"kubepods.slice\" (no leading /, no ..)",
            ));
        }
    }
    if let Some(interfaces) = &raw.interfaces {
        for (i, iface) in interfaces.iter().enumerate() {
            let key = || format!("interception.interfaces[{i}]");
            check_interface(iface).map_err(|r| invalid(key(), r))?;
            if interfaces[..i].contains(iface) {
                return Err(invalid(key(), format!("`{iface}` is listed twice")));
            }
        }
    }
    Ok(())
}

/// Where the hooks send pods' connects: the listener's address, which must be one a pod can reach
/// (rewritten inside the pod's own network namespace, a loopback or unspecified address would be
/// the pod's own).
pub fn redirect_target(listen: SocketAddr) -> Result<SocketAddr, String> {
    let ip = listen.ip().to_canonical();
    if ip.is_loopback() || ip.is_unspecified() {
        return Err(format!(
            "{listen}: with [interception] method = \"cgroup\", pods' connects are rewritten to this \
             address inside their own network namespace, where a loopback or unspecified address \
             is the pod's own: listen on the node's address (\"${{HOST_IP}}:8181\")"
        ));
    }
    if listen.port() == 0 {
        return Err(format!("{listen}: port 0 cannot be redirected to"));
    }
    if ip.is_ipv6() {
        return Err(format!(
            "{listen}: an IPv6 listener cannot take pods' IPv4 connects; listen on the node's IPv4 \
             address (IPv6 dials are sent to its IPv4-mapped form)"
        ));
    }
    Ok(SocketAddr::new(ip, listen.port()))
}

#[cfg(test)]
mod tests;
