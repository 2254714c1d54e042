//! DigitalOcean's Droplet metadata service (`imds-guard emulate --cloud digitalocean`): no
//! header, no token.
//!
//! - `/metadata/v1/` is a text index, one name a line, directories ending in `/`: `id`,
//!   `hostname`, `user-data`, `vendor-data`, `public-keys`, `region`, `interfaces/`, `dns/`,
//!   `floating_ip/`, `reserved_ip/`, `tags/`, `features/`. Leaves are text: `id` the numeric
//!   Droplet id, `public-keys` one key a line, `dns/nameservers` one address a line, booleans
//!   `true` or `false`.
//! - `interfaces/` lists `public/` and `private/`; `public/` has one interface, `0/`, with `mac`,
//!   `type` and `ipv4/` (`address`, `netmask`, `gateway`); `private/` lists nothing (no VPC
//!   interface). `floating_ip/` and `reserved_ip/` hold `ipv4/active` (`false`), `features/`
//!   `dhcp_enabled` (`true`).
//! - `tags/` lists the Droplet's one tag, `k8s`. The listing is documented, a path below it is
//!   not: `tags/k8s` is 404.
//! - An index asked for without its trailing slash (`/metadata/v1`, `/metadata/v1/interfaces`)
//!   is 301 Moved Permanently, `Location` the same path with the slash, as documented. A leaf
//!   asked for with a trailing slash is 404 (undocumented; strict).
//! - `/metadata/v1.json` is the whole document as JSON (`droplet_id` a number, `user_data`,
//!   `vendor_data`, `public_keys`, `interfaces` with `ip_address` where the tree says `address`,
//!   `dns`, `floating_ip`, `reserved_ip`, `tags`, `features`), the same values as the leaves.
//! - Everything else is 404: `/`, `/metadata`, `/metadata/v2/`, `/metadata/v1.json/`. The query
//!   string is ignored. Paths are not normalised: `..`, `.` or `//` is 404 (undocumented; strict,
//!   since a guard must not rely on either reading).
//! - Methods: GET and HEAD (the same status and headers, no body); 405 with `Allow: GET, HEAD`
//!   otherwise, whatever the path.

use bytes::Bytes;
use http::header::{HeaderValue, LOCATION};
use http::{Method, Request, StatusCode};
use serde_json::json;

use super::answer::{self, Answer};

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";
/// The root of the tree, answered with its index when asked for with a trailing slash.
const ROOT: &str = "/metadata/v1";
/// The whole document.
const DOCUMENT: &str = "/metadata/v1.json";

/// The `id` leaf; [`DROPLET_ID_NUMBER`] in the JSON document.
pub(crate) const DROPLET_ID: &str = "2756294";
const DROPLET_ID_NUMBER: u64 = 2_756_294;
pub(crate) const HOSTNAME: &str = "emu-node-0";
pub(crate) const USER_DATA: &str =
    "#!/bin/bash\n# imds-guard emulator: fake droplet bootstrap script\nNODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n";
const VENDOR_DATA: &str = "#cloud-config\nmanage_etc_hosts: true\n";
const PUBLIC_KEYS: &[&str] =
    &["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 node-key"];
const REGION: &str = "nyc3";
const MAC: &str = "da:7e:0d:ae:51:c3";
const IPV4_ADDRESS: &str = "203.0.113.10";
const IPV4_NETMASK: &str = "255.255.240.0";
const IPV4_GATEWAY: &str = "203.0.113.1";
const NAMESERVERS: &[&str] = &["67.207.67.2", "67.207.67.3"];
const TAGS: &[&str] = &["k8s"];

