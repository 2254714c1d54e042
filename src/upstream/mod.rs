//! The upstream client: a small pool of HTTP/1 connections to the real metadata service.
//!
//! An exchange checks one connection out, drives it in the request's own task (no connection task
//! and no channel hop between tasks) and puts it back once the answer has been read whole. At most
//! `[upstream] max_connections` are open at once: further requests wait for one, within their
//! deadline, so a burst from the pods never becomes a burst of connections to the service.
//!
//! Answers are read whole (they are small: user-data is capped at 16 KiB by AWS) before the
//! client sees anything, so an upstream that fails half-way gives the client a clean 502, never a
//! truncated 200, and the audit line knows the exact size.
//!
//! Why an own pool rather than hyper-util's pooled client: measured with `bench/run.py` in
//! alternating runs (README.md's "Performance", in git history; current figures in
//! docs/performance.md), the guard's peak memory after `wrk -t2 -c256` fell from 30.8 and 30.0 MiB
//! to 22.3 and 22.2 MiB, with about the same throughput at 32 connections and somewhat less at 256
//! (requests queue for the 64 connections); and each worker thread owns its share of the
//! connections, which a client shared across threads cannot give. Kept for the memory, which is
//! what a node's DaemonSet is sized by.

pub mod token;

use std::future::{poll_fn, Future};
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::Arc;

use parking_lot::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::config;
use imds_guard_core::disposition::UpstreamFailure;

/// The largest answer accepted from upstream.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// How long a connection may sit unused in the pool before it is closed rather than reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// Why an upstream exchange failed. Each maps to one [`UpstreamFailure`] of the core's table.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("metadata service unreachable: {0}")]
    Unreachable(String),
    #[error("metadata service did not answer in time")]
    Timeout,
    #[error("metadata service answer broken: {0}")]
    Broken(String),
    #[error("metadata service answer larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
}

impl UpstreamError {
    /// The failure as the core's table knows it (status, JSON reason, audit `error`).
    pub fn failure(&self) -> UpstreamFailure {
        match self {
            Self::Unreachable(_) => UpstreamFailure::Unreachable,
            Self::Timeout => UpstreamFailure::Timeout,
            Self::Broken(_) => UpstreamFailure::Broken,
            Self::TooLarge => UpstreamFailure::TooLarge,
        }
    }

    /// Short name for audit lines and metrics.
    pub fn kind(&self) -> &'static str {
        self.failure().as_str()
    }
}

/// Where the proxy sends what it forwards: the metadata service over the [`Pool`], or in
/// tests a fake that needs no socket.
pub trait Forward: Send + Sync + 'static {
    /// Sends `method target` (origin form) with `headers` (already filtered by the caller) and
    /// reads the whole answer, within `deadline` for the whole exchange — `None` for the
    /// configured `[upstream] timeout_ms`, a longer one for long polls, which the server holds
    /// open on purpose.
    fn send(
        &self,
        method: http::Method,
        target: http::Uri,
        headers: HeaderMap,
        deadline: Option<Duration>,
    ) -> impl Future<Output = Result<Answer, UpstreamError>> + Send;
}

impl Forward for Pool {
    fn send(
        &self,
        method: http::Method,
        target: http::Uri,
        headers: HeaderMap,
        deadline: Option<Duration>,
    ) -> impl Future<Output = Result<Answer, UpstreamError>> + Send {
        self.send_within(
            method,
            target,
            headers,
            deadline.unwrap_or(self.shared.timeout),
        )
    }
}

/// A shared forwarder forwards as what it shares (so a test's fake can be cloned into the tasks
/// that refresh the cache).
impl<T: Forward> Forward for Arc<T> {
    fn send(
        &self,
        method: http::Method,
        target: http::Uri,
        headers: HeaderMap,
        deadline: Option<Duration>,
    ) -> impl Future<Output = Result<Answer, UpstreamError>> + Send {
        (**self).send(method, target, headers, deadline)
    }
}

/// A complete upstream answer.
#[derive(Debug)]
pub struct Answer {
    pub status: http::StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Time from sending the request to the last byte of the answer.
    pub elapsed: Duration,
}

/// Pooled client for one upstream; clones share the pool.
#[derive(Clone)]
pub struct Pool {
    shared: Arc<Shared>,
}

