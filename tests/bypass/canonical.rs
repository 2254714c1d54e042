//! What the strict readers promise about every path and query they accept, as checks that report
//! each broken promise: shared by the bypass corpus, the property tests and the fuzz targets.

use super::lenient;

/// Everything wrong with `path` as a canonical path: it must start with `/`, be printable ASCII,
/// have no dot segment, no empty segment but a trailing one, no `\`, `?`, `#` or `;`, no escape
/// of `.`, `/`, `\`, `%`, `;`, `?` or `#`, and only upper-case `%XX` escapes.
pub fn canonical_problems(path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let lower = path.to_ascii_lowercase();
    for needle in [
        "%2e", "%2f", "%5c", "%25", "%3b", "%3f", "%23", "\\", "?", "#", ";", "//",
    ] {
        if lower.contains(needle) {
            problems.push(format!("contains {needle:?}"));
        }
    }
    if !path.starts_with('/') {
        problems.push("does not start with /".into());
    }
    if !path.bytes().all(|b| (0x21..0x7f).contains(&b)) {
        problems.push("byte outside printable ASCII".into());
    }
    if path.split('/').any(|s| s == "." || s == "..") {
        problems.push("dot segment".into());
    }
    let bytes = path.as_bytes();
    for (i, _) in path.match_indices('%') {
        let upper_hex = |k: usize| {
            bytes
                .get(i + k)
                .is_some_and(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
        };
        if !(upper_hex(1) && upper_hex(2)) {
            problems.push(format!("escape at {i} is not %XX upper-case"));
        }
    }
    problems
}

/// Everything a lenient server's decoding of the canonical `path` would change in its structure:
/// decoding must not make a `/`, a `\`, a dot segment, another escape, a query, a fragment or a
/// path parameter.
pub fn decoding_problems(path: &str) -> Vec<String> {
    let decoded = String::from_utf8_lossy(&lenient::decode_once(path.as_bytes())).into_owned();
    let mut problems = Vec::new();
    if decoded.split('/').count() != path.split('/').count() {
        problems.push(format!("decodes to {decoded:?}: other segments"));
    }
    for forbidden in ['\\', '%', '?', '#', ';'] {
        if decoded.contains(forbidden) {
            problems.push(format!("decodes to {decoded:?}: {forbidden:?}"));
        }
    }
    if decoded.split('/').any(|s| s == "." || s == "..") {
        problems.push(format!("decodes to {decoded:?}: dot segment"));
    }
    problems
}

/// Everything wrong with `query` (without its `?`) as a canonical query: `key=value` pairs joined by `&`, keys of
/// letters, digits, `-` and `_`, values of unreserved characters and upper-case `%XX`, no key
/// twice.
pub fn query_problems(query: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut keys: Vec<&str> = Vec::new();
    for pair in query.split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            problems.push(format!("pair {pair:?} without `=`"));
            continue;
        };
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            problems.push(format!("key {key:?}"));
        }
        if keys.contains(&key) {
            problems.push(format!("key {key:?} twice"));
        }
        keys.push(key);
        let bytes = value.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            if b == b'%' {
                let hex = |k: usize| {
                    bytes
                        .get(i + k)
                        .is_some_and(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(b))
                };
                if !(hex(1) && hex(2)) {
                    problems.push(format!("escape in {value:?} is not %XX upper-case"));
                }
                i += 3;
            } else {
                if !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')) {
                    problems.push(format!("{:?} unescaped in {value:?}", char::from(b)));
                }
                i += 1;
            }
        }
    }
    problems
}
