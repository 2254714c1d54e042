use super::*;

#[test]
fn settings_are_laid_out_as_the_programs_read_them() {
    let s = Settings {
        guard: "10.199.0.1:8181".parse().unwrap(),
        host_netns: Some(0x0102_0304_0506_0708),
        host_network_pods: true,
        exempt: Some((77, 3)),
    };
    let b = s.encode([80, 443, 0, 0]);
    assert_eq!(&b[0..4], &[10, 199, 0, 1]);
    assert_eq!(&b[4..20], &[0; 16]);
    assert_eq!(&b[20..22], &8181u16.to_be_bytes());
    assert_eq!(u16::from_ne_bytes([b[22], b[23]]), 3);
    assert_eq!(
        u64::from_ne_bytes(b[24..32].try_into().unwrap()),
        0x0102_0304_0506_0708
    );
    assert_eq!(u64::from_ne_bytes(b[32..40].try_into().unwrap()), 77);
    assert_eq!(u32::from_ne_bytes(b[40..44].try_into().unwrap()), 3);
    assert_eq!(&b[48..56], &[0, 80, 1, 187, 0, 0, 0, 0]);
}

#[test]
fn every_clouds_ports_fit() {
    for cloud in crate::cloud::ALL {
        let targets = crate::cgroup::targets(cloud);
        let ports = target_ports(&targets).unwrap();
        assert!(targets.iter().all(|t| ports.contains(&t.port)), "{cloud}");
    }
}

#[test]
fn tuples_key_ipv4_as_mapped() {
    let key = tuple_key(
        "10.200.1.2:40000".parse().unwrap(),
        "10.199.0.1:8181".parse().unwrap(),
    );
    assert_eq!(
        &key[..16],
        &"::ffff:10.200.1.2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets()
    );
    assert_eq!(&key[32..34], &40000u16.to_be_bytes());
    assert_eq!(&key[34..36], &8181u16.to_be_bytes());
}

#[test]
fn the_generation_names_object_and_cgroup() {
    assert_eq!(generation(5), generation(5));
    assert_ne!(generation(5), generation(6));
    assert!(generation(5).ends_with("-5"));
}
