//! Linode's (Akamai's) metadata service (`imds-guard emulate --cloud linode`): `/v1/`, with a
//! session-token flow of its own.
//!
//! - `PUT /v1/token` with `Metadata-Token-Expiry-Seconds` (one header, decimal digits only, 1 to
//!   86400) answers 200 with a token valid that long: the bare token as `text/plain` (no newline,
//!   as the Python client sends the body back as a header), or `["<token>"]` as
//!   `application/json` when the request's `Accept` names `application/json`, the array the Go
//!   client reads. A missing, repeated, malformed or out-of-range TTL is 400. The TTL header is
//!   not echoed (the service's documentation shows no such header). `/v1/token` takes PUT only:
//!   any other method, GET and HEAD included, is 405 with `Allow: PUT`.
//! - Every read carries the token in `Metadata-Token` (one header). Missing, repeated, unknown,
//!   altered or expired: 401, which the clients report without retrying (they renew a managed
//!   token by its age, not on a 401).
//! - `/v1/instance`: `id` (a number), `label`, `region`, `type`, `host_uuid`, `tags`, `specs`
//!   (`vcpus`, `memory`, `disk`, `transfer`, `gpus`), `backups` (`enabled`, `status`, null when
//!   backups are off), `image` (`id`, `label`) and `account_euuid`, the fields the official
//!   clients read.
//! - `/v1/network`: `interfaces` (`label`, `purpose`, `ipam_address`: a public interface and a
//!   VLAN one), `ipv4` (`public`, `private`, `shared`) and `ipv6` (`slaac`, `link_local`,
//!   `ranges`, `shared_ranges`), every address with its prefix length, as the Go client parses
//!   them.
//! - `/v1/ssh-keys`: `users`, each user's list of keys (`root` only).
//! - `/v1/user-data`: the user data base64-encoded, `text/plain`, whatever the `Accept` (the
//!   documentation says the endpoint only has the text form; the Go client asks for JSON and reads
//!   the raw text). It decodes to a shell script with the line
//!   `NODE_BOOTSTRAP_SECRET=emulator-not-a-secret`.
//! - The documents are JSON (`application/json`, compact) when `Accept` names `application/json`
//!   (the clients' reads); otherwise, as with `*/*` or no `Accept`, the service's default text
//!   form (`text/plain`): one `key: value` line per leaf, the keys dotted paths
//!   (`specs.vcpus: 2`, `users.root: ssh-ed25519 …`), sorted. How the text form spells lists is
//!   documented only for one element (`ipv4.public: 192.0.2.0/24`): the emulator gives a list of
//!   scalars one line per element under the list's key, and numbers the objects of a list
//!   (`interfaces.1.purpose: vlan`). Null values, empty strings and empty lists have no line (the
//!   documented examples leave out `backups.status` and empty lists). Each line ends in a newline.
//! - Errors are the Linode API's JSON error form, `{"errors":[{"reason":"…"}]}`
//!   (`application/json`), whatever the `Accept`: both clients read the reasons out of that
//!   shape. The reasons are the emulator's own wording.
//! - Everything else is 404, among them `/v1`, `/v1/`, a document with a trailing slash
//!   (`/v1/instance/`) and paths the documentation does not list. An unknown path is 404 with or
//!   without a token (the path is looked up first: undocumented; strict either way). The query
//!   string is ignored. Paths are not normalised: `..`, `.` or `//` is 404 (undocumented; strict,
//!   since a guard must not rely on either reading).
//! - Methods: GET and HEAD on the reads (the same status and headers, no body); 405 with
//!   `Allow: GET, HEAD` for any other method on any path but the token's.
//! - Tokens are the emulator's sealed session tokens (see `session_tokens`): 56 characters
//!   starting `AQAEA`, not the real service's 64 hex digits. The clients treat a token as opaque.
//!
//! Fixed values: instance `id` `12345678`, `label` `emu-node-0`, `region` `us-ord`, `type`
//! `g6-standard-2`.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use bytes::Bytes;
use http::header::ACCEPT;
use http::{HeaderMap, Method, Request, StatusCode};
use imds_guard_core::cloud::LINODE_TOKENS;
use serde_json::{json, Value};

