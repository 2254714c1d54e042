//! Protocol rules of the AWS instance metadata service that the guard relies on.
//!
//! Pure: names of headers, the token endpoint, what each method may do, and the token TTL range.
//! The proxy and the emulator both build on these, so the two cannot disagree about the protocol.

use std::sync::LazyLock;

use crate::policy::pattern::PathPattern;
use crate::target::CanonicalPath;

/// The IMDSv2 session-token endpoint (PUT only).
pub const TOKEN_PATH: &str = "/latest/api/token";
/// Header carrying the token on reads.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// Header carrying the requested token TTL on the PUT, echoed on its response.
pub const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// The largest token TTL the service grants, in seconds (6 hours).
pub const MAX_TOKEN_TTL_SECONDS: u32 = 21_600;

/// The request methods the guard tells apart. Methods are case-sensitive (`get` is not `GET`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Put,
    /// Anything else: always refused with 405.
    Other,
}

impl Method {
    /// Reads an HTTP method name, exactly as sent.
    pub fn from_name(name: &str) -> Self {
        match name {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "PUT" => Self::Put,
            _ => Self::Other,
        }
    }
}

/// What a request is, in protocol terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `PUT /latest/api/token`: asks for an IMDSv2 session token.
    TokenRequest,
    /// GET or HEAD of a metadata path.
    Read,
    /// Anything the service does not accept (POST, PUT elsewhere, GET of the token endpoint…).
    NotAllowed,
}

/// Classifies a request by method and canonical path, with AWS's token endpoint.
pub fn classify(method: Method, path: &CanonicalPath) -> Kind {
    classify_at(method, path, TOKEN_PATH)
}

/// Classifies a request by method and canonical path, `token_endpoint` being the cloud's token
/// endpoint (a trailing slash is the same endpoint).
pub fn classify_at(method: Method, path: &CanonicalPath, token_endpoint: &str) -> Kind {
    let token_path = path.as_str().strip_suffix('/').unwrap_or(path.as_str()) == token_endpoint;
    match method {
        Method::Put if token_path => Kind::TokenRequest,
        // A read of the endpoint in another spelling (case, trailing dots or spaces, `...`
        // segments) is what a lenient server takes for the endpoint: no read either.
        Method::Get | Method::Head if !token_path && !reads_as_endpoint(path, token_endpoint) => {
            Kind::Read
        }
        _ => Kind::NotAllowed,
    }
}

/// The token endpoints of the clouds, compiled once: reads are checked against them on every
/// request.
static ENDPOINTS: LazyLock<Vec<(&'static str, PathPattern)>> = LazyLock::new(|| {
    [TOKEN_PATH, crate::cloud::LINODE_TOKENS.path]
        .into_iter()
        .filter_map(|e| PathPattern::parse(e).ok().map(|p| (e, p)))
        .collect()
});

/// Whether a lenient server would read `path` as `endpoint`, as deny patterns read paths.
fn reads_as_endpoint(path: &CanonicalPath, endpoint: &str) -> bool {
    // Cheap first: every lenient spelling holds the endpoint's last segment in some case.
    let last = endpoint
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .as_bytes();
    if !last.is_empty()
        && !path
            .as_str()
            .as_bytes()
            .windows(last.len())
            .any(|w| w.eq_ignore_ascii_case(last))
    {
        return false;
    }
    match ENDPOINTS.iter().find(|(known, _)| *known == endpoint) {
        Some((_, pattern)) => pattern.matches(path, true),
        // An endpoint of no known cloud: read it now, and if it cannot be read, refuse.
        None => PathPattern::parse(endpoint).map_or(true, |p| p.matches(path, true)),
    }
}

/// Whether the path names the token endpoint (a trailing slash is the same endpoint).
pub fn is_token_path(path: &CanonicalPath) -> bool {
    path.as_str().strip_suffix('/').unwrap_or(path.as_str()) == TOKEN_PATH
}

/// Why a token TTL header was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TtlError {
    #[error("missing token TTL header")]
    Missing,
    #[error("the token TTL must be a whole number of seconds from 1 to the service's maximum")]
    OutOfRange,
}

/// Reads the requested token TTL as the service does: an integer in `1..=21600`.
pub fn parse_ttl(value: Option<&[u8]>) -> Result<u32, TtlError> {
    parse_ttl_within(value, MAX_TOKEN_TTL_SECONDS)
}

/// Reads a requested token TTL as a service granting at most `max` seconds does: an integer in
/// `1..=max`.
pub fn parse_ttl_within(value: Option<&[u8]>, max: u32) -> Result<u32, TtlError> {
    let value = value.ok_or(TtlError::Missing)?;
    // Digits only: no sign, no spaces, no leading `+` that a lenient parser would take.
    if value.is_empty() || value.len() > 5 || !value.iter().all(u8::is_ascii_digit) {
        return Err(TtlError::OutOfRange);
    }
    let ttl = value
        .iter()
        .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'));
    if (1..=max).contains(&ttl) {
        Ok(ttl)
    } else {
        Err(TtlError::OutOfRange)
    }
}

#[cfg(test)]
mod tests;
