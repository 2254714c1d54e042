//! What the most lenient metadata server of each other cloud could make of a forwarded request,
//! and which denied material it would hand out for it.
//!
//! Paths are read as [`lenient`] reads them (every decoding, trimming, case folding and dot
//! resolution it knows). Queries are read every way a sloppy server might: `;` as a separator
//! too, `+` as a space (before or after decoding), escapes decoded once or until nothing changes,
//! the whole query decoded before it is split, keys in any case, the first or the last of a
//! repeated key. Values are read as permissively: GCP's `recursive` is on for any truthy
//! spelling, Azure's `resource` is compared as a URL (spaces trimmed, case folded, default port,
//! dot segments, trailing slashes and `/.default` dropped). Aggregates hand out everything below
//! them: GCP `recursive`, Azure's instance document (JSON; `format=text` answers only leaves and
//! lists the names of interior nodes, as documented), OCI's instance document and its `metadata`
//! object, Alibaba's `meta-data/all`, DigitalOcean's `/metadata/v1.json` (everything below
//! `/metadata/v1`, the user and vendor data included) and Hetzner's `/hetzner/v1/metadata` (a
//! YAML document of every key below it: the user data, a sibling, is not one of them). Tencent,
//! Huawei, Exoscale and Linode have no aggregates: each secret is one path (Tencent's CAM
//! credentials one per role below a listing that names the roles only; Huawei's `securitykey` in
//! any version of OpenStack's tree; Linode's `/v1/user-data`). DigitalOcean, Hetzner, Tencent,
//! Huawei, Exoscale and Linode take no queries: their servers are read as splitting at `?` all
//! the same. Linode's token endpoint (`PUT /v1/token`) hands out a token, not denied material:
//! what matters there is that it is the only write forwarded, and that it is never read with GET.
//!
//! Every answer is "the secrets reached": the names of denied things a lenient server could have
//! put in the answer. The corpus requires it to be empty for everything forwarded.

use super::lenient;

/// The clouds whose servers the oracle models (AWS has its own, in `tests/bypass.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Gcp,
    Azure,
    Oci,
    Alibaba,
    Openstack,
    Digitalocean,
    Hetzner,
    Tencent,
    Huawei,
    Exoscale,
    Linode,
}

/// A lenient reading of a query: keys decoded and lower-cased, one value each.
pub type Pairs = Vec<(String, String)>;

/// Key Vault, the resource the Azure policy denies, and its application id (AAD takes either).
pub const AZURE_DENIED_RESOURCE: &str = "https://vault.azure.net";
const AZURE_DENIED_RESOURCE_APP_ID: &str = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093";

/// Query keys that select a user-assigned identity on Azure (any of them does).
const AZURE_IDENTITY_SELECTORS: [&str; 4] = ["client_id", "object_id", "msi_res_id", "mi_res_id"];

/// Every lenient reading of a forwarded request's path (before its first `?`: these servers
/// take queries, so they split there): lower-cased segments, escapes decoded or not, an escaped
/// `?` or `#` taken for the end of the path or not.
pub fn path_readings(target: &str) -> Vec<Vec<String>> {
    lenient::readings(target.split('?').next().unwrap_or(""))
}

/// Every lenient reading of a forwarded request's query (none: one empty reading).
pub fn query_readings(target: &str) -> Vec<Pairs> {
    let Some((_, raw)) = target.split_once('?') else {
        return vec![Vec::new()];
    };
    // A fragment is cut by some servers and kept by others.
    let mut raws = vec![raw.to_owned()];
    if let Some((before, _)) = raw.split_once('#') {
        raws.push(before.to_owned());
    }
    let mut out: Vec<Pairs> = Vec::new();
    for raw in raws {
        for decode_first in [false, true] {
            let raw = if decode_first {
                lenient::decode_fully(raw.as_bytes())
            } else {
                raw.clone()
            };
            for semicolon in [false, true] {
                for plus in [Plus::Kept, Plus::SpaceBefore, Plus::SpaceAfter] {
                    for full in [false, true] {
                        for last_wins in [false, true] {
                            let pairs = read_query(&raw, semicolon, plus, full, last_wins);
                            if !out.contains(&pairs) {
                                out.push(pairs);
                            }
                        }
                    }
                }
            }
        }
    }
    out
}

