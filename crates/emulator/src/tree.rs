//! The metadata tree served below `/latest/`: the built-in contents, the
//! merge of a `--metadata` override over them, and path lookup.
//!
//! The tree is kept in its own type rather than as `serde_json::Value` so
//! that every node is known to be a string (a value) or a directory, checked
//! once at start-up, and lookups cannot meet a number or a boolean.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

/// The role whose credentials the built-in tree offers.
pub(crate) const DEFAULT_ROLE: &str = "imds-guard-node-role";

/// Where role names live on AWS; a leaf here is served as generated credentials.
pub(crate) const CREDENTIALS_DIR: [&str; 3] = ["meta-data", "iam", "security-credentials"];

/// Where keys named `<index>=<name>` are reached by their index, as AWS does.
const PUBLIC_KEYS_DIR: [&str; 2] = ["meta-data", "public-keys"];

/// A node of the metadata tree. Directories are sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    /// A value, served as is.
    Leaf(String),
    /// A directory, served as a listing.
    Dir(BTreeMap<String, Node>),
}

/// A problem in a metadata tree: where (a `/`-separated path) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TreeProblem {
    pub(crate) at: String,
    pub(crate) reason: String,
}

/// What a path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup<'a> {
    /// A directory listing, ready to send.
    Listing(String),
    /// A leaf value.
    Value(&'a str),
    /// A role in the credentials directory (`meta-data/iam/security-credentials/` on AWS); its
    /// credentials are generated per request.
    Credentials(&'a str),
    /// Nothing there.
    NotFound,
}

/// The identity of the fake instance, shared by several leaves.
const ACCOUNT_ID: &str = "123456789012";
const INSTANCE_ID: &str = "i-0123456789abcdef0";
const INSTANCE_TYPE: &str = "m5.large";
const IMAGE_ID: &str = "ami-0abcdef1234567890";
const REGION: &str = "us-east-1";
const ZONE: &str = "us-east-1a";
const PRIVATE_IP: &str = "10.0.12.34";
const MAC: &str = "0e:49:61:0f:c3:11";

/// The user data: a small script with a marker line that tests use to
/// recognise user data wherever it shows up.
const USER_DATA: &str = "#!/bin/bash\n\
# imds-guard emulator: fake node bootstrap script\n\
set -euo pipefail\n\
NODE_BOOTSTRAP_SECRET=emulator-not-a-secret\n\
echo \"bootstrapping node\"\n";

/// `iam/info`, with AWS's key order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct IamInfo<'a> {
    code: &'a str,
    last_updated: &'a str,
    instance_profile_arn: String,
    instance_profile_id: &'a str,
}

/// The built-in tree below `/latest/`, as JSON so an override can be merged
/// over it before conversion. `started` stands in for launch-time stamps.
pub(crate) fn builtin(started: SystemTime) -> Value {
    let started = humantime::format_rfc3339_seconds(started).to_string();
    let info = IamInfo {
        code: "Success",
        last_updated: &started,
        instance_profile_arn: format!(
            "arn:aws:iam::{ACCOUNT_ID}:instance-profile/imds-guard-node-profile"
        ),
        instance_profile_id: "AIPAEMULATOR0PROFILE1",
    };
    let info = serde_json::to_string_pretty(&info).unwrap_or_default();
    let document = json!({
        "accountId": ACCOUNT_ID,
        "architecture": "x86_64",
        "availabilityZone": ZONE,
        "billingProducts": null,
        "devpayProductCodes": null,
        "imageId": IMAGE_ID,
        "instanceId": INSTANCE_ID,
        "instanceType": INSTANCE_TYPE,
        "kernelId": null,
        "marketplaceProductCodes": null,
        "pendingTime": started,
        "privateIp": PRIVATE_IP,
        "ramdiskId": null,
        "region": REGION,
        "version": "2017-09-30",
    });
    let document = serde_json::to_string_pretty(&document).unwrap_or_default();
    let hostname = format!("ip-{}.ec2.internal", PRIVATE_IP.replace('.', "-"));
    json!({
        "dynamic": {
            "instance-identity": {
                "document": document,
                "pkcs7": "MIAGCSqGSIb3DQEHAqCAMIACAQExCzAJBgUrDgMCGgUAMIAGCSqGSIb3DQEHAaCA\nJIAEggHbZW11bGF0b3Itbm90LWEtcmVhbC1zaWduYXR1cmUAAAAAAAAAAAAAAAAA\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
                "signature": "ZW11bGF0b3Itbm90LWEtcmVhbC1zaWduYXR1cmUtZW11bGF0b3Itbm90LWEtcmVh\nbC1zaWduYXR1cmUtZW11bGF0b3Itbm90LWEtcmVhbC1zaWduYXR1cmU=",
            },
        },
        "meta-data": {
            "ami-id": IMAGE_ID,
            "ami-launch-index": "0",
            "ami-manifest-path": "(unknown)",
            "block-device-mapping": { "ami": "/dev/xvda", "root": "/dev/xvda" },
            "hostname": hostname,
            "iam": {
                "info": info,
                "security-credentials": { DEFAULT_ROLE: "" },
            },
            "instance-action": "none",
            "instance-id": INSTANCE_ID,
            "instance-life-cycle": "on-demand",
            "instance-type": INSTANCE_TYPE,
            "local-hostname": hostname,
            "local-ipv4": PRIVATE_IP,
            "mac": MAC,
            "network": { "interfaces": { "macs": { MAC: {
                "device-number": "0",
                "local-ipv4s": PRIVATE_IP,
                "mac": MAC,
                "subnet-id": "subnet-0a1b2c3d4e5f60718",
                "vpc-id": "vpc-0f1e2d3c4b5a69788",
            } } } },
            "placement": {
                "availability-zone": ZONE,
                "availability-zone-id": "use1-az4",
                "region": REGION,
            },
            "profile": "default-hvm",
            "public-keys": { "0=node-key": {
                "openssh-key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 node-key",
            } },
            "reservation-id": "r-0fedcba9876543210",
            "security-groups": "imds-guard-node-sg",
            "services": { "domain": "amazonaws.com", "partition": "aws" },
        },
        "user-data": USER_DATA,
    })
}

