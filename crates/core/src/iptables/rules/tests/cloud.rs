//! The rule set of every cloud: its addresses, its IPv6 endpoint, the ports it rejects; and that
//! install, status and remove treat them like AWS's (converge, idempotent, nothing else touched).

use super::super::*;
use super::{apply, FOREIGN, FOREIGN_FILTER};
use crate::cloud::ALL;

fn node(cloud: Cloud, listen: &str) -> RuleSet {
    let interfaces = ["eni+".to_owned(), "cni0".to_owned()];
    RuleSet::for_cloud(cloud, listen.parse().unwrap(), &interfaces).unwrap()
}

fn sidecar(cloud: Cloud) -> RuleSet {
    RuleSet::sidecar_for_cloud(cloud, "127.0.0.1:8181".parse().unwrap(), 1337).unwrap()
}

/// Our chain's rules of one family, without the jumps.
fn own(set: &RuleSet, family: Family) -> Vec<String> {
    set.expected(family)
        .iter()
        .map(ToString::to_string)
        .filter(|l| l.contains(" -A IMDS-GUARD "))
        .collect()
}

fn jumps(set: &RuleSet, family: Family) -> Vec<String> {
    set.expected(family)
        .iter()
        .map(ToString::to_string)
        .filter(|l| l.ends_with("-j IMDS-GUARD"))
        .collect()
}

#[test]
fn aws_is_the_rule_set_it_always_was() {
    let interfaces = ["eni+".to_owned()];
    let listen = "10.0.0.5:8181".parse().unwrap();
    assert_eq!(
        RuleSet::new(listen, &interfaces),
        RuleSet::for_cloud(Cloud::Aws, listen, &interfaces)
    );
    let listen = "127.0.0.1:8181".parse().unwrap();
    assert_eq!(
        RuleSet::sidecar(listen, 7),
        RuleSet::sidecar_for_cloud(Cloud::Aws, listen, 7)
    );
}

const DNAT: &str = "-j DNAT --to-destination 10.0.0.5:8181";
const ADM: &str = "-j REJECT --reject-with icmp6-adm-prohibited";

#[test]
fn each_cloud_s_address_is_dnated_and_its_ipv6_endpoint_refused() {
    let v4 = |addr: &str| {
        format!("iptables -t nat -A IMDS-GUARD -d {addr}/32 -p tcp -m tcp --dport 80 {DNAT}")
    };
    let v6 = |addr: &str| format!("ip6tables -t filter -A IMDS-GUARD -d {addr}/128 {ADM}");
    let cases: [(Cloud, &str, &[&str]); 5] = [
        (
            Cloud::Gcp,
            "169.254.169.254",
            &["::ffff:169.254.169.254", "fd20:ce::254"],
        ),
        (Cloud::Azure, "169.254.169.254", &["::ffff:169.254.169.254"]),
        (
            Cloud::Alibaba,
            "100.100.100.200",
            &["::ffff:100.100.100.200"],
        ),
        (
            Cloud::Oci,
            "169.254.169.254",
            &["::ffff:169.254.169.254", "fd00:c1::a9fe:a9fe"],
        ),
        (
            Cloud::Openstack,
            "169.254.169.254",
            &["::ffff:169.254.169.254", "fe80::a9fe:a9fe"],
        ),
    ];
    for (cloud, addr, refused) in cases {
        let set = node(cloud, "10.0.0.5:8181");
        let own4 = own(&set, Family::V4);
        assert_eq!(own4[0], v4(addr), "{cloud}");
        let own6: Vec<String> = refused.iter().map(|a| v6(a)).collect();
        assert_eq!(own(&set, Family::V6), own6, "{cloud}");
        // The jumps are those of AWS: from each pod interface, into each table used.
        assert_eq!(
            jumps(&set, Family::V6),
            [
                "ip6tables -t filter -A FORWARD -i eni+ -j IMDS-GUARD",
                "ip6tables -t filter -A FORWARD -i cni0 -j IMDS-GUARD",
            ],
            "{cloud}"
        );
        assert_eq!(set.intercepted(Family::V4), Some(addr.parse().unwrap()));
        assert_eq!(
            set.intercepted(Family::V6),
            cloud.ipv6().map(IpAddr::V6),
            "{cloud}"
        );
    }
}

#[test]
fn gcp_s_https_endpoint_is_rejected_for_pods_in_filter_forward() {
    let set = node(Cloud::Gcp, "10.0.0.5:8181");
    assert_eq!(
        rules_of(&set, Family::V4),
        [
            "iptables -t nat -A PREROUTING -i eni+ -j IMDS-GUARD",
            "iptables -t nat -A PREROUTING -i cni0 -j IMDS-GUARD",
            "iptables -t nat -A IMDS-GUARD -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.5:8181",
            "iptables -t filter -A FORWARD -i eni+ -j IMDS-GUARD",
            "iptables -t filter -A FORWARD -i cni0 -j IMDS-GUARD",
            "iptables -t filter -A IMDS-GUARD -d 169.254.169.254/32 -p tcp -m tcp --dport 443 -j REJECT --reject-with tcp-reset",
        ]
    );
    // No other cloud has a port the guard cannot inspect or a side door: IPv4 is nat only.
    for cloud in ALL.into_iter().filter(|c| cloud_refuses_nothing(*c)) {
        let set = node(cloud, "10.0.0.5:8181");
        assert!(
            set.tables(Family::V4).iter().all(|t| t.table == "nat"),
            "{cloud}"
        );
    }
}

