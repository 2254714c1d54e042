//! The interception canary: proof, per node, that a pod's request to the metadata service really
//! reaches the node's guard.
//!
//! Interception happens beneath the guard (the node's DNAT, or the cgroup programs), and some
//! dataplanes route pods' packets around it without a word (Cilium with BPF host routing, Calico
//! in eBPF mode): pods then talk to the metadata service itself and nothing is refused or audited.
//! The guard cannot see traffic that never reaches it, so the proof has to come from a pod.
//!
//! The guard answers `GET /.imds-guard/canary` carrying an [`HEADER`] nonce itself, for any
//! source and any cloud, echoing the nonce (`proxy::canary`); the real service answers that path
//! with a 404 and knows no nonce. A pod that sends a fresh nonce to the metadata address and gets
//! it back was intercepted; anything else is a reason it was not ([`Unprotected`]).
//!
//! `imds-guard canary --once` probes once; without `--once` it is the DaemonSet form
//! ([`watch::run`]): a probe every interval, `/metrics`, and a `/readyz` that fails while the node
//! is unprotected.

pub mod watch;

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{PathAndQuery, Uri};
use http::{header, Request, StatusCode};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::cloud::Cloud;

/// The path the guard answers itself.
pub const PATH: &str = "/.imds-guard/canary";

/// The header that carries the nonce, both ways.
pub const HEADER: &str = "x-imds-guard-canary";

/// Whether `nonce` is acceptable: 16 to 64 of `[0-9a-zA-Z_-]`. Short and plain, so the guard can
/// echo it in a header and a JSON string as it is, with nothing to escape.
pub fn valid_nonce(nonce: &[u8]) -> bool {
    (16..=64).contains(&nonce.len())
        && nonce
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A fresh nonce: 32 hex digits. Fresh for every probe, so an answer cached or replayed by
/// something between the pod and the service cannot pass for the guard's.
pub fn nonce() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// A `--url` that cannot be probed.
#[derive(Debug, thiserror::Error)]
#[error("--url {url}: {why}")]
pub struct UrlError {
    url: String,
    why: &'static str,
}

/// Where probes go: the metadata service's URL as pods use it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The host to connect to, without brackets around an IPv6 address.
    host: String,
    port: u16,
    /// The `Host` header: the URL's authority, as a pod's client would send it.
    authority: String,
    /// The canary path under the URL's own path.
    path: PathAndQuery,
}

impl Target {
    /// Reads `url`: `http://HOST[:PORT][/PREFIX]`. Only plain HTTP, as the metadata service speaks.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let refuse = |why| UrlError {
            url: url.to_owned(),
            why,
        };
        let uri: Uri = url.parse().map_err(|_| refuse("not a URL"))?;
        if uri.scheme_str() != Some("http") {
            return Err(refuse("must start with http://"));
        }
        let authority = uri.authority().ok_or_else(|| refuse("no host"))?;
        if authority.as_str().contains('@') {
            return Err(refuse("user information is not allowed"));
        }
        if uri.query().is_some() {
            return Err(refuse("a query is not allowed"));
        }
        let host = authority.host();
        let path = format!("{}{PATH}", uri.path().trim_end_matches('/'));
        Ok(Self {
            host: host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path: path
                .parse()
                .map_err(|_| refuse("the path cannot carry the canary path"))?,
        })
    }

    /// The default target: the metadata address of `cloud`.
    pub fn of_cloud(cloud: Cloud) -> Self {
        Self {
            host: cloud.ipv4().to_string(),
            port: 80,
            authority: cloud.ipv4().to_string(),
            path: PathAndQuery::from_static(PATH),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.path)
    }
}

/// Why a probe did not prove interception.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unprotected {
    /// Nothing listens at the address.
    ConnectRefused,
    /// No answer within the timeout.
    Timeout,
    /// An answer with another status: a 404 is the real service, which knows no canary.
    Status(u16),
    /// 200 without the nonce: something other than the guard answered.
    NoEcho,
    /// The connection failed or the answer was not HTTP.
    IoError,
}

impl fmt::Display for Unprotected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ConnectRefused => f.write_str("connect-refused"),
            Self::Timeout => f.write_str("timeout"),
            Self::Status(code) => write!(f, "status-{code}"),
            Self::NoEcho => f.write_str("no-echo"),
            Self::IoError => f.write_str("io-error"),
        }
    }
}

/// What one probe found: `Ok` when the node's guard answered.
pub type Outcome = Result<(), Unprotected>;

/// The one line `canary --once` prints for `outcome`, naming the node when it is known.
pub fn verdict(outcome: Outcome, node: Option<&str>) -> String {
    let on = node.map(|n| format!(" (node {n})")).unwrap_or_default();
    match outcome {
        Ok(()) => format!("protected: the node's guard answered{on}"),
        Err(why) => format!("NOT protected: {why}{on}"),
    }
}

/// One probe: a fresh nonce to `target` on a connection of its own, answered within `timeout`.
pub async fn probe(target: &Target, timeout: Duration) -> Outcome {
    let nonce = nonce();
    tokio::time::timeout(timeout, exchange(target, &nonce))
        .await
        .unwrap_or(Err(Unprotected::Timeout))
}

/// Ends the connection's task when the probe ends, answered or timed out: nothing outlives it.
struct Abort(JoinHandle<()>);

impl Drop for Abort {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn exchange(target: &Target, nonce: &str) -> Outcome {
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => Unprotected::ConnectRefused,
            _ => Unprotected::IoError,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|_| Unprotected::IoError)?;
    let _connection = Abort(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let request = Request::get(target.path.as_str())
        .header(header::HOST, &target.authority)
        .header(HEADER, nonce)
        .body(Empty::<Bytes>::new())
        .map_err(|_| Unprotected::IoError)?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| Unprotected::IoError)?;
    if response.status() != StatusCode::OK {
        return Err(Unprotected::Status(response.status().as_u16()));
    }
    // Only the guard knows the nonce; the body is not needed to tell.
    match response.headers().get(HEADER) {
        Some(echo) if echo.as_bytes() == nonce.as_bytes() => Ok(()),
        _ => Err(Unprotected::NoEcho),
    }
}

#[cfg(test)]
mod tests;
