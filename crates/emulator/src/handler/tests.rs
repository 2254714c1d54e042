use super::super::EmulatorOptions;
use super::*;

fn state(tokens: TokenMode) -> State {
    let options = EmulatorOptions {
        tokens,
        hop_limit: 3,
        ..EmulatorOptions::default()
    };
    super::super::build_state(options).expect("valid options")
}

fn request(method: Method, path: &str, headers: &[(&str, &str)]) -> Request<()> {
    let mut builder = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("valid request")
}

#[test]
fn only_a_successful_token_response_asks_for_the_hop_limit() {
    let state = state(TokenMode::Required);
    let ok = handle(
        &state,
        &request(Method::PUT, TOKEN_PATH, &[(TTL_HEADER, "60")]),
    );
    assert_eq!(ok.response.status(), StatusCode::OK);
    assert_eq!(ok.ttl, ResponseTtl::HopLimit(3));

    let cases = [
        request(Method::PUT, TOKEN_PATH, &[]),
        request(
            Method::PUT,
            TOKEN_PATH,
            &[(TTL_HEADER, "60"), (FORWARDED_HEADER, "10.0.0.1")],
        ),
        request(Method::GET, TOKEN_PATH, &[]),
        request(Method::GET, "/latest/meta-data/", &[]),
        request(Method::PUT, "/latest/meta-data/", &[(TTL_HEADER, "60")]),
    ];
    for req in &cases {
        let reply = handle(&state, req);
        assert_ne!(reply.response.status(), StatusCode::OK);
        assert_eq!(
            reply.ttl,
            ResponseTtl::Normal,
            "{} {}",
            req.method(),
            req.uri()
        );
    }
}

#[test]
fn a_throttled_service_answers_429_beyond_its_rate() {
    let options = EmulatorOptions {
        throttle: Some(3),
        ..EmulatorOptions::default()
    };
    let state = super::super::build_state(options).expect("valid options");
    let statuses: Vec<u16> = (0..5)
        .map(|_| {
            handle(
                &state,
                &request(Method::GET, "/latest/meta-data/instance-id", &[]),
            )
            .response
            .status()
            .as_u16()
        })
        .collect();
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    assert_eq!(
        state.throttled.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    std::thread::sleep(std::time::Duration::from_millis(400));
    let again = handle(
        &state,
        &request(Method::GET, "/latest/meta-data/instance-id", &[]),
    );
    assert_eq!(
        again.response.status(),
        200,
        "a token back after a third of a second"
    );
}

#[test]
fn reads_use_the_normal_ttl() {
    let state = state(TokenMode::Optional);
    let reply = handle(
        &state,
        &request(Method::GET, "/latest/meta-data/instance-id", &[]),
    );
    assert_eq!(reply.response.status(), StatusCode::OK);
    assert_eq!(reply.ttl, ResponseTtl::Normal);
}

#[test]
fn ttl_header_parsing() {
    let ttl = |value: &str| {
        let mut headers = HeaderMap::new();
        headers.insert(TTL_HEADER, HeaderValue::from_str(value).expect("value"));
        requested_ttl(&headers)
    };
    assert_eq!(ttl("1"), Some(1));
    assert_eq!(ttl("21600"), Some(21600));
    for bad in [
        "",
        "0",
        "21601",
        "+5",
        "-1",
        "abc",
        "1.5",
        "99999999999999999999",
    ] {
        assert_eq!(ttl(bad), None, "{bad:?}");
    }
    let mut two = HeaderMap::new();
    two.append(TTL_HEADER, HeaderValue::from_static("5"));
    two.append(TTL_HEADER, HeaderValue::from_static("6"));
    assert_eq!(requested_ttl(&two), None);
}

#[test]
fn paths_resolve_like_aws() {
    let state = state(TokenMode::Optional);
    let body = |path: &str| match resolve(&state, path) {
        Resolved::Body(body) => Some(body),
        Resolved::NotFound => None,
    };
    assert_eq!(body("/").as_deref(), Some("latest"));
    assert_eq!(
        body("/latest").as_deref(),
        Some("dynamic\nmeta-data\nuser-data")
    );
    assert_eq!(
        body("/latest/").as_deref(),
        Some("dynamic\nmeta-data\nuser-data")
    );
    assert_eq!(
        body("/latest/meta-data/placement/region/").as_deref(),
        Some("us-east-1")
    );
    for missing in [
        "/latestx",
        "/latest//",
        "/latest/meta-data//",
        "/latest/meta-data/../user-data",
        "/latest/meta-data/./mac",
        "/latest/%6deta-data/",
        "/latest/meta-data/mac//",
        "",
    ] {
        assert!(body(missing).is_none(), "{missing:?}");
    }
}
