//! Tests of the Linode emulator, through its handler (no sockets).

use std::net::IpAddr;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use imds_guard_core::cloud::Cloud;
use serde_json::Value;

use super::super::{build_state, EmulatorOptions};
use super::{handle, handle_at, State, INSTANCE_ID, LABEL, REGION, USER_DATA};

const TTL: &str = "Metadata-Token-Expiry-Seconds";
const TOKEN: &str = "Metadata-Token";
const ACCEPT_JSON: (&str, &str) = ("Accept", "application/json");
const ACCEPT_TEXT: (&str, &str) = ("Accept", "text/plain");
const READS: [&str; 4] = [
    "/v1/instance",
    "/v1/network",
    "/v1/ssh-keys",
    "/v1/user-data",
];

fn state() -> State {
    build_state(EmulatorOptions {
        cloud: Cloud::Linode,
        ..EmulatorOptions::default()
    })
    .expect("valid options")
}

fn request(method: Method, target: &str, headers: &[(&str, &str)]) -> Request<Bytes> {
    let mut builder = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(Bytes::new()).expect("request")
}

fn collect(response: super::Answer) -> (StatusCode, HeaderMap, String) {
    let status = response.status();
    let headers = response.headers().clone();
    let body = futures::executor::block_on(response.into_body().collect()).expect("body");
    (
        status,
        headers,
        String::from_utf8(body.to_bytes().to_vec()).expect("utf-8"),
    )
}

fn send(
    state: &State,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    collect(handle(state, &request(method, target, headers)))
}

/// A token from `PUT /v1/token`, as the Python client asks for it (`Accept: text/plain`).
fn token(state: &State) -> String {
    let (status, headers, token) = send(
        state,
        Method::PUT,
        "/v1/token",
        &[(TTL, "3600"), ACCEPT_TEXT],
    );
    assert_eq!(status, StatusCode::OK, "{token}");
    assert!(headers[CONTENT_TYPE]
        .to_str()
        .expect("ascii")
        .starts_with("text/plain"));
    token
}

/// A read of `target` with a fresh token and `accept`.
fn read(state: &State, target: &str, accept: (&str, &str)) -> (StatusCode, HeaderMap, String) {
    let token = token(state);
    send(state, Method::GET, target, &[(TOKEN, &token), accept])
}

fn json_read(state: &State, target: &str) -> Value {
    let (status, headers, body) = read(state, target, ACCEPT_JSON);
    assert_eq!(status, StatusCode::OK, "{target}: {body}");
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    serde_json::from_str(&body).expect("json")
}

fn text_read(state: &State, target: &str) -> String {
    let (status, headers, body) = read(state, target, ACCEPT_TEXT);
    assert_eq!(status, StatusCode::OK, "{target}: {body}");
    assert_eq!(headers[CONTENT_TYPE], "text/plain; charset=utf-8");
    body
}

