//! `query::read` for every cloud on any target: it never panics; what it accepts has a canonical
//! path (the promises of `tests/bypass/canonical.rs`; lower case on Azure) and reads again, from
//! its canonical text, as the same path and query; and the cloud's per-path rules (endpoint,
//! legacy tree, aggregate root, gate) never panic on it.
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/bypass/canonical.rs"]
mod canonical;
#[allow(dead_code)]
#[path = "../../tests/bypass/lenient.rs"]
mod lenient;

use imds_guard_core::cloud::{Cloud, ALL};
use imds_guard_core::query;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(target) = std::str::from_utf8(rest) else {
        return;
    };
    let cloud = ALL[usize::from(first) % ALL.len()];
    let Ok((path, q)) = query::read(cloud, target) else {
        return;
    };
    let problems = canonical::canonical_problems(path.as_str());
    assert!(
        problems.is_empty(),
        "{cloud} {target:?} -> {path}: {problems:?}"
    );
    let problems = canonical::decoding_problems(path.as_str());
    assert!(
        problems.is_empty(),
        "{cloud} {target:?} -> {path}: {problems:?}"
    );
    if cloud == Cloud::Azure {
        // Read in lower case there; only the hex digits of escapes are upper case.
        let mut letters = path.as_str().split('%');
        let outside = letters
            .next()
            .into_iter()
            .chain(letters.map(|s| s.get(2..).unwrap_or("")));
        assert!(
            outside
                .flat_map(str::bytes)
                .all(|b| !b.is_ascii_uppercase()),
            "{target:?} -> {path}: not lower case"
        );
    }
    let again = if q.is_empty() {
        path.as_str().to_owned()
    } else {
        format!("{path}?{}", q.canonical())
    };
    assert_eq!(
        query::read(cloud, &again),
        Ok((path.clone(), q.clone())),
        "{cloud} {target:?}: the canonical target {again:?} reads differently"
    );
    let _ = cloud.endpoint(&path);
    let _ = cloud.is_legacy(&path);
    let _ = cloud.gated(&path);
    let _ = cloud.aggregate_root(&path, &q);
});
