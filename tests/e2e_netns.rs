//! End to end, with real netfilter: network namespaces for a node, its pods and the metadata
//! service, veth pairs between them, the emulator at 169.254.169.254 with hop limit 1, and the
//! real binary installing its rules and running the proxy on the node.
//!
//! ```text
//!  pod-a 10.200.1.2 ─ pod0 ┐                      ┌ up0 169.254.0.1 ─ imds 169.254.169.254
//!  pod-b 10.200.2.2 ─ pod1 ┤ node (ip_forward=1)  │   (imds-guard emulate --hop-limit 1)
//!  pod-c 10.200.4.2 ─ router ─ rtr0 ┘  proxy on 10.199.0.1:8181 (lo), admin 127.0.0.1:8182
//! ```
//!
//! Needs root, `ip`, `iptables`, `conntrack` and `curl`; fails (never skips) naming what is
//! missing. Every command runs inside a namespace this test created, and every namespace is
//! deleted when the test ends, panics included.

use crate::netfilter_netns;

use std::time::{Duration, Instant};

use netfilter_netns::guard::{iptables, start_proxy, BIN};
use netfilter_netns::http::{curl, get, put_token, token_of, LongLived};
use netfilter_netns::{link, preflight, wait_until, Ns};
const INSTANCE_ID: &str = "i-0123456789abcdef0";
const POD_A: &str = "10.200.1.2";

/// The namespaces and links; dropped (deleted) last.
struct Topology {
    node: Ns,
    imds: Ns,
    pod_a: Ns,
    pod_b: Ns,
    router: Ns,
    pod_c: Ns,
}

impl Topology {
    fn build() -> Topology {
        let t = Topology {
            node: Ns::new("node"),
            imds: Ns::new("imds"),
            pod_a: Ns::new("pod-a"),
            pod_b: Ns::new("pod-b"),
            router: Ns::new("router"),
            pod_c: Ns::new("pod-c"),
        };
        link(
            &t.node,
            "up0 169.254.0.1/16",
            &t.imds,
            "eth0 169.254.169.254/16",
        );
        link(
            &t.node,
            "pod0 10.200.1.1/24",
            &t.pod_a,
            "eth0 10.200.1.2/24",
        );
        link(
            &t.node,
            "pod1 10.200.2.1/24",
            &t.pod_b,
            "eth0 10.200.2.2/24",
        );
        link(
            &t.node,
            "rtr0 10.200.3.1/24",
            &t.router,
            "eth0 10.200.3.2/24",
        );
        link(
            &t.router,
            "eth1 10.200.4.1/24",
            &t.pod_c,
            "eth0 10.200.4.2/24",
        );
        t.imds.sh("ip route add default via 169.254.0.1");
        t.pod_a.sh("ip route add default via 10.200.1.1");
        t.pod_b.sh("ip route add default via 10.200.2.1");
        t.router.sh("ip route add default via 10.200.3.1");
        t.pod_c.sh("ip route add default via 10.200.4.1");
        t.node.sh("ip route add 10.200.4.0/24 via 10.200.3.2");
        // The node's own address, where the proxy listens (a DNAT target that is not loopback).
        t.node.sh("ip addr add 10.199.0.1/32 dev lo");
        for ns in [&t.node, &t.router] {
            ns.ok(&["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"]);
        }
        t
    }
}

/// Static pods: a allowed, b not, c allowed but one router further away.
const PODS: &str = r#"
[upstream]
url = "http://169.254.169.254"
connect_timeout_ms = 500
timeout_ms = 2000

[[inventory.pods]]
ip = "10.200.1.2"
namespace = "shop"
name = "pod-a"
labels = { "allow-node-metadata-lookup" = "true" }

[[inventory.pods]]
ip = "10.200.2.2"
namespace = "shop"
name = "pod-b"

[[inventory.pods]]
ip = "10.200.4.2"
namespace = "shop"
name = "pod-c"
labels = { "allow-node-metadata-lookup" = "true" }

[[rules]]
name = "seed"
pod_labels = { "allow-node-metadata-lookup" = "true" }
allow = ["/latest/**"]
"#;

