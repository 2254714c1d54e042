use std::sync::Arc;

use super::super::handler::State;
use super::super::{build_state, dispatch, EmulatorOptions};
use super::*;
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_TYPE, SERVER};
use http::{HeaderMap, Method, Request};
use imds_guard_core::cloud::Cloud;

fn state() -> Arc<State> {
    Arc::new(
        build_state(EmulatorOptions {
            cloud: Cloud::Huawei,
            ..EmulatorOptions::default()
        })
        .expect("valid options"),
    )
}

/// One request through the cloud's dispatch, as the server answers it.
fn send_with(
    state: &Arc<State>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static str,
) -> (StatusCode, HeaderMap, String) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder
        .body(Bytes::from_static(body.as_bytes()))
        .expect("request");
    let response = futures::executor::block_on(dispatch::respond(Arc::clone(state), req));
    let (parts, body) = response.into_parts();
    let body = http_body_util::BodyExt::collect(body);
    let body = futures::executor::block_on(body).expect("body").to_bytes();
    let body = String::from_utf8(body.to_vec()).expect("utf-8");
    (parts.status, parts.headers, body)
}

fn get(state: &Arc<State>, path: &str) -> (StatusCode, String) {
    let (status, _, body) = send_with(state, Method::GET, path, &[], "");
    (status, body)
}

const SECURITYKEY_PATH: &str = "/openstack/latest/securitykey";

#[test]
fn securitykey_is_the_agencys_unexpired_temporary_keys() {
    let state = state();
    let (status, headers, body) = send_with(&state, Method::GET, SECURITYKEY_PATH, &[], "");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[CONTENT_TYPE], "application/json");
    let doc: Value = serde_json::from_str(&body).expect("json");
    let credential = doc["credential"].as_object().expect("an object");
    let mut keys: Vec<&str> = credential.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["access", "expires_at", "secret", "securitytoken"]);
    let access = credential["access"].as_str().expect("str");
    assert!(
        access.len() == 20
            && access
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "{access}"
    );
    assert_eq!(credential["secret"].as_str().map(str::len), Some(40));
    assert!(credential["securitytoken"]
        .as_str()
        .is_some_and(|t| t.len() > 100));
    // `%Y-%m-%dT%H:%M:%S.%fZ`, microseconds always present, as the SDK parses it.
    let expires = credential["expires_at"].as_str().expect("str");
    let b = expires.as_bytes();
    assert!(
        b.len() == 27
            && b[10] == b'T'
            && b[19] == b'.'
            && b[20..26].iter().all(u8::is_ascii_digit)
            && b[26] == b'Z',
        "{expires}"
    );
    let expires = humantime::parse_rfc3339(expires).expect("rfc3339");
    assert!(expires > SystemTime::now(), "unexpired");
    // The same window, the same keys.
    assert_eq!(get(&state, SECURITYKEY_PATH).1, body);
    let (status, headers, empty) = send_with(&state, Method::HEAD, SECURITYKEY_PATH, &[], "");
    assert_eq!((status, empty.as_str()), (StatusCode::OK, ""));
    assert_eq!(headers[CONTENT_LENGTH], body.len().to_string());
}

#[test]
fn securitykey_is_in_latest_only_and_read_only() {
    let state = state();
    let latest = get(&state, "/openstack/latest/").1;
    assert_eq!(
        latest,
        "meta_data.json\nnetwork_data.json\npassword\nsecuritykey\nuser_data\n\
         vendor_data.json\nvendor_data2.json"
    );
    let dated = get(&state, "/openstack/2020-10-14/").1;
    assert!(!dated.contains("securitykey"), "{dated}");
    for missing in [
        "/openstack/2020-10-14/securitykey",
        "/openstack/2012-08-10/securitykey",
        "/openstack/latest/securitykey/",
        "/openstack/latest//securitykey",
        "/openstack/latest/../latest/securitykey",
        "/openstack/latest/SecurityKey",
        "/latest/securitykey",
        "/latest/meta-data/securitykey",
    ] {
        assert_eq!(get(&state, missing).0, StatusCode::NOT_FOUND, "{missing}");
    }
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let (status, headers, _) = send_with(&state, method.clone(), SECURITYKEY_PATH, &[], "x");
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers[ALLOW], "GET, HEAD", "{method}");
    }
}

