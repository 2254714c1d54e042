//! Backend detection for real: on a node whose other rules were written with iptables-legacy the
//! guard's rules go there too (and are visible to that backend's tools), and likewise for
//! nf_tables. Runs in throwaway network namespaces; needs root and both backends' commands (both
//! are in Debian's `iptables` package).

use crate::netfilter_netns;

use netfilter_netns::{preflight, Ns};

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");

fn guard(ns: &Ns, action: &str, config: &str) -> (Option<i32>, String) {
    let out = ns.exec(&[BIN, "iptables", action, "--config", config]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn the_rules_go_to_the_backend_the_node_already_uses() {
    preflight(&[
        ("ip", "iproute2"),
        ("iptables-legacy", "iptables"),
        ("iptables-nft", "iptables"),
        ("conntrack", "conntrack"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[server]\nlisten = \"0.0.0.0:8181\"\n[netfilter]\ninterfaces = [\"cali+\"]\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    for (used, other) in [("legacy", "nft"), ("nft", "legacy")] {
        let node = Ns::new(used);
        node.sh(&format!(
            "iptables-{used} -t nat -A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE"
        ));
        let (code, out) = guard(&node, "install", config);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains(&format!("with iptables-{used}")), "{out}");
        let mine = node.sh(&format!("iptables-{used}-save -t nat"));
        assert!(
            mine.contains("-A PREROUTING -i cali+ -j IMDS-GUARD"),
            "{mine}"
        );
        assert!(
            mine.contains("-A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE"),
            "{mine}"
        );
        let theirs = node.sh(&format!("iptables-{other}-save"));
        assert!(
            !theirs.contains("IMDS-GUARD"),
            "{used} node got {other} rules"
        );
        let (code, out) = guard(&node, "status", config);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains(&format!("backend: iptables-{used}")), "{out}");

        let (code, out) = guard(&node, "remove", config);
        assert_eq!(code, Some(0), "{out}");
        let after = node.sh(&format!("iptables-{used}-save -t nat"));
        assert!(!after.contains("IMDS-GUARD"), "{after}");
        assert!(after.contains("-j MASQUERADE"), "{after}");
    }
}