struct Shared {
    /// `host:port` as configured, resolved at each connect when it is a name.
    authority: http::uri::Authority,
    /// The address when the host is an IP literal (the usual case: no resolver involved).
    addr: Option<SocketAddr>,
    /// The `Host` header of every request.
    host: HeaderValue,
    /// One permit per connection that may be open.
    slots: Semaphore,
    /// Connections ready for a request, the most recently used last.
    // Boxed: a connection moves in and out of request futures, which stay small (and so do the
    // per-connection allocations that hold them) only if it is a pointer.
    #[allow(clippy::vec_box)]
    idle: Mutex<Vec<Box<Connection>>>,
    connect_timeout: Duration,
    timeout: Duration,
}

/// One HTTP/1 connection: the request side and the I/O side, driven together by whoever holds it.
struct Connection {
    sender: http1::SendRequest<Empty<Bytes>>,
    io: http1::Connection<TokioIo<TcpStream>, Empty<Bytes>>,
    /// The I/O side has finished (closed or failed) and must not be polled again.
    ended: bool,
    idle_since: Instant,
}

impl Pool {
    /// A client for the configured upstream, with its connect and total timeouts and at most
    /// `connections` open (at least one): a worker's share of `max_connections`.
    pub fn with_connections(config: &config::Upstream, connections: usize) -> Self {
        let connections = connections.max(1);
        let host = HeaderValue::from_str(config.authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("169.254.169.254"));
        Self {
            shared: Arc::new(Shared {
                authority: config.authority.clone(),
                addr: config.socket_addr(),
                host,
                slots: Semaphore::new(connections),
                idle: Mutex::new(Vec::with_capacity(connections)),
                connect_timeout: config.connect_timeout,
                timeout: config.timeout,
            }),
        }
    }

    /// Sends `method target` (origin form) with `headers` (already filtered by the caller) and
    /// reads the answer, within `deadline` for the whole exchange.
    async fn send_within(
        &self,
        method: http::Method,
        target: http::Uri,
        mut headers: HeaderMap,
        deadline: Duration,
    ) -> Result<Answer, UpstreamError> {
        headers.insert(HOST, self.shared.host.clone());
        let mut request = Request::new(Empty::new());
        *request.method_mut() = method;
        *request.uri_mut() = target;
        *request.headers_mut() = headers;

        let started = Instant::now();
        let answer = tokio::time::timeout(deadline, self.exchange(request))
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        Ok(Answer {
            elapsed: started.elapsed(),
            ..answer
        })
    }

    /// Waits for a connection slot, then sends on an idle connection or a new one. A request that
    /// an idle connection turns out unable to take (the service closed it a moment ago) goes to a
    /// new connection; one that was sent is never sent twice.
    async fn exchange(&self, request: Request<Empty<Bytes>>) -> Result<Answer, UpstreamError> {
        let _slot = self
            .shared
            .slots
            .acquire()
            .await
            .map_err(|_| UpstreamError::Unreachable("client closed".into()))?;
        let request = match self.checkout() {
            Some(conn) => match self.exchange_on(conn, request).await {
                Err(Retry::Unsent(request)) => request,
                Err(Retry::No(err)) => return Err(err),
                Ok(answer) => return Ok(answer),
            },
            None => request,
        };
        // Boxed: connecting is rare, and its state would otherwise enlarge every exchange.
        let conn = Box::pin(self.connect()).await?;
        match self.exchange_on(conn, request).await {
            Ok(answer) => Ok(answer),
            Err(Retry::No(err)) => Err(err),
            Err(Retry::Unsent(_)) => Err(UpstreamError::Broken(
                "new connection closed before the request was sent".into(),
            )),
        }
    }