fn write_configs(dir: &std::path::Path) -> (String, String) {
    // DNAT to the node's address; the rules are installed with `iptables install`.
    let dnat = format!(
        "[server]\nlisten = \"10.199.0.1:8181\"\nadmin_listen = \"127.0.0.1:8182\"\n\
         [netfilter]\ninterfaces = [\"pod+\", \"rtr0\"]\n{PODS}"
    );
    // REDIRECT (listening on every address), rules installed by `run` itself, and a hop limit.
    let managed = format!(
        "[server]\nlisten = \"0.0.0.0:8181\"\nadmin_listen = \"127.0.0.1:8182\"\n\
         [imdsv2]\nhop_limit = 1\n\
         [netfilter]\nmanage = true\ninterfaces = [\"pod+\", \"rtr0\"]\n{PODS}"
    );
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write config");
        path.to_string_lossy().into_owned()
    };
    (write("dnat.toml", &dnat), write("managed.toml", &managed))
}

#[test]
fn pods_are_intercepted_by_real_netfilter_rules() {
    preflight(&[
        ("ip", "iproute2"),
        ("iptables", "iptables"),
        ("ip6tables", "iptables"),
        ("conntrack", "conntrack"),
        ("curl", "curl"),
        ("bash", "bash"),
    ]);
    let started = Instant::now();
    let t = Topology::build();
    let dir = tempfile::tempdir().expect("tempdir");
    let (dnat, managed) = write_configs(dir.path());

    // Someone else's rules on the node (a CNI's or kube-proxy's, say). The conntrack match makes
    // the node track connections from the start, as every real node does; without it the
    // kernel would not track the pod's early connection at all.
    let node = &t.node;
    node.sh("iptables -t nat -N CNI-FOREIGN");
    node.sh("iptables -t nat -A CNI-FOREIGN -p udp --dport 5353 -j RETURN");
    node.sh("iptables -t nat -A PREROUTING -j CNI-FOREIGN");
    node.sh("iptables -A FORWARD -m conntrack --ctstate INVALID -j DROP");
    node.sh("ip6tables -A FORWARD -p udp --dport 5353 -j ACCEPT");
    let foreign_only = node.rules();

    let _emulator = t.imds.spawn(&[
        BIN,
        "emulate",
        "--listen",
        "169.254.169.254:80",
        "--hop-limit",
        "1",
    ]);
    assert!(
        wait_until(Duration::from_secs(10), || get(
            &t.imds,
            "/latest/meta-data/instance-id",
            None
        )
        .status
            == 200),
        "the emulator did not start"
    );

    // 1. Before the rules: a pod reaches the metadata service directly (the problem), but its
    //    token answer (IP TTL 1) dies at the node's forwarding. The node itself, one link away,
    //    gets a token.
    let direct = get(&t.pod_a, "/latest/meta-data/instance-id", None);
    assert_eq!(
        (direct.status, direct.body.as_str()),
        (200, INSTANCE_ID),
        "{direct:?}"
    );
    let token = put_token(&t.pod_a, 2);
    assert_eq!(
        token.status, 0,
        "a routed pod got a hop-limit-1 token: {token:?}"
    );
    assert_eq!(token.exit, Some(28), "expected a timeout: {token:?}");
    assert_eq!(
        put_token(node, 3).status,
        200,
        "the node itself gets a token"
    );
    let mut long_lived = LongLived::open(&t.pod_a);
    let first = long_lived.next();
    assert_eq!(first, format!("first: HTTP/1.1 200 OK {INSTANCE_ID}"));

    // 2. install, twice: the same rule set; status 0; the foreign rules untouched.
    let (code, out) = iptables(node, "install", &dnat);
    assert_eq!(code, Some(0), "{out}");
    // The early connections (the keep-alive one among them) were cleared, not just tolerated.
    assert!(!out.contains(" 0 connection(s)"), "{out}");
    let once = node.rules();
    let (code, out) = iptables(node, "install", &dnat);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(once, node.rules(), "a second install changed the rules");
    for line in foreign_only.lines().filter(|l| l.starts_with("-A ")) {
        assert!(once.contains(line), "install lost {line}:\n{once}");
    }
    assert_eq!(once.matches("-j IMDS-GUARD").count(), 4, "{once}");
    let (code, out) = iptables(node, "status", &dnat);
    assert_eq!(code, Some(0), "{out}");

    // 3. The connection opened before the rules cannot keep talking to the real service.
    let second = long_lived.ask_again();
    assert!(
        ["second: write failed", "second: no answer"].contains(&second.as_str()),
        "an old connection still reaches the service: {second}"
    );
    drop(long_lived);

    // 4. With the proxy: the allowed pod gets a token and reads; the other pod is refused; the
    //    IPv4-mapped form is intercepted too; the node still reaches the service directly.
    let mut proxy = start_proxy(node, &dnat);
    let token = put_token(&t.pod_a, 3);
    assert_eq!(token.status, 200, "{token:?}\n{}", proxy.output());
    let token = token_of(&token);
    let read = get(&t.pod_a, "/latest/meta-data/instance-id", Some(&token));
    assert_eq!(
        (read.status, read.body.as_str()),
        (200, INSTANCE_ID),
        "{read:?}"
    );
    let role = get(
        &t.pod_a,
        "/latest/meta-data/iam/security-credentials/",
        Some(&token),
    );
    assert_eq!(
        (role.status, role.body.as_str()),
        (200, "imds-guard-node-role"),
        "{role:?}"
    );
    let refused = get(&t.pod_b, "/latest/meta-data/instance-id", None);
    assert_eq!(refused.status, 403, "{refused:?}");
    assert!(
        refused.body.contains(r#""pod":"shop/pod-b""#),
        "{refused:?}"
    );
    let mapped = curl(
        &t.pod_b,
        3,
        &[
            "-g",
            "http://[::ffff:169.254.169.254]/latest/meta-data/instance-id",
        ],
    );
    // A socket connecting to the mapped address sends IPv4: the proxy answers, not the service.
    assert_eq!(
        mapped.status, 403,
        "the IPv4-mapped address got through: {mapped:?}"
    );
    let own = get(node, "/latest/meta-data/instance-id", None);
    assert_eq!(
        (own.status, own.body.as_str()),
        (200, INSTANCE_ID),
        "the node was redirected: {own:?}"
    );
    assert!(
        wait_until(Duration::from_secs(2), || proxy
            .output()
            .contains(&format!(r#""src":"{POD_A}","pod":"shop/pod-a""#))),
        "no audit line with the pod's own address:\n{}",
        proxy.output()
    );

    // 5. The proxy dies: pods fail closed, and the rules stay.
    proxy.kill();
    let closed = get(&t.pod_a, "/latest/meta-data/instance-id", None);
    assert_eq!(
        closed.status, 0,
        "a pod reached something with the proxy down: {closed:?}"
    );
    assert!(matches!(closed.exit, Some(7 | 28 | 52 | 56)), "{closed:?}");
    let (code, out) = iptables(node, "status", &dnat);
    assert_eq!(code, Some(0), "rules gone after the proxy stopped: {out}");

    // 6. manage = true and [imdsv2] hop_limit = 1: `run` installs the rules itself (REDIRECT now),
    //    a pod directly on the node gets a token, a pod behind one more router does not (though it
    //    may read), and the token answer closes its connection.
    let mut proxy = start_proxy(node, &managed);
    let (code, out) = iptables(node, "status", &managed);
    assert_eq!(code, Some(0), "{out}");
    assert!(node.rules().contains("-j REDIRECT --to-ports 8181"));
    let near = put_token(&t.pod_a, 3);
    assert_eq!(near.status, 200, "{near:?}\n{}", proxy.output());
    assert!(
        near.body.to_ascii_lowercase().contains("connection: close"),
        "{near:?}"
    );
    let far_read = get(&t.pod_c, "/latest/meta-data/instance-id", None);
    assert_eq!(
        (far_read.status, far_read.body.as_str()),
        (200, INSTANCE_ID),
        "{far_read:?}"
    );
    let far = put_token(&t.pod_c, 2);
    assert_eq!(
        far.status, 0,
        "a pod two hops away got a hop-limit-1 token: {far:?}"
    );
    assert!(
        proxy.terminate(Duration::from_secs(15)),
        "proxy did not stop on SIGTERM"
    );

    // 7. remove: nothing of ours is left, and everything else is exactly as it was.
    let (code, out) = iptables(node, "remove", &managed);
    assert_eq!(code, Some(0), "{out}");
    let after = node.rules();
    assert!(!after.contains("IMDS-GUARD"), "{after}");
    assert_eq!(
        after, foreign_only,
        "remove changed rules that are not ours"
    );
    let (code, out) = iptables(node, "status", &managed);
    assert_eq!(code, Some(1), "{out}");
    let direct = get(&t.pod_a, "/latest/meta-data/instance-id", None);
    assert_eq!(
        direct.status, 200,
        "after remove the pod is not intercepted: {direct:?}"
    );

    let elapsed = started.elapsed();
    eprintln!("end-to-end netns test took {elapsed:.1?}");
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");
}
