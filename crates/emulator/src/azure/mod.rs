//! An emulator of Azure's Instance Metadata Service (`imds-guard emulate --cloud azure`).
//!
//! - Gate: `Metadata: true` is required and `X-Forwarded-For` refused, both with 400 and a JSON
//!   `error`. The value `true` is compared without ASCII case, as Microsoft's own samples send
//!   `Metadata:True`.
//! - Paths under `/metadata` are matched without ASCII case, member names of the instance
//!   document too; one trailing slash is accepted (`@azure/identity` asks for `…/token/`).
//! - `api-version` is required except on `/metadata/versions`; missing or unknown, 400 with the
//!   three newest versions. Queries are read strictly (duplicates refused) and checked against
//!   the core's table of what each endpoint takes.
//! - `/metadata/instance[/<member>/…]`: the instance document or one node of it. A leaf needs
//!   `format=text` (the docs: "format=json doesn't work" for leaves, and 400 lists "missing
//!   format" for them); an interior node with `format=text` is refused too (400): the docs show
//!   such a request without its answer, and this is the strict reading. `userData` appears from
//!   api-version 2021-01-01.
//! - `/metadata/identity/oauth2/token` ([`identity`]), `/metadata/scheduledevents` (GET, and POST
//!   of `StartRequests`), `/metadata/attested/document`; other categories are 404.
//! - Methods: GET only (the docs list no other) but POST on scheduled events; 405 otherwise.
//! - Every answer carries `Server: IMDS/150.870.65.1325`. The `throttle` option gives Azure's
//!   5 requests/s with 429.

mod managed_identity;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, SERVER};
use http::{HeaderMap, Method, Request, StatusCode};
use imds_guard_core::cloud::{Cloud, AZURE_METADATA, AZURE_METADATA_HEADER};
use imds_guard_core::query::{self, Query, QueryError};
use serde_json::{json, Value};

use super::answer::{self, Answer};

const JSON: &str = "application/json; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const SERVER_NAME: &str = "IMDS/150.870.65.1325";

/// The API versions of the instance, identity and attested endpoints, oldest first, as the
/// docs list them.
const VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-04-02",
    "2017-08-01",
    "2017-10-01",
    "2017-12-01",
    "2018-02-01",
    "2018-04-02",
    "2018-10-01",
    "2019-02-01",
    "2019-03-11",
    "2019-04-30",
    "2019-06-01",
    "2019-06-04",
    "2019-08-01",
    "2019-08-15",
    "2019-11-01",
    "2020-06-01",
    "2020-07-15",
    "2020-09-01",
    "2020-10-01",
    "2020-12-01",
    "2021-01-01",
    "2021-02-01",
    "2021-03-01",
    "2021-05-01",
    "2021-08-01",
    "2021-10-01",
    "2021-11-01",
    "2021-11-15",
    "2021-12-13",
    "2023-07-01",
    "2023-11-15",
    "2024-03-15",
    "2024-07-17",
    "2025-04-07",
];
/// The API versions of scheduled events, which has its own.
const EVENT_VERSIONS: &[&str] = &[
    "2017-03-01",
    "2017-08-01",
    "2017-11-01",
    "2019-01-01",
    "2019-04-01",
    "2019-08-01",
    "2020-07-01",
];
/// `userData` is in the instance document from this version on.
const USER_DATA_SINCE: &str = "2021-01-01";

pub(crate) const VM_ID: &str = "5c08b38e-4d57-4c23-ac45-aca61037f084";
pub(crate) const SUBSCRIPTION: &str = "8d1e7b3a-1f2c-4d5e-9a6b-0c7d8e9f0a1b";
pub(crate) const RESOURCE_GROUP: &str = "MC_emu-rg_emu-aks_westeurope";
const VMSS: &str = "aks-nodepool1-12345678-vmss";

/// The user data (base64 in the document), with the marker tests look for.
pub(crate) const USER_DATA: &str =
    "#!/bin/bash\n# imds-guard emulator: fake node custom data\nNODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n";

/// The VM's resource id; the system-assigned identity's `xms_mirid` too.
pub(crate) fn vm_resource_id() -> String {
    format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/\
         Microsoft.Compute/virtualMachineScaleSets/{VMSS}/virtualMachines/0"
    )
}

/// An Azure error answer: `{"error": …}` (without the `Server` header, which [`handle`] adds).
pub(crate) fn error(status: StatusCode, message: &str) -> Answer {
    answer::json(status, JSON, &json!({ "error": message }))
}

/// Puts Azure's `Server` header on an answer.
pub(crate) fn decorate(mut response: Answer) -> Answer {
    response
        .headers_mut()
        .insert(SERVER, HeaderValue::from_static(SERVER_NAME));
    response
}

