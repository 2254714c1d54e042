//! Field and label selectors, parsed and refused the way the real API server does it: a field the
//! server does not index for that resource is a 400, never a silently ignored filter, because a
//! test that passes against an ignored selector proves nothing.

use serde_json::Value;

use super::{Kind, Refusal};

/// What one list or watch asks for: a resource, optionally one namespace, and its selectors.
pub(super) struct Filter {
    pub(super) kind: Kind,
    namespace: Option<String>,
    fields: Vec<FieldTerm>,
    labels: Vec<LabelTerm>,
}

struct FieldTerm {
    field: String,
    value: String,
    /// `=`/`==` rather than `!=`.
    equal: bool,
}

enum LabelTerm {
    Equal(String, String),
    NotEqual(String, String),
    Exists(String),
    Absent(String),
}

impl Filter {
    /// Parses the selectors of a request; `Err` is the 400 the real server would answer.
    pub(super) fn new(
        kind: Kind,
        namespace: Option<&str>,
        fields: Option<&str>,
        labels: Option<&str>,
    ) -> Result<Filter, Refusal> {
        let terms = |s: Option<&str>| -> Vec<String> {
            let s = s.unwrap_or_default();
            s.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(String::from)
                .collect()
        };
        let mut filter = Filter {
            kind,
            namespace: namespace.map(String::from),
            fields: Vec::new(),
            labels: Vec::new(),
        };
        for term in terms(fields) {
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                (f, v, true)
            } else {
                return Err(Refusal::bad_request(format!(
                    "invalid field selector: {term:?}"
                )));
            };
            let field = field.trim();
            if pointer(kind, field).is_none() {
                return Err(Refusal::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            filter.fields.push(FieldTerm {
                field: field.into(),
                value: value.trim().into(),
                equal,
            });
        }
        for term in terms(labels) {
            // Set-based terms (`in`, `notin`) contain commas of their own; this fake does not parse
            // them, and says so rather than filter wrongly.
            if term.contains('(') || term.contains(')') {
                return Err(Refusal::bad_request(format!(
                    "fake API server: unsupported label selector term {term:?}"
                )));
            }
            let pair = |(k, v): (&str, &str)| (k.trim().to_string(), v.trim().to_string());
            let parsed = if let Some((k, v)) = term.split_once("!=").map(pair) {
                LabelTerm::NotEqual(k, v)
            } else if let Some((k, v)) = term
                .split_once("==")
                .or_else(|| term.split_once('='))
                .map(pair)
            {
                LabelTerm::Equal(k, v)
            } else if let Some(k) = term.strip_prefix('!') {
                LabelTerm::Absent(k.trim().into())
            } else {
                LabelTerm::Exists(term)
            };
            filter.labels.push(parsed);
        }
        Ok(filter)
    }

    /// Whether `obj` (of this filter's kind) is selected.
    pub(super) fn matches(&self, obj: &Value) -> bool {
        let namespace_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns));
        let fields_ok = self
            .fields
            .iter()
            .all(|t| (field_value(self.kind, obj, &t.field) == t.value) == t.equal);
        let labels = &obj["metadata"]["labels"];
        let label = |k: &str| labels.get(k).and_then(Value::as_str);
        let labels_ok = self.labels.iter().all(|t| match t {
            LabelTerm::Equal(k, v) => label(k) == Some(v),
            // As in Kubernetes, `k!=v` also selects objects without the label.
            LabelTerm::NotEqual(k, v) => label(k) != Some(v),
            LabelTerm::Exists(k) => label(k).is_some(),
            LabelTerm::Absent(k) => label(k).is_none(),
        });
        namespace_ok && fields_ok && labels_ok
    }
}

/// Where a selectable field lives in the object: the fields the real server indexes for pods and
/// namespaces, and no others.
fn pointer(kind: Kind, field: &str) -> Option<&'static str> {
    let common = match field {
        "metadata.name" => Some("/metadata/name"),
        "metadata.namespace" => Some("/metadata/namespace"),
        "status.phase" => Some("/status/phase"),
        _ => None,
    };
    let pod_only = match field {
        "spec.nodeName" => Some("/spec/nodeName"),
        "spec.restartPolicy" => Some("/spec/restartPolicy"),
        "spec.schedulerName" => Some("/spec/schedulerName"),
        "spec.serviceAccountName" => Some("/spec/serviceAccountName"),
        "spec.hostNetwork" => Some("/spec/hostNetwork"),
        "status.podIP" => Some("/status/podIP"),
        "status.nominatedNodeName" => Some("/status/nominatedNodeName"),
        _ => None,
    };
    common.or(if kind == Kind::Pod { pod_only } else { None })
}

/// A field's value as the server compares it: missing fields are "" (so `spec.nodeName=` selects
/// unscheduled pods), booleans are "true"/"false" and `hostNetwork` defaults to false.
fn field_value(kind: Kind, obj: &Value, field: &str) -> String {
    match pointer(kind, field).and_then(|p| obj.pointer(p)) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        _ if field == "spec.hostNetwork" => "false".into(),
        _ => String::new(),
    }
}
