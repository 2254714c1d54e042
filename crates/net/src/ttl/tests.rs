use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A connected pair over loopback: (server side wrapped, its handle, client side).
async fn pair(bind: &str) -> io::Result<(TtlStream, TtlHandle, TcpStream)> {
    let listener = TcpListener::bind(bind).await?;
    let client = TcpStream::connect(listener.local_addr()?).await?;
    let (server, _) = listener.accept().await?;
    let (stream, handle) = TtlStream::new(server);
    Ok((stream, handle, client))
}

async fn send(stream: &mut TtlStream, client: &mut TcpStream, flush: bool) {
    stream.write_all(b"x").await.expect("write");
    if flush {
        stream.flush().await.expect("flush");
    }
    let mut byte = [0u8; 1];
    client.read_exact(&mut byte).await.expect("read");
    assert_eq!(&byte, b"x");
}

#[tokio::test]
async fn set_applies_the_ttl_and_reset_restores_it_after_a_flush() {
    let (mut stream, handle, mut client) = pair("127.0.0.1:0").await.expect("pair");
    let original = stream.get_ref().ttl().expect("ttl");
    assert_ne!(original, 5, "test needs a default TTL other than 5");

    send(&mut stream, &mut client, true).await;
    assert_eq!(stream.get_ref().ttl().expect("ttl"), original);

    handle.set(5);
    send(&mut stream, &mut client, true).await;
    assert_eq!(stream.get_ref().ttl().expect("ttl"), 5);

    // The flush right after reset() proves the low-TTL bytes are out;
    // the bytes after it go with the original TTL.
    handle.reset();
    stream.flush().await.expect("flush");
    send(&mut stream, &mut client, true).await;
    assert_eq!(stream.get_ref().ttl().expect("ttl"), original);
}

#[tokio::test]
async fn reset_before_the_low_ttl_bytes_are_flushed_keeps_the_low_ttl() {
    let (mut stream, handle, mut client) = pair("127.0.0.1:0").await.expect("pair");
    let original = stream.get_ref().ttl().expect("ttl");

    // The handler of the next pipelined request resets before the token
    // response has even been written: it must still leave with TTL 5.
    handle.set(5);
    handle.reset();
    send(&mut stream, &mut client, false).await;
    assert_eq!(stream.get_ref().ttl().expect("ttl"), 5);

    // That flush ends the hold; the next write is back to normal.
    stream.flush().await.expect("flush");
    send(&mut stream, &mut client, false).await;
    assert_eq!(stream.get_ref().ttl().expect("ttl"), original);
}

#[tokio::test]
async fn a_flush_while_the_ttl_is_still_requested_does_not_end_it() {
    let (mut stream, handle, mut client) = pair("127.0.0.1:0").await.expect("pair");
    handle.set(7);
    send(&mut stream, &mut client, true).await;
    send(&mut stream, &mut client, true).await;
    assert_eq!(stream.get_ref().ttl().expect("ttl"), 7);
    // Two sets before a write: the lower one wins.
    handle.set(9);
    handle.set(8);
    send(&mut stream, &mut client, true).await;
    assert_eq!(stream.get_ref().ttl().expect("ttl"), 7);
}

#[tokio::test]
async fn vectored_writes_apply_the_ttl_too() {
    let (mut stream, handle, mut client) = pair("127.0.0.1:0").await.expect("pair");
    handle.set(6);
    let bufs = [io::IoSlice::new(b"a"), io::IoSlice::new(b"b")];
    let written = stream.write_vectored(&bufs).await.expect("write");
    assert!(written >= 1);
    assert_eq!(stream.get_ref().ttl().expect("ttl"), 6);
    let mut got = vec![0u8; written];
    client.read_exact(&mut got).await.expect("read");
}

#[tokio::test]
async fn an_invalid_ttl_fails_the_write_instead_of_sending() {
    let (mut stream, handle, _client) = pair("127.0.0.1:0").await.expect("pair");
    handle.set(0);
    assert!(stream.write_all(b"x").await.is_err());
}

#[tokio::test]
async fn an_ipv6_connection_gets_the_hop_limit_and_back() {
    let (mut stream, handle, mut client) = pair("[::1]:0")
        .await
        .expect("an IPv6 loopback connection (the machine needs ::1 on lo)");
    let hops = |stream: &TtlStream| {
        socket2::SockRef::from(stream.get_ref())
            .unicast_hops_v6()
            .expect("IPV6_UNICAST_HOPS")
    };
    let original = hops(&stream);
    assert_ne!(original, 1, "test needs a default hop limit other than 1");
    send(&mut stream, &mut client, true).await;
    assert_eq!(hops(&stream), original);

    // A token answer leaves with hop limit 1 ...
    handle.set(1);
    send(&mut stream, &mut client, true).await;
    assert_eq!(hops(&stream), 1);

    // ... and the connection's later answers with the original again.
    handle.reset();
    stream.flush().await.expect("flush");
    send(&mut stream, &mut client, true).await;
    assert_eq!(hops(&stream), original);
}
