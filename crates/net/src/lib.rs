//! imds-guard's connections, shared by the guard and the emulator: [`TtlStream`], a TCP stream
//! whose IP TTL (IPv4) or hop limit (IPv6) follows the answer being written, so that token
//! answers leave with the hop limit IMDSv2 relies on; and [`serve_connection`], hyper's HTTP/1
//! server around it with a header read timeout, a bounded read buffer and graceful draining.
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

/// Serves one connection with hyper on the current runtime. `make` gets the connection's
/// [`TtlHandle`] and gives the request handler; `held` (a connection cap's place, say) is dropped
/// when the connection ends.
pub fn serve_connection<H, F>(
    stream: TcpStream,
    peer: SocketAddr,
    held: impl Send + 'static,
    header_read_timeout: Duration,
    graceful: &GracefulShutdown,
    make: impl FnOnce(TtlHandle) -> H,
) where
    H: Fn(Request<Incoming>) -> F + Send + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let _ = stream.set_nodelay(true);
    let (stream, ttl) = TtlStream::new(stream);
    let handler = make(ttl);
    let service = service_fn(move |request| {
        let answer = handler(request);
        async move { Ok::<_, Infallible>(answer.await) }
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
