use super::super::handler::{handle, State};
use super::super::{build_state, EmulatorOptions};
use super::*;
use http::header::{ALLOW, CONTENT_LENGTH, SERVER};
use http::{HeaderMap, Method, Request, StatusCode};
use imds_guard_core::cloud::Cloud;

fn state() -> State {
    build_state(EmulatorOptions {
        cloud: Cloud::Tencent,
        ..EmulatorOptions::default()
    })
    .expect("valid options")
}

fn send_with(
    state: &State,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, String) {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let reply = handle(state, &builder.body(()).expect("request"));
    let (parts, body) = reply.response.into_parts();
    let body = http_body_util::BodyExt::collect(body);
    let body = futures::executor::block_on(body).expect("body").to_bytes();
    let body = String::from_utf8(body.to_vec()).expect("utf-8");
    (parts.status, parts.headers, body)
}

fn get(state: &State, path: &str) -> (StatusCode, String) {
    let (status, _, body) = send_with(state, Method::GET, path, &[]);
    (status, body)
}

#[test]
fn the_tree_has_tencents_documented_leaves() {
    let state = state();
    let ok = |path: &str, want: &str| {
        assert_eq!(
            get(&state, path),
            (StatusCode::OK, want.to_owned()),
            "{path}"
        );
    };
    ok("/", "latest");
    ok("/latest/", "meta-data\nuser-data");
    ok("/latest/meta-data/instance-id", INSTANCE_ID);
    ok("/latest/meta-data/uuid", UUID);
    ok("/latest/meta-data/instance-name", "emu-node-0");
    ok("/latest/meta-data/placement/region", "ap-guangzhou");
    ok("/latest/meta-data/placement/zone", "ap-guangzhou-3");
    ok("/latest/meta-data/instance/instance-type", "S5.MEDIUM4");
    ok("/latest/meta-data/instance/image-id", "img-eb30mz89");
    ok("/latest/meta-data/app-id", "1250000000");
    let mac = get(&state, "/latest/meta-data/mac").1;
    let ip = get(&state, "/latest/meta-data/local-ipv4").1;
    ok(
        &format!("/latest/meta-data/network/interfaces/macs/{mac}/primary-local-ipv4"),
        &ip,
    );
    ok(
        &format!("/latest/meta-data/network/interfaces/macs/{mac}/local-ipv4s/{ip}/local-ipv4"),
        &ip,
    );
    let listing = get(&state, "/latest/meta-data/").1;
    for entry in [
        "cam/",
        "instance/",
        "network/",
        "placement/",
        "public-ipv4",
        "uuid",
    ] {
        assert!(listing.lines().any(|l| l == entry), "{entry}: {listing}");
    }
    let (status, user_data) = get(&state, "/latest/user-data");
    assert_eq!(status, StatusCode::OK);
    assert!(
        user_data.contains("\nNODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n"),
        "{user_data}"
    );
}

#[test]
fn cam_role_credentials_have_tencents_shape() {
    let state = state();
    // The listing is the bare name: the SDK uses the whole answer as the role.
    assert_eq!(
        get(&state, "/latest/meta-data/cam/security-credentials/"),
        (StatusCode::OK, ROLE.to_owned())
    );
    assert_eq!(
        get(&state, "/latest/meta-data/cam/security-credentials").1,
        ROLE
    );
    let (status, body) = get(
        &state,
        &format!("/latest/meta-data/cam/security-credentials/{ROLE}"),
    );
    assert_eq!(status, StatusCode::OK);
    let order = [
        "TmpSecretId",
        "TmpSecretKey",
        "ExpiredTime",
        "Expiration",
        "Token",
        "Code",
    ];
    let positions: Vec<usize> = order
        .iter()
        .map(|k| body.find(&format!("\"{k}\"")).expect("key present"))
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{body}");
    let doc: Value = serde_json::from_str(&body).expect("json");
    assert_eq!(doc["Code"], "Success");
    assert!(doc["TmpSecretId"]
        .as_str()
        .is_some_and(|id| id.starts_with("AKID") && id.len() == 36));
    assert!(doc["TmpSecretKey"].as_str().is_some_and(|k| k.len() == 32));
    assert!(doc["Token"].as_str().is_some_and(|t| !t.is_empty()));
    let expired = doc["ExpiredTime"].as_u64().expect("a number");
    let expiration =
        humantime::parse_rfc3339(doc["Expiration"].as_str().expect("str")).expect("rfc3339");
    let expiration_secs = expiration
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_secs();
    assert_eq!(expired, expiration_secs);
    assert!(expiration > SystemTime::now(), "unexpired");
    // The same window, the same credentials.
    let again = get(
        &state,
        &format!("/latest/meta-data/cam/security-credentials/{ROLE}"),
    );
    assert_eq!(again.1, body);
    // Another role, AWS's and Alibaba's directories: nothing there.
    for missing in [
        "/latest/meta-data/cam/security-credentials/other-role",
        "/latest/meta-data/cam/security-credentials//",
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/ram/security-credentials/",
    ] {
        assert_eq!(get(&state, missing).0, StatusCode::NOT_FOUND, "{missing}");
    }
}

#[test]
fn there_is_no_token_flow() {
    let state = state();
    let (status, headers, _) = send_with(
        &state,
        Method::PUT,
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[ALLOW], "GET, HEAD");
    assert_eq!(get(&state, "/latest/api/token").0, StatusCode::NOT_FOUND);
    // Token headers of other clouds are ignored, valid or not.
    for header in ["x-aws-ec2-metadata-token", "x-aliyun-ecs-metadata-token"] {
        let (status, _, id) = send_with(
            &state,
            Method::GET,
            "/latest/meta-data/instance-id",
            &[(header, "not-a-token")],
        );
        assert_eq!((status, id.as_str()), (StatusCode::OK, INSTANCE_ID));
    }
}

#[test]
fn methods_and_paths_are_strict() {
    let state = state();
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let (status, headers, _) =
            send_with(&state, method.clone(), "/latest/meta-data/instance-id", &[]);
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers[ALLOW], "GET, HEAD", "{method}");
    }
    let (status, headers, body) =
        send_with(&state, Method::HEAD, "/latest/meta-data/instance-id", &[]);
    assert_eq!(status, StatusCode::OK);
    assert!(body.is_empty());
    assert_eq!(headers[CONTENT_LENGTH], INSTANCE_ID.len().to_string());
    assert!(headers.get(SERVER).is_none(), "no Server header");
    for missing in [
        "/meta-data/instance-id",
        "/1.0/meta-data/instance-id",
        "/2017-09-19/meta-data/instance-id",
        "/latest/instance-id",
        "/latest/meta-data/../user-data",
        "/latest/meta-data/./instance-id",
        "/latest//meta-data/instance-id",
        "/latest/meta-data%2Finstance-id",
        "/latest/meta-data/instance-id//",
        "/latest/meta-data/Instance-Id",
        "/latest/dynamic/instance-identity/document",
        "/openstack/latest/meta_data.json",
    ] {
        let (status, headers, _) = send_with(&state, Method::GET, missing, &[]);
        assert_eq!(status, StatusCode::NOT_FOUND, "{missing}");
        assert!(headers.get(SERVER).is_none(), "{missing}");
    }
}
