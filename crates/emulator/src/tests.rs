//! Tests of the emulator's options and of how its connections apply the
//! hop limit, which need the crate-private service and state.

use super::*;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends one request and reads one response (headers and a
/// `Content-Length` body) off a keep-alive connection.
async fn exchange(client: &mut TcpStream, request: &str) -> String {
    client.write_all(request.as_bytes()).await.expect("write");
    let mut data = Vec::new();
    loop {
        let mut chunk = [0u8; 4096];
        let n = client.read(&mut chunk).await.expect("read");
        assert!(n > 0, "connection closed early");
        data.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&data).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|l| l.parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= length {
                return text;
            }
        }
    }
}

#[tokio::test]
async fn token_responses_leave_with_the_hop_limit_and_others_do_not() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut client = TcpStream::connect(listener.local_addr().expect("addr"))
        .await
        .expect("connect");
    let (server, peer) = listener.accept().await.expect("accept");
    // A second descriptor of the server socket, to watch its TTL while
    // hyper owns the stream.
    let server = server.into_std().expect("std");
    let observer = server.try_clone().expect("clone");
    let server = TcpStream::from_std(server).expect("tokio");
    let original = observer.ttl().expect("ttl");
    assert_ne!(original, 3);

    let options = EmulatorOptions {
        hop_limit: 3,
        ..EmulatorOptions::default()
    };
    let state = Arc::new(build_state(options).expect("state"));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    imds_guard_net::serve_connection(
        server,
        peer,
        (),
        HEADER_READ_TIMEOUT,
        &graceful,
        connection_handler(state, peer),
    );

    let get = "GET /latest/meta-data/mac HTTP/1.1\r\nHost: x\r\n\r\n";
    assert!(exchange(&mut client, get).await.starts_with("HTTP/1.1 200"));
    assert_eq!(observer.ttl().expect("ttl"), original);

    let put = "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\n\
               X-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n\r\n";
    assert!(exchange(&mut client, put).await.starts_with("HTTP/1.1 200"));
    assert_eq!(observer.ttl().expect("ttl"), 3, "token response hop limit");

    // The response right after a token response may keep the low TTL
    // (see `imds_guard_net`); from the one after, the TTL is back to normal.
    assert!(exchange(&mut client, get).await.starts_with("HTTP/1.1 200"));
    assert!(exchange(&mut client, get).await.starts_with("HTTP/1.1 200"));
    assert_eq!(observer.ttl().expect("ttl"), original);

    // A refused token request does not lower the TTL.
    let bad_put = "PUT /latest/api/token HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    assert!(exchange(&mut client, bad_put)
        .await
        .starts_with("HTTP/1.1 400"));
    assert_eq!(observer.ttl().expect("ttl"), original);
}

#[test]
fn token_mode_round_trips() {
    for mode in [TokenMode::Optional, TokenMode::Required] {
        assert_eq!(mode.to_string().parse::<TokenMode>().ok(), Some(mode));
    }
    assert!("Required".parse::<TokenMode>().is_err());
}

#[test]
fn options_are_checked() {
    let bad_hops = EmulatorOptions {
        hop_limit: 65,
        ..EmulatorOptions::default()
    };
    assert!(matches!(
        build_state(bad_hops),
        Err(EmulatorError::InvalidHopLimit(65))
    ));
    let zero_hops = EmulatorOptions {
        hop_limit: 0,
        ..EmulatorOptions::default()
    };
    assert!(build_state(zero_hops).is_err());
    let short = EmulatorOptions {
        credentials_ttl: Duration::from_secs(1),
        ..EmulatorOptions::default()
    };
    assert!(matches!(
        build_state(short),
        Err(EmulatorError::CredentialsTtlTooShort(_))
    ));
    let bad_tree = EmulatorOptions {
        metadata: Some(serde_json::json!({"meta-data": {"mac": true}})),
        ..EmulatorOptions::default()
    };
    let err = build_state(bad_tree).expect_err("boolean leaf");
    assert!(err.to_string().contains("meta-data/mac"), "{err}");
}