    /// One request and its whole answer on `conn`; the connection goes back to the pool when the
    /// service keeps it open.
    async fn exchange_on(
        &self,
        mut conn: Box<Connection>,
        request: Request<Empty<Bytes>>,
    ) -> Result<Answer, Retry> {
        let sent = conn.sender.try_send_request(request);
        let response = match conn.drive(sent).await {
            Ok(Ok(response)) => response,
            Ok(Err(mut err)) => {
                return Err(match err.take_message() {
                    Some(request) => Retry::Unsent(request),
                    None => Retry::No(UpstreamError::Broken(error_chain(err.into_error()))),
                })
            }
            Err(ended) => return Err(Retry::No(ended)),
        };
        let (parts, body) = response.into_parts();
        let body = match conn
            .drive(Limited::new(body, MAX_RESPONSE_BYTES).collect())
            .await
        {
            Ok(Ok(collected)) => collected.to_bytes(),
            Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                return Err(Retry::No(UpstreamError::TooLarge))
            }
            Ok(Err(e)) => return Err(Retry::No(UpstreamError::Broken(e.to_string()))),
            Err(ended) => return Err(Retry::No(ended)),
        };
        self.checkin(conn);
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            elapsed: Duration::ZERO,
        })
    }

    /// The most recently used idle connection that is still open.
    fn checkout(&self) -> Option<Box<Connection>> {
        let mut idle = self.shared.idle.lock();
        while let Some(mut conn) = idle.pop() {
            if conn.idle_since.elapsed() < IDLE_TIMEOUT && conn.is_open() {
                return Some(conn);
            }
        }
        None
    }

    /// Puts `conn` back for the next request, unless the service is closing it.
    fn checkin(&self, mut conn: Box<Connection>) {
        if !conn.is_open() {
            return;
        }
        conn.idle_since = Instant::now();
        let mut idle = self.shared.idle.lock();
        // The oldest sits first; one past its time goes now rather than wait for a checkout.
        if idle
            .first()
            .is_some_and(|c| c.idle_since.elapsed() >= IDLE_TIMEOUT)
        {
            idle.remove(0);
        }
        idle.push(conn);
    }

    async fn connect(&self) -> Result<Box<Connection>, UpstreamError> {
        let connecting = async {
            match self.shared.addr {
                Some(addr) => TcpStream::connect(addr).await,
                None => {
                    let authority = &self.shared.authority;
                    let host = authority
                        .host()
                        .trim_start_matches('[')
                        .trim_end_matches(']');
                    TcpStream::connect((host, authority.port_u16().unwrap_or(80))).await
                }
            }
        };
        let stream = match tokio::time::timeout(self.shared.connect_timeout, connecting).await {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                return Err(UpstreamError::Timeout)
            }
            Ok(Err(e)) => return Err(UpstreamError::Unreachable(e.to_string())),
            Ok(Ok(stream)) => stream,
        };
        let _ = stream.set_nodelay(true);
        let (sender, io) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|e| UpstreamError::Unreachable(error_chain(e)))?;
        Ok(Box::new(Connection {
            sender,
            io,
            ended: false,
            idle_since: Instant::now(),
        }))
    }
}

/// Why an exchange on one connection did not produce an answer.
enum Retry {
    /// The connection could not take the request; it may go to another one.
    Unsent(Request<Empty<Bytes>>),
    /// The request failed for good.
    No(UpstreamError),
}

impl Connection {
    /// Lets the connection notice an end the service announced (without waiting for anything),
    /// and tells whether it can take another request.
    fn is_open(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.poll_io(&mut cx);
        !self.ended && self.sender.is_ready()
    }

    /// Moves the connection's I/O along; returns how it ended, if it just did.
    fn poll_io(&mut self, cx: &mut Context<'_>) -> Option<Result<(), hyper::Error>> {
        if self.ended {
            return None;
        }
        match Pin::new(&mut self.io).poll(cx) {
            Poll::Pending => None,
            Poll::Ready(result) => {
                self.ended = true;
                Some(result)
            }
        }
    }

    /// Polls the I/O alongside `work` until `work` is done. Fails if the connection ends first.
    async fn drive<F: Future>(&mut self, work: F) -> Result<F::Output, UpstreamError> {
        let mut work = pin!(work);
        poll_fn(|cx| {
            // The I/O first: what it reads completes `work` without another wake-up.
            let ended = self.poll_io(cx);
            if let Poll::Ready(output) = work.as_mut().poll(cx) {
                return Poll::Ready(Ok(output));
            }
            match (ended, self.ended) {
                (Some(Err(e)), _) => Poll::Ready(Err(UpstreamError::Broken(error_chain(e)))),
                (Some(Ok(())), _) | (None, true) => Poll::Ready(Err(UpstreamError::Broken(
                    "connection closed before the answer was complete".into(),
                ))),
                (None, false) => Poll::Pending,
            }
        })
        .await
    }
}

/// An error with its sources, `: `-separated (anyhow's alternate form): the reason is often in
/// the innermost one (an `io::Error` under hyper's, EPERM under aya's).
pub fn error_chain(err: impl std::error::Error + Send + Sync + 'static) -> String {
    format!("{:#}", anyhow::Error::new(err))
}
