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
/// (IPv4, its IPv4-mapped form, the IPv6 endpoint) redirected, and the
/// [`Cloud::uninspectable_ports`] of each refused — the same traffic the netfilter rules
/// redirect and reject.
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
mod tests {
    use super::*;

    const UID: &str = "5f1f3a4e-8c1d-4c2b-9b0e-0123456789ab";

    #[test]
    fn cgroup_names_of_both_drivers_give_the_pod_uid() {
        for name in [
            format!("pod{UID}"),
            format!("kubepods-burstable-pod{}.slice", UID.replace('-', "_")),
            format!("kubepods-besteffort-pod{}.slice", UID.replace('-', "_")),
            format!("kubepods-pod{}.slice", UID.replace('-', "_")),
            format!(
                "kubelet-kubepods-burstable-pod{}.slice",
                UID.replace('-', "_")
            ),
        ] {
            assert_eq!(pod_uid(&name).as_deref(), Some(UID), "{name}");
        }
    }

    #[test]
    fn other_names_give_none() {
        for name in [
            "kubepods",
            "kubepods.slice",
            "kubepods-burstable.slice",
            "burstable",
            "cri-containerd-0123456789abcdef.scope",
            "crio-0123456789abcdef.scope",
            "0123456789abcdef0123456789abcdef",
            &format!("xpod{UID}"),
            &format!("pod{}", &UID[1..]),
            &format!("pod{UID}0"),
            "pod5f1f3a4e_8c1d-4c2b-9b0e-0123456789ab",
            "podzf1f3a4e-8c1d-4c2b-9b0e-0123456789ab",
            "",
        ] {
            assert_eq!(pod_uid(name), None, "{name}");
        }
    }

    #[test]
    fn a_container_belongs_to_the_pod_above_it() {
        let systemd = format!(
            "kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-abc.scope",
            UID.replace('-', "_")
        );
        assert_eq!(pod_of_path(&systemd).as_deref(), Some(UID));
        let cgroupfs = format!("besteffort/pod{UID}/0123abcd");
        assert_eq!(pod_of_path(&cgroupfs).as_deref(), Some(UID));
        assert_eq!(pod_of_path("burstable"), None);
        assert_eq!(pod_of_path("system.slice/kubelet.service"), None);
    }

    #[test]
    fn every_form_of_every_address_is_a_target() {
        let aws = targets(Cloud::Aws);
        let v4: Ipv6Addr = "::ffff:169.254.169.254".parse().unwrap();
        let v6: Ipv6Addr = "fd00:ec2::254".parse().unwrap();
        assert_eq!(
            aws,
            vec![
                Target {
                    addr: v4,
                    port: 80,
                    action: Action::Redirect
                },
                Target {
                    addr: v6,
                    port: 80,
                    action: Action::Redirect
                },
            ]
        );
        let gcp = targets(Cloud::Gcp);
        assert!(gcp.contains(&Target {
            addr: v4,
            port: 443,
            action: Action::Refuse
        }));
        assert!(gcp.contains(&Target {
            addr: "fd20:ce::254".parse().unwrap(),
            port: 443,
            action: Action::Refuse
        }));
        let alibaba = targets(Cloud::Alibaba);
        assert_eq!(alibaba.len(), 1);
        assert_eq!(
            alibaba[0].addr,
            "::ffff:100.100.100.200".parse::<Ipv6Addr>().unwrap()
        );
        assert_eq!(blocked(Cloud::Azure), vec![v4]);
    }
}
