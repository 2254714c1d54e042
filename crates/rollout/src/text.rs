//! The text `policy suggest` writes: TOML strings and keys, pattern lists with their comments,
//! and the query constraints a pattern keeps.

use std::fmt::Write as _;

/// Query keys that choose what a read hands out, kept as constraints.
const KEPT_KEYS: &[&str] = &[
    "audience",
    "client_id",
    "mi_res_id",
    "msi_res_id",
    "object_id",
    "resource",
];

/// The constraints kept from a query: `?key=value&…` in key order, or empty.
pub(super) fn constraints(query: &crate::query::Query) -> String {
    let mut kept: Vec<(&str, &str)> = query
        .pairs()
        .filter(|(k, _)| KEPT_KEYS.contains(k))
        .collect();
    kept.sort();
    let mut out = String::new();
    for (i, (key, value)) in kept.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(key);
        out.push('=');
        // As few escapes as a pattern needs: what a query value may hold raw stays raw.
        for c in value.chars() {
            if c.is_ascii_alphanumeric() || "-._~:@/,!$'()".contains(c) {
                out.push(c);
            } else {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "%{b:02X}");
                }
            }
        }
    }
    out
}

/// A TOML string.
pub(super) fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

/// A TOML key: bare when it may be.
pub(super) fn key(text: &str) -> String {
    if !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        text.to_owned()
    } else {
        quoted(text)
    }
}

/// A TOML list of patterns, one a line, each with its comment.
pub(super) fn list(out: &mut String, key: &str, items: &[(String, String)]) {
    let _ = writeln!(out, "{key} = [");
    for (pattern, note) in items {
        let _ = writeln!(out, "    {},  # {note}", quoted(pattern));
    }
    out.push_str("]\n");
}