/// The endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint<'a> {
    Versions,
    /// The instance document, or the node at these member names.
    Instance(&'a [&'a str]),
    Token,
    ScheduledEvents,
    Attested,
}

/// Answers one request.
pub(crate) fn handle(req: &Request<Bytes>) -> Answer {
    decorate(respond(req))
}

fn respond(req: &Request<Bytes>) -> Answer {
    let headers = req.headers();
    if headers.contains_key("x-forwarded-for") {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad request. X-Forwarded-For header is not allowed",
        );
    }
    if !gated(headers) {
        return error(
            StatusCode::BAD_REQUEST,
            "Bad request. Required metadata header not specified",
        );
    }
    let path = req.uri().path().to_ascii_lowercase();
    let Some((segments, _)) = path.strip_prefix("/metadata/").and_then(answer::segments) else {
        return error(StatusCode::NOT_FOUND, "Not found");
    };
    let endpoint = match segments[..] {
        ["versions"] => Endpoint::Versions,
        ["instance", ..] => Endpoint::Instance(&segments[1..]),
        ["identity", "oauth2", "token"] => Endpoint::Token,
        ["scheduledevents"] => Endpoint::ScheduledEvents,
        ["attested", "document"] => Endpoint::Attested,
        _ => return error(StatusCode::NOT_FOUND, "Not found"),
    };
    let method = req.method();
    let post_ok = endpoint == Endpoint::ScheduledEvents;
    if method != Method::GET && !(post_ok && method == Method::POST) {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed");
        let allow = if post_ok { "GET, POST" } else { "GET" };
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static(allow));
        return response;
    }
    let query = match checked_query(req.uri().query(), &path, endpoint) {
        Ok(query) => query,
        Err(response) => return *response,
    };
    let version = query.get("api-version").unwrap_or_default();
    match endpoint {
        Endpoint::Versions => {
            answer::json(StatusCode::OK, JSON, &json!({ "apiVersions": VERSIONS }))
        }
        Endpoint::Instance(members) => instance(members, version, query.get("format")),
        Endpoint::Token => managed_identity::token(&query),
        Endpoint::ScheduledEvents if method == Method::POST => start_requests(req.body()),
        Endpoint::ScheduledEvents => answer::json(
            StatusCode::OK,
            JSON,
            &json!({ "DocumentIncarnation": 1, "Events": [] }),
        ),
        Endpoint::Attested => attested(query.get("nonce")),
    }
}

/// Exactly one `Metadata` header, `true` in any case.
fn gated(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(AZURE_METADATA_HEADER).iter();
    matches!(
        (values.next(), values.next()),
        (Some(v), None) if v.as_bytes().eq_ignore_ascii_case(AZURE_METADATA.as_bytes())
    )
}

/// The query, read strictly and checked against what `endpoint` takes, or the refusal.
fn checked_query(
    raw: Option<&str>,
    path: &str,
    endpoint: Endpoint<'_>,
) -> Result<Query, Box<Answer>> {
    let bad = |message: &str| Box::new(error(StatusCode::BAD_REQUEST, message));
    let query = match raw.map(query::parse).transpose() {
        Ok(query) => query.unwrap_or_default(),
        Err(QueryError::Duplicate(_)) => {
            return Err(bad("Bad request. Query parameter names must be unique"))
        }
        Err(_) => return Err(bad("Bad request. Malformed query")),
    };
    let canonical = imds_guard_core::target::parse_target(path)
        .map_err(|_| Box::new(error(StatusCode::NOT_FOUND, "Not found")))?;
    match query::check(Cloud::Azure, &canonical, &query) {
        Ok(()) => {}
        Err(QueryError::MissingKey("api-version")) => {
            return Err(version_error(
                "Bad request. api-version was not specified in the request. \
                 For more information refer to aka.ms/azureimds",
            ))
        }
        Err(QueryError::BadKeyValue(key)) if key == "api-version" => return Err(invalid_version()),
        Err(QueryError::MissingKey("resource")) => {
            return Err(Box::new(managed_identity::missing_resource()))
        }
        Err(e) => return Err(bad(&format!("Bad request. {e}"))),
    }
    if let Some(version) = query.get("api-version") {
        let (known, since) = match endpoint {
            Endpoint::ScheduledEvents => (EVENT_VERSIONS, "2017-03-01"),
            Endpoint::Token => (VERSIONS, "2018-02-01"),
            Endpoint::Attested => (VERSIONS, "2018-10-01"),
            Endpoint::Instance(_) | Endpoint::Versions => (VERSIONS, "2017-04-02"),
        };
        if !known.contains(&version) || version < since {
            return Err(invalid_version());
        }
    }
    Ok(query)
}

