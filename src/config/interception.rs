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
mod tests {
    use super::*;
    use crate::config::parse;

    fn err(text: &str) -> String {
        parse(text).expect_err(text).to_string()
    }

    #[test]
    fn defaults_keep_netfilter() {
        let config = parse("").unwrap();
        assert_eq!(config.interception.method, Method::Netfilter);
        assert_eq!(
            config.interception.bpf_pin_dir,
            PathBuf::from("/sys/fs/bpf/imds-guard")
        );
        assert!(config.interception.backstop && !config.interception.host_network_pods);
        assert_eq!(
            config
                .interception
                .backstop_interfaces(&config.netfilter.interfaces),
            config.netfilter.interfaces.as_slice()
        );
    }

    #[test]
    fn cgroup_keys_are_read() {
        let config = parse(
            "[server]\nlisten = \"10.0.0.5:8181\"\n[interception]\nmethod = \"cgroup\"\n\
             cgroup_root = \"/sys/fs/cgroup\"\npods_cgroup = \"kubepods.slice\"\n\
             bpf_pin_dir = \"/sys/fs/bpf/x\"\nhost_network_pods = true\nbackstop = false\n\
             interfaces = [\"veth+\"]\n",
        )
        .unwrap();
        let i = &config.interception;
        assert_eq!(i.method, Method::Cgroup);
        assert_eq!(i.cgroup_root.as_deref(), Some("/sys/fs/cgroup".as_ref()));
        assert_eq!(i.pods_cgroup.as_deref(), Some("kubepods.slice".as_ref()));
        assert!(i.host_network_pods && !i.backstop);
        assert_eq!(i.backstop_interfaces(&[]), ["veth+".to_owned()]);
    }

    #[test]
    fn bad_values_name_their_key() {
        let cgroup = "[interception]\nmethod = \"cgroup\"\n";
        for (text, want) in [
            (
                cgroup.to_owned(),
                "server.listen: 127.0.0.1:8181: with [interception] method = \"cgroup\"",
            ),
            (
                format!("[server]\nlisten = \"0.0.0.0:8181\"\n{cgroup}"),
                "server.listen: 0.0.0.0:8181: with",
            ),
            (
                format!("[server]\nlisten = \"[fd00::1]:8181\"\n{cgroup}"),
                "server.listen: [fd00::1]:8181: an IPv6 listener",
            ),
            (
                "[interception]\nmethod = \"ebpf\"\n".to_owned(),
                "interception.method: unknown variant `ebpf`",
            ),
            (
                "[interception]\nbpf_pin_dir = \"bpf\"\n".to_owned(),
                "interception.bpf_pin_dir: must be an absolute path",
            ),
            (
                "[interception]\ncgroup_root = \"cg\"\n".to_owned(),
                "interception.cgroup_root: must be an absolute path",
            ),
            (
                "[interception]\npods_cgroup = \"/kubepods\"\n".to_owned(),
                "interception.pods_cgroup: must be a path below",
            ),
            (
                "[interception]\npods_cgroup = \"a/../b\"\n".to_owned(),
                "interception.pods_cgroup: must be a path below",
            ),
            (
                "[interception]\ninterfaces = [\"a+\", \"a+\"]\n".to_owned(),
                "interception.interfaces[1]: `a+` is listed twice",
            ),
            (
                "[interception]\ninterfaces = [\"+\"]\n".to_owned(),
                "interception.interfaces[0]: ",
            ),
            (
                "[interception]\nmode = \"cgroup\"\n".to_owned(),
                "interception.mode: unknown field",
            ),
        ] {
            let got = err(&text);
            assert!(got.starts_with(want), "{text}: {got}");
        }
    }
}
