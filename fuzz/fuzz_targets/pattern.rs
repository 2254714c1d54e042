//! `PathPattern::parse_with_query` and the matchers on any input: the input up to its first
//! newline is a pattern (path and query constraints), the rest a path split into segments (raw,
//! not canonical: the matchers are public and must not trust their input). Nothing panics, and a
//! path a pattern matches leniently is one it matches "at or below" too (the aggregate check can
//! only be stricter than the path check).
#![no_main]

use imds_guard_core::policy::pattern::PathPattern;
use imds_guard_core::query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (source, rest) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(pattern) = PathPattern::parse_with_query(source) else {
        return;
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let exact = pattern.matches_segments(&segments, false);
    let lenient = pattern.matches_segments(&segments, true);
    let below = pattern.matches_at_or_below(&segments);
    let covers = pattern.covers(&segments);
    assert!(
        !lenient || below,
        "{source:?} matches {segments:?} leniently but not at or below"
    );
    assert!(
        !covers || exact,
        "{source:?} covers {segments:?} without matching it"
    );
    let q = rest
        .split_once('?')
        .and_then(|(_, raw)| query::parse(raw).ok())
        .unwrap_or_default();
    let _ = pattern.matches_query(&q, false);
    let _ = pattern.matches_query(&q, true);
    let _ = pattern.query_constraints();
});