/// The reasons of an error in the Linode API's form, as both clients read them.
fn reasons(headers: &HeaderMap, body: &str) -> Vec<String> {
    assert_eq!(headers[CONTENT_TYPE], "application/json", "{body}");
    let value: Value = serde_json::from_str(body).expect("json error");
    value["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["reason"].as_str().expect("reason").to_owned())
        .collect()
}

#[test]
fn stable_values() {
    assert_eq!(INSTANCE_ID, 12_345_678);
    assert_eq!(LABEL, "emu-node-0");
    assert_eq!(REGION, "us-ord");
    let state = state();
    let instance = json_read(&state, "/v1/instance");
    assert_eq!(instance["id"], 12_345_678);
    assert_eq!(instance["label"], "emu-node-0");
    assert_eq!(instance["region"], "us-ord");
}

#[test]
fn the_token_is_text_or_a_json_array() {
    let state = state();
    let text = token(&state);
    assert_eq!(text.len(), 56, "{text:?}");
    assert!(
        !text.contains(char::is_whitespace),
        "sent back as a header: {text:?}"
    );
    // No Accept at all (cloud-init, curl's `*/*`): text too.
    for headers in [&[(TTL, "300")][..], &[(TTL, "300"), ("Accept", "*/*")][..]] {
        let (status, _, bare) = send(&state, Method::PUT, "/v1/token", headers);
        assert_eq!(status, StatusCode::OK);
        assert_eq!(bare.len(), 56, "{bare:?}");
    }
    // The Go client's `Accept: application/json`: an array holding the token.
    let (status, headers, body) = send(
        &state,
        Method::PUT,
        "/v1/token",
        &[(TTL, "3600"), ACCEPT_JSON],
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    let array: Vec<String> = serde_json::from_str(&body).expect("array of strings");
    assert_eq!(array.len(), 1);
    // Both read.
    for token in [text, array[0].clone()] {
        let (status, _, _) = send(
            &state,
            Method::GET,
            "/v1/instance",
            &[(TOKEN, &token), ACCEPT_JSON],
        );
        assert_eq!(status, StatusCode::OK);
    }
    // The TTL is not echoed.
    let (_, headers, _) = send(&state, Method::PUT, "/v1/token", &[(TTL, "60")]);
    assert!(!headers.contains_key(TTL));
}

#[test]
fn the_ttl_is_required_and_within_a_day() {
    let state = state();
    for ttl in ["1", "86400", "0086400"] {
        let (status, _, _) = send(&state, Method::PUT, "/v1/token", &[(TTL, ttl)]);
        assert_eq!(status, StatusCode::OK, "{ttl}");
    }
    for (headers, why) in [
        (&[][..], "missing"),
        (&[(TTL, "0")][..], "zero"),
        (&[(TTL, "86401")][..], "beyond a day"),
        (&[(TTL, "99999999999")][..], "huge"),
        (&[(TTL, "")][..], "empty"),
        (&[(TTL, "+60")][..], "sign"),
        (&[(TTL, "-1")][..], "negative"),
        (&[(TTL, " 60")][..], "space"),
        (&[(TTL, "60s")][..], "unit"),
        (&[(TTL, "1.5")][..], "fraction"),
        (&[(TTL, "60"), (TTL, "60")][..], "repeated"),
        (
            &[("X-aws-ec2-metadata-token-ttl-seconds", "60")][..],
            "AWS's header",
        ),
        (
            &[("X-Metadata-Token-Expiry-Seconds", "60")][..],
            "the beta's header",
        ),
    ] {
        let (status, headers, body) = send(&state, Method::PUT, "/v1/token", headers);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{why}");
        let reasons = reasons(&headers, &body);
        assert!(reasons[0].contains("86400"), "{why}: {reasons:?}");
    }
}

#[test]
fn the_token_path_takes_put_only() {
    let state = state();
    for method in [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
    ] {
        let (status, headers, body) = send(&state, method.clone(), "/v1/token", &[(TTL, "60")]);
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers[ALLOW], "PUT", "{method}");
        if method == Method::HEAD {
            assert!(body.is_empty());
        } else {
            assert_eq!(reasons(&headers, &body), ["Method Not Allowed"]);
        }
    }
}

#[test]
fn reads_need_one_valid_token() {
    let state = state();
    let good = token(&state);
    let mut altered = good.clone().into_bytes();
    altered[20] = if altered[20] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ascii");
    let foreign = token(&self::state());
    for path in READS {
        for (headers, why) in [
            (vec![], "none"),
            (vec![(TOKEN, "tok")], "unknown"),
            (vec![(TOKEN, "")], "empty"),
            (vec![(TOKEN, altered.as_str())], "altered"),
            (vec![(TOKEN, foreign.as_str())], "another emulator's"),
            (vec![(TOKEN, good.as_str()), (TOKEN, good.as_str())], "two"),
            (
                vec![("X-aws-ec2-metadata-token", good.as_str())],
                "AWS's header",
            ),
            (
                vec![("X-Metadata-Token", good.as_str())],
                "the beta's header",
            ),
        ] {
            for accept in [ACCEPT_JSON, ACCEPT_TEXT] {
                let mut headers = headers.clone();
                headers.push(accept);
                let (status, answer_headers, body) = send(&state, Method::GET, path, &headers);
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {why}");
                assert_eq!(reasons(&answer_headers, &body), ["Unauthorized"]);
            }
        }
        let (status, _, _) = send(&state, Method::GET, path, &[(TOKEN, &good)]);
        assert_eq!(status, StatusCode::OK, "{path}");
    }
}

#[test]
fn tokens_expire_after_their_ttl() {
    let state = state();
    let start = Instant::now();
    let put = request(Method::PUT, "/v1/token", &[(TTL, "2")]);
    let (status, _, token) = collect(handle_at(&state, &put, start));
    assert_eq!(status, StatusCode::OK);
    let get = request(Method::GET, "/v1/instance", &[(TOKEN, &token)]);
    for (after, expected) in [
        (Duration::ZERO, StatusCode::OK),
        (Duration::from_millis(1999), StatusCode::OK),
        (Duration::from_secs(2), StatusCode::UNAUTHORIZED),
        (Duration::from_secs(86_400), StatusCode::UNAUTHORIZED),
    ] {
        let (status, _, _) = collect(handle_at(&state, &get, start + after));
        assert_eq!(status, expected, "{after:?}");
    }
    // A day's token lasts a day.
    let put = request(Method::PUT, "/v1/token", &[(TTL, "86400")]);
    let (_, _, token) = collect(handle_at(&state, &put, start));
    let get = request(Method::GET, "/v1/instance", &[(TOKEN, &token)]);
    let (status, _, _) = collect(handle_at(&state, &get, start + Duration::from_secs(86_399)));
    assert_eq!(status, StatusCode::OK);
}

/// An address with its prefix length, as the Go client's `netip.Prefix` parses it.
fn assert_prefix(value: &Value) {
    let text = value.as_str().expect("string");
    let (address, length) = text.split_once('/').expect("prefix length");
    let address: IpAddr = address.parse().expect("address");
    let length: u8 = length.parse().expect("length");
    assert!(length <= if address.is_ipv4() { 32 } else { 128 }, "{text}");
}

#[test]
fn the_instance_has_what_the_clients_read() {
    let state = state();
    let instance = json_read(&state, "/v1/instance");
    assert!(instance["id"].is_u64());
    for key in ["label", "region", "type", "host_uuid", "account_euuid"] {
        assert!(instance[key].is_string(), "{key}");
    }
    assert_eq!(instance["tags"], serde_json::json!(["k8s"]));
    for key in ["vcpus", "memory", "disk", "transfer", "gpus"] {
        assert!(instance["specs"][key].is_u64(), "specs.{key}");
    }
    assert_eq!(instance["backups"]["enabled"], false);
    assert!(instance["backups"]["status"].is_null());
    assert!(instance["image"]["id"].is_string());
    assert!(instance["image"]["label"].is_string());
    assert_eq!(
        text_read(&state, "/v1/instance"),
        "account_euuid: 7c1e5a3b-2d4f-4e6a-8b0c-9d1e2f3a4b5c\n\
         backups.enabled: false\n\
         host_uuid: 4f0c2b7e9a1d3c5e7f9b1d3f5a7c9e1b3d5f7a9c\n\
         id: 12345678\n\
         image.id: linode/debian12\n\
         image.label: Debian 12\n\
         label: emu-node-0\n\
         region: us-ord\n\
         specs.disk: 81920\n\
         specs.gpus: 0\n\
         specs.memory: 4096\n\
         specs.transfer: 4000\n\
         specs.vcpus: 2\n\
         tags: k8s\n\
         type: g6-standard-2\n"
    );
}

#[test]
fn the_network_has_what_the_clients_read() {
    let state = state();
    let network = json_read(&state, "/v1/network");
    let interfaces = network["interfaces"].as_array().expect("interfaces");
    assert_eq!(interfaces.len(), 2);
    for interface in interfaces {
        assert!(interface["label"].is_string());
        assert!(interface["purpose"].is_string());
        let ipam = &interface["ipam_address"];
        if !ipam.is_null() {
            assert_prefix(ipam);
        }
    }
    for key in ["public", "private", "shared"] {
        for address in network["ipv4"][key].as_array().expect("list") {
            assert_prefix(address);
        }
    }
    for key in ["ranges", "shared_ranges"] {
        for address in network["ipv6"][key].as_array().expect("list") {
            assert_prefix(address);
        }
    }
    assert_prefix(&network["ipv6"]["slaac"]);
    assert_prefix(&network["ipv6"]["link_local"]);
    // Empty strings, nulls and empty lists have no line; objects of a list are numbered.
    assert_eq!(
        text_read(&state, "/v1/network"),
        "interfaces.0.purpose: public\n\
         interfaces.1.ipam_address: 10.0.0.2/24\n\
         interfaces.1.label: emu-vlan\n\
         interfaces.1.purpose: vlan\n\
         ipv4.private: 192.168.139.20/17\n\
         ipv4.public: 203.0.113.30/32\n\
         ipv6.link_local: fe80::f03c:95ff:fe4a:1b2c/128\n\
         ipv6.slaac: 2001:db8::f03c:95ff:fe4a:1b2c/128\n"
    );
}

#[test]
fn the_ssh_keys_by_user() {
    let state = state();
    let keys = json_read(&state, "/v1/ssh-keys");
    let root = keys["users"]["root"].as_array().expect("root's keys");
    assert_eq!(root.len(), 1);
    let key = root[0].as_str().expect("key");
    assert!(key.starts_with("ssh-ed25519 "), "{key}");
    assert_eq!(
        text_read(&state, "/v1/ssh-keys"),
        format!("users.root: {key}\n")
    );
}

#[test]
fn a_list_of_scalars_is_one_line_per_element() {
    let doc = serde_json::json!({ "b": ["x", "y"], "a": { "n": null, "e": [], "s": "" }, "c": 1 });
    assert_eq!(super::text(&doc), "b: x\nb: y\nc: 1\n");
}

#[test]
fn the_user_data_is_base64_text_whatever_the_accept() {
    let state = state();
    for accept in [ACCEPT_TEXT, ACCEPT_JSON, ("Accept", "*/*")] {
        let (status, headers, body) = read(&state, "/v1/user-data", accept);
        assert_eq!(status, StatusCode::OK, "{accept:?}");
        assert_eq!(headers[CONTENT_TYPE], "text/plain; charset=utf-8");
        assert!(!body.ends_with('\n'));
        let decoded = STANDARD.decode(&body).expect("base64");
        let script = String::from_utf8(decoded).expect("utf-8");
        assert_eq!(script, USER_DATA);
        assert!(script.starts_with("#!/bin/bash\n"));
        assert!(script
            .lines()
            .any(|l| l == "NODE_BOOTSTRAP_SECRET=emulator-not-a-secret"));
    }
}

#[test]
fn json_when_accept_names_it() {
    let state = state();
    for (accept, json) in [
        ("application/json", true),
        ("APPLICATION/JSON", true),
        ("application/json; charset=utf-8", true),
        ("text/plain, application/json;q=0.9", true),
        ("text/plain", false),
        ("*/*", false),
        ("application/*", false),
        ("text/html", false),
        ("application/jsonx", false),
    ] {
        let (status, headers, body) = read(&state, "/v1/instance", ("Accept", accept));
        assert_eq!(status, StatusCode::OK, "{accept}");
        let content_type = headers[CONTENT_TYPE].to_str().expect("ascii");
        assert_eq!(content_type == "application/json", json, "{accept}");
        assert_eq!(body.starts_with('{'), json, "{accept}: {body}");
    }
    // No Accept at all: text.
    let token = token(&state);
    let (_, _, body) = send(&state, Method::GET, "/v1/instance", &[(TOKEN, &token)]);
    assert!(body.starts_with("account_euuid: "), "{body}");
}

#[test]
fn unknown_and_unnormalised_paths_are_not_found() {
    let state = state();
    let good = token(&state);
    for path in [
        "/",
        "/v1",
        "/v1/",
        "/v1/instance/",
        "/v1/instance/id",
        "/v1/Instance",
        "/v1/user_data",
        "/v1/userdata",
        "/v1/ssh_keys",
        "/v1/token/",
        "/v1//instance",
        "//v1/instance",
        "/v1/./instance",
        "/v1/../v1/instance",
        "/v1/network/../instance",
        "/v2/instance",
        "/latest/meta-data/",
        "/latest/api/token",
        "/v1/maintenance",
    ] {
        for headers in [vec![], vec![(TOKEN, good.as_str())]] {
            let (status, answer_headers, body) = send(&state, Method::GET, path, &headers);
            assert_eq!(status, StatusCode::NOT_FOUND, "{path} {headers:?}");
            assert_eq!(reasons(&answer_headers, &body), ["Not Found"]);
        }
    }
    // The query string is ignored.
    let (status, _, _) = send(
        &state,
        Method::GET,
        "/v1/instance?x=1",
        &[(TOKEN, &good), ACCEPT_JSON],
    );
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn reads_take_get_and_head_only() {
    let state = state();
    let good = token(&state);
    for path in READS.into_iter().chain(["/v1/unknown", "/v1/token/", "/"]) {
        for method in [
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ] {
            let (status, headers, _) =
                send(&state, method.clone(), path, &[(TOKEN, &good), (TTL, "60")]);
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert_eq!(headers[ALLOW], "GET, HEAD", "{method} {path}");
        }
    }
}

#[test]
fn head_is_get_without_the_body() {
    let state = state();
    let good = token(&state);
    let paths = READS.into_iter().chain(["/v1/unknown"]);
    for path in paths {
        for headers in [
            vec![(TOKEN, good.as_str()), ACCEPT_JSON],
            vec![(TOKEN, good.as_str())],
            vec![],
        ] {
            let (get_status, get_headers, get_body) = send(&state, Method::GET, path, &headers);
            let (status, head_headers, body) = send(&state, Method::HEAD, path, &headers);
            assert_eq!(status, get_status, "{path}");
            assert_eq!(head_headers, get_headers, "{path}");
            assert_eq!(head_headers[CONTENT_LENGTH], get_body.len().to_string());
            assert!(body.is_empty(), "{path}");
        }
    }
}
