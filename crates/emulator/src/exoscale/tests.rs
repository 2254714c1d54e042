use super::super::handler::{handle, State};
use super::super::{build_state, EmulatorOptions};
use super::*;
use http::header::{ALLOW, SERVER};
use http::{Method, Request, StatusCode};
use imds_guard_core::cloud::Cloud;

fn state_with(metadata: Option<Value>) -> State {
    build_state(EmulatorOptions {
        cloud: Cloud::Exoscale,
        metadata,
        ..EmulatorOptions::default()
    })
    .expect("valid options")
}

fn send(state: &State, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let reply = handle(state, &builder.body(()).expect("request"));
    let (parts, body) = reply.response.into_parts();
    let body = http_body_util::BodyExt::collect(body);
    let body = futures::executor::block_on(body).expect("body").to_bytes();
    Response {
        status: parts.status,
        allow: parts
            .headers
            .get(ALLOW)
            .map(|v| v.to_str().expect("ascii").to_owned()),
        server: parts.headers.contains_key(SERVER),
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

struct Response {
    status: StatusCode,
    allow: Option<String>,
    server: bool,
    body: String,
}

fn get(state: &State, path: &str) -> (StatusCode, String) {
    let response = send(state, Method::GET, path, &[]);
    (response.status, response.body)
}

#[test]
fn both_roots_serve_the_same_tree() {
    let state = state_with(None);
    assert_eq!(get(&state, "/"), (StatusCode::OK, "1.0\nlatest".to_owned()));
    for root in ["/1.0", "/latest"] {
        let ok = |path: &str, want: &str| {
            assert_eq!(
                get(&state, &format!("{root}{path}")),
                (StatusCode::OK, want.to_owned()),
                "{root}{path}"
            );
        };
        ok("", "meta-data\nuser-data");
        ok("/", "meta-data\nuser-data");
        ok(
            "/meta-data/",
            "availability-zone\ninstance-id\nlocal-hostname\npublic-ipv4\npublic-keys/\n\
             service-offering\nvm-id",
        );
        ok("/meta-data/instance-id", INSTANCE_ID);
        ok("/meta-data/vm-id", INSTANCE_ID);
        ok("/meta-data/local-hostname", "emu-node-0");
        ok("/meta-data/availability-zone", "ch-gva-2");
        ok("/meta-data/service-offering", "standard.medium");
        ok("/meta-data/public-ipv4", "203.0.113.45");
        ok("/meta-data/public-keys/", "0=node-key");
        ok("/meta-data/public-keys/0/", "openssh-key");
        ok("/meta-data/public-keys/0/openssh-key", PUBLIC_KEY);
        let (status, user_data) = get(&state, &format!("{root}/user-data"));
        assert_eq!(status, StatusCode::OK);
        assert!(
            user_data.contains("\nNODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n"),
            "{user_data}"
        );
    }
}

#[test]
fn there_are_no_tokens_and_no_credentials() {
    let state = state_with(None);
    let put = send(
        &state,
        Method::PUT,
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.allow.as_deref(), Some("GET, HEAD"));
    for missing in [
        "/latest/api/token",
        "/1.0/api/token",
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/info",
        "/latest/dynamic/instance-identity/document",
    ] {
        assert_eq!(get(&state, missing).0, StatusCode::NOT_FOUND, "{missing}");
    }
    let read = send(
        &state,
        Method::GET,
        "/1.0/meta-data/instance-id",
        &[("x-aws-ec2-metadata-token", "not-a-token")],
    );
    assert_eq!(read.status, StatusCode::OK, "token headers are ignored");
}

#[test]
fn a_role_added_by_an_override_is_only_a_value() {
    let state = state_with(Some(json!({
        "meta-data": { "iam": { "security-credentials": { "some-role": "stored" } } },
    })));
    assert_eq!(
        get(&state, "/1.0/meta-data/iam/security-credentials/some-role"),
        (StatusCode::OK, "stored".to_owned())
    );
}

#[test]
fn methods_and_paths_are_strict() {
    let state = state_with(None);
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
        let response = send(&state, method.clone(), "/1.0/meta-data/instance-id", &[]);
        assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(response.allow.as_deref(), Some("GET, HEAD"), "{method}");
    }
    let head = send(&state, Method::HEAD, "/1.0/meta-data/instance-id", &[]);
    assert_eq!((head.status, head.body.as_str()), (StatusCode::OK, ""));
    assert!(!head.server, "no Server header");
    for missing in [
        "/1.0x/meta-data/",
        "/1.1/meta-data/",
        "/2009-04-04/meta-data/instance-id",
        "/meta-data/instance-id",
        "/latest/instance-id",
        "/1.0/meta-data/../user-data",
        "/1.0/./meta-data/instance-id",
        "/1.0//meta-data/instance-id",
        "/1.0/meta-data/instance-id//",
        "/1.0/Meta-Data/instance-id",
        "/1.0/meta-data/public-keys/1",
        "/openstack/latest/meta_data.json",
    ] {
        let response = send(&state, Method::GET, missing, &[]);
        assert_eq!(response.status, StatusCode::NOT_FOUND, "{missing}");
        assert!(!response.server, "{missing}");
    }
}