/// A node of the text tree below `/metadata/v1/`.
enum Node {
    /// A value.
    Leaf(String),
    /// An index of named nodes.
    Dir(Vec<(&'static str, Node)>),
    /// An index of names that are not paths (`tags/`).
    Names(&'static [&'static str]),
}

fn leaf(value: impl Into<String>) -> Node {
    Node::Leaf(value.into())
}

/// The tree, from the same values as [`document`].
fn tree() -> Node {
    let ipv4_active = || Node::Dir(vec![("ipv4", Node::Dir(vec![("active", leaf("false"))]))]);
    Node::Dir(vec![
        ("id", leaf(DROPLET_ID)),
        ("hostname", leaf(HOSTNAME)),
        ("user-data", leaf(USER_DATA)),
        ("vendor-data", leaf(VENDOR_DATA)),
        ("public-keys", leaf(PUBLIC_KEYS.join("\n"))),
        ("region", leaf(REGION)),
        (
            "interfaces",
            Node::Dir(vec![
                (
                    "public",
                    Node::Dir(vec![(
                        "0",
                        Node::Dir(vec![
                            ("mac", leaf(MAC)),
                            ("type", leaf("public")),
                            (
                                "ipv4",
                                Node::Dir(vec![
                                    ("address", leaf(IPV4_ADDRESS)),
                                    ("netmask", leaf(IPV4_NETMASK)),
                                    ("gateway", leaf(IPV4_GATEWAY)),
                                ]),
                            ),
                        ]),
                    )]),
                ),
                ("private", Node::Dir(Vec::new())),
            ]),
        ),
        (
            "dns",
            Node::Dir(vec![("nameservers", leaf(NAMESERVERS.join("\n")))]),
        ),
        ("floating_ip", ipv4_active()),
        ("reserved_ip", ipv4_active()),
        ("tags", Node::Names(TAGS)),
        ("features", Node::Dir(vec![("dhcp_enabled", leaf("true"))])),
    ])
}

/// The whole document of `/metadata/v1.json`.
fn document() -> serde_json::Value {
    let inactive = json!({ "ipv4": { "active": false } });
    json!({
        "droplet_id": DROPLET_ID_NUMBER,
        "hostname": HOSTNAME,
        "user_data": USER_DATA,
        "vendor_data": VENDOR_DATA,
        "public_keys": PUBLIC_KEYS,
        "region": REGION,
        "interfaces": {
            "public": [{
                "ipv4": {
                    "ip_address": IPV4_ADDRESS,
                    "netmask": IPV4_NETMASK,
                    "gateway": IPV4_GATEWAY,
                },
                "mac": MAC,
                "type": "public",
            }],
            "private": [],
        },
        "dns": { "nameservers": NAMESERVERS },
        "floating_ip": inactive,
        "reserved_ip": inactive,
        "tags": TAGS,
        "features": { "dhcp_enabled": true },
    })
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
    answer::strip_if_head(method, read(req.uri().path()))
}

/// The answer to a GET of `path`.
fn read(path: &str) -> Answer {
    if path == DOCUMENT {
        return answer::json(StatusCode::OK, JSON, &document());
    }
    if path == ROOT {
        return redirect(path);
    }
    let Some(rest) = path
        .strip_prefix(ROOT)
        .and_then(|rest| rest.strip_prefix('/'))
    else {
        return error(StatusCode::NOT_FOUND);
    };
    let tree = tree();
    if rest.is_empty() {
        return index(&tree).unwrap_or_else(|| error(StatusCode::NOT_FOUND));
    }
    let Some((segments, slash)) = answer::segments(rest) else {
        return error(StatusCode::NOT_FOUND);
    };
    if segments.is_empty() {
        // `/metadata/v1//`.
        return error(StatusCode::NOT_FOUND);
    }
    let node = segments.iter().try_fold(&tree, |node, segment| match node {
        Node::Dir(entries) => entries
            .iter()
            .find(|(name, _)| name == segment)
            .map(|(_, child)| child),
        Node::Leaf(_) | Node::Names(_) => None,
    });
    match node {
        Some(Node::Leaf(value)) if !slash => answer::answer(StatusCode::OK, TEXT, value.clone()),
        Some(dir) if slash => index(dir).unwrap_or_else(|| error(StatusCode::NOT_FOUND)),
        Some(Node::Dir(_) | Node::Names(_)) => redirect(path),
        _ => error(StatusCode::NOT_FOUND),
    }
}

/// The index of a directory, one name a line (directories with a trailing slash); `None` for a
/// leaf.
fn index(node: &Node) -> Option<Answer> {
    let names: Vec<String> = match node {
        Node::Leaf(_) => return None,
        Node::Dir(entries) => entries
            .iter()
            .map(|(name, child)| match child {
                Node::Leaf(_) => (*name).to_owned(),
                Node::Dir(_) | Node::Names(_) => format!("{name}/"),
            })
            .collect(),
        Node::Names(names) => names.iter().map(|n| (*n).to_owned()).collect(),
    };
    Some(answer::answer(StatusCode::OK, TEXT, names.join("\n")))
}

/// 301 to the slash form of an index's `path`.
fn redirect(path: &str) -> Answer {
    let mut response = error(StatusCode::MOVED_PERMANENTLY);
    match HeaderValue::try_from(format!("{path}/")) {
        Ok(location) => {
            response.headers_mut().insert(LOCATION, location);
            response
        }
        // The path came from a parsed URI, so it is a valid header value; never reached.
        Err(_) => error(StatusCode::NOT_FOUND),
    }
}

#[cfg(test)]
mod tests;
