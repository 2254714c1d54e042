//! Tests of the OCI emulator's rules, through its handler (no sockets), and of its PEM fixtures.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use imds_guard_core::cloud::OCI_AUTHORIZATION;
use ring::signature::KeyPair as _;
use serde_json::Value;

use super::{handle, CERT_PEM, COMPARTMENT, INSTANCE, INTERMEDIATE_PEM, KEY_PEM, TENANCY};

const BEARER: (&str, &str) = ("authorization", OCI_AUTHORIZATION);

fn send(method: Method, target: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
    let mut builder = Request::builder().method(method).uri(target);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = handle(&builder.body(Bytes::new()).expect("request"));
    let status = response.status();
    let body = futures::executor::block_on(response.into_body().collect()).expect("body");
    (
        status,
        String::from_utf8(body.to_bytes().to_vec()).expect("utf-8"),
    )
}

fn get(target: &str) -> (StatusCode, String) {
    send(Method::GET, target, &[BEARER])
}

#[test]
fn v2_needs_the_bearer_and_nothing_else_is_served() {
    for headers in [
        &[][..],
        &[("authorization", "Bearer oracle")][..],
        &[("authorization", "Bearer Oracle ")][..],
        &[BEARER, BEARER][..],
    ] {
        let (status, body) = send(Method::GET, "/opc/v2/instance/", headers);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{headers:?}");
        let body: Value = serde_json::from_str(&body).expect("json");
        assert_eq!(body["code"], "NotAuthenticated");
    }
    for target in [
        "/opc/v1/instance/",
        "/openstack/latest/meta_data.json",
        "/latest/meta-data/",
        "/",
    ] {
        assert_eq!(get(target).0, StatusCode::NOT_FOUND, "{target}");
        assert_eq!(
            send(Method::GET, target, &[]).0,
            StatusCode::NOT_FOUND,
            "{target}"
        );
    }
    for header in ["forwarded", "x-forwarded-for", "x-forwarded-host"] {
        let got = send(
            Method::GET,
            "/opc/v2/instance/",
            &[BEARER, (header, "10.0.0.1")],
        );
        assert_eq!(got.0, StatusCode::FORBIDDEN, "{header}");
    }
    assert_eq!(
        send(Method::HEAD, "/opc/v2/instance/", &[BEARER]).0,
        StatusCode::METHOD_NOT_ALLOWED
    );
    assert_eq!(get("/opc/v2/instance/?a=b").0, StatusCode::BAD_REQUEST);
}

#[test]
fn the_instance_document_and_its_nodes() {
    let (status, doc) = get("/opc/v2/instance/");
    assert_eq!(status, StatusCode::OK);
    let doc: Value = serde_json::from_str(&doc).expect("json");
    for key in [
        "id",
        "displayName",
        "region",
        "canonicalRegionName",
        "availabilityDomain",
        "compartmentId",
        "shape",
        "metadata",
        "definedTags",
        "freeformTags",
        "regionInfo",
    ] {
        assert!(!doc[key].is_null(), "{key}");
    }
    assert_eq!(doc["id"], INSTANCE);
    assert_eq!(doc["compartmentId"], COMPARTMENT);
    assert_eq!(get("/opc/v2/instance").1, get("/opc/v2/instance/").1);
    assert_eq!(
        get("/opc/v2/instance/region"),
        (StatusCode::OK, "iad".to_owned())
    );
    assert_eq!(
        get("/opc/v2/instance/canonicalRegionName").1,
        "us-ashburn-1"
    );
    assert_eq!(get("/opc/v2/instance/timeCreated").1, "1700000000000");
    let user_data = get("/opc/v2/instance/metadata/user_data").1;
    let user_data = STANDARD.decode(user_data).expect("base64");
    assert!(String::from_utf8(user_data)
        .unwrap()
        .contains("NODE_BOOTSTRAP_SECRET"));
    let region_info: Value = serde_json::from_str(&get("/opc/v2/instance/regionInfo/").1).unwrap();
    assert_eq!(region_info["regionIdentifier"], "us-ashburn-1");
    let vnics: Value = serde_json::from_str(&get("/opc/v2/vnics/").1).unwrap();
    assert_eq!(vnics[0]["privateIp"], "10.0.10.5");
    assert_eq!(get("/opc/v2/vnics/0/privateIp").1, "10.0.10.5");
    for missing in [
        "/opc/v2/instance/Region",
        "/opc/v2/instance/region/",
        "/opc/v2/instance//region",
        "/opc/v2/identity/",
        "/opc/v2/nope",
    ] {
        assert_eq!(get(missing).0, StatusCode::NOT_FOUND, "{missing}");
    }
}

/// The DER of the one PEM block in `pem` with this label.
fn der(pem: &str, label: &str) -> Vec<u8> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let inner = pem
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(inner, _)| inner)
        .unwrap_or_else(|| panic!("no {label} block"));
    let text: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(text).expect("base64")
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn the_identity_pems_parse_and_belong_together() {
    for (name, pem) in [
        ("cert.pem", CERT_PEM),
        ("key.pem", KEY_PEM),
        ("intermediate.pem", INTERMEDIATE_PEM),
    ] {
        assert_eq!(
            get(&format!("/opc/v2/identity/{name}")),
            (StatusCode::OK, pem.to_owned()),
            "{name}"
        );
    }
    let key = ring::signature::RsaKeyPair::from_der(&der(KEY_PEM, "RSA PRIVATE KEY"))
        .expect("PKCS#1 RSA key");
    let cert = der(CERT_PEM, "CERTIFICATE");
    let intermediate = der(INTERMEDIATE_PEM, "CERTIFICATE");
    // X.509 is a DER SEQUENCE whose length covers the rest.
    for der in [&cert, &intermediate] {
        assert_eq!(der[..2], [0x30, 0x82]);
        assert_eq!(
            usize::from(der[2]) << 8 | usize::from(der[3]),
            der.len() - 4
        );
    }
    assert!(
        contains(&cert, key.public_key().as_ref()),
        "the certificate holds the key's public half"
    );
    // The names the `oci` SDK reads from the subject.
    for ou in [
        format!("opc-tenant:{TENANCY}"),
        format!("opc-instance:{INSTANCE}"),
        format!("opc-compartment:{COMPARTMENT}"),
    ] {
        assert!(contains(&cert, ou.as_bytes()), "{ou}");
    }
    // The leaf names the intermediate as its issuer.
    assert!(contains(&cert, b"imds-guard emulator OCI intermediate CA"));
    assert!(contains(
        &intermediate,
        b"imds-guard emulator OCI intermediate CA"
    ));
}
