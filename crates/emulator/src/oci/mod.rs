//! Oracle Cloud Infrastructure's instance metadata service, v2-only mode
//! (`imds-guard emulate --cloud oci`).
//!
//! - Requests carrying `Forwarded`, `X-Forwarded-For` or `X-Forwarded-Host` are refused (403).
//! - `/opc/v2/…` needs exactly one `Authorization: Bearer Oracle`, else 401 `NotAuthenticated`.
//! - v2-only: `/opc/v1/…`, `/openstack/…` and everything else are 404.
//! - `/opc/v2/instance/` is the instance document; `/opc/v2/instance/<member>/…` one node of it,
//!   objects and arrays as JSON, strings and numbers as text (`instance/region` → `iad`, which the
//!   `oci` SDK maps to `us-ashburn-1`). Member names are matched exactly: OCI does not document
//!   its case rules. `/opc/v2/vnics/` the VNICs, the same way.
//! - `/opc/v2/identity/{cert,key,intermediate}.pem`: the instance principal's certificate (its
//!   subject carries the `opc-tenant:`, `opc-instance:` and `opc-compartment:` names the SDK
//!   reads), private key and issuing CA.
//! - GET only (405 otherwise, HEAD included); a query is refused (400): OCI's service takes none.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, AUTHORIZATION};
use http::{Method, Request, StatusCode};
use imds_guard_core::cloud::OCI_AUTHORIZATION;
use serde_json::{json, Value};

use super::answer::{self, Answer};

const JSON: &str = "application/json";
const TEXT: &str = "text/plain";

/// The instance principal's identity: test fixtures made once with openssl for the emulator
/// (a self-signed CA standing in for OCI's intermediate, and a leaf it signed, valid for a
/// century). They carry no trust anywhere; the private key is public in this repository.
pub(crate) const CERT_PEM: &str = include_str!("cert.pem");
pub(crate) const KEY_PEM: &str = include_str!("key.pem");
pub(crate) const INTERMEDIATE_PEM: &str = include_str!("intermediate.pem");

/// The names in the certificate's subject; the instance document agrees with them.
pub(crate) const TENANCY: &str = "ocid1.tenancy.oc1..aaaaaaaaemulatortenancy0001";
pub(crate) const INSTANCE: &str = "ocid1.instance.oc1.iad.emulator0instance0001";
pub(crate) const COMPARTMENT: &str = "ocid1.compartment.oc1..emulatorcompartment0001";

/// The user data (base64 in `metadata.user_data`), with the marker tests look for.
const USER_DATA: &str =
    "#cloud-config\n# imds-guard emulator: fake node bootstrap\n# NODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n";

/// Headers that say a request came through a proxy; v2-only mode refuses them.
const FORWARDING: [&str; 3] = ["forwarded", "x-forwarded-for", "x-forwarded-host"];

/// An OCI error answer: `{"code": …, "message": …}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Answer {
    answer::json(status, JSON, &json!({ "code": code, "message": message }))
}

fn not_found() -> Answer {
    error(StatusCode::NOT_FOUND, "NotFound", "Not Found")
}

/// The instance document.
pub(crate) fn instance_document() -> Value {
    json!({
        "agentConfig": {
            "allPluginsDisabled": false,
            "managementDisabled": false,
            "monitoringDisabled": false,
        },
        "availabilityDomain": "Uocm:US-ASHBURN-AD-1",
        "canonicalRegionName": "us-ashburn-1",
        "compartmentId": COMPARTMENT,
        "definedTags": { "Oracle-Tags": { "CreatedBy": "imds-guard-emulator" } },
        "displayName": "oke-emu-node-0",
        "faultDomain": "FAULT-DOMAIN-1",
        "freeformTags": { "role": "k8s-node" },
        "hostname": "oke-emu-node-0",
        "id": INSTANCE,
        "image": "ocid1.image.oc1.iad.emulatorimage0001",
        "metadata": {
            "ssh_authorized_keys": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 opc",
            "user_data": STANDARD.encode(USER_DATA),
        },
        "ociAdName": "iad-ad-1",
        "region": "iad",
        "regionInfo": {
            "realmDomainComponent": "oraclecloud.com",
            "realmKey": "oc1",
            "regionIdentifier": "us-ashburn-1",
            "regionKey": "IAD",
        },
        "shape": "VM.Standard.E4.Flex",
        "state": "Running",
        "tenantId": TENANCY,
        "timeCreated": 1_700_000_000_000u64,
    })
}

fn vnics() -> Value {
    json!([{
        "macAddr": "02:00:17:00:12:34",
        "nicIndex": 0,
        "privateIp": "10.0.10.5",
        "subnetCidrBlock": "10.0.10.0/24",
        "virtualRouterIp": "10.0.10.1",
        "vlanTag": 0,
        "vnicId": "ocid1.vnic.oc1.iad.emulatorvnic0001",
    }])
}

/// Answers one request.
pub(crate) fn handle(req: &Request<Bytes>) -> Answer {
    let headers = req.headers();
    if FORWARDING.iter().any(|h| headers.contains_key(*h)) {
        return error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Forwarded requests are not allowed",
        );
    }
    if req.method() != Method::GET {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Method Not Allowed",
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let Some(rest) = req.uri().path().strip_prefix("/opc/v2/") else {
        return not_found();
    };
    let mut values = headers.get_all(AUTHORIZATION).iter();
    if !matches!((values.next(), values.next()), (Some(v), None) if v == OCI_AUTHORIZATION) {
        return error(
            StatusCode::UNAUTHORIZED,
            "NotAuthenticated",
            "Missing or invalid Authorization header",
        );
    }
    if req.uri().query().is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "Query parameters are not supported",
        );
    }
    let Some((segments, slash)) = answer::segments(rest) else {
        return not_found();
    };
    match segments[..] {
        ["identity", "cert.pem"] if !slash => answer::answer(StatusCode::OK, TEXT, CERT_PEM),
        ["identity", "key.pem"] if !slash => answer::answer(StatusCode::OK, TEXT, KEY_PEM),
        ["identity", "intermediate.pem"] if !slash => {
            answer::answer(StatusCode::OK, TEXT, INTERMEDIATE_PEM)
        }
        ["instance", ..] => node(&instance_document(), &segments[1..], slash),
        ["vnics", ..] => node(&vnics(), &segments[1..], slash),
        _ => not_found(),
    }
}

/// The node of `doc` at `members`: JSON for objects and arrays, text for the rest (which take
/// no trailing slash).
fn node(doc: &Value, members: &[&str], slash: bool) -> Answer {
    match answer::walk(doc, members, false) {
        Some(node @ (Value::Object(_) | Value::Array(_))) => {
            answer::json(StatusCode::OK, JSON, node)
        }
        Some(Value::String(text)) if !slash => answer::answer(StatusCode::OK, TEXT, text.clone()),
        Some(leaf) if !slash && !leaf.is_null() => {
            answer::answer(StatusCode::OK, TEXT, leaf.to_string())
        }
        _ => not_found(),
    }
}

#[cfg(test)]
mod tests;
