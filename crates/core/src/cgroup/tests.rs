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

#[test]
fn azure_s_wireserver_is_refused_on_its_two_ports_and_not_blocked() {
    let wireserver: Ipv6Addr = "::ffff:168.63.129.16".parse().unwrap();
    let azure = targets(Cloud::Azure);
    let refused: Vec<(Ipv6Addr, u16)> = azure
        .iter()
        .filter(|t| t.action == Action::Refuse)
        .map(|t| (t.addr, t.port))
        .collect();
    assert_eq!(refused, [(wireserver, 80), (wireserver, 32526)]);
    // DNS on the same address is never a target, and the backstop (which drops every packet to
    // an address) leaves the address alone.
    assert!(azure.iter().all(|t| t.port != 53));
    assert!(!blocked(Cloud::Azure).contains(&wireserver));
}
