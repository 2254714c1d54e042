//! Tests of the DigitalOcean emulator, through its handler (no sockets).

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, LOCATION};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;

use super::{handle, DROPLET_ID, DROPLET_ID_NUMBER, HOSTNAME, USER_DATA, VENDOR_DATA};

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

fn get(target: &str) -> (StatusCode, String) {
    let (status, _, body) = send(Method::GET, target);
    (status, body)
}

fn ok(target: &str) -> String {
    let (status, body) = get(target);
    assert_eq!(status, StatusCode::OK, "{target}: {body}");
    body
}

#[test]
fn the_indexes_list_names_and_directories() {
    for (index, names) in [
        (
            "/metadata/v1/",
            "id\nhostname\nuser-data\nvendor-data\npublic-keys\nregion\ninterfaces/\ndns/\n\
             floating_ip/\nreserved_ip/\ntags/\nfeatures/",
        ),
        ("/metadata/v1/interfaces/", "public/\nprivate/"),
        ("/metadata/v1/interfaces/public/", "0/"),
        ("/metadata/v1/interfaces/public/0/", "mac\ntype\nipv4/"),
        (
            "/metadata/v1/interfaces/public/0/ipv4/",
            "address\nnetmask\ngateway",
        ),
        ("/metadata/v1/interfaces/private/", ""),
        ("/metadata/v1/dns/", "nameservers"),
        ("/metadata/v1/floating_ip/", "ipv4/"),
        ("/metadata/v1/floating_ip/ipv4/", "active"),
        ("/metadata/v1/reserved_ip/", "ipv4/"),
        ("/metadata/v1/reserved_ip/ipv4/", "active"),
        ("/metadata/v1/tags/", "k8s"),
        ("/metadata/v1/features/", "dhcp_enabled"),
    ] {
        let (status, headers, body) = send(Method::GET, index);
        assert_eq!((status, body.as_str()), (StatusCode::OK, names), "{index}");
        assert_eq!(headers["content-type"], "text/plain; charset=utf-8");
    }
}

#[test]
fn an_index_without_its_slash_is_moved_permanently() {
    for index in [
        "/metadata/v1",
        "/metadata/v1/interfaces",
        "/metadata/v1/interfaces/public",
        "/metadata/v1/interfaces/public/0",
        "/metadata/v1/interfaces/public/0/ipv4",
        "/metadata/v1/interfaces/private",
        "/metadata/v1/dns",
        "/metadata/v1/floating_ip",
        "/metadata/v1/reserved_ip/ipv4",
        "/metadata/v1/tags",
        "/metadata/v1/features",
    ] {
        let (status, headers, _) = send(Method::GET, index);
        assert_eq!(status, StatusCode::MOVED_PERMANENTLY, "{index}");
        assert_eq!(headers[LOCATION], format!("{index}/"), "{index}");
        let (status, headers, body) = send(Method::HEAD, index);
        assert_eq!(
            (status, body.as_str()),
            (StatusCode::MOVED_PERMANENTLY, ""),
            "{index}"
        );
        assert_eq!(headers[LOCATION], format!("{index}/"), "{index}");
    }
    let (status, headers, _) = send(Method::GET, "/metadata/v1?x=1");
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers[LOCATION], "/metadata/v1/", "the query is dropped");
}

#[test]
fn every_leaf() {
    assert_eq!(DROPLET_ID, DROPLET_ID_NUMBER.to_string());
    assert_eq!(DROPLET_ID, "2756294");
    assert_eq!(HOSTNAME, "emu-node-0");
    for (leaf, value) in [
        ("id", "2756294"),
        ("hostname", "emu-node-0"),
        ("user-data", USER_DATA),
        ("vendor-data", VENDOR_DATA),
        (
            "public-keys",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 node-key",
        ),
        ("region", "nyc3"),
        ("interfaces/public/0/mac", "da:7e:0d:ae:51:c3"),
        ("interfaces/public/0/type", "public"),
        ("interfaces/public/0/ipv4/address", "203.0.113.10"),
        ("interfaces/public/0/ipv4/netmask", "255.255.240.0"),
        ("interfaces/public/0/ipv4/gateway", "203.0.113.1"),
        ("dns/nameservers", "67.207.67.2\n67.207.67.3"),
        ("floating_ip/ipv4/active", "false"),
        ("reserved_ip/ipv4/active", "false"),
        ("features/dhcp_enabled", "true"),
    ] {
        assert_eq!(ok(&format!("/metadata/v1/{leaf}")), value, "{leaf}");
    }
    assert!(USER_DATA
        .lines()
        .any(|l| l == "NODE_BOOTSTRAP_SECRET=emulator-not-a-secret"));
    assert!(VENDOR_DATA.starts_with("#cloud-config\n"));
}

