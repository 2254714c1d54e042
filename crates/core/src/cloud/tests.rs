use super::*;
use crate::query::parse;
use crate::target::parse_target;

fn path(p: &str) -> CanonicalPath {
    parse_target(p).unwrap()
}

#[test]
fn names_round_trip_and_unknown_is_refused() {
    for cloud in ALL {
        assert_eq!(cloud.as_str().parse::<Cloud>(), Ok(cloud));
    }
    assert!("AWS".parse::<Cloud>().is_err());
    assert_eq!(Cloud::default(), Cloud::Aws);
}

#[test]
fn addresses_per_cloud() {
    assert_eq!(Cloud::Alibaba.default_url(), "http://100.100.100.200");
    assert_eq!(Cloud::Gcp.default_url(), "http://169.254.169.254");
    assert_eq!(Cloud::Oci.ipv6().unwrap().to_string(), "fd00:c1::a9fe:a9fe");
    assert_eq!(
        Cloud::Openstack.ipv6().unwrap().to_string(),
        "fe80::a9fe:a9fe"
    );
    assert_eq!(Cloud::Aws.ipv6().unwrap().to_string(), "fd00:ec2::254");
    assert!(Cloud::Azure.ipv6().is_none());
    assert_eq!(Cloud::Gcp.ipv6().unwrap().to_string(), "fd20:ce::254");
    assert_eq!(Cloud::Gcp.uninspectable_ports(), &[443]);
}

#[test]
fn side_doors_per_cloud() {
    let wireserver = std::net::Ipv4Addr::new(168, 63, 129, 16);
    assert_eq!(
        Cloud::Azure.refused_for_pods(),
        [(wireserver, 80), (wireserver, 32526)]
    );
    assert_eq!(
        Cloud::Gcp.refused_for_pods(),
        [(std::net::Ipv4Addr::new(169, 254, 169, 254), 443)]
    );
    for cloud in ALL {
        // Never a DNS port, and never the port-80 service the guard stands in front of.
        for (addr, port) in cloud.refused_for_pods() {
            assert_ne!(port, 53, "{cloud}");
            assert!(!(addr == cloud.ipv4() && port == 80), "{cloud}");
        }
        if cloud != Cloud::Azure && cloud != Cloud::Exoscale {
            assert!(cloud.side_doors().is_empty(), "{cloud}");
        }
    }
    // Exoscale's password server shares the metadata server's address, on port 8080.
    assert_eq!(
        Cloud::Exoscale.refused_for_pods(),
        [(std::net::Ipv4Addr::new(169, 254, 169, 254), 8080)]
    );
    assert_eq!(Cloud::Tencent.default_url(), "http://169.254.0.23");
    // A deny of Tencent's unversioned tree can be written.
    assert!(Cloud::Tencent.serves_root(Some("meta-data")));
    assert!(!Cloud::Aws.serves_root(Some("meta-data")));
    for cloud in [
        Cloud::Tencent,
        Cloud::Huawei,
        Cloud::Exoscale,
        Cloud::Digitalocean,
    ] {
        assert!(cloud.ipv6().is_none(), "{cloud}");
    }
    assert_eq!(
        Cloud::Hetzner.ipv6().unwrap().to_string(),
        "fe80::a9fe:a9fe"
    );
}

#[test]
fn gates_per_cloud() {
    let gcp = Cloud::Gcp.gated(&path("/computeMetadata/v1/")).unwrap();
    assert_eq!(
        (gcp.header, gcp.value, gcp.status),
        ("metadata-flavor", "Google", 403)
    );
    assert_eq!(
        Cloud::Azure
            .gated(&path("/metadata/instance"))
            .unwrap()
            .status,
        400
    );
    assert!(Cloud::Oci.gated(&path("/opc/v2/instance/")).is_some());
    assert!(Cloud::Oci.gated(&path("/opc/v1/instance/")).is_none());
    assert!(Cloud::Oci.gated(&path("/opc/v20")).is_none());
    assert!(Cloud::Aws.gated(&path("/latest/meta-data/")).is_none());
}

#[test]
fn legacy_trees_of_gcp() {
    for p in [
        "/0.1/meta-data/",
        "/computeMetadata/v1beta1/instance/",
        "/COMPUTEMETADATA/V1BETA1/",
    ] {
        assert!(Cloud::Gcp.is_legacy(&path(p)), "{p}");
    }
    assert!(!Cloud::Gcp.is_legacy(&path("/computeMetadata/v1/instance/")));
    assert!(!Cloud::Gcp.is_legacy(&path("/0.10")));
}