fn invalid_version() -> Box<Answer> {
    version_error(
        "Bad request. api-version is invalid or was not specified in the request. \
         For more information refer to aka.ms/azureimds",
    )
}

fn version_error(message: &str) -> Box<Answer> {
    let newest: Vec<&str> = VERSIONS.iter().rev().take(3).copied().collect();
    let body = json!({ "error": message, "newest-versions": newest });
    Box::new(answer::json(StatusCode::BAD_REQUEST, JSON, &body))
}

/// The instance document as `version` shows it.
pub(crate) fn document(version: &str) -> Value {
    let mut compute = json!({
        "azEnvironment": "AzurePublicCloud",
        "location": "westeurope",
        "name": format!("{VMSS}_0"),
        "offer": "",
        "osProfile": {
            "adminUsername": "azureuser",
            "computerName": format!("{VMSS}000000"),
            "disablePasswordAuthentication": "true",
        },
        "osType": "Linux",
        "platformFaultDomain": "0",
        "platformUpdateDomain": "0",
        "publicKeys": [{
            "keyData": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQEmulatorNotARealKey azureuser",
            "path": "/home/azureuser/.ssh/authorized_keys",
        }],
        "resourceGroupName": RESOURCE_GROUP,
        "resourceId": vm_resource_id(),
        "subscriptionId": SUBSCRIPTION,
        "tags": "aks-managed-poolName:nodepool1;role:k8s-node",
        "tagsList": [
            { "name": "aks-managed-poolName", "value": "nodepool1" },
            { "name": "role", "value": "k8s-node" },
        ],
        "userData": STANDARD.encode(USER_DATA),
        "vmId": VM_ID,
        "vmScaleSetName": VMSS,
        "vmSize": "Standard_D4s_v3",
        "zone": "1",
    });
    if version < USER_DATA_SINCE {
        if let Some(compute) = compute.as_object_mut() {
            compute.remove("userData");
        }
    }
    json!({
        "compute": compute,
        "network": { "interface": [{
            "ipv4": {
                "ipAddress": [{ "privateIpAddress": "10.224.0.4", "publicIpAddress": "" }],
                "subnet": [{ "address": "10.224.0.0", "prefix": "16" }],
            },
            "ipv6": { "ipAddress": [] },
            "macAddress": "000D3A2B3C4D",
        }] },
    })
}

/// `/metadata/instance[/…]`.
fn instance(members: &[&str], version: &str, format: Option<&str>) -> Answer {
    let doc = document(version);
    let Some(node) = answer::walk(&doc, members, true) else {
        return error(StatusCode::NOT_FOUND, "Not found");
    };
    let leaf = !(node.is_object() || node.is_array());
    match (leaf, format == Some("text")) {
        (true, true) => answer::answer(
            StatusCode::OK,
            TEXT,
            node.as_str()
                .map_or_else(|| node.to_string(), str::to_owned),
        ),
        (false, false) => answer::json(StatusCode::OK, JSON, node),
        (true, false) => error(
            StatusCode::BAD_REQUEST,
            "Bad request. Leaf nodes are served with format=text only",
        ),
        (false, true) => error(
            StatusCode::BAD_REQUEST,
            "Bad request. format=text is served for leaf nodes only",
        ),
    }
}

/// POST to scheduled events: `{"StartRequests": [...]}` is accepted (there are no events to
/// start); any other body is refused.
fn start_requests(body: &Bytes) -> Answer {
    let parsed: Result<Value, _> = serde_json::from_slice(body);
    match parsed {
        Ok(doc) if doc.get("StartRequests").is_some_and(Value::is_array) => {
            answer::answer(StatusCode::OK, JSON, "")
        }
        _ => error(
            StatusCode::BAD_REQUEST,
            "Bad request. Expected StartRequests",
        ),
    }
}

/// `/metadata/attested/document`. The docs call the nonce "a 10-digit string": digits, at most
/// ten, is the strict reading. The signature is base64 of the unsigned document (no PKCS#7).
fn attested(nonce: Option<&str>) -> Answer {
    if nonce.is_some_and(|n| n.is_empty() || n.len() > 10 || !n.bytes().all(|b| b.is_ascii_digit()))
    {
        return error(StatusCode::BAD_REQUEST, "Bad request. Invalid nonce");
    }
    let nonce = nonce.map_or_else(|| answer::unix_now().to_string(), str::to_owned);
    let doc = json!({
        "nonce": nonce,
        "plan": { "name": "", "product": "", "publisher": "" },
        "sku": "",
        "subscriptionId": SUBSCRIPTION,
        "vmId": VM_ID,
    });
    let body = json!({ "encoding": "pkcs7", "signature": STANDARD.encode(doc.to_string()) });
    answer::json(StatusCode::OK, JSON, &body)
}

#[cfg(test)]
mod tests;