#[test]
fn options_that_do_not_fit_the_cloud_are_refused() {
    let cases = [
        (
            Cloud::Gcp,
            TokenMode::Required,
            None,
            None,
            "--tokens required",
        ),
        (
            Cloud::Openstack,
            TokenMode::Required,
            None,
            None,
            "--tokens required",
        ),
        (
            Cloud::Azure,
            TokenMode::Optional,
            Some(serde_json::json!({})),
            None,
            "--metadata",
        ),
        (
            Cloud::Aws,
            TokenMode::Optional,
            None,
            Some(Duration::from_secs(1)),
            "--change-every-ms",
        ),
    ];
    for (cloud, tokens, metadata, change_every, option) in cases {
        let options = EmulatorOptions {
            cloud,
            tokens,
            metadata,
            change_every,
            ..EmulatorOptions::default()
        };
        let err = build_state(options).expect_err("refused");
        assert!(
            matches!(err, EmulatorError::NotForCloud { option: o, .. } if o == option),
            "{cloud}: {err}"
        );
    }
    let zero = EmulatorOptions {
        cloud: Cloud::Gcp,
        change_every: Some(Duration::ZERO),
        ..EmulatorOptions::default()
    };
    assert!(matches!(
        build_state(zero),
        Err(EmulatorError::ChangeEveryZero)
    ));
    for cloud in [Cloud::Tencent, Cloud::Huawei, Cloud::Exoscale] {
        let options = EmulatorOptions {
            cloud,
            tokens: TokenMode::Required,
            ..EmulatorOptions::default()
        };
        let err = build_state(options).expect_err("no token flow");
        assert!(
            matches!(
                err,
                EmulatorError::NotForCloud {
                    option: "--tokens required",
                    ..
                }
            ),
            "{cloud}: {err}"
        );
    }
    for (cloud, tokens) in [
        (Cloud::Alibaba, TokenMode::Required),
        (Cloud::Openstack, TokenMode::Optional),
        (Cloud::Tencent, TokenMode::Optional),
        (Cloud::Huawei, TokenMode::Optional),
        (Cloud::Exoscale, TokenMode::Optional),
    ] {
        let options = EmulatorOptions {
            cloud,
            tokens,
            metadata: Some(serde_json::json!({"meta-data": {"extra": "x"}})),
            ..EmulatorOptions::default()
        };
        assert!(build_state(options).is_ok(), "{cloud}");
    }
}

#[test]
fn each_cloud_takes_its_path() {
    // The EC2-style services answer at once; the others read the body first.
    for cloud in imds_guard_core::cloud::ALL {
        let ec2 = matches!(
            cloud,
            Cloud::Aws | Cloud::Alibaba | Cloud::Tencent | Cloud::Exoscale
        );
        assert_eq!(synchronous(cloud), ec2, "{cloud}");
    }
    for cloud in [Cloud::Tencent, Cloud::Huawei, Cloud::Exoscale] {
        assert!(ec2_tree(cloud), "{cloud}");
    }
}

/// Serves `cloud` on a loopback port and sends `requests` (method, path) over one connection,
/// returning each answer's status line and body.
async fn over_a_socket(cloud: Cloud, requests: &[(&str, &str)]) -> Vec<(String, String)> {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let options = EmulatorOptions {
        cloud,
        ..EmulatorOptions::default()
    };
    let server = tokio::spawn(serve(listener, options, async {
        let _ = stopped.await;
    }));
    let mut client = TcpStream::connect(addr).await.expect("connect");
    let mut answers = Vec::new();
    for (method, path) in requests {
        let request = format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
        let text = exchange(&mut client, &request).await;
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        let status = head.lines().next().expect("status line").to_owned();
        answers.push((status, body.to_owned()));
    }
    drop(client);
    let _ = stop.send(());
    server.await.expect("join").expect("served");
    answers
}

#[tokio::test]
async fn tencent_huawei_and_exoscale_answer_over_a_socket() {
    let tencent = over_a_socket(
        Cloud::Tencent,
        &[
            ("GET", "/latest/meta-data/instance-id"),
            ("GET", "/latest/meta-data/cam/security-credentials/"),
            ("PUT", "/latest/api/token"),
        ],
    )
    .await;
    assert_eq!(tencent[0].1, tencent::INSTANCE_ID);
    assert_eq!(tencent[1].1, tencent::ROLE);
    assert!(tencent[2].0.starts_with("HTTP/1.1 405"), "{:?}", tencent[2]);

    let huawei = over_a_socket(
        Cloud::Huawei,
        &[
            ("GET", "/openstack/latest/securitykey"),
            ("GET", "/latest/meta-data/instance-id"),
            ("PUT", "/meta-data/latest/api/token"),
        ],
    )
    .await;
    assert!(huawei[0].0.starts_with("HTTP/1.1 200"), "{:?}", huawei[0]);
    assert!(
        huawei[0].1.starts_with("{\"credential\":"),
        "{}",
        huawei[0].1
    );
    assert_eq!(huawei[1].1, huawei::EC2_INSTANCE_ID);
    assert!(huawei[2].0.starts_with("HTTP/1.1 405"), "{:?}", huawei[2]);

    let exoscale = over_a_socket(
        Cloud::Exoscale,
        &[
            ("GET", "/1.0/meta-data/instance-id"),
            ("GET", "/latest/meta-data/vm-id"),
            ("GET", "/1.0/user-data"),
        ],
    )
    .await;
    assert_eq!(exoscale[0].1, exoscale::INSTANCE_ID);
    assert_eq!(exoscale[1].1, exoscale::INSTANCE_ID);
    assert!(exoscale[2]
        .1
        .contains("NODE_BOOTSTRAP_SECRET=emulator-not-a-secret"));
}