#[derive(Clone, Copy)]
enum Plus {
    Kept,
    SpaceBefore,
    SpaceAfter,
}

fn read_query(raw: &str, semicolon: bool, plus: Plus, full: bool, last_wins: bool) -> Pairs {
    let decode = |s: &str| {
        let s = match plus {
            Plus::SpaceBefore => s.replace('+', " "),
            _ => s.to_owned(),
        };
        let decoded = if full {
            lenient::decode_fully(s.as_bytes())
        } else {
            String::from_utf8_lossy(&lenient::decode_once(s.as_bytes())).into_owned()
        };
        match plus {
            Plus::SpaceAfter => decoded.replace('+', " "),
            _ => decoded,
        }
    };
    let mut pairs: Pairs = Vec::new();
    for part in raw.split(|c| c == '&' || (semicolon && c == ';')) {
        if part.is_empty() {
            continue;
        }
        let (k, v) = part.split_once('=').unwrap_or((part, ""));
        let key = decode(k).trim().to_ascii_lowercase();
        let value = decode(v);
        match pairs.iter_mut().find(|(have, _)| *have == key) {
            Some(slot) if last_wins => slot.1 = value,
            Some(_) => {}
            None => pairs.push((key, value)),
        }
    }
    pairs
}

fn get<'a>(pairs: &'a Pairs, key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Flag parsers in the wild: a bare key, `1`, `yes`, `on`, `t` and any case of `true`.
fn truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "" | "true" | "1" | "t" | "y" | "yes" | "on"
    )
}

fn is(segments: &[String], want: &[&str]) -> bool {
    segments.len() == want.len() && segments.iter().zip(want).all(|(s, w)| *w == "*" || s == w)
}

/// Whether `segments` is `want` or lies above it (`*` matches any one segment).
fn at_or_above(segments: &[String], want: &[&str]) -> bool {
    segments.len() <= want.len() && segments.iter().zip(want).all(|(s, w)| *w == "*" || s == w)
}

fn starts(segments: &[String], prefix: &[&str]) -> bool {
    segments.len() >= prefix.len() && is(&segments[..prefix.len()], prefix)
}

/// An API version or EC2-style dated tree name (`2009-04-04`), or `latest`.
fn is_version(segment: &str) -> bool {
    segment == "latest"
        || segment == "1.0"
        || (segment.len() == 10
            && segment.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            }))
}

/// The denied material a lenient `cloud` server could hand out for `method target`.
pub fn secrets_reached(cloud: Cloud, method: &str, target: &str) -> Vec<String> {
    let mut out = Vec::new();
    let queries = query_readings(target);
    for path in path_readings(target) {
        for query in &queries {
            for secret in reached(cloud, method, &path, query) {
                if !out.contains(&secret) {
                    out.push(secret);
                }
            }
        }
    }
    out
}

