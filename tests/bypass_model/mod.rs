//! The netfilter bypass of BPF dataplanes, modelled in network namespaces: a node with one pod
//! and the metadata service behind its uplink, and a tc ingress program on the pod's veth (node
//! side) that sends the pod's packets to 169.254.169.254 straight out of the uplink, as Cilium's
//! BPF host routing sends pod traffic. The redirected packets never enter the node's IP stack, so
//! `nat PREROUTING` (the guard's DNAT) is never evaluated for them.
//!
//! ```text
//!  pod 10.200.1.2 ─ pod0 10.200.1.1 ┐ node (ip_forward=1) ┌ up0 169.254.0.1 ─ imds 169.254.169.254
//!                    tc ingress BPF └──── to 169.254.169.254: bpf_redirect_neigh(up0) ────┘
//! ```
//!
//! The program (`redirect.bpf.c`) is attached either as a `tc` filter under a clsact qdisc, the
//! way older Cilium and Calico attach theirs, or as a tcx program (kernel 6.6 and later), the way
//! current Cilium does (`redirect.rs`).
//!
//! Only the pod's packets are redirected; the answers come back through the node's ordinary
//! forwarding (no rule there stops them). Used by a test crate that declares both
//! `mod netfilter_netns;` and `mod bypass_model;`. Every namespace, qdisc and process made here is
//! removed on drop, panics included.
#![allow(dead_code)]

mod redirect;

#[allow(unused_imports)] // each test crate uses its own part
pub use redirect::{attach_redirect, attach_redirect_tcx, Redirect};

use std::path::Path;
use std::time::Duration;

use crate::netfilter_netns::guard::BIN;
use crate::netfilter_netns::http::get;
use crate::netfilter_netns::{link, preflight, wait_until, Ns, Proc};

/// The pod's address, as the guard's audit lines show it.
pub const POD_IP: &str = "10.200.1.2";
/// The pod's veth, node side: what `[netfilter] interfaces` must match.
pub const POD_IF: &str = "pod0";
/// The node's way to the metadata service.
pub const UPLINK: &str = "up0";
/// What the emulator answers for `/latest/meta-data/instance-id`.
pub const INSTANCE_ID: &str = "i-0123456789abcdef0";

/// What the model needs, as (command, Debian package), for [`check_prerequisites`]; a test adds
/// its own.
pub const COMMANDS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("tc", "iproute2"),
    ("clang", "clang"),
    ("curl", "curl"),
];

/// Fails (never skips) naming what to install: root, [`COMMANDS`] and `more`, and the headers the
/// kernel program is built with.
pub fn check_prerequisites(more: &[(&str, &str)]) {
    let all: Vec<(&str, &str)> = COMMANDS.iter().chain(more).copied().collect();
    preflight(&all);
    let missing: Vec<String> = [
        ("/usr/include/linux/bpf.h", "linux-libc-dev"),
        ("/usr/include/bpf/bpf_helpers.h", "libbpf-dev"),
    ]
    .iter()
    .filter(|(header, _)| !Path::new(header).exists())
    .map(|(header, package)| format!("{header} (apt-get install {package})"))
    .collect();
    assert!(
        missing.is_empty(),
        "missing: {}; tests/run.sh installs them",
        missing.join(", ")
    );
}

/// The namespaces and links; dropped (deleted) last.
pub struct Topology {
    pub node: Ns,
    pub imds: Ns,
    pub pod: Ns,
}

impl Topology {
    /// The node, the pod and the metadata service, linked and routed.
    pub fn build() -> Topology {
        let t = Topology {
            node: Ns::new("bp-node"),
            imds: Ns::new("bp-imds"),
            pod: Ns::new("bp-pod"),
        };
        link(
            &t.node,
            &format!("{UPLINK} 169.254.0.1/16"),
            &t.imds,
            "eth0 169.254.169.254/16",
        );
        link(
            &t.node,
            &format!("{POD_IF} 10.200.1.1/24"),
            &t.pod,
            &format!("eth0 {POD_IP}/24"),
        );
        t.imds.sh("ip route add default via 169.254.0.1");
        t.pod.sh("ip route add default via 10.200.1.1");
        t.node
            .ok(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
        t
    }

    /// `imds-guard emulate` at 169.254.169.254:80 in the imds namespace, once it answers.
    pub fn start_imds(&self) -> Proc {
        let mut emulator = self
            .imds
            .spawn(&[BIN, "emulate", "--listen", "169.254.169.254:80"]);
        let up = wait_until(Duration::from_secs(10), || {
            get(&self.imds, "/latest/meta-data/instance-id", None).status == 200
                || emulator.exited()
        });
        assert!(
            up && !emulator.exited(),
            "the emulator did not start:\n{}",
            emulator.output()
        );
        emulator
    }

    /// An interface's index in the node namespace.
    pub fn ifindex(&self, interface: &str) -> u32 {
        let path = format!("/sys/class/net/{interface}/ifindex");
        let text = self.node.ok(&["cat", &path]);
        text.trim()
            .parse()
            .unwrap_or_else(|e| panic!("ifindex of {interface}: {text:?}: {e}"))
    }
}
