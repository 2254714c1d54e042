//! The cgroup interception method as data: which connects the kernel hooks redirect or refuse,
//! and how a cgroup's path names its pod. No IO: the adapter (`interception` in the main crate)
//! writes these into the kernel's maps and reads the cgroup tree.
//!
//! Connect hooks see the address a process dials, in whichever form it dials it: an IPv4 socket
//! gives `169.254.169.254`, an IPv6 socket `::ffff:169.254.169.254` for the same server, or the
//! cloud's IPv6 endpoint. Every form is listed, so that no spelling goes around the guard (an IPv6
//! socket's IPv4-mapped dial goes through the IPv6 hook, not the IPv4 one).

use std::net::{IpAddr, Ipv6Addr};

use crate::cloud::Cloud;

/// The metadata server's only HTTP port.
pub const IMDS_PORT: u16 = 80;

/// What the hooks do with a connect to a [`Target`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Rewritten to the guard's listener.
    Redirect,
    /// Refused (`connect()` fails with `EPERM`): a port whose traffic the guard cannot inspect.
    Refuse,
}

impl Action {
    /// The value the kernel programs read (`ACTION_REDIRECT`, `ACTION_REFUSE`).
    pub fn code(self) -> u32 {
        match self {
            Action::Redirect => 1,
            Action::Refuse => 2,
        }
    }
}

/// One address and port the hooks act on, the address in IPv6 form (IPv4 as IPv4-mapped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    pub addr: Ipv6Addr,
    pub port: u16,
    pub action: Action,
}

/// The IPv6 form the kernel programs key addresses by: IPv4 as `::ffff:a.b.c.d`.
pub fn v6_form(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Every connect the hooks act on for `cloud`: port 80 of each address the server answers on
/// (IPv4, its IPv4-mapped form, the IPv6 endpoint) redirected; the server's
/// [`Cloud::uninspectable_ports`] on each of those addresses, and every port of every
/// [`Cloud::side_doors`], refused. (The netfilter rules reject the same ports of the IPv4
/// address and the side doors, [`Cloud::refused_for_pods`], and every IPv6 connection the proxy
/// does not take.)
pub fn targets(cloud: Cloud) -> Vec<Target> {
    let mut all = Vec::new();
    for addr in blocked(cloud) {
        all.push(Target {
            addr,
            port: IMDS_PORT,
            action: Action::Redirect,
        });
        for &port in cloud.uninspectable_ports() {
            all.push(Target {
                addr,
                port,
                action: Action::Refuse,
            });
        }
    }
    for door in cloud.side_doors() {
        for &port in door.ports {
            all.push(Target {
                addr: v6_form(door.addr.into()),
                port,
                action: Action::Refuse,
            });
        }
    }
    all
}

/// The addresses whose packets the backstop drops on pod interfaces, in IPv6 form: every address
/// the server answers on. (An IPv4-mapped dial leaves as IPv4, so it is covered by the IPv4 form.)
pub fn blocked(cloud: Cloud) -> Vec<Ipv6Addr> {
    cloud.addresses().into_iter().map(v6_form).collect()
}

/// The pod UID a cgroup directory name carries, in kubelet's naming: `pod<uid>` (cgroupfs driver)
/// or `kubepods[-<qos>]-pod<uid with _ for ->.slice` (systemd driver; kind adds a
/// `kubelet-` prefix). Container scopes (`cri-containerd-<id>.scope`, `crio-<id>.scope`, a bare
/// container id) carry none: their pod is their parent's.
pub fn pod_uid(name: &str) -> Option<String> {
    let name = name.strip_suffix(".slice").unwrap_or(name);
    let at = name.rfind("pod")?;
    // `pod` starts the name or follows a `-` (`kubepods-burstable-pod…`); `kubepods` itself is
    // no pod.
    if at > 0 && !name[..at].ends_with('-') {
        return None;
    }
    let uid = &name[at + 3..];
    is_uid(uid).then(|| uid.replace('_', "-"))
}

/// A Kubernetes UID: 8-4-4-4-12 hexadecimal digits, separated by `-` (or all by `_`, as systemd
/// unit names spell them).
fn is_uid(s: &str) -> bool {
    let groups: Vec<&str> = if s.contains('_') {
        if s.contains('-') {
            return false;
        }
        s.split('_').collect()
    } else {
        s.split('-').collect()
    };
    let lengths = [8, 4, 4, 4, 12];
    groups.len() == lengths.len()
        && groups
            .iter()
            .zip(lengths)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The pod a cgroup path (relative to the pods' cgroup, `/`-separated) belongs to: the UID of the
/// deepest component that names one.
pub fn pod_of_path(path: &str) -> Option<String> {
    path.split('/').rev().find_map(pod_uid)
}

#[cfg(test)]
mod tests;
