//! OpenStack Nova's metadata service (`imds-guard emulate --cloud openstack`): no header, no
//! token.
//!
//! - `/openstack/` lists the versions, `/openstack/<version>/` the files of that version (as Nova
//!   adds them by release), `meta_data.json`, `network_data.json`, `vendor_data.json`,
//!   `vendor_data2.json` are JSON, `user_data` text.
//! - `password`: GET gives what was posted (empty until then); POST stores at most 256 bytes once
//!   (a second POST is 409 Conflict, a longer one 400), as Nova's `password.py` does.
//! - Everything else is the EC2-style `/latest/` tree, AWS's, without the token flow:
//!   `/latest/api/token` is an unknown path (GET 404, PUT 405).
//! - Nova normalises paths (`posixpath.normpath`); the emulator does not, and answers 404 to
//!   `..` or `//` — the strict choice, since a guard must not rely on either reading.
//! - Methods: GET and HEAD; POST on `password`; 405 otherwise.
//!
//! Huawei Cloud's service (`--cloud huawei`) is this one with Huawei's `meta_data.json` and
//! `/openstack/latest/securitykey` added, and its own `/latest/` tree: see [`super::huawei`].

use parking_lot::Mutex;

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use serde_json::json;

use imds_guard_core::cloud::Cloud;

use super::answer::{self, Answer};
use super::handler::{self, State};
use super::huawei;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=UTF-8";
/// Nova's limit on a posted password.
const MAX_PASSWORD: usize = 256;

/// The metadata versions Nova serves, oldest first.
const VERSIONS: &[&str] = &[
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
    "2020-10-14",
];
/// The files of a version, with the version that brought each.
const FILES: &[(&str, &str)] = &[
    ("meta_data.json", "2012-08-10"),
    ("network_data.json", "2015-10-15"),
    ("password", "2013-04-04"),
    ("user_data", "2012-08-10"),
    ("vendor_data.json", "2013-10-17"),
    ("vendor_data2.json", "2016-10-06"),
];

pub(crate) const UUID: &str = "d8e02d56-2648-49a3-bf97-6be8f1204f38";
pub(crate) const USER_DATA: &str =
    "#!/bin/bash\n# imds-guard emulator: fake node bootstrap script\nNODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n";

/// The instance's password, once posted.
#[derive(Debug, Default)]
pub(crate) struct OpenstackState {
    password: Mutex<Option<String>>,
}

fn error(status: StatusCode) -> Answer {
    answer::status_line(status, TEXT)
}

/// Answers one request.
pub(crate) fn handle(state: &State, req: &Request<Bytes>) -> Answer {
    let path = req.uri().path();
    let rest = match path.strip_prefix("/openstack") {
        Some("") => "",
        Some(rest) if rest.starts_with('/') => &rest[1..],
        _ => return handler::handle_unthrottled(state, req).response,
    };
    let method = req.method();
    let Some((segments, slash)) = answer::segments(rest) else {
        return error(StatusCode::NOT_FOUND);
    };
    let password = matches!(segments[..], [_, "password"]);
    if method != Method::GET && method != Method::HEAD && !(password && method == Method::POST) {
        let allow = if password {
            "GET, HEAD, POST"
        } else {
            "GET, HEAD"
        };
        return answer::allowing(error(StatusCode::METHOD_NOT_ALLOWED), allow);
    }
    let is_huawei = state.cloud == Cloud::Huawei;
    let response = match segments[..] {
        [] => answer::answer(
            StatusCode::OK,
            TEXT,
            listing(VERSIONS.iter().copied().chain(["latest"])),
        ),
        [version] if since(version).is_some() => {
            answer::answer(StatusCode::OK, TEXT, listing(files(is_huawei, version)))
        }
        [version, file] if !slash && files(is_huawei, version).any(|f| f == file) => {
            serve(state, file, method, req.body())
        }
        _ => error(StatusCode::NOT_FOUND),
    };
    answer::strip_if_head(method, response)
}

/// The version a path segment names (`latest` is the newest), if Nova serves it.
fn since(version: &str) -> Option<&'static str> {
    if version == "latest" {
        return VERSIONS.last().copied();
    }
    VERSIONS.iter().find(|v| **v == version).copied()
}

/// The files of `version` (a path segment), sorted: Nova's by the release that brought each, and
/// on Huawei [`huawei::SECURITYKEY`] in `latest` only (the one place Huawei documents it).
fn files(huawei: bool, version: &str) -> impl Iterator<Item = &'static str> {
    let newest = since(version);
    let mut names: Vec<&'static str> = FILES
        .iter()
        .filter(|(_, s)| newest.is_some_and(|v| *s <= v))
        .map(|(f, _)| *f)
        .collect();
    if huawei && version == "latest" {
        names.push(huawei::SECURITYKEY);
        names.sort_unstable();
    }
    names.into_iter()
}

fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join("\n")
}

fn serve(state: &State, file: &str, method: &Method, body: &Bytes) -> Answer {
    let json = |value: serde_json::Value| answer::json(StatusCode::OK, JSON, &value);
    match file {
        "meta_data.json" if state.cloud == Cloud::Huawei => json(huawei::meta_data()),
        huawei::SECURITYKEY => huawei::securitykey(state),
        "meta_data.json" => json(json!({
            "availability_zone": "nova",
            "devices": [],
            "hostname": "emu-node-0.novalocal",
            "keys": [{ "data": PUBLIC_KEY, "name": "node-key", "type": "ssh" }],
            "launch_index": 0,
            "meta": { "role": "k8s-node" },
            "name": "emu-node-0",
            "project_id": "6f70656e737461636b20656d756c6174",
            "public_keys": { "node-key": PUBLIC_KEY },
            "uuid": UUID,
        })),
        "network_data.json" => json(json!({
            "links": [{
                "ethernet_mac_address": "fa:16:3e:00:12:34",
                "id": "tap0e0a1b2c-3d",
                "mtu": 1450,
                "type": "ovs",
                "vif_id": "0e0a1b2c-3d4e-4f50-8a1b-2c3d4e5f6a7b",
            }],
            "networks": [{
                "id": "network0",
                "link": "tap0e0a1b2c-3d",
                "network_id": "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d",
                "type": "ipv4_dhcp",
            }],
            "services": [],
        })),
        "vendor_data.json" | "vendor_data2.json" => json(json!({})),
        "user_data" => answer::answer(StatusCode::OK, "application/octet-stream", USER_DATA),
        _ if *method == Method::POST => post_password(state, body),
        _ => {
            let stored = state.openstack.password.lock();
            answer::answer(StatusCode::OK, TEXT, stored.clone().unwrap_or_default())
        }
    }
}

pub(crate) const PUBLIC_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 node-key";

fn post_password(state: &State, body: &Bytes) -> Answer {
    if body.len() > MAX_PASSWORD {
        return error(StatusCode::BAD_REQUEST);
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return error(StatusCode::BAD_REQUEST);
    };
    let mut stored = state.openstack.password.lock();
    if stored.as_deref().is_some_and(|p| !p.is_empty()) {
        return error(StatusCode::CONFLICT);
    }
    *stored = Some(text.to_owned());
    answer::answer(StatusCode::OK, TEXT, "")
}

#[cfg(test)]
mod tests;
