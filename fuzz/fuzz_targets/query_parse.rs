//! `query::parse` on any text: it never panics, and a query it accepts has a canonical form made
//! only of unreserved characters, upper-case `%XX`, `=` and `&`, which parses back to the same
//! query (a fixed point).
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/bypass/canonical.rs"]
mod canonical;
#[allow(dead_code)]
#[path = "../../tests/bypass/lenient.rs"]
mod lenient;

use imds_guard_core::query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(parsed) = query::parse(raw) else {
        return;
    };
    let canonical = parsed.canonical();
    let problems = canonical::query_problems(&canonical);
    assert!(
        problems.is_empty(),
        "{raw:?} -> {canonical:?}: {problems:?}"
    );
    assert_eq!(
        query::parse(&canonical).as_ref(),
        Ok(&parsed),
        "{raw:?}: the canonical form {canonical:?} does not parse back to the same query"
    );
    assert_eq!(parsed.canonical(), canonical, "canonical is not stable");
});
