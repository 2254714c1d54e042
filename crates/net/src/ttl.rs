//! A TCP stream whose IP TTL can be changed for the response being written.
//!
//! IMDSv2 relies on the IP TTL (the "hop limit") of token responses: the
//! token is sent with a small TTL so that it dies before reaching anything
//! more than that many hops away, such as a container behind an extra network
//! hop. Both the emulator and the proxy need to give token responses a lower
//! TTL than the rest of a keep-alive connection, and hyper writes to the
//! socket on its own schedule, so the TTL is changed by this wrapper right
//! before bytes reach the socket.
//!
//! The request handler asks for a TTL through a [`TtlHandle`]; the
//! [`TtlStream`] applies it with `setsockopt(IP_TTL)` before its next write.
//!
//! Guarantees and limits, in the order they matter:
//!
//! * **Lower TTLs are sticky until a flush after `reset()`.** hyper may read
//!   and answer the next pipelined request while the previous response still
//!   sits in its write buffer. If `reset()` took effect at once, the bytes of
//!   the token response could leave with the normal TTL. So a TTL set with
//!   [`TtlHandle::set`] stays in force (the lowest one wins) until the stream
//!   has been flushed *after* `reset()` was called. hyper only flushes the
//!   socket once its own buffer is empty, and it calls the handler of request
//!   N+1 only after response N is fully buffered, so that flush proves every
//!   byte of the token response has been written with the low TTL. The price
//!   is that the response following a token response on the same connection
//!   may also leave with the low TTL, which only ever errs on the safe side.
//! * **IPv4 and IPv6.** On an IPv4 connection (or an IPv6 socket talking to an IPv4-mapped
//!   address) the TTL is `IP_TTL`; on an IPv6 connection it is the hop limit,
//!   `IPV6_UNICAST_HOPS`, set through `socket2` since neither std nor tokio has it. A connection
//!   whose peer address cannot be read is treated as IPv6.
//! * **Kernel retransmissions.** The kernel builds IP headers when it
//!   transmits, not when it is handed the bytes. Segments still unacknowledged
//!   when the TTL goes back up may be retransmitted with the higher TTL. A
//!   caller that must rule this out should not call `reset()` on a connection
//!   that carried a token (or should close it after the token response).

use std::io;
use std::pin::Pin;
use std::sync::Arc;

use parking_lot::Mutex;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What the handler has asked for, shared between [`TtlHandle`] and [`TtlStream`].
#[derive(Debug, Default)]
struct Wanted {
    /// The TTL of the latest `set()`, or `None` after `reset()`.
    requested: Option<u32>,
    /// The lowest TTL asked for since the last flush that followed a
    /// `reset()`; it keeps applying after `reset()` until that flush.
    held: Option<u32>,
}

/// A [`TcpStream`] that applies the TTL requested through its [`TtlHandle`]
/// before each write.
#[derive(Debug)]
pub struct TtlStream {
    inner: TcpStream,
    wanted: Arc<Mutex<Wanted>>,
    /// The TTL the socket had when it was wrapped; `None` if it could not be
    /// read, in which case a lowered TTL is never raised again (fail safe).
    original: Option<u32>,
    /// The TTL currently set on the socket, as far as this wrapper knows.
    applied: Option<u32>,
    /// Which socket option governs the packets of this connection.
    wire: Wire,
}

/// The IP version on the wire, and so the option that sets the TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wire {
    /// `IP_TTL`.
    V4,
    /// `IPV6_UNICAST_HOPS`.
    V6,
}

impl Wire {
    fn of(stream: &TcpStream) -> Wire {
        match stream.peer_addr() {
            Ok(std::net::SocketAddr::V4(_)) => Wire::V4,
            Ok(std::net::SocketAddr::V6(addr)) if addr.ip().to_ipv4_mapped().is_some() => Wire::V4,
            // A real IPv6 peer, or one whose address cannot be read.
            _ => Wire::V6,
        }
    }

    fn get(self, stream: &TcpStream) -> io::Result<u32> {
        match self {
            Wire::V4 => stream.ttl(),
            Wire::V6 => socket2::SockRef::from(stream).unicast_hops_v6(),
        }
    }

    fn set(self, stream: &TcpStream, ttl: u32) -> io::Result<()> {
        match self {
            Wire::V4 => stream.set_ttl(ttl),
            Wire::V6 => socket2::SockRef::from(stream).set_unicast_hops_v6(ttl),
        }
    }
}

/// Lets a request handler choose the TTL of the response it is producing.
///
/// Cheap to clone; all clones control the same connection.
#[derive(Clone, Debug)]
pub struct TtlHandle {
    wanted: Arc<Mutex<Wanted>>,
}

/// Locks the shared state.
fn lock(wanted: &Mutex<Wanted>) -> parking_lot::MutexGuard<'_, Wanted> {
    wanted.lock()
}

impl TtlStream {
    /// Wraps `stream` and returns the handle that controls its TTL.
    pub fn new(stream: TcpStream) -> (TtlStream, TtlHandle) {
        let wire = Wire::of(&stream);
        let original = wire.get(&stream).ok();
        let wanted = Arc::new(Mutex::new(Wanted::default()));
        let stream = TtlStream {
            inner: stream,
            wanted: Arc::clone(&wanted),
            original,
            applied: original,
            wire,
        };
        (stream, TtlHandle { wanted })
    }

    /// The wrapped stream, e.g. to read addresses or socket options.
    pub fn get_ref(&self) -> &TcpStream {
        &self.inner
    }

    /// Puts the TTL that should govern the next bytes on the socket.
    fn apply(&mut self) -> io::Result<()> {
        let lowered = {
            let wanted = lock(&self.wanted);
            match (wanted.requested, wanted.held) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        let target = match lowered {
            Some(ttl) => ttl,
            // Nothing requested: back to the original, if it is known.
            None => match self.original {
                Some(ttl) => ttl,
                None => return Ok(()),
            },
        };
        if self.applied == Some(target) {
            return Ok(());
        }
        self.wire.set(&self.inner, target)?;
        self.applied = Some(target);
        Ok(())
    }
}

impl TtlHandle {
    /// Ask that the bytes written next (the response being produced) leave
    /// with this IP TTL / IPv6 hop limit.
    ///
    /// Valid values are 1..=255; others make the next write fail with the
    /// socket's error, so the response is not sent with the wrong TTL.
    pub fn set(&self, ttl: u32) {
        let mut wanted = lock(&self.wanted);
        wanted.requested = Some(ttl);
        wanted.held = Some(wanted.held.map_or(ttl, |held| held.min(ttl)));
    }

    /// Back to the connection's original TTL for later responses.
    ///
    /// Takes effect once the stream has been flushed after this call (see
    /// the module documentation for why).
    pub fn reset(&self) {
        lock(&self.wanted).requested = None;
    }
}

impl AsyncRead for TtlStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TtlStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.apply()?;
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.apply()?;
        Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        // Everything handed to us before this point has been written. If the
        // handler has reset the TTL since, the held low TTL has done its job.
        let mut wanted = lock(&this.wanted);
        if wanted.requested.is_none() {
            wanted.held = None;
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests;
