use super::*;
use crate::cacheable::CachePaths;

fn cache(max_age: u64, refresh: u64) -> Cache {
    Cache::new(
        config::Cache {
            max_age: Duration::from_secs(max_age),
            credentials_refresh: Duration::from_secs(refresh),
            max_entries: 2,
            paths: CachePaths::default(),
        },
        Arc::new(Metrics::new()),
    )
}

fn ok(body: &str) -> Arc<Stored> {
    Arc::new(Stored {
        status: StatusCode::OK,
        headers: HeaderMap::new(),
        body: Bytes::from(body.to_owned()),
    })
}

fn credentials(expires_in: Duration) -> Arc<Stored> {
    let at = humantime::format_rfc3339_seconds(SystemTime::now() + expires_in);
    ok(&format!(
        r#"{{"Code":"Success","LastUpdated":"2026-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIA","SecretAccessKey":"s","Token":"t","Expiration":"{at}"}}"#
    ))
}

fn is_fresh(found: Found) -> bool {
    matches!(found, Found::Fresh(_))
}

#[test]
fn stable_answers_for_their_age_and_the_least_recent_go_first() {
    let c = cache(300, 60);
    let now = Instant::now();
    assert!(c.store("/a", CacheClass::Stable, &ok("a"), now));
    assert!(is_fresh(c.get("/a", now + Duration::from_secs(299))));
    assert!(matches!(
        c.get("/a", now + Duration::from_secs(300)),
        Found::Missing
    ));
    c.store("/a", CacheClass::Stable, &ok("a"), now);
    c.store("/b", CacheClass::Stable, &ok("b"), now);
    c.get("/a", now);
    c.store("/c", CacheClass::Stable, &ok("c"), now);
    assert!(is_fresh(c.get("/a", now)) && is_fresh(c.get("/c", now)));
    assert!(
        matches!(c.get("/b", now), Found::Missing),
        "max_entries = 2"
    );
}

#[test]
fn only_successes_of_cacheable_classes_are_kept() {
    let c = cache(300, 60);
    let now = Instant::now();
    let not_found = Arc::new(Stored {
        status: StatusCode::NOT_FOUND,
        headers: HeaderMap::new(),
        body: Bytes::new(),
    });
    assert!(!c.store("/a", CacheClass::Stable, &not_found, now));
    assert!(!c.store("/u", CacheClass::Never, &ok("u"), now));
    assert!(!c.store("/r", CacheClass::Credentials, &ok("not json"), now));
    assert!(!c.store(
        "/r",
        CacheClass::Credentials,
        &ok(r#"{"Code":"Failure","Expiration":"2099-01-01T00:00:00Z"}"#),
        now
    ));
}

#[test]
fn credentials_until_the_refresh_point_with_a_background_refresh_before() {
    // Refetched after `max_age` too: with 300 s, an hour's credentials are asked for again
    // (in the background) after five minutes.
    let c = cache(300, 60);
    let now = Instant::now();
    let hour = credentials(Duration::from_secs(3600));
    assert!(c.store("/r", CacheClass::Credentials, &hour, now));
    assert!(is_fresh(c.get("/r", now + Duration::from_secs(299))));
    assert!(matches!(
        c.get("/r", now + Duration::from_secs(301)),
        Found::Refresh(_)
    ));
    let c = cache(3600, 60);
    let now = Instant::now();
    // Good for an hour: kept 59 minutes at most, refreshed in the background in the last one.
    assert!(c.store(
        "/r",
        CacheClass::Credentials,
        &credentials(Duration::from_secs(3600)),
        now
    ));
    assert!(is_fresh(c.get("/r", now + Duration::from_secs(3400))));
    let window = now + Duration::from_secs(3490);
    assert!(matches!(c.get("/r", window), Found::Refresh(_)));
    assert!(is_fresh(c.get("/r", window)), "one refresh at a time");
    c.refresh_failed("/r");
    assert!(is_fresh(c.get("/r", window)), "not again at once");
    assert!(
        matches!(
            c.get("/r", window + Duration::from_secs(7)),
            Found::Refresh(_)
        ),
        "tried again after a tenth of the window"
    );
    assert!(matches!(
        c.get("/r", now + Duration::from_secs(3541)),
        Found::Missing
    ));
    // The service gives the same credentials again: asked again only after the retry interval
    // (a tenth of the window, from 1 to 30 s), not by the next request.
    let same = credentials(Duration::from_secs(3600));
    let c = cache(300, 600);
    assert!(c.store("/s", CacheClass::Credentials, &same, now));
    let window = now + Duration::from_secs(2500);
    assert!(matches!(c.get("/s", window), Found::Refresh(_)));
    // (Stored as of `now`: the document's expiry is read against the real clock.)
    assert!(c.store("/s", CacheClass::Credentials, &same, now));
    assert!(is_fresh(c.get("/s", window + Duration::from_secs(29))));
    assert!(matches!(
        c.get("/s", window + Duration::from_secs(31)),
        Found::Refresh(_)
    ));
    // Within the refresh stretch already: kept a moment only.
    let c = cache(300, 60);
    assert!(c.store(
        "/late",
        CacheClass::Credentials,
        &credentials(Duration::from_secs(59)),
        now
    ));
    assert!(is_fresh(c.get("/late", now + Duration::from_secs(4))));
    assert!(matches!(
        c.get("/late", now + Duration::from_secs(6)),
        Found::Missing
    ));
    // Too close to their expiry to keep at all.
    assert!(!c.store(
        "/r",
        CacheClass::Credentials,
        &credentials(Duration::from_secs(2)),
        now
    ));
}

#[tokio::test]
async fn one_fetch_for_many_and_an_abandoned_one_lets_them_ask_again() {
    let c = cache(300, 60);
    let Join::Lead(lead) = c.join("/a") else {
        panic!("first one leads")
    };
    let followers: Vec<_> = (0..3)
        .map(|_| match c.join("/a") {
            Join::Follow(rx) => rx,
            Join::Lead(_) => panic!("a second leader"),
        })
        .collect();
    lead.finish(Outcome::Answer(ok("a")));
    for rx in followers {
        assert!(matches!(follow(rx).await, Outcome::Answer(a) if a.body == "a"));
    }
    let Join::Lead(lead) = c.join("/a") else {
        panic!("the flight landed: a new one leads")
    };
    let Join::Follow(rx) = c.join("/a") else {
        panic!("follows")
    };
    drop(lead);
    assert!(matches!(follow(rx).await, Outcome::Abandoned));
}

#[test]
fn reads_the_expiration_of_credentials() {
    let now = SystemTime::now();
    let left = credentials_left(&credentials(Duration::from_secs(120)).body, now).unwrap();
    assert!(
        left <= Duration::from_secs(120) && left > Duration::from_secs(115),
        "{left:?}"
    );
    assert_eq!(
        credentials_left(br#"{"Expiration":"2000-01-01T00:00:00Z"}"#, now),
        None
    );
    assert_eq!(credentials_left(b"{}", now), None);
}
