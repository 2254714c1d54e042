//! Tests of the Hetzner emulator, through its handler (no sockets).

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;

use super::{handle, HOSTNAME, INSTANCE_ID, USER_DATA, VENDOR_DATA};

fn send(method: Method, target: &str) -> (StatusCode, HeaderMap, String) {
    let req = Request::builder()
        .method(method)
        .uri(target)
        .body(Bytes::new())
        .expect("request");
    let response = handle(&req);
    let status = response.status();
    let headers = response.headers().clone();
    let body = futures::executor::block_on(response.into_body().collect()).expect("body");
    (
        status,
        headers,
        String::from_utf8(body.to_bytes().to_vec()).expect("utf-8"),
    )
}

fn ok(target: &str) -> String {
    let (status, headers, body) = send(Method::GET, target);
    assert_eq!(status, StatusCode::OK, "{target}: {body}");
    assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    body
}

const PUBLIC_KEYS: &str =
    "- ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 node-key\n";

#[test]
fn every_leaf() {
    assert_eq!(INSTANCE_ID, "42001337");
    assert_eq!(HOSTNAME, "emu-node-0");
    for (leaf, value) in [
        ("hostname", "emu-node-0"),
        ("instance-id", "42001337"),
        ("public-ipv4", "203.0.113.17"),
        ("local-ipv4", ""),
        ("availability-zone", "fsn1-dc14"),
        ("region", "eu-central"),
        ("public-keys", PUBLIC_KEYS),
    ] {
        assert_eq!(ok(&format!("/hetzner/v1/metadata/{leaf}")), value, "{leaf}");
    }
    let networks = ok("/hetzner/v1/metadata/private-networks");
    let lines: Vec<&str> = networks.lines().collect();
    assert_eq!(lines[0], "- ip: 10.0.0.2");
    assert!(lines[1..].iter().all(|l| l.starts_with("  ")), "{networks}");
    for key in [
        "alias_ips",
        "interface_num",
        "mac_address",
        "network_id",
        "network_name",
        "network",
        "subnet",
        "gateway",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(&format!("  {key}: "))),
            "{key}"
        );
    }
    assert!(networks.ends_with('\n'));
}

#[test]
fn the_user_data() {
    assert_eq!(ok("/hetzner/v1/userdata"), USER_DATA);
    assert!(USER_DATA
        .lines()
        .any(|l| l == "NODE_BOOTSTRAP_SECRET=emulator-not-a-secret"));
}

#[test]
fn the_yaml_document_agrees_with_the_leaves() {
    let doc = ok("/hetzner/v1/metadata");
    let lines: Vec<&str> = doc.lines().collect();
    // Top-level keys, in order (list items and nested lines are indented or start with `-`).
    let keys: Vec<&str> = lines
        .iter()
        .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
        .filter_map(|l| l.split_once(':').map(|(k, _)| k))
        .collect();
    assert_eq!(
        keys,
        [
            "availability-zone",
            "hostname",
            "instance-id",
            "local-ipv4",
            "network-config",
            "public-ipv4",
            "public-keys",
            "region",
            "vendor_data",
        ]
    );
    for key in [
        "availability-zone",
        "hostname",
        "instance-id",
        "public-ipv4",
        "region",
    ] {
        let leaf = ok(&format!("/hetzner/v1/metadata/{key}"));
        assert!(lines.contains(&format!("{key}: {leaf}").as_str()), "{key}");
    }
    assert_eq!(ok("/hetzner/v1/metadata/local-ipv4"), "");
    assert!(lines.contains(&"local-ipv4: ''"));
    // The list under `public-keys:` is the leaf, line for line.
    let keys_at = lines
        .iter()
        .position(|l| *l == "public-keys:")
        .expect("public-keys");
    let listed: String = lines[keys_at + 1..]
        .iter()
        .take_while(|l| l.starts_with("- "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(listed, ok("/hetzner/v1/metadata/public-keys"));
    // `vendor_data` is a block string: the vendor data indented by two.
    let vendor_at = lines
        .iter()
        .position(|l| *l == "vendor_data: |")
        .expect("vendor_data");
    let block: String = lines[vendor_at + 1..]
        .iter()
        .map(|l| format!("{}\n", l.strip_prefix("  ").expect("indented")))
        .collect();
    assert_eq!(block, VENDOR_DATA);
    assert!(block.starts_with("#cloud-config\n"));
    // `network-config`: a version 1 configuration of eth0, indented below its key.
    let network_at = lines
        .iter()
        .position(|l| *l == "network-config:")
        .expect("network-config");
    let network: Vec<&str> = lines[network_at + 1..]
        .iter()
        .copied()
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(network.contains(&"  version: 1"), "{network:?}");
    assert!(network.contains(&"    name: eth0"), "{network:?}");
    assert!(network.contains(&"      type: dhcp"), "{network:?}");
    assert!(doc.ends_with('\n'));
    assert!(!doc.contains("private-networks"));
    assert!(!doc.contains("NODE_BOOTSTRAP_SECRET"), "no user data in it");
}

#[test]
fn unknown_and_unnormalised_paths_are_not_found() {
    for missing in [
        "/",
        "/hetzner",
        "/hetzner/",
        "/hetzner/v1",
        "/hetzner/v1/",
        "/hetzner/v2/metadata",
        "/hetzner/v1/metadata/",
        "/hetzner/v1/metadatax",
        "/hetzner/v1/metadata/vendor_data",
        "/hetzner/v1/metadata/network-config",
        "/hetzner/v1/metadata/nope",
        "/hetzner/v1/metadata/hostname/",
        "/hetzner/v1/metadata/Hostname",
        "/hetzner/v1/metadata/public-keys/0",
        "/hetzner/v1/userdata/",
        "/hetzner/v1/user-data",
        "/hetzner/v1//metadata",
        "/hetzner/v1/metadata//hostname",
        "//hetzner/v1/metadata",
        "/hetzner/v1/metadata/../metadata",
        "/hetzner/v1/../v1/userdata",
        "/hetzner/v1/./userdata",
        "/hetzner/v1/metadata/./hostname",
        "/metadata/v1/",
        "/latest/meta-data/",
    ] {
        let (status, _, body) = send(Method::GET, missing);
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::NOT_FOUND, "404 Not Found\n"),
            "{missing}"
        );
    }
}

#[test]
fn only_get_and_head() {
    for method in [
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ] {
        for target in [
            "/hetzner/v1/metadata",
            "/hetzner/v1/metadata/hostname",
            "/hetzner/v1/userdata",
            "/nope",
        ] {
            let (status, headers, _) = send(method.clone(), target);
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {target}");
            assert_eq!(headers[ALLOW], "GET, HEAD", "{method} {target}");
        }
    }
}

#[test]
fn head_is_get_without_the_body() {
    for target in [
        "/hetzner/v1/metadata",
        "/hetzner/v1/metadata/instance-id",
        "/hetzner/v1/userdata",
        "/hetzner/v1/metadata/",
    ] {
        let (get_status, get_headers, get_body) = send(Method::GET, target);
        let (status, headers, body) = send(Method::HEAD, target);
        assert_eq!((status, body.as_str()), (get_status, ""), "{target}");
        assert_eq!(headers, get_headers, "{target}");
        assert_eq!(
            headers[CONTENT_LENGTH],
            get_body.len().to_string(),
            "{target}"
        );
    }
}
