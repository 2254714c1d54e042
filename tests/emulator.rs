//! End-to-end tests of the AWS metadata emulator over real sockets.
//!
//! Each test starts `serve` on an ephemeral loopback port and talks to it as
//! a client would, so they cover the HTTP layer (status codes, headers, HEAD
//! handling, shutdown) as well as the emulated behaviour.

use std::io::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use imds_guard::cloud::Cloud;
use imds_guard_emulator::{load_metadata, serve, EmulatorError, EmulatorOptions, TokenMode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const TOKEN_PATH: &str = "/latest/api/token";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const ROLE: &str = "imds-guard-node-role";
const CREDS_PATH: &str = "/latest/meta-data/iam/security-credentials/imds-guard-node-role";

/// A running emulator; dropping it without `stop` leaves the task to the runtime.
struct Emulator {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Emulator {
    async fn start(options: EmulatorOptions) -> Emulator {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, options, async move {
            let _ = stopped.await;
        }));
        Emulator {
            addr,
            stop: Some(stop),
            task,
        }
    }

    async fn with_tokens(tokens: TokenMode) -> Emulator {
        Emulator::start(EmulatorOptions {
            tokens,
            ..EmulatorOptions::default()
        })
        .await
    }

    /// Sends one request and returns status, headers and body text.
    async fn send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, path));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(Bytes::new())).expect("request");
        let response = client.request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        let body = String::from_utf8(body.to_vec()).expect("utf-8 body");
        (parts.status, parts.headers, body)
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let (status, _, body) = self.send(Method::GET, path, headers).await;
        (status, body)
    }

    async fn token(&self, ttl: &str) -> String {
        let (status, _, token) = self
            .send(Method::PUT, TOKEN_PATH, &[(TTL_HEADER, ttl)])
            .await;
        assert_eq!(status, StatusCode::OK);
        token
    }

    /// Signals shutdown and waits (bounded) for `serve` to return.
    async fn stop(mut self) -> std::io::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("serve task did not panic")
    }
}

/// Raw HTTP/1.1 exchange on a fresh connection, for what a client library hides.
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    String::from_utf8(response).expect("utf-8 response")
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).expect("valid JSON")
}

fn timestamp(value: &Value) -> SystemTime {
    let text = value.as_str().expect("timestamp is a string");
    assert!(text.ends_with('Z'), "{text}");
    humantime::parse_rfc3339(text).expect("RFC 3339 timestamp")
}

#[tokio::test]
async fn token_put_returns_a_token_and_echoes_the_ttl() {
    let emu = Emulator::with_tokens(TokenMode::Required).await;
    let (status, headers, token) = emu
        .send(Method::PUT, TOKEN_PATH, &[(TTL_HEADER, "21600")])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[TTL_HEADER], "21600");
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["server"], "EC2ws");
    assert_eq!(token.len(), 56, "{token}");
    assert!(token.starts_with("AQAEA"));
    assert_ne!(token, emu.token("60").await, "tokens are fresh");
    emu.stop().await.expect("clean stop");
}

#[tokio::test]
async fn token_put_rejects_a_missing_or_bad_ttl() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    let (status, _, _) = emu.send(Method::PUT, TOKEN_PATH, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "missing");
    for bad in ["0", "21601", "abc", "-5", "1.5", ""] {
        let (status, _, _) = emu
            .send(Method::PUT, TOKEN_PATH, &[(TTL_HEADER, bad)])
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    let (status, _, _) = emu
        .send(Method::PUT, TOKEN_PATH, &[(TTL_HEADER, "1")])
        .await;
    assert_eq!(status, StatusCode::OK, "1 is the lowest valid TTL");
}

#[tokio::test]
async fn token_put_through_a_proxy_is_forbidden() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    let (status, headers, body) = emu
        .send(
            Method::PUT,
            TOKEN_PATH,
            &[(TTL_HEADER, "60"), ("x-forwarded-for", "10.1.2.3")],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(!headers.contains_key(TTL_HEADER));
    assert!(body.contains("403"), "{body}");
}

#[tokio::test]
async fn reads_with_a_valid_token_are_served_in_required_mode() {
    let emu = Emulator::with_tokens(TokenMode::Required).await;
    let token = emu.token("60").await;
    let (status, body) = emu
        .get("/latest/meta-data/instance-id", &[(TOKEN_HEADER, &token)])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "i-0123456789abcdef0");
}