#[test]
fn azure_s_wireserver_is_rejected_for_pods_on_80_and_32526_and_never_on_53() {
    let set = node(Cloud::Azure, "10.0.0.5:8181");
    assert_eq!(
        rules_of(&set, Family::V4),
        [
            "iptables -t nat -A PREROUTING -i eni+ -j IMDS-GUARD",
            "iptables -t nat -A PREROUTING -i cni0 -j IMDS-GUARD",
            "iptables -t nat -A IMDS-GUARD -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.5:8181",
            "iptables -t filter -A FORWARD -i eni+ -j IMDS-GUARD",
            "iptables -t filter -A FORWARD -i cni0 -j IMDS-GUARD",
            "iptables -t filter -A IMDS-GUARD -d 168.63.129.16/32 -p tcp -m tcp --dport 80 -j REJECT --reject-with tcp-reset",
            "iptables -t filter -A IMDS-GUARD -d 168.63.129.16/32 -p tcp -m tcp --dport 32526 -j REJECT --reject-with tcp-reset",
        ]
    );
    let sidecar = sidecar(Cloud::Azure);
    assert_eq!(
        own(&sidecar, Family::V4)[1..],
        [
            "iptables -t filter -A IMDS-GUARD -d 168.63.129.16/32 -p tcp -m tcp --dport 80 -m owner ! --uid-owner 1337 -j REJECT --reject-with tcp-reset",
            "iptables -t filter -A IMDS-GUARD -d 168.63.129.16/32 -p tcp -m tcp --dport 32526 -m owner ! --uid-owner 1337 -j REJECT --reject-with tcp-reset",
        ]
    );
    // Azure DNS on the same address is never named, in either mode or family.
    for set in [set, sidecar] {
        for family in [Family::V4, Family::V6] {
            for line in rules_of(&set, family) {
                assert!(!line.contains("--dport 53"), "{line}");
                assert!(
                    !line.contains("168.63.129.16")
                        || line.contains("--dport 80 ")
                        || line.contains("--dport 32526 "),
                    "{line}"
                );
            }
        }
    }
}

/// Whether a cloud has neither a port the guard cannot inspect nor a side door.
fn cloud_refuses_nothing(cloud: Cloud) -> bool {
    !matches!(cloud, Cloud::Gcp | Cloud::Azure | Cloud::Exoscale)
}

#[test]
fn exoscale_s_password_server_is_rejected_for_pods_beside_the_dnat() {
    let set = node(Cloud::Exoscale, "10.0.0.5:8181");
    assert_eq!(
        own(&set, Family::V4),
        [
            "iptables -t nat -A IMDS-GUARD -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -j DNAT --to-destination 10.0.0.5:8181",
            "iptables -t filter -A IMDS-GUARD -d 169.254.169.254/32 -p tcp -m tcp --dport 8080 -j REJECT --reject-with tcp-reset",
        ]
    );
    assert!(Cloud::Exoscale.refused_for_pods().len() == 1);
}

