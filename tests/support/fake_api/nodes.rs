//! Nodes: get and merge-patch of single nodes, enough for the start-up taint. A patch that carries
//! `metadata.resourceVersion` must match the node's current one (409 Conflict otherwise), as on
//! the real API server.

use serde_json::Value;

use super::{Recorded, Refusal, Shared};

/// Answers `GET` or `PATCH /api/v1/nodes/{name}`.
pub(super) fn answer(
    shared: &Shared,
    r: &Recorded,
    name: &str,
    body: &[u8],
) -> Result<(u16, Value), Refusal> {
    let mut nodes = shared.nodes.lock().unwrap();
    let not_found = || Refusal::new(404, "NotFound", format!("nodes \"{name}\" not found"));
    match r.method.as_str() {
        "GET" => nodes
            .get(name)
            .cloned()
            .map(|n| (200, n))
            .ok_or_else(not_found),
        "PATCH" => {
            let node = nodes.get_mut(name).ok_or_else(not_found)?;
            let patch: Value = serde_json::from_slice(body)
                .map_err(|e| Refusal::bad_request(format!("patch is not JSON: {e}")))?;
            let current = node["metadata"]["resourceVersion"].clone();
            if let Some(wanted) = patch
                .pointer("/metadata/resourceVersion")
                .filter(|v| !v.is_null())
            {
                if *wanted != current {
                    let message = "the object has been modified; please apply your changes to the latest version and try again";
                    return Err(Refusal::new(409, "Conflict", message));
                }
            }
            merge(node, &patch);
            let next = current
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            node["metadata"]["resourceVersion"] = Value::String(next.to_string());
            Ok((200, node.clone()))
        }
        _ => Err(Refusal::new(
            405,
            "MethodNotAllowed",
            "nodes: GET and PATCH only",
        )),
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}
