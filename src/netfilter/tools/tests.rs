use super::*;

#[test]
fn permission_errors_are_recognised() {
    let failed = |stderr: &str| NetfilterError::Failed {
        command: "iptables-legacy-save".into(),
        status: "exit status: 4".into(),
        stderr: stderr.into(),
    };
    assert!(is_permission(&failed(
        "iptables-legacy-save: Permission denied (you must be root)"
    )));
    assert!(!is_permission(&failed(
        "can't initialize iptables table `nat': Table does not exist"
    )));
}

const NAT_RULES: &str = "*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -j X\n-A X -j Y\nCOMMIT\n";

#[test]
fn a_backend_whose_commands_are_missing_is_not_chosen() {
    assert_eq!(choose(None, None), None);
    assert_eq!(choose(Some(NAT_RULES), None), Some(Variant::Legacy));
    assert_eq!(choose(None, Some("")), Some(Variant::Nft));
}

#[test]
fn the_kubelet_hint_decides_then_our_chain_then_the_rule_count() {
    let hint = "*mangle\n:KUBE-IPTABLES-HINT - [0:0]\nCOMMIT\n";
    let ours = "*nat\n:IMDS-GUARD - [0:0]\nCOMMIT\n";
    assert_eq!(choose(Some(hint), Some(NAT_RULES)), Some(Variant::Legacy));
    assert_eq!(choose(Some(NAT_RULES), Some(hint)), Some(Variant::Nft));
    assert_eq!(choose(Some(ours), Some(NAT_RULES)), Some(Variant::Legacy));
    assert_eq!(choose(Some(NAT_RULES), Some("")), Some(Variant::Legacy));
    assert_eq!(choose(Some(""), Some(NAT_RULES)), Some(Variant::Nft));
    // Nothing anywhere (a fresh node): nf_tables, the default of current distributions.
    assert_eq!(choose(Some(""), Some("")), Some(Variant::Nft));
}

#[test]
fn command_names() {
    assert_eq!(
        Variant::Nft.program(Family::V6, "restore"),
        "ip6tables-nft-restore"
    );
    assert_eq!(Variant::Plain.program(Family::V4, "save"), "iptables-save");
    assert_eq!(Variant::Legacy.name(Family::V4), "iptables-legacy");
}

#[test]
fn a_missing_program_is_named_with_its_package() {
    let e = run("conntrack-does-not-exist", &[], None).unwrap_err();
    assert_eq!(
        e.to_string(),
        "conntrack-does-not-exist not found: apt-get install conntrack"
    );
}
