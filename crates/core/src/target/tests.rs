use super::*;

fn ok(target: &str) -> String {
    match parse_target(target) {
        Ok(path) => path.to_string(),
        Err(e) => panic!("{target:?} refused: {e}"),
    }
}

#[test]
fn accepts_the_paths_sdks_send() {
    assert_eq!(ok("/latest/api/token"), "/latest/api/token");
    assert_eq!(ok("/latest/meta-data/"), "/latest/meta-data/");
    assert_eq!(
        ok("/latest/meta-data/placement/availability-zone/"),
        "/latest/meta-data/placement/availability-zone/"
    );
    assert_eq!(
        ok("/latest/meta-data/iam/security-credentials/my-role"),
        "/latest/meta-data/iam/security-credentials/my-role"
    );
    assert_eq!(ok("/"), "/");
}

#[test]
fn collapses_slash_runs_and_keeps_a_trailing_slash() {
    assert_eq!(ok("//latest///meta-data//"), "/latest/meta-data/");
    let path = parse_target("/latest/meta-data/").unwrap();
    assert!(path.has_trailing_slash());
    assert_eq!(path.segments().collect::<Vec<_>>(), ["latest", "meta-data"]);
    assert!(!parse_target("/").unwrap().has_trailing_slash());
}

#[test]
fn upper_cases_kept_escapes() {
    assert_eq!(
        ok("/latest/meta-data/tags/instance/My%20tag%3a"),
        "/latest/meta-data/tags/instance/My%20tag%3A"
    );
}

/// The table of tricky targets: each with the outcome a strict reader must give.
#[test]
fn tricky_targets() {
    use TargetError::*;
    let refused: &[(&str, TargetError)] = &[
        ("", Empty),
        ("*", Asterisk),
        ("http://169.254.169.254/latest/user-data", AbsoluteForm),
        ("HTTP://169.254.169.254/latest/meta-data/", AbsoluteForm),
        ("169.254.169.254:80", AuthorityForm),
        ("latest/meta-data", AuthorityForm),
        ("/latest/meta-data/../user-data", DotSegment),
        ("/latest/meta-data/..", DotSegment),
        ("/latest/./user-data", DotSegment),
        ("/latest/meta-data/.", DotSegment),
        ("/latest/meta-data/..%20/user-data", DotSegment),
        ("/latest/meta-data/%20../user-data", DotSegment),
        ("/latest/meta-data/.%20/iam/info", DotSegment),
        ("/latest/meta-data/.%20./user-data", DotSegment),
        ("/latest/meta-data/%20/iam/info", DotSegment),
        ("/latest/meta-data/%20%20", DotSegment),
        ("/../latest/user-data", DotSegment),
        ("/latest/meta-data/%2e%2e/user-data", ForbiddenEscape),
        ("/latest/meta-data/%2E%2E/user-data", ForbiddenEscape),
        ("/latest/meta-data/.%2e/user-data", ForbiddenEscape),
        ("/latest/meta-data/%2e./user-data", ForbiddenEscape),
        ("/latest/meta-data/%252e%252e/user-data", ForbiddenEscape),
        ("/latest/meta-data%2f..%2fuser-data", ForbiddenEscape),
        ("/latest/meta-data%2F..%2Fuser-data", ForbiddenEscape),
        ("/latest/meta-data/%5c..%5cuser-data", ForbiddenEscape),
        ("/latest/meta-data\\..\\user-data", Backslash),
        ("/latest\\user-data", Backslash),
        ("/latest/user-d%61ta", ForbiddenEscape),
        ("/latest/%75ser-data", ForbiddenEscape),
        ("/latest/user%2ddata", ForbiddenEscape),
        ("/latest/user-data%00", ForbiddenEscape),
        ("/latest/user-data\0", ControlByte),
        ("/latest/user-data\r\nX: y", ControlByte),
        ("/latest/user-data\t", ControlByte),
        ("/latest/user-data\x7f", ControlByte),
        ("/latest/%c0%ae%c0%ae/user-data", ForbiddenEscape),
        ("/latest/%e0%80%ae/user-data", ForbiddenEscape),
        ("/latest/meta-data/\u{ff0e}\u{ff0e}/user-data", ControlByte),
        ("/latest/user-data;jsessionid=1", Semicolon),
        ("/latest/meta-data/..;/user-data", Semicolon),
        ("/latest/user-data%3b", ForbiddenEscape),
        ("/latest/meta-data/?/../user-data", Query),
        ("/latest/user-data?x=1", Query),
        ("/latest/meta-data/#/../../user-data", Fragment),
        ("/latest/user-data%3f", ForbiddenEscape),
        ("/latest/user-data%23", ForbiddenEscape),
        ("/latest/user-data%", BadEscape),
        ("/latest/user-data%2", BadEscape),
        ("/latest/user-data%zz", BadEscape),
        ("/latest/user-data%+1", BadEscape),
        ("/latest/user data", BadChar),
        ("/latest/<user-data>", BadChar),
        ("/latest/user-data\"", BadChar),
        ("/latest/{user-data}", BadChar),
        ("/latest/user-data|x", BadChar),
        ("/latest/user-data^", BadChar),
        ("/latest/user-data`", BadChar),
        ("/latest/user-data[0]", BadChar),
    ];
    for (target, want) in refused {
        assert_eq!(parse_target(target), Err(*want), "target {target:?}");
    }
    let long = format!("/latest/{}", "a".repeat(MAX_TARGET_LEN));
    assert_eq!(parse_target(&long), Err(TooLong));

    let accepted: &[(&str, &str)] = &[
        ("/latest/meta-data/...", "/latest/meta-data/..."),
        ("/latest/meta-data/.hidden", "/latest/meta-data/.hidden"),
        ("/latest/meta-data/a..b", "/latest/meta-data/a..b"),
        (
            "/latest/meta-data/public-keys/0=key",
            "/latest/meta-data/public-keys/0=key",
        ),
        ("/latest/meta-data/a%20b", "/latest/meta-data/a%20b"),
        ("/latest/meta-data/a.%20", "/latest/meta-data/a.%20"),
        ("/latest/meta-data/a%40b", "/latest/meta-data/a%40b"),
        ("/latest/meta-data/*", "/latest/meta-data/*"),
        ("/latest/meta-data/a@b:c", "/latest/meta-data/a@b:c"),
        ("///", "/"),
    ];
    for (target, want) in accepted {
        assert_eq!(ok(target), *want, "target {target:?}");
    }
}

#[test]
fn canonical_form_is_a_fixed_point() {
    for target in ["/a//b/", "/x/%3a/y", "//", "/latest/meta-data/a%20b/"] {
        let once = ok(target);
        assert_eq!(ok(&once), once, "{target:?}");
    }
}