use super::answer::{self, Answer};
use super::handler::State;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

const INSTANCE: &str = "/v1/instance";
const NETWORK: &str = "/v1/network";
const SSH_KEYS: &str = "/v1/ssh-keys";
const USER_DATA_PATH: &str = "/v1/user-data";

/// The instance's id, a number in the JSON document.
pub(crate) const INSTANCE_ID: u64 = 12_345_678;
pub(crate) const LABEL: &str = "emu-node-0";
pub(crate) const REGION: &str = "us-ord";
const TYPE: &str = "g6-standard-2";
const HOST_UUID: &str = "4f0c2b7e9a1d3c5e7f9b1d3f5a7c9e1b3d5f7a9c";
const ACCOUNT_EUUID: &str = "7c1e5a3b-2d4f-4e6a-8b0c-9d1e2f3a4b5c";
const TAGS: &[&str] = &["k8s"];
const IMAGE_ID: &str = "linode/debian12";
const IMAGE_LABEL: &str = "Debian 12";
pub(crate) const USER_DATA: &str =
    "#!/bin/bash\n# imds-guard emulator: fake Linode bootstrap script\nNODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n";
const ROOT_KEYS: &[&str] =
    &["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 node-key"];
const IPV4_PUBLIC: &[&str] = &["203.0.113.30/32"];
const IPV4_PRIVATE: &[&str] = &["192.168.139.20/17"];
const IPV6_SLAAC: &str = "2001:db8::f03c:95ff:fe4a:1b2c/128";
const IPV6_LINK_LOCAL: &str = "fe80::f03c:95ff:fe4a:1b2c/128";
const VLAN_LABEL: &str = "emu-vlan";
const VLAN_ADDRESS: &str = "10.0.0.2/24";

/// `/v1/instance`.
fn instance() -> Value {
    json!({
        "id": INSTANCE_ID,
        "label": LABEL,
        "region": REGION,
        "type": TYPE,
        "host_uuid": HOST_UUID,
        "tags": TAGS,
        "specs": {
            "vcpus": 2,
            "memory": 4096,
            "disk": 81920,
            "transfer": 4000,
            "gpus": 0,
        },
        "backups": { "enabled": false, "status": null },
        "image": { "id": IMAGE_ID, "label": IMAGE_LABEL },
        "account_euuid": ACCOUNT_EUUID,
    })
}

/// `/v1/network`.
fn network() -> Value {
    json!({
        "interfaces": [
            { "label": "", "purpose": "public", "ipam_address": null },
            { "label": VLAN_LABEL, "purpose": "vlan", "ipam_address": VLAN_ADDRESS },
        ],
        "ipv4": { "public": IPV4_PUBLIC, "private": IPV4_PRIVATE, "shared": [] },
        "ipv6": {
            "slaac": IPV6_SLAAC,
            "link_local": IPV6_LINK_LOCAL,
            "ranges": [],
            "shared_ranges": [],
        },
    })
}

/// `/v1/ssh-keys`.
fn ssh_keys() -> Value {
    json!({ "users": { "root": ROOT_KEYS } })
}

/// The text form of a document: one `key: value` line per leaf, keys sorted.
fn text(value: &Value) -> String {
    let mut lines = Vec::new();
    flatten(value, "", &mut lines);
    lines.sort_by(|a, b| a.0.cmp(&b.0));
    lines
        .into_iter()
        .map(|(key, value)| format!("{key}: {value}\n"))
        .collect()
}