#[test]
fn meta_data_is_huaweis_and_the_rest_is_openstacks() {
    let state = state();
    let (status, body) = get(&state, "/openstack/latest/meta_data.json");
    assert_eq!(status, StatusCode::OK);
    let meta: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(meta["uuid"], UUID);
    assert_eq!(meta["region_id"], "cn-north-4");
    assert_eq!(meta["availability_zone"], "cn-north-4a");
    assert_eq!(meta["instance_type"], "s6.large.2");
    assert_eq!(meta["enterprise_project_id"], "0");
    assert_eq!(
        meta["meta"]["metering.cloudServiceType"],
        "hws.service.type.ec2"
    );
    assert!(meta["public_keys"]["node-key"].is_string());
    // A dated version serves the same document.
    assert_eq!(get(&state, "/openstack/2018-08-27/meta_data.json").1, body);
    let (status, user_data) = get(&state, "/openstack/latest/user_data");
    assert_eq!(status, StatusCode::OK);
    assert!(
        user_data.contains("\nNODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n"),
        "{user_data}"
    );
    assert_eq!(
        get(&state, "/openstack/latest/network_data.json").0,
        StatusCode::OK
    );
    // The password as Nova keeps it: posted once.
    let password = "/openstack/latest/password";
    assert_eq!(get(&state, password), (StatusCode::OK, String::new()));
    assert_eq!(
        send_with(&state, Method::POST, password, &[], "c2VjcmV0").0,
        StatusCode::OK
    );
    assert_eq!(get(&state, password).1, "c2VjcmV0");
    assert_eq!(
        send_with(&state, Method::POST, password, &[], "again").0,
        StatusCode::CONFLICT
    );
}

#[test]
fn the_ec2_tree_has_huaweis_values_and_no_tokens_or_credentials() {
    let state = state();
    let ok = |path: &str, want: &str| {
        assert_eq!(
            get(&state, path),
            (StatusCode::OK, want.to_owned()),
            "{path}"
        );
    };
    ok("/latest/", "meta-data\nuser-data");
    ok("/latest/meta-data/instance-id", EC2_INSTANCE_ID);
    ok("/latest/meta-data/instance-type", "s6.large.2");
    ok(
        "/latest/meta-data/placement/availability-zone",
        "cn-north-4a",
    );
    ok("/latest/meta-data/hostname", "emu-node-0.novalocal");
    ok("/latest/meta-data/public-keys/0/openssh-key", PUBLIC_KEY);
    let (status, user_data) = get(&state, "/latest/user-data");
    assert_eq!(status, StatusCode::OK);
    assert!(user_data.contains("NODE_BOOTSTRAP_SECRET=emulator-not-a-secret"));
    for missing in [
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/info",
        "/latest/api/token",
        "/meta-data/latest/api/token",
        "/latest/meta-data/../user-data",
        "/1.0/meta-data/instance-id",
    ] {
        assert_eq!(get(&state, missing).0, StatusCode::NOT_FOUND, "{missing}");
    }
    // The SDK's token probe is refused with a status it takes for "no token flow".
    for path in ["/meta-data/latest/api/token", "/latest/api/token"] {
        let (status, headers, _) = send_with(
            &state,
            Method::PUT,
            path,
            &[("x-metadata-token-ttl-seconds", "21600")],
            "",
        );
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{path}");
        assert_eq!(headers[ALLOW], "GET, HEAD", "{path}");
    }
    let (status, headers, body) = send_with(
        &state,
        Method::GET,
        SECURITYKEY_PATH,
        &[("x-metadata-token", "not-a-token")],
        "",
    );
    assert_eq!(status, StatusCode::OK, "token headers are ignored: {body}");
    assert!(headers.get(SERVER).is_none());
    let (_, headers, _) = send_with(&state, Method::GET, "/latest/meta-data/", &[], "");
    assert!(headers.get(SERVER).is_none());
}
