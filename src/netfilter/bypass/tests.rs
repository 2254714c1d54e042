//! The pure parts of the bypass check: interface patterns, `tc -j` output, the gauge's series.

use super::*;

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[test]
fn patterns_match_as_iptables_does() {
    assert!(matches("cali+", "cali12ab"));
    assert!(matches("cali+", "cali"));
    assert!(!matches("cali+", "eth0"));
    assert!(matches("cni0", "cni0"));
    assert!(!matches("cni0", "cni01"));
    assert!(!matches("cni0", "cni"));
    let patterns = strings(&["lxc+", "cni0", "pod+"]);
    let names = [
        "lo",
        "eth0",
        "lxc_health",
        "lxc12ab",
        "cni0",
        "cilium_host",
        "pod0",
    ];
    assert_eq!(
        pod_interfaces(&patterns, names),
        strings(&["cni0", "lxc12ab", "lxc_health", "pod0"])
    );
}

/// `tc -j filter show dev lxc12ab ingress` (iproute2 6.1) with one bpf filter, as Cilium's
/// legacy attachment leaves it.
const ONE_BPF: &str = r#"[{"protocol":"all","pref":1,"kind":"bpf","chain":0},{"protocol":"all","pref":1,"kind":"bpf","chain":0,"options":{"handle":"0x1","bpf_name":"bpf_lxc.o:[from-container]","direct-action":true,"not_in_hw":true,"prog":{"id":4242,"name":"cil_from_contai","tag":"ef8b777c4d57f697","jited":1}}}]"#;

#[test]
fn tc_output_gives_the_bpf_programs() {
    assert_eq!(
        parse_tc_filters(ONE_BPF).unwrap(),
        vec![Program {
            hook: Hook::Tc,
            name: "cil_from_contai".into(),
            id: Some(4242),
        }]
    );
    // No clsact qdisc, or an empty one.
    assert!(parse_tc_filters("").unwrap().is_empty());
    assert!(parse_tc_filters("[]\n").unwrap().is_empty());
    // A non-BPF filter (u32) is not one of ours to report.
    let u32_only = r#"[{"protocol":"ip","pref":49152,"kind":"u32","chain":0,"options":{"fh":"800:","ht_divisor":1}}]"#;
    assert!(parse_tc_filters(u32_only).unwrap().is_empty());
    // Without the program details (older iproute2): still a program, named by its object.
    let bare = r#"[{"kind":"bpf","options":{"handle":"0x1","bpf_name":"redirect.o:[tc]"}}]"#;
    let found = parse_tc_filters(bare).unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].to_string(), "tc redirect.o:[tc]");
    assert!(parse_tc_filters("not json").is_err());
}

#[test]
fn series_follow_the_interfaces() {
    let set = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();
    let (values, remove) = series(&set(&[]), &strings(&["lxc1", "lxc2"]), &set(&["lxc1"]));
    assert_eq!(values, BTreeMap::from([("lxc1".to_string(), 1)]));
    assert!(remove.is_empty());
    // lxc1's program went: 0; lxc2 went away altogether: its series goes too.
    let (values, remove) = series(
        &set(&["lxc1", "lxc2"]),
        &strings(&["lxc1", "lxc3"]),
        &set(&["lxc3"]),
    );
    assert_eq!(
        values,
        BTreeMap::from([("lxc1".to_string(), 0), ("lxc3".to_string(), 1)])
    );
    assert_eq!(remove, strings(&["lxc2"]));
}

#[test]
fn programs_are_shown_with_hook_and_id() {
    let p = Program {
        hook: Hook::Tcx,
        name: "cil_from_contai".into(),
        id: Some(7),
    };
    assert_eq!(p.to_string(), "tcx cil_from_contai (id 7)");
}

#[test]
fn a_check_sets_the_gauge_and_the_readiness_text() {
    let metrics = Arc::new(Metrics::new());
    let suspected = Suspected::default();
    let mut watch = Watch::new(strings(&["lxc+"]), Arc::clone(&metrics), suspected.clone());
    let program = Program {
        hook: Hook::Tc,
        name: "cil_from_contai".into(),
        id: Some(1),
    };
    watch.apply(Scan {
        interfaces: strings(&["lxc1", "lxc2"]),
        suspected: BTreeMap::from([("lxc2".to_string(), vec![program])]),
        problems: vec![ScanError::TcMissing],
    });
    assert_eq!(suspected.interfaces(), strings(&["lxc2"]));
    let text = metrics.encode();
    assert!(
        text.contains(r#"imds_guard_netfilter_bypass_suspected{interface="lxc2"} 1"#),
        "{text}"
    );
    assert!(!text.contains(r#"interface="lxc1""#), "{text}");
    watch.apply(Scan {
        interfaces: strings(&["lxc1", "lxc2"]),
        ..Scan::default()
    });
    assert!(suspected.interfaces().is_empty());
    let text = metrics.encode();
    assert!(
        text.contains(r#"imds_guard_netfilter_bypass_suspected{interface="lxc2"} 0"#),
        "{text}"
    );
    // One check could not read everything (tc missing), the other could.
    for complete in ["true", "false"] {
        assert!(
            text.contains(&format!(
                "imds_guard_netfilter_bypass_checks_total{{complete=\"{complete}\"}} 1"
            )),
            "{text}"
        );
    }
}
