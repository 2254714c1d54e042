use super::*;

fn path(p: &str) -> CanonicalPath {
    parse_target(p).unwrap()
}

fn m(pattern: &str, p: &str) -> bool {
    PathPattern::parse(pattern)
        .unwrap()
        .matches(&path(p), false)
}

#[test]
fn double_star_matches_any_depth_including_zero() {
    assert!(m("/latest/**", "/latest"));
    assert!(m("/latest/**", "/latest/"));
    assert!(m("/latest/**", "/latest/meta-data/iam/info"));
    assert!(!m("/latest/**", "/"));
    assert!(!m("/latest/**", "/latestx/meta-data"));
    assert!(m("/**", "/"));
    assert!(m("/**", "/anything/at/all"));
    assert!(m("/latest/**/info", "/latest/info"));
    assert!(m("/latest/**/info", "/latest/meta-data/iam/info"));
    assert!(!m("/latest/**/info", "/latest/meta-data/iam/info/x"));
    assert!(m("/a/**/b/**/c", "/a/x/b/y/b/z/c"));
    assert!(!m("/a/**/b/**/c", "/a/x/c"));
}

#[test]
fn single_star_is_exactly_one_segment() {
    assert!(m(
        "/latest/meta-data/iam/security-credentials/*",
        "/latest/meta-data/iam/security-credentials/role"
    ));
    assert!(!m(
        "/latest/meta-data/iam/security-credentials/*",
        "/latest/meta-data/iam/security-credentials/"
    ));
    assert!(!m("/latest/*", "/latest/meta-data/ami-id"));
    assert!(m("/latest/*/ami-id", "/latest/meta-data/ami-id"));
}

#[test]
fn trailing_slash_is_ignored_on_both_sides() {
    assert!(m(
        "/latest/meta-data/placement/availability-zone",
        "/latest/meta-data/placement/availability-zone/"
    ));
    assert!(m("/latest/meta-data/", "/latest/meta-data"));
    assert!(m("/latest/meta-data", "/latest/meta-data/"));
}

#[test]
fn literals_are_exact_unless_ignoring_case() {
    let p = PathPattern::parse("/latest/user-data").unwrap();
    assert!(!p.matches(&path("/latest/User-Data"), false));
    assert!(p.matches(&path("/latest/User-Data"), true));
    assert!(!p.matches(&path("/latest/user-data2"), true));
}

/// A deny must catch every spelling that a lenient upstream reads as the denied path.
#[test]
fn deny_matching_sees_what_a_lenient_server_reads() {
    let deny =
        |pattern: &str, p: &str| PathPattern::parse(pattern).unwrap().matches(&path(p), true);
    let iam = "/latest/meta-data/iam/**";
    for p in [
        "/latest/meta-data/iam./info",
        "/latest/meta-data/iam../info",
        "/latest/meta-data/iam%20/info",
        "/latest/meta-data/iam.%20/info",
        "/latest/meta-data/IAM.%20/security-credentials/",
        "/latest/meta-data/.../iam/info",
        "/latest/meta-data/iam",
    ] {
        assert!(deny(iam, p), "{p}");
    }
    for p in ["/latest/meta-data/iamx/info", "/latest/meta-data/.iam/info"] {
        assert!(!deny(iam, p), "{p}");
    }
    // Escapes of characters with a meaning of their own are decoded by most servers.
    let tag = "/latest/meta-data/tags/instance/aws:cloudformation:stack-name";
    assert!(deny(
        tag,
        "/latest/meta-data/tags/instance/aws%3Acloudformation%3astack-name"
    ));
    assert!(deny("/latest/meta-data/a%21b", "/latest/meta-data/a!b"));
    // Allow patterns stay exact: they only ever let through what they name.
    assert!(!m(
        tag,
        "/latest/meta-data/tags/instance/aws%3Acloudformation:stack-name"
    ));
    assert!(!m("/latest/meta-data/iam", "/latest/meta-data/iam."));
}

#[test]
fn lenient_matching_survives_malformed_input() {
    let p = PathPattern::parse("/a/**").unwrap();
    for segments in [["%"], ["%4"], ["%zz"], ["%ff"], ["%C3"], [""]] {
        let _ = p.matches_segments(&segments, true);
    }
    assert!(p.matches_segments(&["%41", "x"], true));
}

#[test]
fn escapes_compare_in_canonical_form() {
    assert!(m(
        "/latest/meta-data/tags/a%3ab",
        "/latest/meta-data/tags/a%3Ab"
    ));
}

#[test]
fn bad_patterns_are_refused() {
    assert_eq!(
        PathPattern::parse("latest/**"),
        Err(PatternError::NotAbsolute)
    );
    assert!(matches!(
        PathPattern::parse("/latest/../x"),
        Err(PatternError::Path(_))
    ));
    assert!(matches!(
        PathPattern::parse("/latest/x?y"),
        Err(PatternError::Path(_))
    ));
    assert_eq!(
        PathPattern::parse("/latest/ami-*"),
        Err(PatternError::PartialWildcard("ami-*".into()))
    );
    assert!(matches!(
        PathPattern::parse("/latest/***"),
        Err(PatternError::PartialWildcard(_))
    ));
}

#[test]
fn long_paths_match() {
    let deep = format!("/latest/{}", vec!["x"; 40].join("/"));
    assert!(m("/latest/**", &deep));
    assert!(m("/latest/**/x", &deep));
    assert!(!m("/latest/**/y", &deep));
}

mod query;
