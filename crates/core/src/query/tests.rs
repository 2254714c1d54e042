use super::*;
use crate::target::parse_target;

#[test]
fn reads_and_re_encodes() {
    let q = parse("api-version=2018-02-01&resource=https%3a%2F%2Fvault.azure.net").unwrap();
    assert_eq!(q.get("resource"), Some("https://vault.azure.net"));
    assert_eq!(
        q.canonical(),
        "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
    );
    let raw = parse("resource=https://vault.azure.net/").unwrap();
    assert_eq!(raw.canonical(), "resource=https%3A%2F%2Fvault.azure.net%2F");
    assert_eq!(parse(&raw.canonical()).unwrap(), raw, "a fixed point");
    assert_eq!(parse("a=").unwrap().get("a"), Some(""));
}

#[test]
fn refuses_what_two_readers_read_differently() {
    use QueryError::*;
    let refused: &[(&str, QueryError)] = &[
        ("", EmptyPair),
        ("a=1&", EmptyPair),
        ("&a=1", EmptyPair),
        ("a=1&&b=2", EmptyPair),
        ("a=1;b=2", Semicolon),
        ("recursive", NoValue),
        ("%72ecursive=true", BadKey),
        ("re cursive=true", BadKey),
        ("=x", BadKey),
        ("a=1&a=2", Duplicate("a".into())),
        ("a=x+y", Plus),
        ("a=x y", BadChar),
        ("a=x#y", BadChar),
        ("a=x?y", BadChar),
        ("a=b=c", BadChar),
        ("a=%zz", BadEscape),
        ("a=%4", BadEscape),
        ("a=%00", BadValue),
        ("a=%0d%0a", BadValue),
        ("a=%c0%ae", BadValue),
        ("a=%ff", BadValue),
        ("last_etag=x%26recursive%3Dtrue", EscapedSeparator),
        ("last_etag=x%3Brecursive%3Dtrue", EscapedSeparator),
        ("a=x%23y", EscapedSeparator),
    ];
    for (raw, want) in refused {
        assert_eq!(parse(raw).as_ref(), Err(want), "{raw:?}");
    }
    assert_eq!(parse(&"a".repeat(MAX_QUERY_LEN + 1)), Err(TooLong));
    // Short enough as sent, too long once every `:` is escaped: refused, so that the
    // canonical form always reads back.
    let long = format!("last_etag={}", ":".repeat(1000));
    assert_eq!(parse(&long), Err(TooLong));
    let fits = format!("last_etag={}", ":".repeat(600));
    assert_eq!(
        parse(&parse(&fits).unwrap().canonical())
            .unwrap()
            .get("last_etag")
            .unwrap()
            .len(),
        600
    );
}

#[test]
fn reads_targets_per_cloud() {
    let (p, q) = read(
        Cloud::Azure,
        "/METADATA/Instance/compute?api-version=2021-02-01",
    )
    .unwrap();
    assert_eq!(p.as_str(), "/metadata/instance/compute");
    assert_eq!(q.canonical(), "api-version=2021-02-01");
    assert!(matches!(
        read(Cloud::Aws, "/latest/meta-data/?x=1"),
        Err(ReadError::Target(crate::target::TargetError::Query))
    ));
    assert!(matches!(
        read(Cloud::Gcp, "/computeMetadata/v1/?recursive=true#x"),
        Err(ReadError::Target(crate::target::TargetError::Fragment))
    ));
    assert!(matches!(
        read(Cloud::Gcp, "/computeMetadata/v1/../0.1/?recursive=true"),
        Err(ReadError::Target(crate::target::TargetError::DotSegment))
    ));
    let (p, q) = read(Cloud::Gcp, "/computeMetadata/v1/instance/").unwrap();
    assert_eq!(
        (p.as_str(), q.is_empty()),
        ("/computeMetadata/v1/instance/", true)
    );
    assert!(read(Cloud::Gcp, "/computeMetadata/v1/instance/?").is_err());
}

#[test]
fn cloud_endpoints_take_only_their_keys() {
    let path = |p: &str| parse_target(p).unwrap();
    let q = |raw: &str| parse(raw).unwrap();
    let token = path("/metadata/identity/oauth2/token");
    assert_eq!(
        check(
            Cloud::Azure,
            &token,
            &q("api-version=2018-02-01&resource=r")
        ),
        Ok(())
    );
    assert_eq!(
        check(Cloud::Azure, &token, &q("resource=r")),
        Err(QueryError::MissingKey("api-version"))
    );
    assert_eq!(
        check(
            Cloud::Azure,
            &token,
            &q("api-version=2018-02-01&resource=r&x=1")
        ),
        Err(QueryError::UnknownKey("x".into()))
    );
    assert_eq!(
        check(Cloud::Azure, &path("/metadata/versions"), &Query::none()),
        Ok(())
    );
    assert_eq!(
        check(
            Cloud::Azure,
            &path("/metadata/instance"),
            &q("api-version=yesterday")
        ),
        Err(QueryError::BadKeyValue("api-version".into()))
    );
    let gcp = path("/computeMetadata/v1/instance/service-accounts/default/");
    assert_eq!(check(Cloud::Gcp, &gcp, &q("recursive=true")), Ok(()));
    assert_eq!(
        check(Cloud::Gcp, &gcp, &q("recursive=1")),
        Err(QueryError::BadKeyValue("recursive".into()))
    );
    assert_eq!(
        check(Cloud::Gcp, &gcp, &q("audience=x")),
        Err(QueryError::UnknownKey("audience".into()))
    );
    let id = path("/computeMetadata/v1/instance/service-accounts/default/identity");
    assert_eq!(
        check(Cloud::Gcp, &id, &q("audience=https://x&format=full")),
        Ok(())
    );
    assert_eq!(
        check(Cloud::Aws, &path("/latest/meta-data/"), &q("a=1")),
        Err(QueryError::NotAccepted)
    );
    assert_eq!(
        check(Cloud::Gcp, &path("/"), &q("recursive=true")),
        Err(QueryError::NotAccepted)
    );
}
