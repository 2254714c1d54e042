//! Interception of other clouds' metadata servers with real netfilter, as `tests/e2e_netns.rs`
//! does for AWS: network namespaces for a node, two pods and the metadata service, veth pairs
//! between them, and the real binary installing its rules and running the proxy on the node.
//!
//! ```text
//!  pod-a 10.200.1.2 fd00:200:1::2 ─ pod0 ┐ node (forwarding on)     ┌ up0 ─ imds 169.254.169.254
//!  pod-b 10.200.2.2 fd00:200:2::2 ─ pod1 ┘ proxy 10.199.0.1:8181 ──┘        100.100.100.200
//!                                                                            168.63.129.16
//!                                                                            169.254.0.23
//!                                          or [::]:8181                     fd00:c1::a9fe:a9fe
//! ```
//!
//! - Alibaba: a pod's connection to 100.100.100.200:80 lands on the proxy.
//! - GCP: a pod's connection to 169.254.169.254:443 (the HTTPS endpoint the guard cannot inspect)
//!   is refused at once (TCP reset: "connection refused", no timeout) and never reaches the server;
//!   port 80 lands on the proxy.
//! - Azure: a pod's connections to the WireServer 168.63.129.16 on ports 80 and 32526 are refused
//!   at once and never reach it; port 53 there (Azure DNS) is untouched.
//! - Tencent: a pod's connection to 169.254.0.23:80 lands on the proxy.
//! - Exoscale: a pod's connection to the password server, 169.254.169.254:8080, is refused at once
//!   and never reaches it; port 80 lands on the proxy.
//! - OCI: the IPv6 endpoint fd00:c1::a9fe:a9fe is rejected while the proxy listens on IPv4 only,
//!   and lands on the proxy once it listens on `[::]`.
//!
//! The services are the AWS emulator listening on each address (what answers does not matter
//! here, only who answers). Whether a packet reached the service is read from a counter of TCP
//! SYNs in the service's namespace. Needs root, `ip`, `iptables`, `ip6tables`, `conntrack` and
//! `curl`; fails (never skips) naming what is missing. Every command runs inside a namespace this
//! test created, and every namespace is deleted when the test ends, panics included.

use crate::netfilter_netns;

use std::time::{Duration, Instant};

use netfilter_netns::guard::{iptables, start_proxy, BIN};
use netfilter_netns::http::{curl, Got};
use netfilter_netns::{link, preflight, wait_until, Ns, Proc};

const INSTANCE_ID: &str = "i-0123456789abcdef0";
const OCI_V6: &str = "fd00:c1::a9fe:a9fe";
/// The gate headers of GCP and OCI (sent so that the guard judges the request by its pod).
const GCP: Option<&str> = Some("Metadata-Flavor: Google");
const OCI: Option<&str> = Some("Authorization: Bearer Oracle");

struct Topology {
    node: Ns,
    imds: Ns,
    pod_a: Ns,
    pod_b: Ns,
}

