use super::super::handler::{handle, State};
use super::super::{build_state, EmulatorOptions, TokenMode};
use super::*;
use http::{Method, Request, StatusCode};
use imds_guard_core::cloud::{Cloud, ALIBABA_TOKEN_HEADER, ALIBABA_TOKEN_TTL_HEADER};

fn state(tokens: TokenMode) -> State {
    build_state(EmulatorOptions {
        cloud: Cloud::Alibaba,
        tokens,
        ..EmulatorOptions::default()
    })
    .expect("valid options")
}

fn send(
    state: &State,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let reply = handle(state, &builder.body(()).expect("request"));
    let status = reply.response.status();
    let body = http_body_util::BodyExt::collect(reply.response.into_body());
    let body = futures::executor::block_on(body).expect("body").to_bytes();
    (status, String::from_utf8(body.to_vec()).expect("utf-8"))
}

fn token(state: &State) -> String {
    let (status, token) = send(
        state,
        Method::PUT,
        "/latest/api/token",
        &[(ALIBABA_TOKEN_TTL_HEADER, "21600")],
    );
    assert_eq!(status, StatusCode::OK);
    token
}

#[test]
fn tokens_use_alibabas_headers_and_range() {
    let state = state(TokenMode::Optional);
    for bad in ["0", "21601", "x"] {
        let put = send(
            &state,
            Method::PUT,
            "/latest/api/token",
            &[(ALIBABA_TOKEN_TTL_HEADER, bad)],
        );
        assert_eq!(put.0, StatusCode::BAD_REQUEST, "{bad}");
    }
    // AWS's header is not Alibaba's.
    let aws = send(
        &state,
        Method::PUT,
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(aws.0, StatusCode::BAD_REQUEST);
    let forwarded = send(
        &state,
        Method::PUT,
        "/latest/api/token",
        &[
            (ALIBABA_TOKEN_TTL_HEADER, "60"),
            ("x-forwarded-for", "10.0.0.1"),
        ],
    );
    assert_eq!(forwarded.0, StatusCode::FORBIDDEN);
    let token = token(&state);
    let read = send(
        &state,
        Method::GET,
        "/latest/meta-data/instance-id",
        &[(ALIBABA_TOKEN_HEADER, &token)],
    );
    assert_eq!(read, (StatusCode::OK, INSTANCE_ID.to_owned()));
    let bad = send(
        &state,
        Method::GET,
        "/latest/meta-data/instance-id",
        &[(ALIBABA_TOKEN_HEADER, "nope")],
    );
    assert_eq!(bad.0, StatusCode::UNAUTHORIZED);
    // Optional mode serves tokenless reads.
    assert_eq!(
        send(&state, Method::GET, "/latest/meta-data/region-id", &[]).0,
        StatusCode::OK
    );
}

#[test]
fn hardened_mode_forbids_tokenless_reads() {
    let state = state(TokenMode::Required);
    let (status, body) = send(&state, Method::GET, "/latest/meta-data/instance-id", &[]);
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!body.contains(INSTANCE_ID));
    let bad = send(
        &state,
        Method::GET,
        "/latest/meta-data/instance-id",
        &[(ALIBABA_TOKEN_HEADER, "nope")],
    );
    assert_eq!(bad.0, StatusCode::UNAUTHORIZED);
    let token = token(&state);
    let ok = send(
        &state,
        Method::GET,
        "/latest/user-data",
        &[(ALIBABA_TOKEN_HEADER, &token)],
    );
    assert!(ok.1.contains("NODE_BOOTSTRAP_SECRET"), "{ok:?}");
}

#[test]
fn ram_credentials_have_alibabas_shape() {
    let state = state(TokenMode::Optional);
    let listing = send(
        &state,
        Method::GET,
        "/latest/meta-data/ram/security-credentials/",
        &[],
    );
    assert_eq!(listing, (StatusCode::OK, ROLE.to_owned()));
    let (status, body) = send(
        &state,
        Method::GET,
        &format!("/latest/meta-data/ram/security-credentials/{ROLE}"),
        &[],
    );
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["Code"], "Success");
    assert!(doc["AccessKeyId"]
        .as_str()
        .is_some_and(|k| k.starts_with("STS.")));
    for key in [
        "AccessKeySecret",
        "SecurityToken",
        "Expiration",
        "LastUpdated",
    ] {
        assert!(doc[key].is_string(), "{key}");
    }
    // No AWS paths here.
    assert_eq!(
        send(&state, Method::GET, "/latest/meta-data/iam/info", &[]).0,
        StatusCode::NOT_FOUND
    );
}