/// The leaves of `value` under `key`, in document order (sorting is stable, so a list's
/// elements keep theirs).
fn flatten(value: &Value, key: &str, lines: &mut Vec<(String, String)>) {
    let below = |name: &str| {
        if key.is_empty() {
            name.to_owned()
        } else {
            format!("{key}.{name}")
        }
    };
    match value {
        Value::Null => {}
        Value::String(s) if s.is_empty() => {}
        Value::String(s) => lines.push((key.to_owned(), s.clone())),
        Value::Bool(_) | Value::Number(_) => lines.push((key.to_owned(), value.to_string())),
        Value::Object(map) => {
            for (name, child) in map {
                flatten(child, &below(name), lines);
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if item.is_object() {
                    flatten(item, &below(&i.to_string()), lines);
                } else {
                    flatten(item, key, lines);
                }
            }
        }
    }
}

/// Whether the request asks for JSON: its `Accept` names `application/json` (parameters and
/// weights are not read).
fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            range
                .split(';')
                .next()
                .is_some_and(|media| media.trim().eq_ignore_ascii_case(JSON))
        })
}

/// An error in the Linode API's form.
fn error(status: StatusCode, reason: &str) -> Answer {
    answer::json(status, JSON, &json!({ "errors": [{ "reason": reason }] }))
}

/// 405 with `Allow`.
fn method_not_allowed(allow: &'static str) -> Answer {
    answer::allowing(
        error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        allow,
    )
}

/// Answers one request.
pub(crate) fn handle(state: &State, req: &Request<Bytes>) -> Answer {
    handle_at(state, req, Instant::now())
}

/// Answers one request as at `now` (which token expiries are measured against).
fn handle_at(state: &State, req: &Request<Bytes>, now: Instant) -> Answer {
    let method = req.method();
    let path = req.uri().path();
    if path == LINODE_TOKENS.path {
        return if method == Method::PUT {
            issue(state, req.headers(), now)
        } else {
            answer::strip_if_head(method, method_not_allowed("PUT"))
        };
    }
    let head = method == Method::HEAD;
    if method != Method::GET && !head {
        return method_not_allowed("GET, HEAD");
    }
    answer::strip_if_head(method, read(state, path, req.headers(), now))
}

/// `PUT /v1/token`.
fn issue(state: &State, headers: &HeaderMap, now: Instant) -> Answer {
    let Some(secs) = requested_ttl(headers) else {
        return error(
            StatusCode::BAD_REQUEST,
            "Metadata-Token-Expiry-Seconds must be a whole number of seconds from 1 to 86400",
        );
    };
    let token = state.store.issue(Duration::from_secs(secs), now);
    if wants_json(headers) {
        answer::json(StatusCode::OK, JSON, &json!([token]))
    } else {
        answer::answer(StatusCode::OK, TEXT, token)
    }
}

/// The lifetime asked for: exactly one TTL header holding a plain decimal number within the
/// service's range.
fn requested_ttl(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(LINODE_TOKENS.ttl_header).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    // Digits only: `u64::from_str` would also take a leading `+`.
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = value.parse().ok()?;
    (1..=u64::from(LINODE_TOKENS.max_ttl))
        .contains(&secs)
        .then_some(secs)
}

/// Whether the read carries exactly one valid, unexpired token.
fn authorized(state: &State, headers: &HeaderMap, now: Instant) -> bool {
    let mut values = headers.get_all(LINODE_TOKENS.token_header).iter();
    match (values.next(), values.next()) {
        (Some(token), None) => token
            .to_str()
            .is_ok_and(|token| state.store.is_valid(token, now)),
        _ => false,
    }
}

/// The answer to a GET of `path`.
fn read(state: &State, path: &str, headers: &HeaderMap, now: Instant) -> Answer {
    let document = match path {
        INSTANCE => Some(instance()),
        NETWORK => Some(network()),
        SSH_KEYS => Some(ssh_keys()),
        USER_DATA_PATH => None,
        _ => return error(StatusCode::NOT_FOUND, "Not Found"),
    };
    if !authorized(state, headers, now) {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    match document {
        Some(document) if wants_json(headers) => answer::json(StatusCode::OK, JSON, &document),
        Some(document) => answer::answer(StatusCode::OK, TEXT, text(&document)),
        None => answer::answer(StatusCode::OK, TEXT, STANDARD.encode(USER_DATA)),
    }
}

#[cfg(test)]
mod tests;
