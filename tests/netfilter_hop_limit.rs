//! `[imdsv2] hop_limit` on the request path: a successful token answer ends its connection, so
//! that nothing sent after it on that connection could leave with the low TTL undone; every other
//! answer, and every answer without the key, keeps the connection. (That the TTL itself is applied
//! is shown with real routing in `tests/e2e_netns.rs`; on loopback it cannot be observed. The
//! socket option an IPv6 answer's hop limit is set with is checked in `crates/net`.)

use crate::support;

use imds_guard_emulator::EmulatorOptions;
use support::*;

const TTL: (&str, &str) = ("x-aws-ec2-metadata-token-ttl-seconds", "60");

fn closes(answer: &Answer) -> bool {
    answer
        .headers
        .get("connection")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

#[tokio::test]
async fn a_token_answer_with_a_hop_limit_closes_its_connection() {
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&config("[imdsv2]\nhop_limit = 2"), emu.addr).await;

    let token = request(LABELLED, guard.proxy, "PUT", "/latest/api/token", &[TTL]).await;
    assert_eq!(token.status, 200, "{}", token.text());
    assert!(closes(&token), "{:?}", token.headers);
    assert_eq!(token.headers[TTL.0], "60");

    let read = get(LABELLED, guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(read.status, 200);
    assert!(!closes(&read), "{:?}", read.headers);
    // A refused token request carries no token: nothing to protect.
    let refused = request(TEST, guard.proxy, "PUT", "/latest/api/token", &[TTL]).await;
    assert_eq!(refused.status, 403);
    assert!(!closes(&refused), "{:?}", refused.headers);
}

#[tokio::test]
async fn without_a_hop_limit_token_answers_keep_the_connection() {
    let emu = emulator(EmulatorOptions::default()).await;
    let guard = Guard::start(&config(""), emu.addr).await;
    let token = request(LABELLED, guard.proxy, "PUT", "/latest/api/token", &[TTL]).await;
    assert_eq!(token.status, 200, "{}", token.text());
    assert!(!closes(&token), "{:?}", token.headers);
}

/// Over IPv6 the hop limit is IPV6_UNICAST_HOPS: the token answer is sent with it (and the
/// connection closed after it), not dropped for want of a TTL option.
#[tokio::test]
async fn an_ipv6_token_answer_is_sent_with_its_hop_limit() {
    let emu = emulator(EmulatorOptions::default()).await;
    let pod = "[[inventory.pods]]\nip = \"::1\"\nnamespace = \"tools\"\nname = \"inspector-v6\"\n\
               labels = { \"allow-node-metadata-lookup\" = \"true\" }\n";
    let extras = Extras {
        ipv6: true,
        ..Extras::default()
    };
    let guard = Guard::start_with(
        &config(&format!("[imdsv2]\nhop_limit = 2\n{pod}")),
        emu.addr,
        extras,
    )
    .await;
    assert!(guard.proxy.is_ipv6(), "{}", guard.proxy);
    let token = request("::1", guard.proxy, "PUT", "/latest/api/token", &[TTL]).await;
    assert_eq!(token.status, 200, "{}", token.text());
    assert!(closes(&token), "{:?}", token.headers);
    assert_eq!(token.headers[TTL.0], "60");
    let read = get("::1", guard.proxy, "/latest/meta-data/instance-id").await;
    assert_eq!(read.status, 200, "{}", read.text());
}
