use super::super::*;

fn segs(p: &str) -> Vec<&str> {
    p.split('/').filter(|s| !s.is_empty()).collect()
}

#[test]
fn query_constraints_parse() {
    let p = PathPattern::parse_with_query("/a/b?resource=https%3A%2F%2Fx&client_id=*").unwrap();
    assert_eq!(
        p.query_constraints(),
        &[
            ("resource".to_owned(), Some("https://x".to_owned())),
            ("client_id".to_owned(), None)
        ]
    );
    assert_eq!(p.as_str(), "/a/b?resource=https%3A%2F%2Fx&client_id=*");
    assert!(matches!(
        PathPattern::parse_with_query("/a?x=1&x=2"),
        Err(PatternError::Query(_))
    ));
    assert!(PathPattern::parse_with_query("/a/b")
        .unwrap()
        .query_constraints()
        .is_empty());
}

#[test]
fn at_or_below_finds_any_extension() {
    let below = |pattern: &str, root: &str| {
        PathPattern::parse(pattern)
            .unwrap()
            .matches_at_or_below(&segs(root))
    };
    assert!(below("/a/b/c", "/a"));
    assert!(below("/a/b/c", "/a/b/c"));
    assert!(below("/a/*/c", "/a"));
    assert!(below("/a/**/z", "/a/b/c"));
    assert!(below("/**/kube-env", "/x"));
    assert!(below("/A/B", "/a"), "leniently: case ignored");
    assert!(!below("/a/b/c", "/a/x"));
    assert!(
        !below("/a/b", "/a/b/c"),
        "what is above the root is not returned"
    );
    assert!(!below("/b/**", "/a"));
    assert!(below("/", "/"));
}

#[test]
fn covers_needs_a_final_double_star() {
    let covers =
        |pattern: &str, root: &str| PathPattern::parse(pattern).unwrap().covers(&segs(root));
    assert!(covers("/a/**", "/a"));
    assert!(covers("/a/**", "/a/b"));
    assert!(covers("/*/**", "/a"));
    assert!(!covers("/a/b/**", "/a"));
    assert!(!covers("/a", "/a"));
    assert!(!covers("/a/*", "/a"));
}