#[tokio::test]
async fn unknown_tokens_are_refused_in_both_modes() {
    for mode in [TokenMode::Optional, TokenMode::Required] {
        let emu = Emulator::with_tokens(mode).await;
        let (status, body) = emu
            .get(
                "/latest/meta-data/instance-id",
                &[(
                    TOKEN_HEADER,
                    "AQAEAnot-a-token-issued-by-this-emulator-at-all-000000",
                )],
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{mode}");
        assert!(!body.contains("i-0123456789abcdef0"));
        let (status, _) = emu
            .get("/latest/meta-data/instance-id", &[(TOKEN_HEADER, "")])
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{mode}: empty token");
    }
}

#[tokio::test]
async fn tokenless_reads_depend_on_the_mode() {
    let optional = Emulator::with_tokens(TokenMode::Optional).await;
    let (status, body) = optional.get("/latest/meta-data/instance-id", &[]).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "i-0123456789abcdef0")
    );

    let required = Emulator::with_tokens(TokenMode::Required).await;
    let (status, body) = required.get("/latest/meta-data/instance-id", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(!body.contains("i-0123456789abcdef0"));
    // Unknown paths do not reveal themselves without a token either.
    let (status, _) = required.get("/latest/no-such-thing", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let emu = Emulator::with_tokens(TokenMode::Required).await;
    let token = emu.token("1").await;
    let (status, _) = emu
        .get("/latest/meta-data/", &[(TOKEN_HEADER, &token)])
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, _) = emu
        .get("/latest/meta-data/", &[(TOKEN_HEADER, &token)])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn wrong_methods_get_405() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    for method in [Method::POST, Method::DELETE, Method::PATCH, Method::OPTIONS] {
        let (status, headers, _) = emu.send(method.clone(), "/latest/meta-data/", &[]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(headers["allow"], "GET, HEAD");
    }
    let (status, _, _) = emu
        .send(
            Method::PUT,
            "/latest/meta-data/instance-id",
            &[(TTL_HEADER, "60")],
        )
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "PUT elsewhere");
    let (status, headers, _) = emu.send(Method::GET, TOKEN_PATH, &[]).await;
    assert_eq!(
        status,
        StatusCode::METHOD_NOT_ALLOWED,
        "GET on the token path"
    );
    assert_eq!(headers["allow"], "PUT");
    let (status, _, _) = emu
        .send(Method::POST, TOKEN_PATH, &[(TTL_HEADER, "60")])
        .await;
    assert_eq!(
        status,
        StatusCode::METHOD_NOT_ALLOWED,
        "POST on the token path"
    );
}

#[tokio::test]
async fn listings_mark_directories_with_a_slash() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    assert_eq!(emu.get("/", &[]).await, (StatusCode::OK, "latest".into()));
    for path in ["/latest", "/latest/"] {
        assert_eq!(
            emu.get(path, &[]).await,
            (StatusCode::OK, "dynamic\nmeta-data\nuser-data".into()),
            "{path}"
        );
    }
    let (status, listing) = emu.get("/latest/meta-data/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(!listing.ends_with('\n'), "no trailing newline");
    let lines: Vec<&str> = listing.lines().collect();
    for expected in [
        "iam/",
        "placement/",
        "network/",
        "instance-id",
        "instance-type",
        "mac",
    ] {
        assert!(lines.contains(&expected), "{expected} in {lines:?}");
    }
    // Every entry resolves; those ending in `/` are listings of names.
    for line in &lines {
        let (status, child) = emu.get(&format!("/latest/meta-data/{line}"), &[]).await;
        assert_eq!(status, StatusCode::OK, "{line}");
        if line.ends_with('/') {
            assert!(
                child
                    .lines()
                    .all(|l| !l.is_empty() && !l.contains([' ', ':'])),
                "{line} lists {child:?}"
            );
        }
    }
    assert_eq!(
        emu.get("/latest/meta-data/placement", &[]).await,
        (
            StatusCode::OK,
            "availability-zone\navailability-zone-id\nregion".into()
        ),
        "directory without trailing slash"
    );
    assert_eq!(
        emu.get("/latest/meta-data/public-keys/", &[]).await.1,
        "0=node-key"
    );
    let (status, key) = emu
        .get("/latest/meta-data/public-keys/0/openssh-key", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(key.starts_with("ssh-ed25519 "), "{key}");
}

#[tokio::test]
async fn a_leaf_is_served_with_or_without_a_trailing_slash() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    for path in [
        "/latest/meta-data/placement/availability-zone",
        "/latest/meta-data/placement/availability-zone/",
    ] {
        assert_eq!(
            emu.get(path, &[]).await,
            (StatusCode::OK, "us-east-1a".into()),
            "{path}"
        );
    }
}