#[test]
fn aggregates_and_their_roots() {
    let none = Query::none();
    let rec = parse("recursive=true").unwrap();
    let p = path("/computeMetadata/v1/instance/");
    assert_eq!(
        Cloud::Gcp.aggregate_root(&p, &rec).as_deref(),
        Some("/computeMetadata/v1/instance")
    );
    assert_eq!(Cloud::Gcp.aggregate_root(&p, &none), None);
    assert_eq!(
        Cloud::Gcp.aggregate_root(&p, &parse("recursive=false").unwrap()),
        None
    );

    let json = parse("api-version=2021-02-01").unwrap();
    let text = parse("api-version=2021-02-01&format=text").unwrap();
    let doc = path("/metadata/instance");
    assert_eq!(
        Cloud::Azure.aggregate_root(&doc, &json).as_deref(),
        Some("/metadata/instance")
    );
    let leaf = path("/metadata/instance/compute/vmid");
    assert_eq!(Cloud::Azure.aggregate_root(&leaf, &text), None);
    assert!(Cloud::Azure
        .aggregate_root(&path("/metadata/identity/oauth2/token"), &json)
        .is_none());

    assert!(Cloud::Oci
        .aggregate_root(&path("/opc/v2/instance/"), &none)
        .is_some());
    assert!(Cloud::Oci
        .aggregate_root(&path("/opc/v2/instance/metadata"), &none)
        .is_some());
    assert!(Cloud::Oci
        .aggregate_root(&path("/opc/v2/instance/region"), &none)
        .is_none());
    assert_eq!(
        Cloud::Alibaba
            .aggregate_root(&path("/latest/meta-data/all"), &none)
            .as_deref(),
        Some("/latest/meta-data")
    );
    assert!(Cloud::Aws
        .aggregate_root(&path("/latest/meta-data/"), &none)
        .is_none());
}

#[test]
fn forwarding_headers_are_recognised() {
    for h in [
        "Forwarded",
        "X-Forwarded-For",
        "x-forwarded-host",
        "X-Forwarded-Anything",
        "X-Real-IP",
    ] {
        assert!(is_forwarding_header(h), "{h}");
    }
    assert!(!is_forwarding_header("Metadata-Flavor"));
}

#[test]
fn every_endpoint_path_compiles() {
    assert_eq!(GCP_COMPILED.len(), GCP_ENDPOINTS.len());
    assert_eq!(AZURE_COMPILED.len(), AZURE_ENDPOINTS.len());
}

#[test]
fn documents_and_legacy_trees_are_recognised_in_every_lenient_spelling() {
    let none = Query::none();
    let json = parse("api-version=2021-02-01").unwrap();
    for p in [
        "/0.1./meta-data/",
        "/0.1%20/x",
        "/%200.1/x",
        "/.../0.1/x",
        "/computeMetadata/v1beta1./x",
        "/computeMetadata/.../v1beta1/",
        "/computeMetadata./v1beta1/",
    ] {
        assert!(Cloud::Gcp.is_legacy(&path(p)), "{p}");
    }
    for p in [
        "/metadata/instance.",
        "/metadata/instance%20",
        "/metadata/.../instance",
        "/metadata/instance./compute",
        "/metadata/%20instance/compute",
    ] {
        assert!(
            Cloud::Azure.aggregate_root(&path(p), &json).is_some(),
            "{p}"
        );
    }
    for p in [
        "/opc/v2/Instance",
        "/opc/v2/INSTANCE/",
        "/opc/v2/instance.",
        "/opc/v2/.../instance/",
        "/opc/v2/instance/metadata.",
        "/opc/v2/instance/.../metadata",
        "/opc/v1/Instance",
        "/opc/v2/instance/region/",
    ] {
        assert!(Cloud::Oci.aggregate_root(&path(p), &none).is_some(), "{p}");
    }
    for p in [
        "/latest/meta-data/ALL",
        "/latest/meta-data/All/",
        "/latest/meta-data/all.",
        "/latest/meta-data/all%20",
        "/latest/meta-data/.../all",
    ] {
        assert!(
            Cloud::Alibaba.aggregate_root(&path(p), &none).is_some(),
            "{p}"
        );
    }
    assert!(Cloud::Alibaba
        .aggregate_root(&path("/latest/meta-data/allx"), &none)
        .is_none());
}
