use super::super::{build_state, EmulatorOptions};
use super::*;
use imds_guard_core::cloud::Cloud;

fn send(state: &State, method: Method, path: &str, body: &'static str) -> (StatusCode, String) {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .body(Bytes::from_static(body.as_bytes()))
        .expect("request");
    let response = handle(state, &req);
    let status = response.status();
    let body = http_body_util::BodyExt::collect(response.into_body());
    let body = futures::executor::block_on(body).expect("body").to_bytes();
    (status, String::from_utf8(body.to_vec()).expect("utf-8"))
}

fn state() -> State {
    build_state(EmulatorOptions {
        cloud: Cloud::Openstack,
        ..EmulatorOptions::default()
    })
    .expect("valid")
}

#[test]
fn versions_and_files() {
    let state = state();
    let (status, versions) = send(&state, Method::GET, "/openstack/", "");
    assert_eq!(status, StatusCode::OK);
    assert!(
        versions.starts_with("2012-08-10\n") && versions.ends_with("\nlatest"),
        "{versions}"
    );
    assert_eq!(send(&state, Method::GET, "/openstack", "").1, versions);
    assert_eq!(
        send(&state, Method::GET, "/openstack/latest/", "").1,
        "meta_data.json\nnetwork_data.json\npassword\nuser_data\nvendor_data.json\nvendor_data2.json"
    );
    assert_eq!(
        send(&state, Method::GET, "/openstack/2012-08-10/", "").1,
        "meta_data.json\nuser_data"
    );
    let meta: serde_json::Value =
        serde_json::from_str(&send(&state, Method::GET, "/openstack/latest/meta_data.json", "").1)
            .expect("json");
    assert_eq!(meta["uuid"], UUID);
    for key in [
        "name",
        "hostname",
        "availability_zone",
        "project_id",
        "public_keys",
        "meta",
    ] {
        assert!(!meta[key].is_null(), "{key}");
    }
    let network = send(
        &state,
        Method::GET,
        "/openstack/2018-08-27/network_data.json",
        "",
    );
    assert_eq!(network.0, StatusCode::OK);
    assert_eq!(
        send(&state, Method::GET, "/openstack/latest/user_data", "").1,
        USER_DATA
    );
    for missing in [
        "/openstack/2012-08-10/network_data.json",
        "/openstack/2099-01-01/",
        "/openstack/latest/user_data/",
        "/openstack/latest//user_data",
        "/openstack/latest/../latest/user_data",
        "/openstackx",
    ] {
        assert_eq!(
            send(&state, Method::GET, missing, "").0,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
}

#[test]
fn password_is_posted_once() {
    let state = state();
    let path = "/openstack/latest/password";
    assert_eq!(
        send(&state, Method::GET, path, ""),
        (StatusCode::OK, String::new())
    );
    assert_eq!(
        send(&state, Method::POST, path, "c2VjcmV0").0,
        StatusCode::OK
    );
    assert_eq!(send(&state, Method::GET, path, "").1, "c2VjcmV0");
    assert_eq!(
        send(&state, Method::POST, path, "again").0,
        StatusCode::CONFLICT
    );
    assert_eq!(
        send(&state, Method::POST, "/openstack/latest/user_data", "x").0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    let long: &'static str = Box::leak("x".repeat(MAX_PASSWORD + 1).into_boxed_str());
    assert_eq!(
        send(&self::state(), Method::POST, path, long).0,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn the_ec2_tree_has_no_token_flow() {
    let state = state();
    let (status, id) = send(&state, Method::GET, "/latest/meta-data/instance-id", "");
    assert_eq!(
        (status, id.as_str()),
        (StatusCode::OK, "i-0123456789abcdef0")
    );
    assert_eq!(
        send(&state, Method::PUT, "/latest/api/token", "").0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(
        send(&state, Method::GET, "/latest/api/token", "").0,
        StatusCode::NOT_FOUND
    );
    let req = Request::builder()
        .uri("/latest/meta-data/instance-id")
        .header("x-aws-ec2-metadata-token", "not-a-token")
        .body(Bytes::new())
        .expect("request");
    assert_eq!(
        handle(&state, &req).status(),
        StatusCode::OK,
        "token headers are ignored"
    );
    assert!(handle(&state, &req).headers().get("server").is_none());
}
