//! The hole in netfilter interception that BPF dataplanes open, shown for real: a tc ingress
//! program on the pod's veth (`bypass_model`) sends the pod's packets to 169.254.169.254 out of the
//! node's uplink before netfilter sees them, and the guard's DNAT is skipped. The guard, running
//! with `[netfilter] manage = true`, cannot stop that, but it notices: the BPF program on a
//! `[netfilter] interfaces` interface shows in `imds_guard_netfilter_bypass_suspected` and in
//! `/readyz`'s text, and goes from both once the program is gone. Both attachments are shown: a
//! `tc` filter under a clsact qdisc, and a tcx program (kernel 6.6 and later).
//!
//! Needs root, `ip`, `tc`, `iptables`, `conntrack`, `clang` (with the kernel and libbpf headers)
//! and `curl`; fails (never skips) naming what is missing. Everything runs inside namespaces this
//! test made and deletes, panics included.

use crate::bypass_model;
use crate::netfilter_netns;

use std::time::Duration;

use bypass_model::{
    attach_redirect, attach_redirect_tcx, check_prerequisites, Redirect, Topology, INSTANCE_ID,
    POD_IF, POD_IP, UPLINK,
};
use netfilter_netns::guard::{start_proxy, BIN};
use netfilter_netns::http::{curl, get, IMDS};
use netfilter_netns::{wait_until, Ns, Proc};

/// The pod is known but no rule allows it: the guard answers it 403, the service 200.
const CONFIG: &str = r#"
[server]
listen = "0.0.0.0:8181"
admin_listen = "127.0.0.1:8182"

[netfilter]
manage = true
interfaces = ["pod+"]
check_interval_seconds = 1

[upstream]
url = "http://169.254.169.254"
connect_timeout_ms = 500
timeout_ms = 2000

[[inventory.pods]]
ip = "10.200.1.2"
namespace = "shop"
name = "pod-a"

[[rules]]
name = "seed"
pod_labels = { "allow-node-metadata-lookup" = "true" }
allow = ["/latest/**"]
"#;

const GAUGE: &str = "imds_guard_netfilter_bypass_suspected";

/// A page of the guard's admin port: (status, body).
fn admin(node: &Ns, path: &str) -> (u16, String) {
    let got = curl(node, 2, &[&format!("http://127.0.0.1:8182{path}")]);
    (got.status, got.body)
}

/// The guard's audit lines for the pod so far.
fn audited(guard: &Proc) -> usize {
    guard
        .output()
        .matches(&format!(r#""src":"{POD_IP}""#))
        .count()
}

/// `imds-guard canary --once` from the pod: its exit code.
fn canary(pod: &Ns) -> (Option<i32>, String) {
    let out = pod.exec(&["timeout", "20", BIN, "canary", "--once", "--url", IMDS]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), said)
}

/// The pod is intercepted: the guard refuses it and audits the refusal.
fn assert_intercepted(t: &Topology, guard: &Proc, when: &str) {
    let before = audited(guard);
    let got = get(&t.pod, "/latest/meta-data/instance-id", None);
    assert_eq!(got.status, 403, "{when}: not the guard's answer: {got:?}");
    assert!(
        got.body.contains(r#""pod":"shop/pod-a""#),
        "{when}: {got:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || audited(guard) > before),
        "{when}: no audit line for the pod:\n{}",
        guard.output()
    );
}

/// How the program is attached.
type Attach = for<'a> fn(&'a Ns, &str, &str) -> Redirect<'a>;

fn series(value: u8) -> String {
    format!("{GAUGE}{{interface=\"{POD_IF}\"}} {value}")
}

#[test]
fn a_redirect_on_the_pod_interface_bypasses_netfilter_and_is_reported() {
    check_prerequisites(&[
        ("iptables", "iptables"),
        ("iptables-restore", "iptables"),
        ("conntrack", "conntrack"),
        ("timeout", "coreutils"),
    ]);
    let t = Topology::build();
    let _imds = t.start_imds();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, CONFIG).expect("write config");
    let mut guard = start_proxy(&t.node, &config.to_string_lossy());
    let node = &t.node;

    // Without a program: the DNAT catches the pod, and nothing is suspected.
    assert_intercepted(&t, &guard, "before any program");
    assert_eq!(admin(node, "/readyz"), (200, "ready\n".to_owned()));
    let (_, metrics) = admin(node, "/metrics");
    assert!(!metrics.contains(&format!("{GAUGE}{{")), "{metrics}");

    let attachments: [(&str, Attach); 2] = [("tc", attach_redirect), ("tcx", attach_redirect_tcx)];
    for (how, attach) in attachments {
        // With the program: the pod reaches the service itself and the guard never hears of it.
        let redirect = attach(node, POD_IF, UPLINK);
        let before = audited(&guard);
        let direct = get(&t.pod, "/latest/meta-data/instance-id", None);
        assert_eq!(
            (direct.status, direct.body.as_str()),
            (200, INSTANCE_ID),
            "{how}: the program did not take the pod past netfilter: {direct:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            audited(&guard),
            before,
            "{how}: the guard audited a request that went around it:\n{}",
            guard.output()
        );
        // The canary, from the pod, sees that no guard answered. (`imds-guard canary` must
        // exist: exit 0 when the node's guard echoed its probe, 1 otherwise.)
        let (code, said) = canary(&t.pod);
        assert_eq!(
            code,
            Some(1),
            "{how}: imds-guard canary --once should fail when the guard is bypassed: {said}"
        );
        // The guard sees the program on pod0's ingress within its check interval (1 s).
        let suspected = wait_until(Duration::from_secs(5), || {
            admin(node, "/metrics").1.contains(&series(1))
        });
        assert!(
            suspected,
            "{how}: no {} in the metrics:\n{}\n{}",
            series(1),
            admin(node, "/metrics").1,
            guard.output()
        );
        let (status, text) = admin(node, "/readyz");
        assert_eq!(status, 200, "{how}: ready all the same: {text}");
        assert!(
            text.contains("netfilter may be bypassed: BPF programs on the ingress of pod0"),
            "{how}: {text}"
        );
        let warning = format!("programs=pod0: {how} redirect_imds");
        assert!(
            guard.output().contains(&warning),
            "{how}: no warning naming the program in the log:\n{}",
            guard.output()
        );

        // Without it again: intercepted, and the gauge and /readyz say so.
        redirect.detach();
        let cleared = wait_until(Duration::from_secs(5), || {
            admin(node, "/metrics").1.contains(&series(0))
        });
        assert!(cleared, "{how}: {}", admin(node, "/metrics").1);
        assert_eq!(admin(node, "/readyz"), (200, "ready\n".to_owned()), "{how}");
        assert_intercepted(&t, &guard, &format!("after the {how} program went"));
        let (code, said) = canary(&t.pod);
        assert_eq!(
            code,
            Some(0),
            "{how}: imds-guard canary --once should pass when the guard answers: {said}"
        );
    }

    assert!(
        guard.terminate(Duration::from_secs(15)),
        "the guard did not stop on SIGTERM"
    );
}