/// Everything wrong with a forwarded request beyond the secrets: readings outside what the
/// cloud's corpus policy allows at all (legacy trees included).
pub fn outside_policy(cloud: Cloud, method: &str, target: &str) -> Vec<String> {
    let mut out = Vec::new();
    for path in path_readings(target) {
        let ok = match cloud {
            // Allowed: everything but what is denied — except the legacy trees, never.
            Cloud::Gcp => gcp_tree(&path).is_none_or(|(legacy, _)| !legacy),
            Cloud::Azure => starts(&path, &["metadata"]),
            Cloud::Oci => starts(&path, &["opc", "v1"]) || starts(&path, &["opc", "v2"]),
            Cloud::Alibaba => {
                starts(&path, &["latest", "meta-data"])
                    || (method == "PUT" && is(&path, &["latest", "api", "token"]))
            }
            Cloud::Openstack => {
                starts(&path, &["openstack"]) || starts(&path, &["latest", "meta-data"])
            }
            Cloud::Digitalocean => {
                starts(&path, &["metadata", "v1"]) || is(&path, &["metadata", "v1.json"])
            }
            Cloud::Hetzner => starts(&path, &["hetzner", "v1", "metadata"]),
            Cloud::Tencent => starts(&path, &["latest", "meta-data"]),
            Cloud::Huawei => {
                starts(&path, &["openstack"]) || starts(&path, &["latest", "meta-data"])
            }
            Cloud::Exoscale => {
                starts(&path, &["1.0", "meta-data"]) || starts(&path, &["latest", "meta-data"])
            }
            // The token endpoint is for its PUT only: no read of it.
            Cloud::Linode => {
                starts(&path, &["v1"]) && (method == "PUT" || !is(&path, LINODE_TOKEN))
            }
        };
        let token_put = match cloud {
            Cloud::Alibaba => is(&path, &["latest", "api", "token"]),
            Cloud::Linode => is(&path, LINODE_TOKEN),
            _ => false,
        };
        let method_ok = matches!(method, "GET" | "HEAD") || (method == "PUT" && token_put);
        if !ok || !method_ok {
            out.push(format!("{method} /{}", path.join("/")));
        }
    }
    out.dedup();
    out
}

fn reached(cloud: Cloud, method: &str, path: &[String], query: &Pairs) -> Vec<String> {
    if !matches!(method, "GET" | "HEAD" | "POST" | "PUT") {
        return Vec::new();
    }
    match cloud {
        Cloud::Gcp => gcp(path, query),
        Cloud::Azure => azure(path, query),
        Cloud::Oci => oci(path),
        Cloud::Alibaba => alibaba(path),
        Cloud::Openstack => openstack(method, path),
        Cloud::Digitalocean => digitalocean(path),
        Cloud::Hetzner => hetzner(path),
        Cloud::Tencent => tencent(path),
        Cloud::Huawei => huawei(method, path),
        Cloud::Exoscale => exoscale(path),
        Cloud::Linode => linode(path),
    }
}

/// GCP's denied material, relative to the `v1` root.
const GCP_SECRETS: [(&str, &[&str]); 3] = [
    ("kube-env", &["instance", "attributes", "kube-env"]),
    (
        "identity token",
        &["instance", "service-accounts", "*", "identity"],
    ),
    (
        "startup-script",
        &["instance", "attributes", "startup-script"],
    ),
];

/// Where a GCP path lies: in a legacy tree or not, and the path below the API root (`v1`,
/// `v1beta1`, or `0.1/meta-data`, which is the instance tree). `/` and `/computeMetadata` are
/// above every tree: the empty path.
fn gcp_tree(path: &[String]) -> Option<(bool, Vec<String>)> {
    let rest = |n: usize| path[n..].to_vec();
    match path
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["computemetadata"] => Some((false, Vec::new())),
        ["computemetadata", "v1", ..] => Some((false, rest(2))),
        ["computemetadata", "v1beta1", ..] => Some((true, rest(2))),
        ["0.1"] => Some((true, Vec::new())),
        ["0.1", "meta-data", ..] => {
            let mut instance = vec!["instance".to_owned()];
            instance.extend(rest(2));
            Some((true, instance))
        }
        _ => None,
    }
}

fn gcp(path: &[String], query: &Pairs) -> Vec<String> {
    let Some((_, rest)) = gcp_tree(path) else {
        return Vec::new();
    };
    let recursive = get(query, "recursive").is_some_and(truthy);
    GCP_SECRETS
        .iter()
        .filter(|(name, at)| {
            // Identity tokens are made on request, not stored: no recursive answer holds one
            // (the account's recursive read gives email, aliases and scopes).
            if recursive && *name != "identity token" {
                at_or_above(&rest, at)
            } else {
                is(&rest, at)
            }
        })
        .map(|(name, _)| (*name).to_owned())
        .collect()
}