fn rules_of(set: &RuleSet, family: Family) -> Vec<String> {
    set.expected(family)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn an_ipv6_listener_takes_the_ipv6_endpoint_where_the_cloud_has_one() {
    for cloud in ALL {
        let set = node(cloud, "[::]:9000");
        let nat6: Vec<String> = own(&set, Family::V6)
            .into_iter()
            .filter(|l| l.contains("-t nat"))
            .collect();
        match cloud.ipv6() {
            Some(v6) => assert_eq!(
                nat6,
                [format!(
                    "ip6tables -t nat -A IMDS-GUARD -d {v6}/128 -p tcp -m tcp --dport 80 -j REDIRECT --to-ports 9000"
                )],
                "{cloud}"
            ),
            None => assert!(nat6.is_empty(), "{cloud}: {nat6:?}"),
        }
        assert!(own(&set, Family::V4)[0].ends_with("-j REDIRECT --to-ports 9000"));
    }
}

#[test]
fn a_sidecar_spares_its_own_uid_in_every_cloud_s_rules() {
    let gcp = sidecar(Cloud::Gcp);
    assert_eq!(
        rules_of(&gcp, Family::V4),
        [
            "iptables -t nat -A OUTPUT -j IMDS-GUARD",
            "iptables -t nat -A IMDS-GUARD -d 169.254.169.254/32 -p tcp -m tcp --dport 80 -m owner ! --uid-owner 1337 -j DNAT --to-destination 127.0.0.1:8181",
            "iptables -t filter -A OUTPUT -j IMDS-GUARD",
            "iptables -t filter -A IMDS-GUARD -d 169.254.169.254/32 -p tcp -m tcp --dport 443 -m owner ! --uid-owner 1337 -j REJECT --reject-with tcp-reset",
        ]
    );
    let alibaba = sidecar(Cloud::Alibaba);
    assert_eq!(
        own(&alibaba, Family::V4),
        ["iptables -t nat -A IMDS-GUARD -d 100.100.100.200/32 -p tcp -m tcp --dport 80 -m owner ! --uid-owner 1337 -j DNAT --to-destination 127.0.0.1:8181"]
    );
    let oci = sidecar(Cloud::Oci);
    assert_eq!(
        own(&oci, Family::V6),
        [
            format!("ip6tables -t filter -A IMDS-GUARD -d ::ffff:169.254.169.254/128 -m owner ! --uid-owner 1337 {ADM}"),
            format!("ip6tables -t filter -A IMDS-GUARD -d fd00:c1::a9fe:a9fe/128 -m owner ! --uid-owner 1337 {ADM}"),
        ]
    );
    for cloud in ALL {
        for line in own(&sidecar(cloud), Family::V4)
            .into_iter()
            .chain(own(&sidecar(cloud), Family::V6))
        {
            assert!(line.contains("! --uid-owner 1337 -j "), "{cloud}: {line}");
        }
    }
}

/// The lines of save text in order: `apply` puts rules inserted into an empty built-in chain after
/// our chain's, which `iptables-save` (printing chain by chain) would not.
fn sorted(save: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = save.lines().collect();
    lines.sort_unstable();
    lines
}

#[test]
fn every_cloud_s_rules_converge_are_idempotent_and_are_removed_whole() {
    let start4 = format!("{FOREIGN}{FOREIGN_FILTER}");
    for cloud in ALL {
        for set in [
            node(cloud, "10.0.0.5:8181"),
            node(cloud, "[::]:8181"),
            sidecar(cloud),
        ] {
            for (family, start) in [(Family::V4, start4.as_str()), (Family::V6, FOREIGN_FILTER)] {
                let once = apply(start, &set.install_payload(family, start));
                let diff = set.diff(family, &once);
                assert!(diff.is_empty(), "{cloud}: {diff}");
                let twice = apply(&once, &set.install_payload(family, &once));
                assert_eq!(sorted(&once), sorted(&twice), "{cloud}");
                for foreign in start.lines().filter(|l| l.starts_with("-A ")) {
                    assert!(twice.contains(foreign), "{cloud}: lost {foreign}");
                }
                let removed = apply(&twice, &remove_payload(&twice));
                assert!(!removed.contains(CHAIN), "{cloud}: {removed}");
                let rules = |save: &str| -> Vec<String> {
                    sorted(save)
                        .into_iter()
                        .filter(|l| l.starts_with("-A "))
                        .map(String::from)
                        .collect()
                };
                assert_eq!(
                    rules(&removed),
                    rules(start),
                    "{cloud}: remove touched others"
                );
            }
        }
    }
}

#[test]
fn changing_cloud_moves_the_rules_and_clears_tables_no_longer_used() {
    let start = format!("{FOREIGN}{FOREIGN_FILTER}");
    let gcp = node(Cloud::Gcp, "10.0.0.5:8181");
    let on_gcp = apply(&start, &gcp.install_payload(Family::V4, &start));
    assert!(on_gcp.contains("--dport 443 -j REJECT --reject-with tcp-reset"));
    // Status on the GCP rules, for AWS: the filter table's jumps and reject are extra.
    let aws = node(Cloud::Aws, "10.0.0.5:8181");
    let diff = aws.diff(Family::V4, &on_gcp);
    assert!(diff.missing.is_empty(), "{diff}");
    assert_eq!(diff.extra.len(), 3, "{diff}");
    let on_aws = apply(&on_gcp, &aws.install_payload(Family::V4, &on_gcp));
    assert!(aws.diff(Family::V4, &on_aws).is_empty());
    assert!(!on_aws.contains("--dport 443"), "{on_aws}");
    assert!(!on_aws.contains("-A FORWARD -i eni+"), "{on_aws}");
    // Alibaba's address replaces the other one in the same chain.
    let alibaba = node(Cloud::Alibaba, "10.0.0.5:8181");
    let diff = alibaba.diff(Family::V4, &on_aws);
    assert_eq!(diff.missing.len(), 1, "{diff}");
    assert_eq!(diff.extra.len(), 1, "{diff}");
    let on_alibaba = apply(&on_aws, &alibaba.install_payload(Family::V4, &on_aws));
    assert!(alibaba.diff(Family::V4, &on_alibaba).is_empty());
    assert!(
        !on_alibaba.contains("-d 169.254.169.254/32"),
        "{on_alibaba}"
    );
}
