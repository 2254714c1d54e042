//! The GCE metadata tree below `/computeMetadata/v1/` and its three renderings: a listing, a
//! leaf's text, and `recursive=true` JSON (GCE's camelCase keys).
//!
//! The tree is kept as JSON with the path names as keys (`machine-type`, `service-accounts`),
//! lists as arrays and numbers as numbers, which is what the recursive JSON carries. A node is a
//! directory when it is an object or a non-empty array of objects (`network-interfaces/0/`);
//! anything else is a leaf, and a list of strings (`scopes`) is served one per line.

use serde_json::{json, Map, Value};

/// The fake project and instance; every value that names another follows from these.
pub(crate) const PROJECT_ID: &str = "imds-guard-emu";
pub(crate) const PROJECT_NUMBER: u64 = 123_456_789_012;
pub(crate) const INSTANCE_ID: u64 = 4_520_031_799_277_581_759;
pub(crate) const INSTANCE_NAME: &str = "gke-emu-default-pool-1a2b3c4d-x1y2";
pub(crate) const ZONE: &str = "us-central1-a";
/// The default service account's email; it is listed under its email and as `default`.
pub(crate) const SA_EMAIL: &str = "123456789012-compute@developer.gserviceaccount.com";
/// The default service account's unique id (`sub` and `azp` of its identity tokens).
pub(crate) const SA_UNIQUE_ID: &str = "112233445566778899001";
/// The marker line tests look for wherever a node's bootstrap secrets show up.
pub(crate) const SECRET_MARKER: &str = "NODE_BOOTSTRAP_SECRET=emulator-not-a-secret";

/// Directories whose children are named by users (attribute keys, service accounts): their keys
/// are not turned into camelCase in recursive JSON.
const USER_NAMED_CHILDREN: [&str; 2] = ["attributes", "service-accounts"];
/// Directories below which every name is a user's (guest attribute namespaces and keys).
const USER_NAMED_BELOW: &str = "guest-attributes";

/// The built-in tree. `maintenance-event` and `guest-attributes` are filled in per request.
pub(crate) fn builtin() -> Value {
    let account = json!({
        "aliases": ["default"],
        "email": SA_EMAIL,
        "scopes": [
            "https://www.googleapis.com/auth/cloud-platform",
            "https://www.googleapis.com/auth/userinfo.email",
        ],
    });
    let kube_env = format!(
        "CLUSTER_NAME: emu-cluster\nKUBELET_CERT: ZW11bGF0b3ItY2VydA==\n\
         KUBELET_KEY: ZW11bGF0b3Ita2V5\n{}\n",
        SECRET_MARKER.replace('=', ": ")
    );
    let startup =
        format!("#!/bin/bash\n# imds-guard emulator: fake node startup script\n{SECRET_MARKER}\n");
    let ssh_keys =
        "node:ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEmulatorNotARealKeyEmulatorNotARealKey0 node";
    json!({
        "instance": {
            "attributes": {
                "cluster-name": "emu-cluster",
                "kube-env": kube_env,
                "ssh-keys": ssh_keys,
                "startup-script": startup,
            },
            "guest-attributes": {},
            "hostname": format!("{INSTANCE_NAME}.{ZONE}.c.{PROJECT_ID}.internal"),
            "id": INSTANCE_ID,
            "machine-type": format!("projects/{PROJECT_NUMBER}/machineTypes/e2-standard-4"),
            "maintenance-event": "NONE",
            "name": INSTANCE_NAME,
            "network-interfaces": [{
                "ip": "10.128.0.7",
                "mac": "42:01:0a:80:00:07",
                "network": format!("projects/{PROJECT_NUMBER}/networks/default"),
            }],
            "service-accounts": { "default": account.clone(), SA_EMAIL: account },
            "zone": format!("projects/{PROJECT_NUMBER}/zones/{ZONE}"),
        },
        "project": {
            "attributes": {
                "enable-oslogin": "FALSE",
                "google-compute-default-region": "us-central1",
            },
            "numeric-project-id": PROJECT_NUMBER,
            "project-id": PROJECT_ID,
        },
    })
}

/// Whether `node` is served as a directory.
pub(crate) fn is_dir(node: &Value) -> bool {
    match node {
        Value::Object(_) => true,
        Value::Array(items) => !items.is_empty() && items.iter().all(Value::is_object),
        _ => false,
    }
}

/// A directory's entries, each subdirectory with a `/`. A service account also lists its two
/// generated leaves, `identity` and `token`.
pub(crate) fn entries(node: &Value, service_account: bool) -> Vec<String> {
    let mut names: Vec<String> = match node {
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                if is_dir(v) {
                    format!("{k}/")
                } else {
                    k.clone()
                }
            })
            .collect(),
        Value::Array(items) => (0..items.len()).map(|i| format!("{i}/")).collect(),
        _ => Vec::new(),
    };
    if service_account {
        names.extend(["identity".to_owned(), "token".to_owned()]);
    }
    names.sort();
    names
}

/// A listing as GCE sends it: one entry per line, each line ended.
pub(crate) fn listing(entries: &[String]) -> String {
    entries.iter().map(|e| format!("{e}\n")).collect()
}

/// A leaf as text: strings as they are, numbers in decimal, lists one item per line.
pub(crate) fn leaf_text(node: &Value) -> String {
    match node {
        Value::String(s) => s.clone(),
        Value::Array(items) => items
            .iter()
            .map(|i| format!("{}\n", leaf_text(i)))
            .collect(),
        other => other.to_string(),
    }
}

/// The recursive JSON of the directory named `name` (the last path segment; `""` for the root),
/// with `user_named` set when it lies below a directory of user-chosen names.
pub(crate) fn recursive_json(node: &Value, name: &str, user_named: bool) -> Value {
    match node {
        Value::Object(map) => {
            let below = user_named || name == USER_NAMED_BELOW;
            let keep_keys = below || USER_NAMED_CHILDREN.contains(&name);
            let converted: Map<String, Value> = map
                .iter()
                .map(|(k, v)| {
                    let key = if keep_keys { k.clone() } else { camel_case(k) };
                    (key, recursive_json(v, k, below))
                })
                .collect();
            Value::Object(converted)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| recursive_json(i, "", user_named))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The recursive text form (`recursive=true&alt=text`): one `path value` line per leaf value,
/// paths relative to the directory. GCE's exact layout of this form is not documented; this is
/// the plain reading.
pub(crate) fn recursive_text(node: &Value, prefix: &str, out: &mut String) {
    let child = |name: &str| {
        if prefix.is_empty() {
            name.to_owned()
        } else {
            format!("{prefix}/{name}")
        }
    };
    match node {
        Value::Object(map) => {
            for (k, v) in map {
                recursive_text(v, &child(k), out);
            }
        }
        Value::Array(items) if is_dir(node) => {
            for (i, v) in items.iter().enumerate() {
                recursive_text(v, &child(&i.to_string()), out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.push_str(&format!("{prefix} {}\n", leaf_text(item)));
            }
        }
        leaf => out.push_str(&format!("{prefix} {}\n", leaf_text(leaf))),
    }
}

/// `numeric-project-id` → `numericProjectId`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests;