fn azure(path: &[String], query: &Pairs) -> Vec<String> {
    let mut out = Vec::new();
    let user_data = ["metadata", "instance", "compute", "userdata"];
    let text = get(query, "format").is_some_and(|f| f.trim().eq_ignore_ascii_case("text"));
    if is(path, &user_data) || (path.len() >= 2 && at_or_above(path, &user_data) && !text) {
        out.push("userData".to_owned());
    }
    if is(path, &["metadata", "identity", "oauth2", "token"]) {
        if get(query, "resource").is_some_and(|r| {
            let r = normalise_resource(r);
            r == AZURE_DENIED_RESOURCE || r == AZURE_DENIED_RESOURCE_APP_ID
        }) {
            out.push("Key Vault token".to_owned());
        }
        if AZURE_IDENTITY_SELECTORS
            .iter()
            .any(|k| get(query, k).is_some())
        {
            out.push("user-assigned identity token".to_owned());
        }
    }
    out
}

/// A resource URL as a permissive reader compares it.
pub fn normalise_resource(value: &str) -> String {
    let mut r = lenient::decode_fully(value.as_bytes())
        .trim()
        .to_ascii_lowercase();
    for suffix in ["/.default", "/"] {
        while let Some(shorter) = r.strip_suffix(suffix) {
            r = shorter.to_owned();
        }
    }
    let Some((scheme, rest)) = r.split_once("://") else {
        return r;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host
        .strip_suffix(if scheme == "https" { ":443" } else { ":80" })
        .unwrap_or(host)
        .trim_end_matches('.');
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s.trim() {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    if segments.is_empty() {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}/{}", segments.join("/"))
    }
}

fn oci(path: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if path.len() < 2 || path[0] != "opc" || !matches!(path[1].as_str(), "v1" | "v2") {
        return out;
    }
    let rest = &path[2..];
    let user_data = ["instance", "metadata", "user_data"];
    if !rest.is_empty() && at_or_above(rest, &user_data) {
        out.push("user_data".to_owned());
    }
    if starts(rest, &["identity", "*"]) {
        out.push("instance principal".to_owned());
    }
    out
}

fn alibaba(path: &[String]) -> Vec<String> {
    let dated = path.first().is_some_and(|s| is_version(s));
    if !dated || path.get(1).map(String::as_str) != Some("meta-data") {
        return Vec::new();
    }
    let rest = &path[2..];
    if starts(rest, &["ram", "security-credentials", "*"]) || is(rest, &["all"]) {
        return vec!["RAM credentials".to_owned()];
    }
    Vec::new()
}

fn openstack(method: &str, path: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    if path.len() == 3 && path[0] == "openstack" {
        match path[2].as_str() {
            "user_data" => out.push("user_data".to_owned()),
            // Reading it is the secret; posting to it sets it.
            "password" => out.push(format!("password ({method})")),
            _ => {}
        }
    }
    if ec2_user_data(path) {
        out.push("EC2 user-data".to_owned());
    }
    out
}

/// DigitalOcean's user and vendor data, each at its own path.
const DIGITALOCEAN_SECRETS: [&str; 2] = ["user-data", "vendor-data"];

/// DigitalOcean: `/metadata/v1/user-data` and `/metadata/v1/vendor-data`, and `/metadata/v1.json`,
/// the document of everything below `/metadata/v1` (its `user_data` and `vendor_data` members are
/// both). Directory reads (`/metadata/v1/`) list names only.
fn digitalocean(path: &[String]) -> Vec<String> {
    let document = is(path, &["metadata", "v1.json"]);
    DIGITALOCEAN_SECRETS
        .iter()
        .filter(|leaf| document || is(path, &["metadata", "v1", **leaf]))
        .map(|leaf| (*leaf).to_owned())
        .collect()
}

/// Hetzner: `/hetzner/v1/userdata`. The metadata document (`/hetzner/v1/metadata`, YAML) holds
/// every key below it and not the user data, its sibling.
fn hetzner(path: &[String]) -> Vec<String> {
    if is(path, &["hetzner", "v1", "userdata"]) {
        vec!["userdata".to_owned()]
    } else {
        Vec::new()
    }
}

/// EC2-style user data: `/<version>/user-data`, in any version of the tree.
fn ec2_user_data(path: &[String]) -> bool {
    path.len() == 2 && is_version(&path[0]) && path[1] == "user-data"
}

/// Tencent: the CAM role's credentials, `meta-data/cam/security-credentials/<role>` (and below
/// it), and the user data, in any version of the tree. The `security-credentials/` listing names
/// the roles only.
fn tencent(path: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let dated = path.first().is_some_and(|s| is_version(s));
    if dated
        && starts(
            &path[1..],
            &["meta-data", "cam", "security-credentials", "*"],
        )
    {
        out.push("CAM credentials".to_owned());
    }
    if ec2_user_data(path) {
        out.push("user-data".to_owned());
    }
    out
}

/// Huawei: OpenStack's (user_data, password, the EC2-style user data) and the agency's
/// temporary AK/SK, `/openstack/<version>/securitykey`, in any version.
fn huawei(method: &str, path: &[String]) -> Vec<String> {
    let mut out = openstack(method, path);
    if path.len() == 3 && path[0] == "openstack" && path[2] == "securitykey" {
        out.push("securitykey".to_owned());
    }
    out
}

/// Exoscale: the user data, `/<version>/user-data` (`/1.0/`, `/latest/`, or any dated tree a
/// lenient server might serve). Nothing in its meta-data tree is a credential.
fn exoscale(path: &[String]) -> Vec<String> {
    if ec2_user_data(path) {
        vec!["user-data".to_owned()]
    } else {
        Vec::new()
    }
}

/// Linode's token endpoint, `/v1/token` (PUT only).
const LINODE_TOKEN: &[&str] = &["v1", "token"];

/// Linode (Akamai): the user data, `/v1/user-data`. The instance, network and SSH-key documents
/// beside it hold nothing the corpus policy denies; the token endpoint hands out a token only.
fn linode(path: &[String]) -> Vec<String> {
    if is(path, &["v1", "user-data"]) {
        vec!["user-data".to_owned()]
    } else {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reached(cloud: Cloud, target: &str) -> Vec<String> {
        secrets_reached(cloud, "GET", target)
    }

    #[test]
    fn the_oracle_reads_queries_as_loosely_as_any_server() {
        let gcp = |t: &str| reached(Cloud::Gcp, t);
        let attrs = "/computeMetadata/v1/instance/attributes/";
        for q in [
            "recursive=true",
            "recursive=True",
            "recursive=1",
            "RECURSIVE=yes",
            "%72ecursive=on",
            "recursive",
            "recursive=false&recursive=true",
            "recursive=true&recursive=false",
            "alt=json;recursive=true",
            "last_etag=x%26recursive%3Dtrue",
            "recursive=+true",
            "recursive=%2520true",
        ] {
            assert!(
                gcp(&format!("{attrs}?{q}")).contains(&"kube-env".to_owned()),
                "{q}"
            );
        }
        for q in ["recursive=false", "alt=json", "recursive=no"] {
            assert!(gcp(&format!("{attrs}?{q}")).is_empty(), "{q}");
        }
        // Everything stored below the root; identity tokens only where they are asked for.
        assert_eq!(gcp("/?recursive=true"), ["kube-env", "startup-script"]);
        let identity = "/computeMetadata/v1/instance/service-accounts/default/identity";
        assert_eq!(gcp(identity), ["identity token"]);
        assert!(gcp("/computeMetadata/v1/instance/service-accounts/?recursive=true").is_empty());
        assert!(!gcp("/0.1/meta-data/attributes/kube-env").is_empty());
        assert!(!gcp("/computeMetadata/v1beta1/instance/?recursive=true").is_empty());
        assert!(gcp("/computeMetadata/v1/project/?recursive=true").is_empty());
    }

    #[test]
    fn the_oracle_knows_azure_documents_and_resources() {
        let az = |t: &str| reached(Cloud::Azure, t);
        for t in [
            "/metadata/instance?api-version=2021-02-01",
            "/METADATA/Instance/Compute/?api-version=2021-02-01",
            "/metadata/instance./compute?api-version=2021-02-01",
            "/metadata/instance/compute/userData?format=text",
        ] {
            assert!(az(t).contains(&"userData".to_owned()), "{t}");
        }
        assert!(az("/metadata/instance?api-version=2021-02-01&format=text").is_empty());
        assert!(az("/metadata/instance/network?api-version=2021-02-01").is_empty());
        for r in [
            "https://vault.azure.net",
            "HTTPS://VAULT.AZURE.NET//",
            "%20https://vault.azure.net",
            "https://vault.azure.net:443/",
            "https://vault.azure.net/./.default",
            "https%253A%252F%252Fvault.azure.net",
            AZURE_DENIED_RESOURCE_APP_ID,
        ] {
            assert_eq!(
                az(&format!("/metadata/identity/oauth2/token/?resource={r}")),
                ["Key Vault token"],
                "{r}"
            );
        }
        assert!(
            az("/metadata/identity/oauth2/token?resource=https://management.azure.com/").is_empty()
        );
        assert!(!az("/metadata/identity/oauth2/token?resource=x&Object_ID=y").is_empty());
    }

    #[test]
    fn the_oracle_knows_the_other_documents() {
        assert!(!reached(Cloud::Oci, "/opc/v2/instance.").is_empty());
        assert!(!reached(Cloud::Oci, "/opc/v2/Instance/Metadata%20").is_empty());
        assert!(reached(Cloud::Oci, "/opc/v2/instance/region").is_empty());
        assert!(!reached(Cloud::Oci, "/opc/v1/identity/key.pem").is_empty());
        assert!(!reached(Cloud::Alibaba, "/latest/meta-data/ALL.").is_empty());
        assert!(reached(Cloud::Alibaba, "/latest/meta-data/instance-id").is_empty());
        assert!(!reached(Cloud::Openstack, "/openstack/latest/user_data%20").is_empty());
        assert!(!reached(Cloud::Openstack, "/2009-04-04/user-data").is_empty());
        assert!(reached(Cloud::Openstack, "/openstack/latest/meta_data.json").is_empty());
    }

    #[test]
    fn the_oracle_knows_digitalocean_and_hetzner() {
        let both = ["user-data", "vendor-data"];
        for t in [
            "/metadata/v1.json",
            "/metadata/v1.JSON",
            "/Metadata/V1.json",
            "/metadata/v1.json/",
            "/metadata/./v1.json",
            "/metadata/v1.json.",
            "/metadata/v1.json%20",
            "/metadata/v1%2Ejson",
            "/metadata/v1.json;x",
            "/metadata/v1.json?x=1",
            "/metadata/v1/../v1.json",
            "/metadata/v1/%252e%252e/v1.json",
            "/metadata%2Fv1.json",
        ] {
            assert_eq!(reached(Cloud::Digitalocean, t), both, "{t}");
        }
        for t in [
            "/metadata/v1/user-data",
            "/metadata/V1/User-Data",
            "/metadata/v1./user-data%20",
            "/metadata/v1/id/../user-data",
            "/metadata/v1/.../user-data",
            "/metadata/v1%2Fuser-data",
            "/metadata/v1/%75ser-data",
        ] {
            assert_eq!(reached(Cloud::Digitalocean, t), ["user-data"], "{t}");
        }
        assert_eq!(
            reached(Cloud::Digitalocean, "/metadata/v1/VENDOR-DATA."),
            ["vendor-data"]
        );
        for t in [
            "/metadata/v1/",
            "/metadata/v1",
            "/metadata/v1/id",
            "/metadata/v1/interfaces/public/0/ipv4/address",
            "/metadata/v1.json.bak",
            "/metadata/v2.json",
        ] {
            assert!(reached(Cloud::Digitalocean, t).is_empty(), "{t}");
        }

        for t in [
            "/hetzner/v1/userdata",
            "/Hetzner/V1/UserData",
            "/hetzner/v1/userdata.",
            "/hetzner/v1/userdata%20/",
            "/hetzner/v1/metadata/../userdata",
            "/hetzner/v1/metadata/.../../userdata",
            "/hetzner/v1%2Fuserdata",
            "/hetzner/v1/user%64ata",
            "/hetzner/v1/userdata?x=1",
        ] {
            assert_eq!(reached(Cloud::Hetzner, t), ["userdata"], "{t}");
        }
        for t in [
            "/hetzner/v1/metadata",
            "/hetzner/v1/metadata/",
            "/hetzner/v1/metadata/instance-id",
            "/hetzner/v1/metadata/userdata",
            "/hetzner/v1/",
        ] {
            assert!(reached(Cloud::Hetzner, t).is_empty(), "{t}");
        }
        // A lenient server may answer POST and PUT as reads; DELETE it does not serve.
        assert!(!secrets_reached(Cloud::Hetzner, "POST", "/hetzner/v1/userdata").is_empty());
        assert!(secrets_reached(Cloud::Hetzner, "DELETE", "/hetzner/v1/userdata").is_empty());
        assert_eq!(
            outside_policy(Cloud::Hetzner, "GET", "/hetzner/v1/userdata"),
            ["GET /hetzner/v1/userdata"]
        );
        assert!(outside_policy(Cloud::Digitalocean, "GET", "/metadata/v1.json").is_empty());
        assert!(outside_policy(Cloud::Hetzner, "GET", "/hetzner/v1/metadata").is_empty());
    }

    #[test]
    fn the_oracle_knows_tencent_huawei_and_exoscale() {
        let creds = "/latest/meta-data/cam/security-credentials";
        for t in [
            format!("{creds}/role"),
            format!("{creds}/role/"),
            format!("{creds}/role/x"),
            format!("{creds}/Role."),
            "/latest/meta-data/CAM/Security-Credentials/role".to_owned(),
            "/latest/meta-data/cam./security-credentials%20/role".to_owned(),
            "/latest/meta-data/instance-id/../cam/security-credentials/role".to_owned(),
            "/latest/meta-data/cam%2Fsecurity-credentials%2Frole".to_owned(),
            "/2017-09-19/meta-data/cam/security-credentials/role".to_owned(),
        ] {
            assert_eq!(reached(Cloud::Tencent, &t), ["CAM credentials"], "{t}");
        }
        // The listing names the role; the role's leaf holds its keys.
        for t in [
            format!("{creds}/"),
            creds.to_owned(),
            "/latest/meta-data/cam/".to_owned(),
            "/latest/meta-data/".to_owned(),
            "/latest/meta-data/instance-id".to_owned(),
            "/latest/meta-data/ram/security-credentials/role".to_owned(),
            "/latest/meta-data/iam/security-credentials/role".to_owned(),
            "/latest/".to_owned(),
        ] {
            assert!(reached(Cloud::Tencent, &t).is_empty(), "{t}");
        }
        for t in [
            "/latest/user-data",
            "/LATEST/User-Data/",
            "/latest/meta-data/../user-data",
            "/1.0/user-data",
        ] {
            assert_eq!(reached(Cloud::Tencent, t), ["user-data"], "{t}");
        }
        assert_eq!(
            outside_policy(Cloud::Tencent, "GET", "/latest/user-data"),
            ["GET /latest/user-data"]
        );
        assert!(outside_policy(Cloud::Tencent, "GET", &format!("{creds}/role")).is_empty());
        assert!(!outside_policy(Cloud::Tencent, "PUT", "/latest/api/token").is_empty());

        for t in [
            "/openstack/latest/securitykey",
            "/openstack/2018-08-27/securitykey",
            "/openstack/2012-08-10/securitykey",
            "/openstack/LATEST/SecurityKey",
            "/openstack/latest./securitykey%20",
            "/openstack/lat%65st/securitykey",
            "/openstack/latest/meta_data.json/../securitykey",
            "/openstack%2Flatest%2Fsecuritykey",
            "/openstack/2099-01-01/securitykey",
            "/openstack/latest/securitykey?x=1",
        ] {
            assert_eq!(reached(Cloud::Huawei, t), ["securitykey"], "{t}");
        }
        assert_eq!(
            reached(Cloud::Huawei, "/openstack/latest/user_data"),
            ["user_data"]
        );
        assert_eq!(
            secrets_reached(Cloud::Huawei, "POST", "/openstack/latest/password"),
            ["password (POST)"]
        );
        assert_eq!(
            reached(Cloud::Huawei, "/latest/user-data"),
            ["EC2 user-data"]
        );
        for t in [
            "/openstack/latest/meta_data.json",
            "/openstack/latest/network_data.json",
            "/openstack/latest/vendor_data2.json",
            "/openstack/latest/",
            "/openstack/securitykey",
            "/openstack/latest/securitykey/x",
            "/latest/meta-data/instance-id",
        ] {
            assert!(reached(Cloud::Huawei, t).is_empty(), "{t}");
        }
        assert!(outside_policy(Cloud::Huawei, "GET", "/openstack/latest/securitykey").is_empty());
        assert!(!outside_policy(Cloud::Huawei, "GET", "/latest/user-data").is_empty());

        for t in [
            "/1.0/user-data",
            "/latest/user-data",
            "/1.0./User-Data%20",
            "/1.0/meta-data/../user-data",
            "/1%2E0/user-data",
            "/2009-04-04/user-data",
        ] {
            assert_eq!(reached(Cloud::Exoscale, t), ["user-data"], "{t}");
        }
        for t in [
            "/1.0/meta-data/instance-id",
            "/latest/meta-data/",
            "/1.0/meta-data/user-data",
            "/1.0/",
            "/latest/meta-data/iam/security-credentials/role",
        ] {
            assert!(reached(Cloud::Exoscale, t).is_empty(), "{t}");
        }
        assert!(outside_policy(Cloud::Exoscale, "GET", "/1.0/meta-data/instance-id").is_empty());
        assert!(!outside_policy(Cloud::Exoscale, "GET", "/1.0/user-data").is_empty());
    }

    #[test]
    fn the_oracle_knows_linode() {
        for t in [
            "/v1/user-data",
            "/V1/User-Data",
            "/v1/user-data.",
            "/v1./user-data%20",
            "/v1/user-data/",
            "/v1/instance/../user-data",
            "/v1/token/%2e%2e/user-data",
            "/v1%2Fuser-data",
            "/v1/%75ser-data",
            "/v1/user-data;x",
            "/v1/user-data?x=1",
            "/x/../v1/user-data",
        ] {
            assert_eq!(reached(Cloud::Linode, t), ["user-data"], "{t}");
        }
        for t in [
            "/v1/instance",
            "/v1/network",
            "/v1/ssh-keys",
            "/v1/token",
            "/v1/",
            "/v1/user-data-x",
            "/v1/instance/user-data",
            "/latest/user-data",
        ] {
            assert!(reached(Cloud::Linode, t).is_empty(), "{t}");
        }
        // A lenient server may answer a write as a read; DELETE it does not serve.
        assert!(!secrets_reached(Cloud::Linode, "PUT", "/v1/user-data").is_empty());
        assert!(secrets_reached(Cloud::Linode, "DELETE", "/v1/user-data").is_empty());
        // The token endpoint takes its PUT, and nothing else; no other PUT is in the policy.
        for (method, t) in [
            ("GET", "/v1/instance"),
            ("HEAD", "/v1/ssh-keys"),
            ("GET", "/v1/user-data"),
            ("PUT", "/v1/token"),
            ("PUT", "/v1/token/"),
        ] {
            assert!(
                outside_policy(Cloud::Linode, method, t).is_empty(),
                "{method} {t}"
            );
        }
        for (method, t) in [
            ("GET", "/v1/token"),
            ("HEAD", "/v1/token/"),
            ("POST", "/v1/token"),
            ("PUT", "/v1/instance"),
            ("PUT", "/v1/token/../user-data"),
            ("PUT", "/latest/api/token"),
            ("GET", "/latest/api/token"),
            ("GET", "/latest/meta-data/"),
            ("GET", "/v2/instance"),
        ] {
            assert!(
                !outside_policy(Cloud::Linode, method, t).is_empty(),
                "{method} {t}"
            );
        }
    }
}
