//! Hetzner Cloud's server metadata service (`imds-guard emulate --cloud hetzner`): no header, no
//! token.
//!
//! - `/hetzner/v1/metadata` is the whole metadata as YAML, as cloud-init's Hetzner datasource
//!   reads it: `availability-zone`, `hostname`, `instance-id` (a number), `local-ipv4` (empty,
//!   `''`: private addresses are in `private-networks`), `network-config` (a version 1 network
//!   configuration: `eth0` by DHCP), `public-ipv4`, `public-keys` (a list), `region` and
//!   `vendor_data` (a `#cloud-config` block string), keys in that order. `private-networks` is a
//!   leaf only: cloud-init reads it on its own path.
//! - `/hetzner/v1/metadata/<key>` is one value as text, for the documented keys only:
//!   `hostname`, `instance-id`, `public-ipv4`, `local-ipv4`, `availability-zone`, `region`
//!   (scalars, no trailing newline), `public-keys` and `private-networks` (YAML lists, ending in a
//!   newline). `vendor_data` and `network-config` are keys of the document, not paths: 404.
//! - `/hetzner/v1/userdata` is the user data, text.
//! - Everything else is 404, among them `/hetzner/v1/`, `/hetzner/v1/metadata/` (the document
//!   with a trailing slash: undocumented; strict) and a leaf with a trailing slash. The query
//!   string is ignored. Paths are not normalised: `..`, `.` or `//` is 404 (undocumented;
//!   strict, since a guard must not rely on either reading).
//! - Every answer is `text/plain; charset=utf-8` (the type the real server gives its YAML is not
//!   documented).
//! - Methods: GET and HEAD (the same status and headers, no body); 405 with `Allow: GET, HEAD`
//!   otherwise, whatever the path.

use bytes::Bytes;
use http::{Method, Request, StatusCode};

use super::answer::{self, Answer};

const TEXT: &str = "text/plain; charset=utf-8";
const METADATA: &str = "/hetzner/v1/metadata";
const USERDATA: &str = "/hetzner/v1/userdata";

pub(crate) const INSTANCE_ID: &str = "42001337";
pub(crate) const HOSTNAME: &str = "emu-node-0";
pub(crate) const USER_DATA: &str =
    "#!/bin/bash\n# imds-guard emulator: fake server bootstrap script\nNODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n";
const VENDOR_DATA: &str = "#cloud-config\nmanage_etc_hosts: true\n";
const LOCAL_IPV4: &str = "";
const PUBLIC_IPV4: &str = "203.0.113.17";
const AVAILABILITY_ZONE: &str = "fsn1-dc14";
const REGION: &str = "eu-central";
/// A YAML list, at the indentation of a top-level key's value.
const PUBLIC_KEYS: &str =
    "- ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 node-key\n";
/// A YAML list of the server's private networks, in the shape of Hetzner's documentation.
const PRIVATE_NETWORKS: &str = "\
- ip: 10.0.0.2
  alias_ips: []
  interface_num: 1
  mac_address: 86:00:00:2a:7d:e0
  network_id: 1234567
  network_name: emu-network
  network: 10.0.0.0/16
  subnet: 10.0.0.0/24
  gateway: 10.0.0.1
";
/// The value of `network-config`, a mapping indented below its key.
const NETWORK_CONFIG: &str = "  config:
  - mac_address: 96:00:00:ab:cd:ef
    name: eth0
    subnets:
    - ipv4: true
      type: dhcp
    type: physical
  version: 1
";

/// The text of a leaf, for the documented leaves.
fn leaf(key: &str) -> Option<&'static str> {
    Some(match key {
        "hostname" => HOSTNAME,
        "instance-id" => INSTANCE_ID,
        "public-ipv4" => PUBLIC_IPV4,
        "local-ipv4" => LOCAL_IPV4,
        "availability-zone" => AVAILABILITY_ZONE,
        "region" => REGION,
        "public-keys" => PUBLIC_KEYS,
        "private-networks" => PRIVATE_NETWORKS,
        _ => return None,
    })
}

/// A YAML plain scalar, or `''` when empty.
fn scalar(value: &str) -> &str {
    if value.is_empty() {
        "''"
    } else {
        value
    }
}

/// The whole metadata document, from the same values as the leaves.
fn document() -> String {
    let vendor_data: String = VENDOR_DATA
        .lines()
        .map(|line| format!("  {line}\n"))
        .collect();
    format!(
        "availability-zone: {}\nhostname: {}\ninstance-id: {}\nlocal-ipv4: {}\n\
         network-config:\n{NETWORK_CONFIG}public-ipv4: {}\npublic-keys:\n{PUBLIC_KEYS}\
         region: {}\nvendor_data: |\n{vendor_data}",
        scalar(AVAILABILITY_ZONE),
        scalar(HOSTNAME),
        scalar(INSTANCE_ID),
        scalar(LOCAL_IPV4),
        scalar(PUBLIC_IPV4),
        scalar(REGION),
    )
}

fn error(status: StatusCode) -> Answer {
    answer::status_line(status, TEXT)
}

/// Answers one request.
pub(crate) fn handle(req: &Request<Bytes>) -> Answer {
    let method = req.method();
    if method != Method::GET && method != Method::HEAD {
        return answer::allowing(error(StatusCode::METHOD_NOT_ALLOWED), "GET, HEAD");
    }
    let path = req.uri().path();
    let ok = |body: String| answer::answer(StatusCode::OK, TEXT, body);
    let response = if path == METADATA {
        ok(document())
    } else if path == USERDATA {
        ok(USER_DATA.to_owned())
    } else {
        match path
            .strip_prefix(METADATA)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(leaf)
        {
            Some(value) => ok(value.to_owned()),
            None => error(StatusCode::NOT_FOUND),
        }
    };
    answer::strip_if_head(method, response)
}

#[cfg(test)]
mod tests;
