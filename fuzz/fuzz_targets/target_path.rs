//! Fuzzes the strict request-target reader: it never panics, and whatever it accepts is canonical,
//! a fixed point, and decodes (as a lenient server would) to the same segments.
#![no_main]

// Its query checks are used by query_parse.
#[allow(dead_code)]
#[path = "../../tests/bypass/canonical.rs"]
mod canonical;
// Only its decoder is used here.
#[allow(dead_code)]
#[path = "../../tests/bypass/lenient.rs"]
mod lenient;

use imds_guard_core::target::parse_target;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Request targets reach the reader as text; invalid UTF-8 becomes U+FFFD, which it refuses.
    let target = String::from_utf8_lossy(data);
    let Ok(path) = parse_target(&target) else {
        return;
    };
    let problems = canonical::canonical_problems(path.as_str());
    assert!(problems.is_empty(), "{target:?} -> {path}: {problems:?}");
    let problems = canonical::decoding_problems(path.as_str());
    assert!(problems.is_empty(), "{target:?} -> {path}: {problems:?}");
    assert_eq!(
        parse_target(path.as_str()).as_ref(),
        Ok(&path),
        "{target:?}"
    );
});
