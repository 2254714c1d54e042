//! The upstream client: pooled HTTP/1 connections to the real metadata service.
//!
//! Answers are read whole (they are small: user-data is capped at 16 KiB by AWS) before the
//! client sees anything, so an upstream that fails half-way gives the client a clean 502, never a
//! truncated 200, and the audit line knows the exact size.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::config;

/// The largest answer accepted from upstream.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why an upstream exchange failed. Each maps to one status in `respond`.
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
    /// Short name for audit lines and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unreachable(_) => "upstream-unreachable",
            Self::Timeout => "upstream-timeout",
            Self::Broken(_) => "upstream-broken",
            Self::TooLarge => "upstream-too-large",
        }
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

/// Pooled client for one upstream.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpConnector, Empty<Bytes>>,
    base: http::uri::Authority,
    timeout: Duration,
}

impl Upstream {
    /// A client for the configured upstream, with its connect and total timeouts.
    pub fn new(config: &config::Upstream) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        connector.enforce_http(true);
        // Enough idle connections for every request in flight to find one: a pool smaller than
        // the concurrency makes the excess open (and close) a connection per request.
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build(connector);
        Self {
            client,
            base: config.authority.clone(),
            timeout: config.timeout,
        }
    }

    /// Sends `method path` with `headers` (already filtered by the caller) and reads the answer.
    pub async fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: HeaderMap,
    ) -> Result<Answer, UpstreamError> {
        let uri = http::Uri::builder()
            .scheme("http")
            .authority(self.base.clone())
            .path_and_query(path)
            .build()
            .map_err(|e| UpstreamError::Broken(format!("cannot build upstream URI: {e}")))?;
        let mut request = Request::new(Empty::new());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;

        let started = Instant::now();
        let exchange = async {
            let response = self.client.request(request).await.map_err(classify)?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_RESPONSE_BYTES)
                .collect()
                .await
                .map_err(|e| {
                    if e.downcast_ref::<http_body_util::LengthLimitError>()
                        .is_some()
                    {
                        UpstreamError::TooLarge
                    } else {
                        UpstreamError::Broken(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        let response = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| UpstreamError::Timeout)??;
        let elapsed = started.elapsed();
        let (parts, body) = response.into_parts();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
            elapsed,
        })
    }
}

/// A connect timeout is a timeout (504); any other connect failure is unreachable (502).
fn classify(err: hyper_util::client::legacy::Error) -> UpstreamError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return UpstreamError::Timeout;
            }
        }
        source = e.source();
    }
    if err.is_connect() {
        UpstreamError::Unreachable(error_chain(&err))
    } else {
        UpstreamError::Broken(error_chain(&err))
    }
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
