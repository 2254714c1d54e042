//! imds-guard's connections, shared by the guard and the emulator: [`TtlStream`], a TCP stream
//! whose IP TTL (IPv4) or hop limit (IPv6) follows the answer being written, so that token
//! answers leave with the hop limit IMDSv2 relies on; and [`serve_connection`], hyper's HTTP/1
//! server around it with a header read timeout, a bounded read buffer and graceful draining.
//!
//! A handler asks for a hop limit by putting [`HopLimit`] in its answer's extensions;
//! [`serve_connection`] applies it to the bytes of that answer (and an answer without one leaves
//! with the connection's own TTL, see [`TtlStream`] for when exactly). Nothing else carries it.
//!
//! The accept loops live with their owners: the guard's (connection caps, the 429 refusal,
//! metrics) in its `listen` module, the emulator's in its crate.

mod ttl;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpStream;

pub use ttl::{TtlHandle, TtlStream};

/// The IP TTL / IPv6 hop limit an answer must leave with (an IMDSv2 token answer's), put in the
/// answer's extensions by the handler that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopLimit(pub u8);

/// Serves one connection with hyper on the current runtime with `handler`, applying each
/// answer's [`HopLimit`]; `held` (a connection cap's place, say) is dropped when the connection
/// ends.
pub fn serve_connection<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    held: impl Send + 'static,
    header_read_timeout: Duration,
    graceful: &GracefulShutdown,
    handler: H,
) where
    H: Fn(Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let (stream, ttl) = TtlStream::new(stream);
    let service = service_fn(move |request| {
        let answer = handler(request);
        let ttl = ttl.clone();
        async move {
            let answer = answer.await;
            // hyper asks for the next answer only once this one is fully buffered, and writes
            // this one next: the TTL chosen here is the one its bytes leave with.
            match answer.extensions().get::<HopLimit>() {
                Some(HopLimit(hops)) => ttl.set(u32::from(*hops)),
                None => ttl.reset(),
            }
            Ok::<_, Infallible>(answer)
        }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        // Metadata requests are tiny: a 16 KiB read buffer bounds both what one connection can
        // make the server hold and the size of a request's head.
        .max_buf_size(16 * 1024)
        .serve_connection(TokioIo::new(stream), service);
    let connection = graceful.watch(connection);
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        }
        // What the connection held is given back only when it has ended.
        drop(held);
    });
}

/// Lets open connections finish their requests, for at most `grace`.
pub async fn drain(graceful: GracefulShutdown, grace: Duration) {
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing the remaining connections"),
    }
}

/// Out of file descriptors and the like: back off instead of spinning.
pub async fn accept_failed(e: &std::io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}