/// Deep-merges `over` into `base`: objects merge key by key, `null` removes
/// the key, anything else replaces what was there.
pub(crate) fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key) {
                    merge(existing, value);
                } else {
                    let mut fresh = Value::Object(Map::new());
                    merge(&mut fresh, value);
                    base.insert(key.clone(), fresh);
                }
            }
        }
        (base, over) => {
            // A directory replacing a leaf still has its nulls dropped.
            if over.is_object() {
                *base = Value::Object(Map::new());
                merge(base, over);
            } else {
                *base = over.clone();
            }
        }
    }
}

/// Checks that `value` is shaped like a tree: an object whose members are
/// strings, objects, or (only where `allow_null`) null, with usable keys.
pub(crate) fn validate(value: &Value, allow_null: bool) -> Result<(), TreeProblem> {
    let Value::Object(map) = value else {
        return Err(TreeProblem {
            at: "/".into(),
            reason: format!("expected a JSON object, found {}", kind(value)),
        });
    };
    let mut at = Vec::new();
    validate_members(map, allow_null, &mut at)
}

fn validate_members<'a>(
    map: &'a Map<String, Value>,
    allow_null: bool,
    at: &mut Vec<&'a str>,
) -> Result<(), TreeProblem> {
    for (key, value) in map {
        at.push(key);
        let problem = |reason: String| TreeProblem {
            at: at.join("/"),
            reason,
        };
        if key.is_empty() || key.contains('/') {
            return Err(problem(
                "names must be non-empty and must not contain '/'".into(),
            ));
        }
        match value {
            Value::String(_) => {}
            Value::Null if allow_null => {}
            Value::Object(inner) => validate_members(inner, allow_null, at)?,
            other => {
                return Err(problem(format!(
                "expected a string (a value), an object (a directory) or null (remove), found {}",
                kind(other)
            )))
            }
        }
        at.pop();
    }
    Ok(())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl Node {
    /// Converts a tree already accepted by [`validate`]; stray nulls are skipped.
    pub(crate) fn from_value(value: &Value) -> Node {
        match value {
            Value::Object(map) => Node::Dir(
                map.iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), Node::from_value(v)))
                    .collect(),
            ),
            Value::String(s) => Node::Leaf(s.clone()),
            other => Node::Leaf(other.to_string()),
        }
    }

    /// Resolves the segments of a path below `/latest/`, with AWS's credentials directory.
    #[cfg(test)]
    pub(crate) fn lookup<'a>(&'a self, segments: &[&str]) -> Lookup<'a> {
        self.lookup_in(segments, Some(&CREDENTIALS_DIR))
    }

    /// Resolves the segments of a path below `/latest/`. An empty slice is
    /// `/latest/` itself. Empty segments (from `//`) resolve to nothing. Leaves directly in
    /// `credentials_dir` are roles, served as generated credentials; without one, every leaf is a
    /// value.
    pub(crate) fn lookup_in<'a>(
        &'a self,
        segments: &[&str],
        credentials_dir: Option<&[&str]>,
    ) -> Lookup<'a> {
        let mut node = self;
        let mut name: &'a str = "";
        for (depth, segment) in segments.iter().enumerate() {
            let Node::Dir(children) = node else {
                return Lookup::NotFound;
            };
            if segment.is_empty() {
                return Lookup::NotFound;
            }
            let indexed = segments[..depth] == PUBLIC_KEYS_DIR;
            let child = children.get_key_value(*segment).or_else(|| {
                // `public-keys/0` names the key listed as `0=node-key`.
                if indexed {
                    children
                        .iter()
                        .find(|(k, _)| k.split_once('=').is_some_and(|(i, _)| i == *segment))
                } else {
                    None
                }
            });
            match child {
                Some((key, child)) => {
                    name = key;
                    node = child;
                }
                None => return Lookup::NotFound,
            }
        }
        match node {
            Node::Dir(children) => Lookup::Listing(listing(children, segments)),
            Node::Leaf(value) => match segments.split_last() {
                Some((_, parent)) if Some(parent) == credentials_dir => Lookup::Credentials(name),
                _ => Lookup::Value(value),
            },
        }
    }
}

/// One entry per line, directories with a trailing `/`, no final newline.
/// As on AWS, `/latest/` lists its entries bare and `public-keys/` lists
/// `<index>=<name>` entries bare.
fn listing(children: &BTreeMap<String, Node>, segments: &[&str]) -> String {
    let bare_dirs = segments.is_empty();
    let indexed = segments == PUBLIC_KEYS_DIR;
    let lines: Vec<String> = children
        .iter()
        .map(|(name, node)| {
            let bare = bare_dirs || (indexed && name.contains('='));
            match node {
                Node::Dir(_) if !bare => format!("{name}/"),
                _ => name.clone(),
            }
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests;