impl Topology {
    fn build(tag: &str) -> Topology {
        preflight(&[
            ("ip", "iproute2"),
            ("iptables", "iptables"),
            ("ip6tables", "iptables"),
            ("conntrack", "conntrack"),
            ("curl", "curl"),
        ]);
        let t = Topology {
            node: Ns::new(&format!("{tag}-node")),
            imds: Ns::new(&format!("{tag}-imds")),
            pod_a: Ns::new(&format!("{tag}-pod-a")),
            pod_b: Ns::new(&format!("{tag}-pod-b")),
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
        // IPv6 beside IPv4 (nodad: usable at once), and the service's other addresses.
        for (ns, line) in [
            (&t.node, "ip addr add fd00:ff::1/64 dev up0 nodad"),
            (&t.imds, "ip addr add fd00:ff::2/64 dev eth0 nodad"),
            (&t.imds, "ip addr add fd00:c1::a9fe:a9fe/128 dev eth0 nodad"),
            (&t.imds, "ip addr add 100.100.100.200/32 dev eth0"),
            (&t.imds, "ip addr add 168.63.129.16/32 dev eth0"),
            (&t.imds, "ip addr add 169.254.0.23/32 dev eth0"),
            (&t.node, "ip addr add fd00:200:1::1/64 dev pod0 nodad"),
            (&t.pod_a, "ip addr add fd00:200:1::2/64 dev eth0 nodad"),
            (&t.node, "ip addr add fd00:200:2::1/64 dev pod1 nodad"),
            (&t.pod_b, "ip addr add fd00:200:2::2/64 dev eth0 nodad"),
            (&t.imds, "ip route add default via 169.254.0.1"),
            (&t.imds, "ip -6 route add default via fd00:ff::1"),
            (&t.pod_a, "ip route add default via 10.200.1.1"),
            (&t.pod_a, "ip -6 route add default via fd00:200:1::1"),
            (&t.pod_b, "ip route add default via 10.200.2.1"),
            (&t.pod_b, "ip -6 route add default via fd00:200:2::1"),
            (
                &t.node,
                "ip route add 100.100.100.200/32 via 169.254.169.254",
            ),
            (&t.node, "ip route add 168.63.129.16/32 via 169.254.169.254"),
            (
                &t.node,
                "ip -6 route add fd00:c1::a9fe:a9fe/128 via fd00:ff::2",
            ),
            // The node's own address, where the proxy listens (a DNAT target that is not loopback).
            (&t.node, "ip addr add 10.199.0.1/32 dev lo"),
        ] {
            ns.sh(line);
        }
        for knob in ["ipv4/ip_forward", "ipv6/conf/all/forwarding"] {
            let set = format!("echo 1 > /proc/sys/net/{knob}");
            t.node.ok(&["sh", "-c", &set]);
        }
        // Count the TCP SYNs that reach the service, per port, in both families.
        for cmd in ["iptables", "ip6tables"] {
            for port in ["80", "443", "32526", "53", "8080"] {
                t.imds.ok(&[
                    cmd, "-A", "INPUT", "-p", "tcp", "--dport", port, "--syn", "-j", "ACCEPT",
                ]);
            }
        }
        t
    }

    /// The AWS emulator listening on `addr` inside the service's namespace, once it answers.
    fn serve(&self, addr: &str) -> Proc {
        let emulator = self.imds.spawn(&[BIN, "emulate", "--listen", addr]);
        let url = format!("http://{addr}/latest/meta-data/instance-id");
        let up = wait_until(Duration::from_secs(10), || {
            curl(&self.imds, 1, &["-g", &url]).status == 200
        });
        assert!(up, "the emulator on {addr} did not start");
        emulator
    }

    /// SYNs to `port` that reached the service so far (IPv4 or IPv6).
    fn syns(&self, v6: bool, port: u16) -> u64 {
        let save = self.imds.ok(&[
            if v6 {
                "ip6tables-save"
            } else {
                "iptables-save"
            },
            "-c",
        ]);
        let rule = format!("-A INPUT -p tcp -m tcp --dport {port} ");
        save.lines()
            .find(|l| l.contains(&rule))
            .and_then(|l| l.strip_prefix('['))
            .and_then(|l| l.split(':').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no SYN counter for port {port}:\n{save}"))
    }
}

/// The pods: a allowed, b not; each by its IPv4 and its IPv6 address.
fn config(cloud: &str, url: &str, listen: &str, manage: bool) -> String {
    let mut text = format!(
        "[server]\nlisten = \"{listen}\"\nadmin_listen = \"127.0.0.1:8182\"\n\
         [upstream]\ncloud = \"{cloud}\"\nurl = \"{url}\"\nconnect_timeout_ms = 500\ntimeout_ms = 2000\n\
         [netfilter]\nmanage = {manage}\ninterfaces = [\"pod+\"]\n\
         [[rules]]\nname = \"seed\"\npod_labels = {{ \"allow-node-metadata-lookup\" = \"true\" }}\n\
         allow = [\"/**\"]\n"
    );
    // One entry per address, each with a uid of its own (static pods have one address each).
    for (ip, name, uid, allowed) in [
        ("10.200.1.2", "pod-a", "a4", true),
        ("fd00:200:1::2", "pod-a", "a6", true),
        ("10.200.2.2", "pod-b", "b4", false),
        ("fd00:200:2::2", "pod-b", "b6", false),
    ] {
        text.push_str(&format!(
            "[[inventory.pods]]\nip = \"{ip}\"\nnamespace = \"shop\"\nname = \"{name}\"\nuid = \"{uid}\"\n"
        ));
        if allowed {
            text.push_str("labels = { \"allow-node-metadata-lookup\" = \"true\" }\n");
        }
    }
    text
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write config");
    path.to_string_lossy().into_owned()
}

/// `curl` (with the cloud's gate header, if any) with its error message (stderr) and how long it
/// took.
fn attempt(ns: &Ns, header: Option<&str>, url: &str) -> (Got, String, Duration) {
    let mut args = vec![
        "curl",
        "-sS",
        "-g",
        "--max-time",
        "3",
        "-w",
        "\n%{http_code}",
    ];
    if let Some(header) = header {
        args.extend(["-H", header]);
    }
    args.push(url);
    let started = Instant::now();
    let out = ns.exec(&args);
    let took = started.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let got = Got {
        exit: out.status.code(),
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    };
    (got, String::from_utf8_lossy(&out.stderr).into_owned(), took)
}

/// What connecting to `host:port` from `ns` says (bash's `/dev/tcp`, so the error is the
/// system's own words: "Connection refused" for a TCP reset), and how long it took.
fn connect(ns: &Ns, host: &str, port: u16) -> (String, Duration) {
    let script = format!("exec 3<>/dev/tcp/{host}/{port} && echo connected");
    let started = Instant::now();
    let out = ns.exec(&["timeout", "3", "bash", "-c", &script]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (said, started.elapsed())
}

/// The guard's own refusal of pod-b, naming it: the request landed on the proxy.
fn refused_by_the_guard(got: &Got) {
    assert_eq!(got.status, 403, "{got:?}");
    assert!(got.body.contains(r#""pod":"shop/pod-b""#), "{got:?}");
}

fn audited(proxy: &Proc, src: &str) -> bool {
    wait_until(Duration::from_secs(2), || {
        proxy.output().contains(&format!(r#""src":"{src}""#))
    })
}

#[test]
fn alibaba_pods_connecting_to_100_100_100_200_land_on_the_proxy() {
    let t = Topology::build("alibaba");
    let _service = t.serve("100.100.100.200:80");
    let url = "http://100.100.100.200/latest/meta-data/instance-id";
    let dir = tempfile::tempdir().unwrap();
    let dnat = write(
        &dir,
        "alibaba.toml",
        &config(
            "alibaba",
            "http://100.100.100.200",
            "10.199.0.1:8181",
            false,
        ),
    );

    // Before the rules, a pod reaches the service itself.
    let (direct, _, _) = attempt(&t.pod_b, None, url);
    assert_eq!((direct.status, direct.body.as_str()), (200, INSTANCE_ID));

    let (code, out) = iptables(&t.node, "install", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = iptables(&t.node, "status", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let rules = t.node.rules();
    assert!(
        rules.contains("-A IMDS-GUARD -d 100.100.100.200/32 -p tcp -m tcp --dport 80 -j DNAT"),
        "{rules}"
    );
    assert!(!rules.contains("169.254.169.254/32"), "{rules}");

    let mut proxy = start_proxy(&t.node, &dnat);
    let (refused, _, _) = attempt(&t.pod_b, None, url);
    refused_by_the_guard(&refused);
    // The allowed pod's request lands on the proxy too (which forwards it).
    let (_, _, _) = attempt(&t.pod_a, None, url);
    assert!(audited(&proxy, "10.200.1.2"), "{}", proxy.output());
    assert!(audited(&proxy, "10.200.2.2"), "{}", proxy.output());
    // The node itself is not redirected.
    let (own, _, _) = attempt(&t.node, None, url);
    assert_eq!((own.status, own.body.as_str()), (200, INSTANCE_ID));

    // Proxy down: pods fail closed.
    proxy.kill();
    let (closed, _, _) = attempt(&t.pod_b, None, url);
    assert_eq!(closed.status, 0, "{closed:?}");

    let (code, out) = iptables(&t.node, "remove", &dnat);
    assert_eq!(code, Some(0), "{out}");
    assert!(!t.node.rules().contains("IMDS-GUARD"));
    let (direct, _, _) = attempt(&t.pod_b, None, url);
    assert_eq!(direct.status, 200, "{direct:?}");
}

#[test]
fn gcp_pods_are_refused_the_https_endpoint_at_once_and_port_80_lands_on_the_proxy() {
    let t = Topology::build("gcp");
    let _http = t.serve("169.254.169.254:80");
    let _https = t.serve("169.254.169.254:443");
    let https = "http://169.254.169.254:443/latest/meta-data/instance-id";
    let http = "http://169.254.169.254/computeMetadata/v1/instance/id";
    let dir = tempfile::tempdir().unwrap();
    let dnat = write(
        &dir,
        "gcp.toml",
        &config("gcp", "http://169.254.169.254", "10.199.0.1:8181", false),
    );

    // Before the rules, a pod reaches the server's port 443 (a stand-in for its HTTPS endpoint).
    let (direct, _, _) = attempt(&t.pod_a, GCP, https);
    assert_eq!((direct.status, direct.body.as_str()), (200, INSTANCE_ID));
    assert!(t.syns(false, 443) > 0);

    let (code, out) = iptables(&t.node, "install", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = iptables(&t.node, "status", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let rules = t.node.rules();
    assert!(
        rules.contains(
            "-A IMDS-GUARD -d 169.254.169.254/32 -p tcp -m tcp --dport 443 -j REJECT --reject-with tcp-reset"
        ),
        "{rules}"
    );

    // With the proxy running or not, 443 is refused at once and never reaches the server.
    let proxy = start_proxy(&t.node, &dnat);
    let reached = t.syns(false, 443);
    for pod in [&t.pod_a, &t.pod_b] {
        let (got, said, took) = attempt(pod, GCP, https);
        assert_eq!((got.status, got.exit), (0, Some(7)), "{got:?} {said}");
        assert!(took < Duration::from_secs(2), "took {took:?}: {said}");
        let (said, took) = connect(pod, "169.254.169.254", 443);
        assert!(said.contains("Connection refused"), "{said}");
        assert!(took < Duration::from_secs(2), "took {took:?}: {said}");
    }
    assert_eq!(t.syns(false, 443), reached, "a pod's SYN reached port 443");

    // Port 80 lands on the proxy.
    let (got, _, _) = attempt(&t.pod_b, GCP, http);
    refused_by_the_guard(&got);
    assert!(audited(&proxy, "10.200.2.2"), "{}", proxy.output());
    // The node itself still reaches 443: only pods' traffic is rejected.
    let (own, _, _) = attempt(&t.node, GCP, https);
    assert_eq!(own.status, 200, "{own:?}");

    let (code, out) = iptables(&t.node, "remove", &dnat);
    assert_eq!(code, Some(0), "{out}");
    assert!(!t.node.rules().contains("IMDS-GUARD"));
    let (direct, _, _) = attempt(&t.pod_a, GCP, https);
    assert_eq!(direct.status, 200, "after remove: {direct:?}");
}

#[test]
fn azure_pods_are_refused_the_wireserver_on_80_and_32526_and_keep_its_dns_port() {
    let t = Topology::build("azure");
    let _imds = t.serve("169.254.169.254:80");
    // Stand-ins for the WireServer's two ports and Azure DNS's TCP port on the same address.
    let _wire = t.serve("168.63.129.16:80");
    let _plugin = t.serve("168.63.129.16:32526");
    let _dns = t.serve("168.63.129.16:53");
    let url = |port: u16| format!("http://168.63.129.16:{port}/latest/meta-data/instance-id");
    let dir = tempfile::tempdir().unwrap();
    let dnat = write(
        &dir,
        "azure.toml",
        &config("azure", "http://169.254.169.254", "10.199.0.1:8181", false),
    );

    // Before the rules, a pod reaches all three.
    for port in [80, 32526, 53] {
        let (direct, said, _) = attempt(&t.pod_a, None, &url(port));
        assert_eq!(direct.status, 200, "{port}: {direct:?} {said}");
    }

    let (code, out) = iptables(&t.node, "install", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = iptables(&t.node, "status", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let rules = t.node.rules();
    for port in [80, 32526] {
        let rule = format!(
            "-A IMDS-GUARD -d 168.63.129.16/32 -p tcp -m tcp --dport {port} -j REJECT --reject-with tcp-reset"
        );
        assert!(rules.contains(&rule), "{rules}");
    }
    assert!(!rules.contains("--dport 53"), "{rules}");

    // With the proxy running, both ports are refused at once and never reached.
    let proxy = start_proxy(&t.node, &dnat);
    let reached = (t.syns(false, 80), t.syns(false, 32526));
    for pod in [&t.pod_a, &t.pod_b] {
        for port in [80, 32526] {
            let (got, said, took) = attempt(pod, None, &url(port));
            assert_eq!(
                (got.status, got.exit),
                (0, Some(7)),
                "{port}: {got:?} {said}"
            );
            assert!(took < Duration::from_secs(2), "took {took:?}: {said}");
            let (said, took) = connect(pod, "168.63.129.16", port);
            assert!(said.contains("Connection refused"), "{port}: {said}");
            assert!(took < Duration::from_secs(2), "took {took:?}: {said}");
        }
    }
    // (Port 80's counter also counts the metadata server's own port-80 SYNs: none were sent.)
    assert_eq!(
        (t.syns(false, 80), t.syns(false, 32526)),
        reached,
        "a pod's SYN reached the WireServer"
    );
    // DNS's port on the same address is untouched, for every pod.
    for pod in [&t.pod_a, &t.pod_b] {
        let before = t.syns(false, 53);
        let (got, said, _) = attempt(pod, None, &url(53));
        assert_eq!(got.status, 200, "{got:?} {said}");
        assert!(t.syns(false, 53) > before);
    }
    // The metadata server's port 80 lands on the proxy, as on every cloud.
    let (got, _, _) = attempt(
        &t.pod_b,
        Some("Metadata: true"),
        "http://169.254.169.254/metadata/instance?api-version=2021-02-01",
    );
    refused_by_the_guard(&got);
    assert!(audited(&proxy, "10.200.2.2"), "{}", proxy.output());
    // The node itself still reaches the WireServer: only pods' traffic is refused.
    let (own, said, _) = attempt(&t.node, None, &url(80));
    assert_eq!(own.status, 200, "{own:?} {said}");

    let (code, out) = iptables(&t.node, "remove", &dnat);
    assert_eq!(code, Some(0), "{out}");
    assert!(!t.node.rules().contains("IMDS-GUARD"));
    let (direct, _, _) = attempt(&t.pod_a, None, &url(32526));
    assert_eq!(direct.status, 200, "after remove: {direct:?}");
}

#[test]
fn tencent_pods_connecting_to_169_254_0_23_land_on_the_proxy() {
    let t = Topology::build("tencent");
    let _service = t.serve("169.254.0.23:80");
    let _other = t.serve("169.254.169.254:80");
    let url = "http://169.254.0.23/latest/meta-data/instance-id";
    let dir = tempfile::tempdir().unwrap();
    let dnat = write(
        &dir,
        "tencent.toml",
        &config("tencent", "http://169.254.0.23", "10.199.0.1:8181", false),
    );
    let (direct, _, _) = attempt(&t.pod_b, None, url);
    assert_eq!((direct.status, direct.body.as_str()), (200, INSTANCE_ID));

    let (code, out) = iptables(&t.node, "install", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let rules = t.node.rules();
    assert!(
        rules.contains("-A IMDS-GUARD -d 169.254.0.23/32 -p tcp -m tcp --dport 80 -j DNAT"),
        "{rules}"
    );
    assert!(!rules.contains("169.254.169.254/32"), "{rules}");

    let proxy = start_proxy(&t.node, &dnat);
    let (refused, _, _) = attempt(&t.pod_b, None, url);
    refused_by_the_guard(&refused);
    assert!(audited(&proxy, "10.200.2.2"), "{}", proxy.output());
    // 169.254.169.254 is not Tencent's server: left alone.
    let (other, _, _) = attempt(
        &t.pod_b,
        None,
        "http://169.254.169.254/latest/meta-data/instance-id",
    );
    assert_eq!(other.status, 200, "{other:?}");

    let (code, out) = iptables(&t.node, "remove", &dnat);
    assert_eq!(code, Some(0), "{out}");
    assert!(!t.node.rules().contains("IMDS-GUARD"));
}

#[test]
fn exoscale_pods_are_refused_the_password_server_and_port_80_lands_on_the_proxy() {
    let t = Topology::build("exo");
    let _imds = t.serve("169.254.169.254:80");
    // A stand-in for the password server, on the same address.
    let _password = t.serve("169.254.169.254:8080");
    let password = "http://169.254.169.254:8080/latest/meta-data/instance-id";
    let dir = tempfile::tempdir().unwrap();
    let dnat = write(
        &dir,
        "exoscale.toml",
        &config(
            "exoscale",
            "http://169.254.169.254",
            "10.199.0.1:8181",
            false,
        ),
    );
    let (direct, _, _) = attempt(&t.pod_a, None, password);
    assert_eq!(direct.status, 200, "{direct:?}");

    let (code, out) = iptables(&t.node, "install", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = iptables(&t.node, "status", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let rules = t.node.rules();
    assert!(
        rules.contains(
            "-A IMDS-GUARD -d 169.254.169.254/32 -p tcp -m tcp --dport 8080 -j REJECT --reject-with tcp-reset"
        ),
        "{rules}"
    );

    let proxy = start_proxy(&t.node, &dnat);
    let reached = t.syns(false, 8080);
    for pod in [&t.pod_a, &t.pod_b] {
        let (said, took) = connect(pod, "169.254.169.254", 8080);
        assert!(said.contains("Connection refused"), "{said}");
        assert!(took < Duration::from_secs(2), "took {took:?}: {said}");
    }
    assert_eq!(
        t.syns(false, 8080),
        reached,
        "a pod's SYN reached port 8080"
    );
    let (got, _, _) = attempt(
        &t.pod_b,
        None,
        "http://169.254.169.254/latest/meta-data/instance-id",
    );
    refused_by_the_guard(&got);
    assert!(audited(&proxy, "10.200.2.2"), "{}", proxy.output());
    let (own, _, _) = attempt(&t.node, None, password);
    assert_eq!(own.status, 200, "{own:?}");

    let (code, out) = iptables(&t.node, "remove", &dnat);
    assert_eq!(code, Some(0), "{out}");
    let (direct, _, _) = attempt(&t.pod_a, None, password);
    assert_eq!(direct.status, 200, "after remove: {direct:?}");
}

#[test]
fn oci_s_ipv6_endpoint_is_rejected_without_an_ipv6_listener_and_redirected_with_one() {
    let t = Topology::build("oci");
    let _v6 = t.serve(&format!("[{OCI_V6}]:80"));
    let _v4 = t.serve("169.254.169.254:80");
    let v6_url = format!("http://[{OCI_V6}]/opc/v2/instance/id");
    let v4_url = "http://169.254.169.254/opc/v2/instance/id";
    let dir = tempfile::tempdir().unwrap();
    let dnat = write(
        &dir,
        "oci-dnat.toml",
        &config("oci", "http://169.254.169.254", "10.199.0.1:8181", false),
    );
    let dual = write(
        &dir,
        "oci-dual.toml",
        &config("oci", "http://169.254.169.254", "[::]:8181", true),
    );

    // Before the rules, a pod reaches the IPv6 endpoint itself.
    let (direct, _, _) = attempt(&t.pod_b, OCI, &v6_url);
    assert_ne!(direct.status, 0, "{direct:?}");
    assert!(t.syns(true, 80) > 0);

    // An IPv4 listener: the IPv6 endpoint is rejected (at once), IPv4 lands on the proxy.
    let (code, out) = iptables(&t.node, "install", &dnat);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        t.node
            .rules()
            .contains(&format!("-A IMDS-GUARD -d {OCI_V6}/128 -j REJECT")),
        "{}",
        t.node.rules()
    );
    let proxy = start_proxy(&t.node, &dnat);
    let reached = t.syns(true, 80);
    let (got, said, took) = attempt(&t.pod_b, OCI, &v6_url);
    assert_eq!((got.status, got.exit), (0, Some(7)), "{got:?} {said}");
    assert!(took < Duration::from_secs(2), "took {took:?}: {said}");
    assert_eq!(
        t.syns(true, 80),
        reached,
        "a pod's SYN reached the IPv6 endpoint"
    );
    let (v4, _, _) = attempt(&t.pod_b, OCI, v4_url);
    refused_by_the_guard(&v4);
    drop(proxy);

    // Listening on [::] with manage = true: `run` redirects the IPv6 endpoint to the proxy.
    let mut proxy = start_proxy(&t.node, &dual);
    let (code, out) = iptables(&t.node, "status", &dual);
    assert_eq!(code, Some(0), "{out}");
    assert!(t.node.rules().contains(&format!(
        "-A IMDS-GUARD -d {OCI_V6}/128 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 8181"
    )));
    let (v6, _, _) = attempt(&t.pod_b, OCI, &v6_url);
    refused_by_the_guard(&v6);
    assert!(audited(&proxy, "fd00:200:2::2"), "{}", proxy.output());
    assert_eq!(
        t.syns(true, 80),
        reached,
        "a pod's SYN reached the IPv6 endpoint"
    );
    assert!(proxy.terminate(Duration::from_secs(15)));

    let (code, out) = iptables(&t.node, "remove", &dual);
    assert_eq!(code, Some(0), "{out}");
    assert!(!t.node.rules().contains("IMDS-GUARD"));
}