/// Every leaf reached by walking the indexes from the root, by path.
fn walk(dir: &str, leaves: &mut Vec<(String, String)>) {
    for name in ok(dir).lines() {
        let path = format!("{dir}{name}");
        if name.ends_with('/') {
            walk(&path, leaves);
        } else if dir != "/metadata/v1/tags/" {
            leaves.push((path.clone(), ok(&path)));
        }
    }
}

#[test]
fn the_json_document_agrees_with_the_leaves() {
    let (status, headers, body) = send(Method::GET, "/metadata/v1.json");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    let doc: Value = serde_json::from_str(&body).expect("json");
    let mut leaves = Vec::new();
    walk("/metadata/v1/", &mut leaves);
    assert_eq!(leaves.len(), 15, "{leaves:?}");
    for (path, text) in &leaves {
        let rest = path.strip_prefix("/metadata/v1/").expect("below the root");
        let pointer = match rest {
            "id" => "/droplet_id".to_owned(),
            "interfaces/public/0/ipv4/address" => "/interfaces/public/0/ipv4/ip_address".to_owned(),
            _ => format!("/{}", rest.replace('-', "_")),
        };
        let value = doc.pointer(&pointer).unwrap_or(&Value::Null);
        let expected = match value {
            Value::String(s) => s.clone(),
            Value::Array(items) => items
                .iter()
                .map(|i| i.as_str().expect("strings").to_owned())
                .collect::<Vec<_>>()
                .join("\n"),
            Value::Number(_) | Value::Bool(_) => value.to_string(),
            other => panic!("{path}: {other}"),
        };
        assert_eq!(&expected, text, "{path}");
    }
    assert_eq!(doc["droplet_id"], 2_756_294);
    assert_eq!(doc["user_data"], USER_DATA);
    assert_eq!(doc["vendor_data"], VENDOR_DATA);
    assert_eq!(doc["tags"], serde_json::json!(["k8s"]));
    assert_eq!(doc["interfaces"]["private"], serde_json::json!([]));
    assert_eq!(doc["interfaces"]["public"][0]["type"], "public");
    let keys: Vec<&str> = doc
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut expected = vec![
        "droplet_id",
        "hostname",
        "user_data",
        "vendor_data",
        "public_keys",
        "region",
        "interfaces",
        "dns",
        "floating_ip",
        "reserved_ip",
        "tags",
        "features",
    ];
    expected.sort_unstable();
    let mut keys = keys;
    keys.sort_unstable();
    assert_eq!(keys, expected);
}

#[test]
fn unknown_and_unnormalised_paths_are_not_found() {
    for missing in [
        "/",
        "/metadata",
        "/metadata/",
        "/metadata/v2/",
        "/metadata/v1x",
        "/metadata/v1.json/",
        "/metadata/v1.jsonx",
        "/metadata/v1/nope",
        "/metadata/v1/id/",
        "/metadata/v1/user-data/",
        "/metadata/v1/tags/k8s",
        "/metadata/v1/tags/k8s/",
        "/metadata/v1/interfaces/public/1/",
        "/metadata/v1/interfaces/public/00/",
        "/metadata/v1/interfaces/public/0/mac/x",
        "/metadata/v1//",
        "/metadata/v1//id",
        "/metadata//v1/id",
        "/metadata/v1/interfaces//public/",
        "/metadata/v1/../v1/id",
        "/metadata/v1/dns/../id",
        "/metadata/v1/./id",
        "/metadata/v1/..",
        "/metadata/v1/ID",
        "/latest/meta-data/",
        "/hetzner/v1/metadata",
    ] {
        let (status, body) = get(missing);
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
            "/metadata/v1/id",
            "/metadata/v1.json",
            "/metadata/v1",
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
        "/metadata/v1/",
        "/metadata/v1/id",
        "/metadata/v1/user-data",
        "/metadata/v1.json",
        "/metadata/v1/nope",
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
