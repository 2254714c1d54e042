//! Tests of the Azure IMDS emulator's rules, through its handler (no sockets).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;

use super::managed_identity::{SYSTEM, USER};
use super::{handle, USER_DATA, VM_ID};

const API: &str = "api-version=2021-02-01";
const META: (&str, &str) = ("metadata", "true");

struct Got {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("JSON body")
    }
}

fn send(method: Method, target: &str, headers: &[(&str, &str)], body: &str) -> Got {
    let mut builder = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = handle(&builder.body(Bytes::from(body.to_owned())).expect("request"));
    let (parts, body) = response.into_parts();
    let body = futures::executor::block_on(body.collect())
        .expect("body")
        .to_bytes();
    Got {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).expect("utf-8"),
    }
}

fn get(target: &str) -> Got {
    send(Method::GET, target, &[META], "")
}

#[test]
fn the_metadata_header_is_required_and_forwarded_requests_refused() {
    let target = format!("/metadata/instance?{API}");
    for headers in [&[][..], &[("metadata", "false")][..], &[META, META][..]] {
        let got = send(Method::GET, &target, headers, "");
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{headers:?}");
        assert_eq!(
            got.json()["error"],
            "Bad request. Required metadata header not specified"
        );
        assert_eq!(got.headers["server"], "IMDS/150.870.65.1325");
    }
    let forwarded = send(
        Method::GET,
        &target,
        &[META, ("x-forwarded-for", "10.0.0.1")],
        "",
    );
    assert_eq!(forwarded.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        send(Method::GET, &target, &[("Metadata", "True")], "").status,
        StatusCode::OK
    );
    let ok = get(&target);
    assert_eq!(ok.headers["server"], "IMDS/150.870.65.1325");
    assert!(ok.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
}

#[test]
fn api_version_rules() {
    let missing = get("/metadata/instance");
    assert_eq!(missing.status, StatusCode::BAD_REQUEST);
    let body = missing.json();
    assert!(body["error"]
        .as_str()
        .unwrap()
        .contains("api-version was not specified"));
    assert_eq!(
        body["newest-versions"],
        serde_json::json!(["2025-04-07", "2024-07-17", "2024-03-15"])
    );
    for bad in ["2099-01-01", "yesterday", "2021-02-01-preview"] {
        let got = get(&format!("/metadata/instance?api-version={bad}"));
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(got.json()["newest-versions"].is_array(), "{bad}");
    }
    // Scheduled events have their own versions.
    assert_eq!(
        get("/metadata/scheduledevents?api-version=2020-07-01").status,
        StatusCode::OK
    );
    assert_eq!(
        get("/metadata/instance?api-version=2020-07-01").status,
        StatusCode::BAD_REQUEST
    );
    let versions = get("/metadata/versions");
    assert_eq!(versions.status, StatusCode::OK);
    assert!(versions.json()["apiVersions"].as_array().unwrap().len() > 30);
    let duplicate = get(&format!("/metadata/instance?{API}&{API}"));
    assert_eq!(duplicate.status, StatusCode::BAD_REQUEST);
    assert!(duplicate.json()["error"]
        .as_str()
        .unwrap()
        .contains("unique"));
    assert_eq!(
        get(&format!("/metadata/instance?{API}&color=blue")).status,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn the_instance_document_and_its_nodes() {
    let doc = get(&format!("/metadata/instance?{API}")).json();
    let compute = &doc["compute"];
    for key in [
        "vmId",
        "name",
        "location",
        "resourceId",
        "subscriptionId",
        "tagsList",
        "osProfile",
        "publicKeys",
        "userData",
    ] {
        assert!(!compute[key].is_null(), "{key}");
    }
    assert_eq!(compute["osProfile"]["adminUsername"], "azureuser");
    assert!(compute["publicKeys"][0]["keyData"].is_string());
    let user_data = STANDARD
        .decode(compute["userData"].as_str().unwrap())
        .unwrap();
    assert_eq!(user_data, USER_DATA.as_bytes());
    assert!(
        get("/metadata/instance?api-version=2020-09-01").json()["compute"]
            .get("userData")
            .is_none()
    );

    let vm_id = get(&format!(
        "/metadata/instance/compute/vmId?{API}&format=text"
    ));
    assert_eq!((vm_id.status, vm_id.body.as_str()), (StatusCode::OK, VM_ID));
    assert!(vm_id.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let ip = get(&format!(
        "/metadata/instance/network/interface/0/ipv4/ipAddress/0/privateIpAddress?{API}&format=text"
    ));
    assert_eq!(ip.body, "10.224.0.4");
    // Paths and member names without case.
    let shouted = get(&format!(
        "/METADATA/Instance/COMPUTE/userdata?{API}&format=text"
    ));
    assert_eq!(shouted.status, StatusCode::OK);
    assert_eq!(shouted.body, compute["userData"].as_str().unwrap());
    assert_eq!(
        get(&format!("/metadata/instance/compute/tagsList?{API}")).json()[0]["name"],
        "aks-managed-poolName"
    );
    // Leaves need format=text; interior nodes refuse it.
    assert_eq!(
        get(&format!("/metadata/instance/compute/vmId?{API}")).status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(&format!("/metadata/instance/compute?{API}&format=text")).status,
        StatusCode::BAD_REQUEST
    );
    for missing in [
        "/metadata/instance/compute/nope",
        "/metadata/instance/network/interface/1",
        "/metadata/loadbalancer",
        "/metadata/",
        "/other",
    ] {
        assert_eq!(
            get(&format!("{missing}?{API}")).status,
            StatusCode::NOT_FOUND,
            "{missing}"
        );
    }
}

fn claims(jwt: &str) -> Value {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap()
}

#[test]
fn managed_identity_tokens() {
    let resource = "https%3A%2F%2Fvault.azure.net";
    let got = get(&format!(
        "/metadata/identity/oauth2/token/?api-version=2018-02-01&resource={resource}"
    ));
    assert_eq!(got.status, StatusCode::OK);
    let token = got.json();
    assert!(token["access_token"].as_str().unwrap().starts_with("eyJ"));
    assert_eq!(token["resource"], "https://vault.azure.net");
    assert_eq!(token["client_id"], SYSTEM.client_id);
    assert_eq!(token["token_type"], "Bearer");
    for key in ["expires_in", "expires_on", "ext_expires_in", "not_before"] {
        assert!(
            token[key]
                .as_str()
                .is_some_and(|v| v.parse::<u64>().is_ok()),
            "{key}"
        );
    }
    assert_eq!(
        claims(token["access_token"].as_str().unwrap())["aud"],
        "https://vault.azure.net"
    );

    let base =
        format!("/metadata/identity/oauth2/token?api-version=2018-02-01&resource={resource}");
    let user_id = USER.resource_id().to_ascii_uppercase().replace('/', "%2F");
    for selector in [
        format!("client_id={}", USER.client_id),
        format!("object_id={}", USER.object_id.to_ascii_uppercase()),
        format!("msi_res_id={user_id}"),
    ] {
        let got = get(&format!("{base}&{selector}"));
        assert_eq!(got.json()["client_id"], USER.client_id, "{selector}");
    }
    let system = get(&format!("{base}&object_id={}", SYSTEM.object_id));
    assert_eq!(system.json()["client_id"], SYSTEM.client_id);
    let unknown = get(&format!(
        "{base}&client_id=00000000-0000-0000-0000-000000000000"
    ));
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        unknown.json(),
        serde_json::json!({"error": "invalid_request", "error_description": "Identity not found"})
    );
    let two = get(&format!(
        "{base}&client_id={}&object_id={}",
        USER.client_id, USER.object_id
    ));
    assert_eq!(two.status, StatusCode::BAD_REQUEST);
    let no_resource = get("/metadata/identity/oauth2/token?api-version=2018-02-01");
    assert_eq!(no_resource.status, StatusCode::BAD_REQUEST);
    assert_eq!(no_resource.json()["error"], "invalid_request");
}

#[test]
fn methods_events_and_attestation() {
    let events = get("/metadata/scheduledevents?api-version=2020-07-01");
    assert_eq!(
        events.json(),
        serde_json::json!({"DocumentIncarnation": 1, "Events": []})
    );
    let start = send(
        Method::POST,
        "/metadata/scheduledevents?api-version=2020-07-01",
        &[META],
        r#"{"StartRequests":[]}"#,
    );
    assert_eq!(start.status, StatusCode::OK);
    let garbage = send(
        Method::POST,
        "/metadata/scheduledevents?api-version=2020-07-01",
        &[META],
        "x",
    );
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    for (method, target) in [
        (Method::POST, format!("/metadata/instance?{API}")),
        (
            Method::PUT,
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=r".to_owned(),
        ),
        (Method::HEAD, format!("/metadata/instance?{API}")),
    ] {
        let got = send(method.clone(), &target, &[META], "");
        assert_eq!(
            got.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {target}"
        );
        assert_eq!(got.headers["server"], "IMDS/150.870.65.1325");
    }
    let attested =
        get("/metadata/attested/document?api-version=2021-02-01&nonce=1234567890").json();
    assert_eq!(attested["encoding"], "pkcs7");
    let signed = STANDARD
        .decode(attested["signature"].as_str().unwrap())
        .unwrap();
    let signed: Value = serde_json::from_slice(&signed).unwrap();
    assert_eq!(signed["nonce"], "1234567890");
    assert_eq!(signed["vmId"], VM_ID);
    assert_eq!(
        get("/metadata/attested/document?api-version=2021-02-01&nonce=12345678901").status,
        StatusCode::BAD_REQUEST
    );
}