#[tokio::test]
async fn unknown_and_malformed_paths_are_404() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    for path in [
        "/latest/meta-data/no-such-key",
        "/latest/Meta-Data/",
        "/latest//meta-data/",
        "/latest/meta-data//instance-id",
        "/latest/meta-data/instance-id//",
        "/latest/meta-data/../user-data",
        "/latest/meta-data/./instance-id",
        "/latest/meta-data/%69nstance-id",
        "/latest/user-data/x",
        "/2021-01-03/meta-data/",
        "/latestx",
    ] {
        let (status, headers, body) = emu.send(Method::GET, path, &[]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(body.contains("404 - Not Found"), "{path}: {body}");
        assert_eq!(headers["server"], "EC2ws");
    }
}

#[tokio::test]
async fn head_has_the_length_but_no_body() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    let (_, user_data) = emu.get("/latest/user-data", &[]).await;
    let response = raw(
        emu.addr,
        "HEAD /latest/user-data HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n",
    )
    .await;
    let (head, body) = response.split_once("\r\n\r\n").expect("header end");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length_line = format!("content-length: {}", user_data.len());
    assert!(
        head.to_ascii_lowercase().contains(&length_line),
        "{head} lacks {length_line}"
    );
    assert_eq!(body, "", "HEAD must not carry a body");

    // Error responses to HEAD have no body either.
    let required = Emulator::with_tokens(TokenMode::Required).await;
    for (path, status) in [("/latest/user-data", "401"), (TOKEN_PATH, "405")] {
        let response = raw(
            required.addr,
            &format!("HEAD {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
        )
        .await;
        let (head, body) = response.split_once("\r\n\r\n").expect("header end");
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{head}");
        assert_eq!(body, "", "{path}");
    }
}

