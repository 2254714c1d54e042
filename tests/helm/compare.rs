//! Comparing a chart render with a kustomize render: object by object, keyed by kind, namespace
//! and name, every field equal but the labels Helm adds (and, in `metadata.labels`, the name label
//! that kustomize adds to some objects and not to others). A difference is reported by its JSON
//! path, with both values.

use std::collections::BTreeMap;

use serde_json::Value;

use super::chart::HELM_LABELS;
use super::render::Rendered;

/// (kind, namespace, name).
pub type Key = (String, String, String);

pub fn key(o: &Value) -> Key {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    (
        text(&o["kind"]),
        text(&o["metadata"]["namespace"]),
        text(&o["metadata"]["name"]),
    )
}

fn strip(labels: &mut Value, names: &[&str]) {
    if let Some(map) = labels.as_object_mut() {
        for name in names {
            map.remove(*name);
        }
    }
}

/// `o` without what only tells who rendered it.
pub fn comparable(o: &Value) -> Value {
    let mut o = o.clone();
    let mut top: Vec<&str> = HELM_LABELS.to_vec();
    top.push("app.kubernetes.io/name");
    strip(&mut o["metadata"]["labels"], &top);
    if o["metadata"]["labels"]
        .as_object()
        .is_some_and(|m| m.is_empty())
    {
        o["metadata"].as_object_mut().unwrap().remove("labels");
    }
    if o["spec"]["selector"]["matchLabels"].is_object() {
        strip(&mut o["spec"]["selector"]["matchLabels"], &HELM_LABELS);
    }
    if o["spec"]["template"]["metadata"]["labels"].is_object() {
        strip(
            &mut o["spec"]["template"]["metadata"]["labels"],
            &HELM_LABELS,
        );
    }
    o
}

pub fn by_key(objects: &[Value]) -> BTreeMap<Key, Value> {
    let mut map = BTreeMap::new();
    for o in objects {
        assert!(
            map.insert(key(o), o.clone()).is_none(),
            "{:?} rendered twice",
            key(o)
        );
    }
    map
}

/// The JSON paths where `a` and `b` differ, with both values.
pub fn diff(a: &Value, b: &Value, path: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                diff(
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    &format!("{path}.{k}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                diff(p, q, &format!("{path}[{i}]"), out);
            }
        }
        _ if a != b => out.push(format!("{path}: chart {a} | kustomize {b}")),
        _ => {}
    }
}

/// The same objects in both, field for field (see [`comparable`]).
pub fn assert_same_objects(chart: &[Value], kustomize: &[Value], what: &str) {
    let ours = by_key(chart);
    let theirs = by_key(kustomize);
    let only_chart: Vec<&Key> = ours.keys().filter(|k| !theirs.contains_key(k)).collect();
    let only_kustomize: Vec<&Key> = theirs.keys().filter(|k| !ours.contains_key(k)).collect();
    assert!(
        only_chart.is_empty() && only_kustomize.is_empty(),
        "{what}: objects differ: only in the chart {only_chart:?}, only in kustomize {only_kustomize:?}"
    );
    let mut differences = Vec::new();
    for (k, o) in &ours {
        let mut here = Vec::new();
        diff(&comparable(o), &comparable(&theirs[k]), "", &mut here);
        differences.extend(here.into_iter().map(|d| format!("{k:?}{d}")));
    }
    assert!(
        differences.is_empty(),
        "{what}: the chart and kustomize differ:\n{}",
        differences.join("\n")
    );
}

/// The objects of `r` but those of `kind`.
pub fn without_kind(r: &Rendered, kind: &str) -> Vec<Value> {
    r.objects
        .iter()
        .filter(|o| o["kind"] != kind)
        .cloned()
        .collect()
}
