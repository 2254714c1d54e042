//! Managed identity: `GET /metadata/identity/oauth2/token?api-version=…&resource=R`, for the
//! VM's system-assigned identity or, with exactly one of `client_id`, `object_id` or `msi_res_id`
//! (`mi_res_id` is taken as its other name), the one user-assigned identity.

use http::StatusCode;
use imds_guard_core::query::Query;
use serde_json::{json, Value};

use super::super::answer::{self, jwt, unix_now, Answer};
use super::{vm_resource_id, JSON, RESOURCE_GROUP, SUBSCRIPTION};

/// The tenant of both identities.
pub(crate) const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// Seconds a token lives, as managed-identity tokens do.
const TOKEN_SECS: u64 = 86_399;

/// One managed identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) client_id: &'static str,
    pub(crate) object_id: &'static str,
    /// The identity's own resource name (user-assigned only).
    pub(crate) name: Option<&'static str>,
}

/// The VM's system-assigned identity: the default.
pub(crate) const SYSTEM: Identity = Identity {
    client_id: "0b5f9d3e-6a1c-4e2f-8b7d-1c2a3e4f5a6b",
    object_id: "7e1d2c3b-4a5f-4e6d-9c8b-2a1f0e9d8c7b",
    name: None,
};
/// The one user-assigned identity.
pub(crate) const USER: Identity = Identity {
    client_id: "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f",
    object_id: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
    name: Some("emu-node-identity"),
};

impl Identity {
    /// The resource id of the identity (`msi_res_id`), or the VM's for the system one.
    pub(crate) fn resource_id(self) -> String {
        match self.name {
            Some(name) => format!(
                "/subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/providers/\
                 Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            ),
            None => vm_resource_id(),
        }
    }
}

fn invalid(description: &str) -> Answer {
    let body = json!({ "error": "invalid_request", "error_description": description });
    answer::json(StatusCode::BAD_REQUEST, JSON, &body)
}

/// The answer to a token request without a resource.
pub(crate) fn missing_resource() -> Answer {
    invalid("Required audience parameter not specified")
}

/// The identity a query picks: the system one without a selector; identifiers compared without
/// ASCII case (GUIDs and Azure resource ids are case-insensitive).
pub(crate) fn select(query: &Query) -> Result<Identity, &'static str> {
    let selectors: Vec<(&str, &str)> = ["client_id", "object_id", "msi_res_id", "mi_res_id"]
        .into_iter()
        .filter_map(|k| query.get(k).map(|v| (k, v)))
        .collect();
    let (key, wanted) = match selectors[..] {
        [] => return Ok(SYSTEM),
        [one] => one,
        _ => return Err("Only one of client_id, object_id and msi_res_id may be given"),
    };
    [SYSTEM, USER]
        .into_iter()
        .find(|identity| match key {
            "client_id" => identity.client_id.eq_ignore_ascii_case(wanted),
            "object_id" => identity.object_id.eq_ignore_ascii_case(wanted),
            _ => identity.name.is_some() && identity.resource_id().eq_ignore_ascii_case(wanted),
        })
        .ok_or("Identity not found")
}

/// The token answer.
pub(crate) fn token(query: &Query) -> Answer {
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
        return missing_resource();
    };
    let identity = match select(query) {
        Ok(identity) => identity,
        Err(description) => return invalid(description),
    };
    let now = unix_now();
    let expires = now + TOKEN_SECS;
    let payload = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{TENANT}/"),
        "iat": now,
        "nbf": now,
        "exp": expires,
        "appid": identity.client_id,
        "appidacr": "2",
        "idp": format!("https://sts.windows.net/{TENANT}/"),
        "oid": identity.object_id,
        "sub": identity.object_id,
        "tid": TENANT,
        "ver": "1.0",
        "xms_mirid": identity.resource_id(),
    });
    let header = json!({ "typ": "JWT", "alg": "RS256", "kid": "emulator-key-0" });
    let body: Value = json!({
        "access_token": jwt(&header, &payload),
        "client_id": identity.client_id,
        "expires_in": TOKEN_SECS.to_string(),
        "expires_on": expires.to_string(),
        "ext_expires_in": TOKEN_SECS.to_string(),
        "not_before": now.to_string(),
        "resource": resource,
        "token_type": "Bearer",
    });
    answer::json(StatusCode::OK, JSON, &body)
}
