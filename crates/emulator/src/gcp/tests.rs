//! Tests of the GCE emulator's rules, through its handler (no sockets).

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use imds_guard_core::cloud::{Cloud, GCP_FLAVOR, GCP_FLAVOR_HEADER};
use serde_json::Value;

use super::super::{build_state, EmulatorOptions};
use super::tree::{SA_EMAIL, SECRET_MARKER};
use super::{handle, State};

const FLAVOR: (&str, &str) = (GCP_FLAVOR_HEADER, GCP_FLAVOR);
const SA: &str = "/computeMetadata/v1/instance/service-accounts/default/";
const MAINTENANCE: &str = "/computeMetadata/v1/instance/maintenance-event";

fn state(change_every: Option<Duration>) -> Arc<State> {
    let options = EmulatorOptions {
        cloud: Cloud::Gcp,
        change_every,
        ..EmulatorOptions::default()
    };
    Arc::new(build_state(options).expect("valid options"))
}

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }

    fn etag(&self) -> String {
        self.headers["etag"].to_str().expect("text").to_owned()
    }
}

async fn send(
    state: &Arc<State>,
    method: Method,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Got {
    let mut builder = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder.body(Bytes::from(body.to_owned())).expect("request");
    let response = handle(Arc::clone(state), req).await;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

async fn get(state: &Arc<State>, target: &str) -> Got {
    send(state, Method::GET, target, &[FLAVOR], "").await
}

#[tokio::test]
async fn the_header_is_demanded_and_every_answer_carries_it() {
    let state = state(None);
    let target = "/computeMetadata/v1/project/project-id";
    for headers in [
        &[][..],
        &[(GCP_FLAVOR_HEADER, "google")][..],
        &[FLAVOR, FLAVOR][..],
        &[("metadata", "true")][..],
    ] {
        let got = send(&state, Method::GET, target, headers, "").await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{headers:?}");
        assert_eq!(got.body, "Missing required header\n");
        assert_eq!(got.headers[GCP_FLAVOR_HEADER], GCP_FLAVOR);
    }
    let forwarded = send(
        &state,
        Method::GET,
        target,
        &[FLAVOR, ("x-forwarded-for", "10.0.0.1")],
        "",
    )
    .await;
    assert_eq!(forwarded.status, StatusCode::FORBIDDEN);
    assert_eq!(forwarded.headers[GCP_FLAVOR_HEADER], GCP_FLAVOR);
    let ok = get(&state, target).await;
    assert_eq!(
        (ok.status, ok.body.as_str()),
        (StatusCode::OK, "imds-guard-emu")
    );
    assert_eq!(ok.headers[GCP_FLAVOR_HEADER], GCP_FLAVOR);
    assert_eq!(ok.headers["content-type"], "application/text");
    assert_eq!(ok.etag().len(), 16);
    for refused in [
        get(&state, "/computeMetadata/v1/no-such-thing").await,
        get(&state, "/computeMetadata/v1/?bogus=1").await,
        send(&state, Method::POST, target, &[FLAVOR], "").await,
    ] {
        assert_eq!(
            refused.headers[GCP_FLAVOR_HEADER], GCP_FLAVOR,
            "{}",
            refused.status
        );
    }
}

#[tokio::test]
async fn listings_redirects_and_leaves() {
    let state = state(None);
    assert_eq!(get(&state, "/").await.body, "computeMetadata/\n");
    assert_eq!(get(&state, "/computeMetadata/").await.body, "v1/\n");
    assert_eq!(
        get(&state, "/computeMetadata/v1/").await.body,
        "instance/\nproject/\n"
    );
    let instance = get(&state, "/computeMetadata/v1/instance/").await.body;
    for line in [
        "attributes/",
        "hostname",
        "id",
        "machine-type",
        "maintenance-event",
        "network-interfaces/",
        "service-accounts/",
        "zone",
    ] {
        assert!(
            instance.lines().any(|l| l == line),
            "{line} in {instance:?}"
        );
    }
    assert!(instance.ends_with('\n'));
    assert_eq!(
        get(&state, SA).await.body,
        "aliases\nemail\nidentity\nscopes\ntoken\n"
    );
    let redirect = get(
        &state,
        "/computeMetadata/v1/instance/service-accounts?recursive=true",
    )
    .await;
    assert_eq!(redirect.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        redirect.headers["location"],
        "/computeMetadata/v1/instance/service-accounts/?recursive=true"
    );
    assert_eq!(
        get(&state, "/computeMetadata/v1").await.headers["location"],
        "/computeMetadata/v1/"
    );
    let id = get(&state, "/computeMetadata/v1/instance/id").await;
    assert_eq!(id.body, "4520031799277581759");
    assert_eq!(
        get(&state, "/computeMetadata/v1/instance/id?alt=json")
            .await
            .json(),
        Value::from(4_520_031_799_277_581_759u64)
    );
    assert_eq!(
        get(&state, "/computeMetadata/v1/instance/hostname?alt=json")
            .await
            .json()
            .as_str()
            .map(|h| h.ends_with(".internal")),
        Some(true)
    );
    assert_eq!(get(&state, &format!("{SA}aliases")).await.body, "default\n");
    let kube_env = get(&state, "/computeMetadata/v1/instance/attributes/kube-env").await;
    assert!(
        kube_env.body.contains(&SECRET_MARKER.replace('=', ": ")),
        "{}",
        kube_env.body
    );
    for missing in [
        "/computeMetadata/v1/universe/universe-domain",
        "/computeMetadata/v1/instance/id/",
        "/computeMetadata/v1/instance//id",
        "/computeMetadata/v1/Instance/id",
        "/computeMetadata/v2/",
        "/computeMetadata/v1/instance/service-accounts/nobody/token",
    ] {
        assert_eq!(
            get(&state, missing).await.status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
}

#[tokio::test]
async fn recursive_json_has_camel_case_keys() {
    let state = state(None);
    let account = get(&state, &format!("{SA}?recursive=true")).await;
    assert_eq!(account.headers["content-type"], "application/json");
    let account = account.json();
    assert_eq!(account["email"], SA_EMAIL);
    assert_eq!(account["aliases"], serde_json::json!(["default"]));
    assert!(account["scopes"].is_array());
    assert!(
        account.get("token").is_none(),
        "generated leaves are not in it"
    );
    let instance = get(&state, "/computeMetadata/v1/instance/?recursive=true")
        .await
        .json();
    assert_eq!(instance["networkInterfaces"][0]["ip"], "10.128.0.7");
    assert!(instance["machineType"].is_string());
    assert!(instance["serviceAccounts"][SA_EMAIL].is_object());
    assert!(instance["attributes"]["kube-env"].is_string());
    assert_eq!(instance["maintenanceEvent"], "NONE");
    let text = get(
        &state,
        "/computeMetadata/v1/project/?recursive=true&alt=text",
    )
    .await
    .body;
    assert!(
        text.lines().any(|l| l == "project-id imds-guard-emu"),
        "{text}"
    );
}

#[tokio::test]
async fn improper_queries_are_400() {
    let state = state(None);
    for target in [
        "/computeMetadata/v1/instance/?recursive=1",
        "/computeMetadata/v1/instance/?recursive=true&recursive=true",
        "/computeMetadata/v1/instance/?color=blue",
        "/computeMetadata/v1/instance/?recursive",
        "/computeMetadata/v1/instance/id?audience=x",
        "/computeMetadata/v1/instance/id?alt=yaml",
        "/computeMetadata/v1/instance/id?timeout_sec=abc",
        "/?recursive=true",
    ] {
        let got = get(&state, target).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{target}");
        assert_eq!(got.body, "improper query parameters\n", "{target}");
    }
    let no_audience = get(&state, &format!("{SA}identity")).await;
    assert_eq!(no_audience.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        get(&state, &format!("{SA}identity?audience=")).await.status,
        StatusCode::BAD_REQUEST
    );
}

fn claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("base64url")).expect("JSON")
}

#[tokio::test]
async fn tokens_and_identities() {
    let state = state(None);
    let token = get(
        &state,
        &format!("{SA}token?scopes=https://www.googleapis.com/auth/cloud-platform"),
    )
    .await;
    assert_eq!(token.status, StatusCode::OK);
    let token = token.json();
    assert!(token["access_token"]
        .as_str()
        .is_some_and(|t| t.starts_with("ya29.")));
    assert_eq!(token["expires_in"], 3599);
    assert_eq!(token["token_type"], "Bearer");
    let again = get(
        &state,
        &format!("/computeMetadata/v1/instance/service-accounts/{SA_EMAIL}/token"),
    )
    .await;
    assert_ne!(again.json()["access_token"], token["access_token"]);

    let standard = claims(
        &get(
            &state,
            &format!("{SA}identity?audience=https://example.com"),
        )
        .await
        .body,
    );
    assert_eq!(standard["aud"], "https://example.com");
    assert_eq!(standard["iss"], "https://accounts.google.com");
    for key in ["exp", "iat", "azp", "sub"] {
        assert!(!standard[key].is_null(), "{key}");
    }
    assert!(standard.get("email").is_none());
    let full = claims(
        &get(
            &state,
            &format!("{SA}identity?audience=a&format=full&licenses=TRUE"),
        )
        .await
        .body,
    );
    assert_eq!(full["email"], SA_EMAIL);
    assert_eq!(
        full["google"]["compute_engine"]["project_id"],
        "imds-guard-emu"
    );
    assert!(full["google"]["compute_engine"]["license_id"].is_array());
    assert!(full["exp"].as_u64() > full["iat"].as_u64());
}

#[tokio::test]
async fn legacy_trees_need_no_header() {
    let state = state(None);
    for target in [
        "/0.1/meta-data/attributes/kube-env",
        "/computeMetadata/v1beta1/instance/attributes/kube-env",
    ] {
        let got = send(&state, Method::GET, target, &[], "").await;
        assert_eq!(got.status, StatusCode::OK, "{target}");
        assert!(got.body.contains("NODE_BOOTSTRAP_SECRET"), "{target}");
        assert_eq!(got.headers[GCP_FLAVOR_HEADER], GCP_FLAVOR);
    }
    let beta_token = send(
        &state,
        Method::GET,
        "/computeMetadata/v1beta1/instance/service-accounts/default/token",
        &[],
        "",
    )
    .await;
    assert_eq!(beta_token.status, StatusCode::OK);
    assert_eq!(
        send(&state, Method::GET, "/0.1/meta-data/project-id", &[], "")
            .await
            .body,
        "imds-guard-emu"
    );
    let v1 = send(
        &state,
        Method::GET,
        "/computeMetadata/v1/instance/attributes/kube-env",
        &[],
        "",
    )
    .await;
    assert_eq!(v1.status, StatusCode::FORBIDDEN);
    let put = send(
        &state,
        Method::PUT,
        "/computeMetadata/v1beta1/instance/guest-attributes/a/b",
        &[],
        "x",
    )
    .await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn guest_attributes_are_written_with_put_and_nothing_else_is() {
    let state = state(None);
    let path = "/computeMetadata/v1/instance/guest-attributes/hostkeys/ssh-ed25519";
    assert_eq!(
        send(&state, Method::PUT, path, &[], "x").await.status,
        StatusCode::FORBIDDEN
    );
    let put = send(&state, Method::PUT, path, &[FLAVOR], "AAAAkey").await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(get(&state, path).await.body, "AAAAkey");
    assert_eq!(
        get(&state, "/computeMetadata/v1/instance/guest-attributes/")
            .await
            .body,
        "hostkeys/\n"
    );
    let recursive = get(&state, "/computeMetadata/v1/instance/?recursive=true")
        .await
        .json();
    assert_eq!(
        recursive["guestAttributes"]["hostkeys"]["ssh-ed25519"],
        "AAAAkey"
    );
    for (method, target) in [
        (
            Method::PUT,
            "/computeMetadata/v1/instance/attributes/kube-env",
        ),
        (
            Method::PUT,
            "/computeMetadata/v1/instance/guest-attributes/only-namespace",
        ),
        (Method::POST, path),
        (Method::DELETE, path),
        (Method::HEAD, "/computeMetadata/v1/instance/id"),
    ] {
        let got = send(&state, method.clone(), target, &[FLAVOR], "x").await;
        assert_eq!(
            got.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {target}"
        );
        assert_eq!(got.headers["allow"], "GET");
    }
    let bad_name = send(
        &state,
        Method::PUT,
        "/computeMetadata/v1/instance/guest-attributes/a.b/c",
        &[FLAVOR],
        "x",
    )
    .await;
    assert_eq!(bad_name.status, StatusCode::BAD_REQUEST);
}

mod long_poll;