#[tokio::test]
async fn user_data_and_identity_document() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    let (status, user_data) = emu.get("/latest/user-data", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(user_data.starts_with("#!/bin/bash\n"));
    assert!(user_data.contains("NODE_BOOTSTRAP_SECRET=emulator-not-a-secret"));

    let (status, document) = emu
        .get("/latest/dynamic/instance-identity/document", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let document = json(&document);
    assert_eq!(document["region"], "us-east-1");
    assert_eq!(document["instanceId"], "i-0123456789abcdef0");
    assert_eq!(document["version"], "2017-09-30");
    for key in [
        "accountId",
        "architecture",
        "availabilityZone",
        "imageId",
        "instanceType",
        "pendingTime",
        "privateIp",
    ] {
        assert!(document[key].is_string(), "{key}");
    }
    for leaf in ["pkcs7", "signature"] {
        let (status, body) = emu
            .get(&format!("/latest/dynamic/instance-identity/{leaf}"), &[])
            .await;
        assert_eq!(status, StatusCode::OK);
        assert!(!body.is_empty());
    }
    let info = json(&emu.get("/latest/meta-data/iam/info", &[]).await.1);
    assert_eq!(info["Code"], "Success");
    assert!(info["InstanceProfileArn"]
        .as_str()
        .is_some_and(|a| a.starts_with("arn:aws:iam::")));
}

#[tokio::test]
async fn iam_credentials_are_complete_and_unexpired() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    assert_eq!(
        emu.get("/latest/meta-data/iam/security-credentials/", &[])
            .await,
        (StatusCode::OK, ROLE.into())
    );
    let (status, body) = emu.get(CREDS_PATH, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let creds = json(&body);
    for key in [
        "Code",
        "LastUpdated",
        "Type",
        "AccessKeyId",
        "SecretAccessKey",
        "Token",
        "Expiration",
    ] {
        assert!(creds[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }
    assert_eq!(creds["Code"], "Success");
    assert_eq!(creds["Type"], "AWS-HMAC");
    assert!(creds["AccessKeyId"]
        .as_str()
        .is_some_and(|k| k.starts_with("ASIA")));
    let now = SystemTime::now();
    let expiration = timestamp(&creds["Expiration"]);
    assert!(
        expiration > now + Duration::from_secs(3 * 3600 - 5),
        "at least half of 6 h left"
    );
    assert!(timestamp(&creds["LastUpdated"]) <= now);
    // A trailing slash works here too, with the same credentials.
    let again = json(&emu.get(&format!("{CREDS_PATH}/"), &[]).await.1);
    if again["LastUpdated"] == creds["LastUpdated"] {
        assert_eq!(again["AccessKeyId"], creds["AccessKeyId"]);
    }
    let (status, _) = emu
        .get("/latest/meta-data/iam/security-credentials/other-role", &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn iam_credentials_rotate_every_half_lifetime() {
    let emu = Emulator::start(EmulatorOptions {
        credentials_ttl: Duration::from_secs(2),
        ..EmulatorOptions::default()
    })
    .await;
    // Two quick reads in the same window (LastUpdated names the window) must
    // agree. Retry if a window boundary fell between them.
    let mut first = None;
    for _ in 0..5 {
        let a = json(&emu.get(CREDS_PATH, &[]).await.1);
        let b = json(&emu.get(CREDS_PATH, &[]).await.1);
        if a["LastUpdated"] == b["LastUpdated"] {
            assert_eq!(a, b, "same window, same credentials");
            first = Some(a);
            break;
        }
    }
    let first = first.expect("two reads within one window");
    let start = timestamp(&first["LastUpdated"]);
    assert_eq!(
        timestamp(&first["Expiration"]),
        start + Duration::from_secs(2)
    );

    tokio::time::sleep(Duration::from_millis(1300)).await;
    let later = json(&emu.get(CREDS_PATH, &[]).await.1);
    assert!(timestamp(&later["LastUpdated"]) > start);
    assert_ne!(later["AccessKeyId"], first["AccessKeyId"]);
    assert_ne!(later["SecretAccessKey"], first["SecretAccessKey"]);
    assert!(timestamp(&later["Expiration"]) > SystemTime::now());
}

fn metadata_file(contents: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(contents.as_bytes()).expect("write");
    file
}

#[tokio::test]
async fn metadata_override_is_merged_over_the_builtin_tree() {
    let file = metadata_file(
        &json!({
            "meta-data": {
                "instance-id": "i-override",
                "custom-leaf": "hello",
                "mac": null,
                "placement": { "region": "eu-west-1" },
                "iam": { "security-credentials": { "extra-role": "ignored" } },
            },
            "user-data": "replaced user data",
        })
        .to_string(),
    );
    let metadata = load_metadata(file.path()).expect("valid override");
    let emu = Emulator::start(EmulatorOptions {
        metadata: Some(metadata),
        ..EmulatorOptions::default()
    })
    .await;
    let get = |path: &'static str| emu.get(path, &[]);
    assert_eq!(get("/latest/meta-data/instance-id").await.1, "i-override");
    assert_eq!(get("/latest/meta-data/custom-leaf").await.1, "hello");
    assert_eq!(get("/latest/meta-data/mac").await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get("/latest/meta-data/placement/region").await.1,
        "eu-west-1"
    );
    assert_eq!(
        get("/latest/meta-data/placement/availability-zone").await.1,
        "us-east-1a"
    );
    assert_eq!(get("/latest/meta-data/instance-type").await.1, "m5.large");
    assert_eq!(get("/latest/user-data").await.1, "replaced user data");

    let listing = get("/latest/meta-data/").await.1;
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines.contains(&"custom-leaf"));
    assert!(!lines.contains(&"mac"));

    let roles = get("/latest/meta-data/iam/security-credentials/").await.1;
    assert_eq!(roles, format!("extra-role\n{ROLE}"));
    let creds = json(
        &get("/latest/meta-data/iam/security-credentials/extra-role")
            .await
            .1,
    );
    assert!(creds["AccessKeyId"]
        .as_str()
        .is_some_and(|k| k.starts_with("ASIA")));
}

#[tokio::test]
async fn load_metadata_reports_clear_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("missing.json");
    let err = load_metadata(&missing).expect_err("missing file");
    assert!(matches!(err, EmulatorError::ReadMetadata { .. }), "{err:?}");
    assert!(err.to_string().contains("missing.json"), "{err}");

    let broken = metadata_file("{\"meta-data\": ");
    let err = load_metadata(broken.path()).expect_err("broken JSON");
    assert!(
        matches!(err, EmulatorError::ParseMetadata { .. }),
        "{err:?}"
    );

    let array = metadata_file("[\"meta-data\"]");
    let err = load_metadata(array.path()).expect_err("not an object");
    assert!(err.to_string().contains("expected a JSON object"), "{err}");

    let number = metadata_file("{\"meta-data\": {\"ami-launch-index\": 0}}");
    let err = load_metadata(number.path()).expect_err("number leaf");
    let message = err.to_string();
    assert!(message.contains("meta-data/ami-launch-index"), "{message}");
    assert!(message.contains("a number"), "{message}");

    let boolean = metadata_file("{\"user-data\": true}");
    let err = load_metadata(boolean.path()).expect_err("boolean leaf");
    assert!(err.to_string().contains("user-data"), "{err}");

    let ok = metadata_file("{\"meta-data\": {\"mac\": null}}");
    assert_eq!(
        load_metadata(ok.path()).expect("null is allowed"),
        json!({"meta-data": {"mac": null}})
    );
}

#[tokio::test]
async fn invalid_options_fail_before_serving() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let options = EmulatorOptions {
        hop_limit: 0,
        ..EmulatorOptions::default()
    };
    let err = serve(listener, options, std::future::pending())
        .await
        .expect_err("hop limit 0 is invalid");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn request_bodies_and_odd_headers_do_not_break_anything() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    let response = raw(
        emu.addr,
        "GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\
         Connection: close\r\n\r\nhello",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("i-0123456789abcdef0"), "{response}");

    // A token header that is not even text is just an invalid token.
    let response = raw(
        emu.addr,
        "GET /latest/meta-data/ HTTP/1.1\r\nHost: x\r\nX-aws-ec2-metadata-token: \u{e9}t\u{e9}\r\n\
         Connection: close\r\n\r\n",
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
}

#[tokio::test]
async fn shutdown_stops_serving_and_lets_a_request_in_flight_finish() {
    let emu = Emulator::with_tokens(TokenMode::Optional).await;
    assert_eq!(
        emu.get("/latest/meta-data/mac", &[]).await.0,
        StatusCode::OK
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!emu.task.is_finished(), "serve runs until told to stop");

    // A request whose headers are half sent when shutdown begins.
    let mut in_flight = TcpStream::connect(emu.addr).await.expect("connect");
    in_flight
        .write_all(b"GET /latest/meta-data/instance-type HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(100)).await;

    let addr = emu.addr;
    let mut emu = emu;
    if let Some(stop) = emu.stop.take() {
        let _ = stop.send(());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    in_flight.write_all(b"\r\n").await.expect("finish request");
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), in_flight.read_to_end(&mut response))
        .await
        .expect("response in time")
        .expect("read");
    let response = String::from_utf8(response).expect("utf-8");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(response.ends_with("m5.large"), "{response}");

    emu.stop().await.expect("clean stop");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener is closed after shutdown"
    );
}

/// The real binary, `imds-guard emulate …`, on a free loopback port; killed when dropped.
struct Binary {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Binary {
    /// Starts `imds-guard emulate --listen 127.0.0.1:PORT ARGS…` and waits (at most 10 s) until
    /// it accepts connections.
    async fn start(args: &[&str]) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_imds-guard"))
            .args(["emulate", "--listen", &addr.to_string()])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("spawn imds-guard");
        let mut binary = Binary { child, addr };
        let started = std::time::Instant::now();
        while TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = binary.child.try_wait() {
                panic!("imds-guard emulate {args:?} exited: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{args:?} did not listen"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        binary
    }

    async fn send(
        &self,
        method: Method,
        target: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", self.addr, target));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Full::new(Bytes::new())).expect("request");
        let response = client.request(request).await.expect("response");
        let (parts, body) = response.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(body.to_vec()).expect("utf-8"),
        )
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn the_binary_emulates_aws_by_default() {
    let emu = Binary::start(&[]).await;
    let (status, headers, body) = emu
        .send(Method::GET, "/latest/meta-data/instance-id", &[])
        .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "i-0123456789abcdef0")
    );
    assert_eq!(headers["server"], "EC2ws");
    let aws = Binary::start(&["--cloud", "aws", "--tokens", "required"]).await;
    assert_eq!(
        aws.send(Method::GET, "/latest/meta-data/", &[]).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_binary_emulates_gcp() {
    let emu = Binary::start(&["--cloud", "gcp", "--change-every-ms", "300"]).await;
    let flavor = [("metadata-flavor", "Google")];
    let (status, headers, body) = emu
        .send(
            Method::GET,
            "/computeMetadata/v1/project/project-id",
            &flavor,
        )
        .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "imds-guard-emu"));
    assert_eq!(headers["metadata-flavor"], "Google");
    let (status, headers, body) = emu
        .send(Method::GET, "/computeMetadata/v1/project/project-id", &[])
        .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::FORBIDDEN, "Missing required header\n")
    );
    assert_eq!(headers["metadata-flavor"], "Google");
    let (_, _, account) = emu
        .send(
            Method::GET,
            "/computeMetadata/v1/instance/service-accounts/default/?recursive=true",
            &flavor,
        )
        .await;
    assert!(json(&account)["email"]
        .as_str()
        .is_some_and(|e| e.ends_with(".gserviceaccount.com")));
    // A long poll over the socket sees the maintenance event flip.
    let path = "/computeMetadata/v1/instance/maintenance-event";
    let (_, before, value) = emu.send(Method::GET, path, &flavor).await;
    let etag = before["etag"].to_str().expect("etag").to_owned();
    let started = std::time::Instant::now();
    let (status, after, changed) = emu
        .send(
            Method::GET,
            &format!("{path}?wait_for_change=true&last_etag={etag}&timeout_sec=10"),
            &flavor,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(changed, value);
    assert_ne!(after["etag"], before["etag"]);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_binary_emulates_azure() {
    let emu = Binary::start(&["--cloud", "azure"]).await;
    let target = "/metadata/identity/oauth2/token/?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F";
    let (status, headers, body) = emu.send(Method::GET, target, &[("metadata", "true")]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["server"], "IMDS/150.870.65.1325");
    let token = json(&body);
    assert_eq!(token["resource"], "https://management.azure.com/");
    assert!(token["access_token"]
        .as_str()
        .is_some_and(|t| t.starts_with("eyJ")));
    let (status, _, body) = emu.send(Method::GET, target, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("Required metadata header not specified"),
        "{body}"
    );
    let (status, _, vm_id) = emu
        .send(
            Method::GET,
            "/Metadata/Instance/Compute/VMID?api-version=2021-02-01&format=text",
            &[("metadata", "true")],
        )
        .await;
    assert_eq!((status, vm_id.len()), (StatusCode::OK, 36));
}

#[tokio::test]
async fn the_binary_emulates_alibaba() {
    let emu = Binary::start(&["--cloud", "alibaba", "--tokens", "required"]).await;
    let (status, _, token) = emu
        .send(
            Method::PUT,
            TOKEN_PATH,
            &[("x-aliyun-ecs-metadata-token-ttl-seconds", "21600")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, id) = emu
        .send(
            Method::GET,
            "/latest/meta-data/instance-id",
            &[("x-aliyun-ecs-metadata-token", &token)],
        )
        .await;
    assert_eq!(
        (status, id.as_str()),
        (StatusCode::OK, "i-bp1emulator0000000001")
    );
    let (status, _, _) = emu
        .send(Method::GET, "/latest/meta-data/instance-id", &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "hardened mode");
}

#[tokio::test]
async fn the_binary_emulates_oci() {
    let emu = Binary::start(&["--cloud", "oci"]).await;
    let bearer = [("authorization", "Bearer Oracle")];
    let (status, _, region) = emu
        .send(Method::GET, "/opc/v2/instance/region", &bearer)
        .await;
    assert_eq!((status, region.as_str()), (StatusCode::OK, "iad"));
    let (status, _, body) = emu.send(Method::GET, "/opc/v2/instance/", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json(&body)["code"], "NotAuthenticated");
    let (status, _, _) = emu.send(Method::GET, "/opc/v1/instance/", &bearer).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, _, cert) = emu
        .send(Method::GET, "/opc/v2/identity/cert.pem", &bearer)
        .await;
    assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"), "{cert}");
}

#[tokio::test]
async fn the_binary_emulates_openstack() {
    let emu = Binary::start(&["--cloud", "openstack"]).await;
    let (status, _, doc) = emu
        .send(Method::GET, "/openstack/latest/meta_data.json", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(json(&doc)["uuid"].is_string());
    let (status, _, _) = emu
        .send(Method::PUT, TOKEN_PATH, &[(TTL_HEADER, "60")])
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "no token flow");
    let (status, _, id) = emu
        .send(Method::GET, "/latest/meta-data/instance-id", &[])
        .await;
    assert_eq!(
        (status, id.as_str()),
        (StatusCode::OK, "i-0123456789abcdef0")
    );
}

#[tokio::test]
async fn the_binary_emulates_tencent() {
    let emu = Binary::start(&["--cloud", "tencent"]).await;
    let (status, _, id) = emu
        .send(Method::GET, "/latest/meta-data/instance-id", &[])
        .await;
    assert_eq!((status, id.as_str()), (StatusCode::OK, "ins-6p2kqn8s"));
    let role = "/latest/meta-data/cam/security-credentials/imds-guard-node-role";
    let (status, _, creds) = emu.send(Method::GET, role, &[]).await;
    assert_eq!(status, StatusCode::OK);
    let creds = json(&creds);
    assert_eq!(creds["Code"], "Success");
    assert!(creds["TmpSecretId"].as_str().unwrap().starts_with("AKID"));
    let (status, _, _) = emu
        .send(Method::PUT, TOKEN_PATH, &[(TTL_HEADER, "60")])
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "no token flow");
}

#[tokio::test]
async fn the_binary_emulates_huawei() {
    let emu = Binary::start(&["--cloud", "huawei"]).await;
    let (status, _, doc) = emu
        .send(Method::GET, "/openstack/latest/meta_data.json", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&doc)["uuid"], "6b1c9e2a-4f3d-4a8b-9c7e-5d2f1a0b3c4e");
    let (status, _, key) = emu
        .send(Method::GET, "/openstack/latest/securitykey", &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let key = json(&key);
    for field in ["access", "secret", "securitytoken", "expires_at"] {
        assert!(key["credential"][field].is_string(), "{field}: {key}");
    }
}

#[tokio::test]
async fn the_binary_emulates_exoscale() {
    let emu = Binary::start(&["--cloud", "exoscale"]).await;
    for root in ["/1.0", "/latest"] {
        let (status, _, id) = emu
            .send(Method::GET, &format!("{root}/meta-data/instance-id"), &[])
            .await;
        assert_eq!(
            (status, id.as_str()),
            (StatusCode::OK, "0d7a6d8e-3c1f-4b2a-9e5d-7f6a5b4c3d2e")
        );
    }
    let (status, _, user) = emu.send(Method::GET, "/1.0/user-data", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(user.contains("NODE_BOOTSTRAP_SECRET"));
}

#[tokio::test]
async fn the_binary_emulates_digitalocean() {
    let emu = Binary::start(&["--cloud", "digitalocean"]).await;
    let (status, _, id) = emu.send(Method::GET, "/metadata/v1/id", &[]).await;
    assert_eq!((status, id.as_str()), (StatusCode::OK, "2756294"));
    let (status, _, doc) = emu.send(Method::GET, "/metadata/v1.json", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&doc)["droplet_id"], 2_756_294);
    assert_eq!(json(&doc)["hostname"], "emu-node-0");
    let (status, headers, _) = emu.send(Method::GET, "/metadata/v1", &[]).await;
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(headers["location"], "/metadata/v1/");
    let (status, headers, _) = emu.send(Method::POST, "/metadata/v1/id", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET, HEAD");
}

#[tokio::test]
async fn the_binary_emulates_hetzner() {
    let emu = Binary::start(&["--cloud", "hetzner"]).await;
    let (status, _, id) = emu
        .send(Method::GET, "/hetzner/v1/metadata/instance-id", &[])
        .await;
    assert_eq!((status, id.as_str()), (StatusCode::OK, "42001337"));
    let (status, _, doc) = emu.send(Method::GET, "/hetzner/v1/metadata", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc.lines().any(|l| l == "instance-id: 42001337"), "{doc}");
    assert!(doc.lines().any(|l| l == "hostname: emu-node-0"), "{doc}");
    let (status, _, user_data) = emu.send(Method::GET, "/hetzner/v1/userdata", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        user_data.contains("NODE_BOOTSTRAP_SECRET=emulator-not-a-secret"),
        "{user_data}"
    );
    let (status, _, _) = emu.send(Method::GET, "/hetzner/v1/metadata/", &[]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_binary_emulates_linode() {
    use base64::Engine as _;
    let emu = Binary::start(&["--cloud", "linode"]).await;
    let ttl = ("metadata-token-expiry-seconds", "3600");
    // The token as the Python client asks for it (text) and as the Go client does (a JSON array).
    let (status, _, token) = emu
        .send(Method::PUT, "/v1/token", &[ttl, ("accept", "text/plain")])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, array) = emu
        .send(
            Method::PUT,
            "/v1/token",
            &[ttl, ("accept", "application/json")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json(&array).as_array().map(Vec::len), Some(1), "{array}");
    let (status, _, _) = emu
        .send(
            Method::PUT,
            "/v1/token",
            &[("metadata-token-expiry-seconds", "86401")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, headers, _) = emu.send(Method::GET, "/v1/token", &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "PUT");
    let auth = ("metadata-token", token.as_str());
    let (status, _, instance) = emu
        .send(
            Method::GET,
            "/v1/instance",
            &[auth, ("accept", "application/json")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let instance = json(&instance);
    assert_eq!(instance["id"], 12_345_678);
    assert_eq!(instance["label"], "emu-node-0");
    assert_eq!(instance["region"], "us-ord");
    let (status, _, text) = emu.send(Method::GET, "/v1/instance", &[auth]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(text.lines().any(|l| l == "id: 12345678"), "{text}");
    let (status, _, user_data) = emu.send(Method::GET, "/v1/user-data", &[auth]).await;
    assert_eq!(status, StatusCode::OK);
    let script = base64::engine::general_purpose::STANDARD
        .decode(&user_data)
        .expect("base64");
    assert!(
        String::from_utf8_lossy(&script).contains("NODE_BOOTSTRAP_SECRET=emulator-not-a-secret"),
        "{user_data}"
    );
    for headers in [&[][..], &[("metadata-token", "tok")][..]] {
        let (status, _, body) = emu.send(Method::GET, "/v1/ssh-keys", headers).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(json(&body)["errors"][0]["reason"], "Unauthorized");
    }
    let (status, _, _) = emu.send(Method::GET, "/v1/instance/", &[auth]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn the_binary_refuses_an_unknown_cloud_and_options_that_do_not_fit() {
    for (args, expected) in [
        (&["--cloud", "mars"][..], "unknown cloud"),
        (
            &["--cloud", "gcp", "--tokens", "required"][..],
            "does not apply to cloud gcp",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_imds-guard"))
            .args(["emulate", "--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .expect("run imds-guard");
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[tokio::test]
async fn throttled_clouds_answer_429_in_their_own_style() {
    for (cloud, target, headers, marker) in [
        (
            Cloud::Azure,
            "/metadata/instance?api-version=2021-02-01",
            &[("metadata", "true")][..],
            ("server", "IMDS/150.870.65.1325"),
        ),
        (
            Cloud::Gcp,
            "/computeMetadata/v1/instance/id",
            &[("metadata-flavor", "Google")][..],
            ("metadata-flavor", "Google"),
        ),
        (
            Cloud::Openstack,
            "/latest/meta-data/instance-id",
            &[][..],
            ("content-type", "text/plain"),
        ),
    ] {
        let emu = Emulator::start(EmulatorOptions {
            cloud,
            throttle: Some(2),
            ..EmulatorOptions::default()
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..3 {
            let (status, answer_headers, _) = emu.send(Method::GET, target, headers).await;
            assert_eq!(answer_headers[marker.0], marker.1, "{cloud}");
            statuses.push(status.as_u16());
        }
        assert_eq!(statuses, [200, 200, 429], "{cloud}");
        emu.stop().await.expect("clean stop");
    }
}

#[tokio::test]
async fn request_bodies_beyond_64_kib_are_refused() {
    let emu = Emulator::start(EmulatorOptions {
        cloud: Cloud::Gcp,
        ..EmulatorOptions::default()
    })
    .await;
    let body = "x".repeat(64 * 1024 + 1);
    let response = raw(
        emu.addr,
        &format!(
            "PUT /computeMetadata/v1/instance/guest-attributes/ns/key HTTP/1.1\r\nHost: x\r\n\
             Metadata-Flavor: Google\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 413"), "{}", &response[..40]);
    assert!(response
        .to_ascii_lowercase()
        .contains("metadata-flavor: google"));
}
