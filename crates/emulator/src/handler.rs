//! Turns one request into one response, as the AWS metadata service would — or another cloud's
//! EC2-style service: Alibaba's, Tencent's, Exoscale's, or the `/latest/` tree of OpenStack or
//! Huawei ([`Ec2Protocol`] holds what differs).
//!
//! The handler is a plain function of the request and the emulator's state,
//! returning the response together with the IP TTL it must be sent with, so
//! the connection code applies the TTL and tests can check which responses
//! ask for the hop limit without going through a socket.

use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CONTENT_LENGTH, CONTENT_TYPE, SERVER};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;

use imds_guard_core::cloud::Cloud;

use super::creds::CredentialSource;
pub(crate) use super::protocol::{protocol, Ec2Protocol};
use super::protocol::{CredentialsFormat, TokenFlow, AWS_SERVER};
use super::session_tokens::{TokenStore, MAX_TTL_SECS, MIN_TTL_SECS};
use super::tree::{Lookup, Node};
use super::TokenMode;

/// The path that issues session tokens.
pub(crate) const TOKEN_PATH: &str = "/latest/api/token";
/// Request header carrying the wanted token lifetime; echoed in the response.
pub(crate) const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// Request header carrying a session token.
pub(crate) const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// A PUT with this header came through a proxy; AWS refuses it.
const FORWARDED_HEADER: &str = "x-forwarded-for";

/// Everything a request may need; shared by all connections.
#[derive(Debug)]
pub(crate) struct State {
    /// The cloud emulated; picks the handler of each request.
    pub(crate) cloud: Cloud,
    /// How the EC2-style tree and token flow behave (AWS, Alibaba, Tencent, Exoscale, and the
    /// `/latest/` trees of OpenStack and Huawei).
    pub(crate) protocol: Ec2Protocol,
    pub(crate) tokens: TokenMode,
    pub(crate) hop_limit: u8,
    pub(crate) tree: Node,
    pub(crate) credentials: CredentialSource,
    pub(crate) store: TokenStore,
    /// Requests answered per second, when the service is to throttle like the real one.
    pub(crate) throttle: Option<parking_lot::Mutex<imds_guard_core::bucket::Bucket>>,
    /// Requests refused by the throttle so far.
    pub(crate) throttled: std::sync::atomic::AtomicU64,
    /// GCP's changing parts (guest attributes, the maintenance event).
    pub(crate) gcp: super::gcp::GcpState,
    /// OpenStack's posted password.
    pub(crate) openstack: super::openstack::OpenstackState,
}

/// The IP TTL a response must leave with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseTtl {
    /// The connection's normal TTL.
    Normal,
    /// The configured hop limit: only for responses that carry a token.
    HopLimit(u8),
}

/// A response and the TTL to send it with.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) response: Response<Full<Bytes>>,
    pub(crate) ttl: ResponseTtl,
}

impl Reply {
    fn normal(response: Response<Full<Bytes>>) -> Self {
        Reply {
            response,
            ttl: ResponseTtl::Normal,
        }
    }
}

/// Whether the throttle refuses this request (and counts it if so).
pub(crate) fn throttled(state: &State) -> bool {
    let Some(bucket) = &state.throttle else {
        return false;
    };
    let over = bucket.lock().take(std::time::Instant::now()).is_err();
    if over {
        state
            .throttled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    over
}

/// Answers `req`, the throttle first. The request body is never looked at.
pub(crate) fn handle<B>(state: &State, req: &Request<B>) -> Reply {
    if throttled(state) {
        let head = req.method() == Method::HEAD;
        let refusal = error(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", head);
        return Reply::normal(with_server(state, refusal));
    }
    handle_unthrottled(state, req)
}

/// Answers `req` whose throttle was already applied (the `/latest/` trees of OpenStack and
/// Huawei, reached through their own handler).
pub(crate) fn handle_unthrottled<B>(state: &State, req: &Request<B>) -> Reply {
    let mut reply = respond(state, req);
    reply.response = with_server(state, reply.response);
    reply
}

/// Sets the protocol's `Server` header (AWS's is already set).
fn with_server(state: &State, mut response: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    if state.protocol.server != Some(AWS_SERVER) {
        let headers = response.headers_mut();
        match state.protocol.server {
            Some(server) => headers.insert(SERVER, HeaderValue::from_static(server)),
            None => headers.remove(SERVER),
        };
    }
    response
}

fn respond<B>(state: &State, req: &Request<B>) -> Reply {
    let path = req.uri().path();
    let method = req.method();
    // Responses to HEAD announce their length but carry no body.
    let head = method == Method::HEAD;
    if let Some(flow) = state.protocol.tokens.filter(|_| path == TOKEN_PATH) {
        return if method == Method::PUT {
            issue_token(state, flow, req.headers())
        } else {
            Reply::normal(method_not_allowed("PUT", head))
        };
    }
    if method != Method::GET && !head {
        return Reply::normal(method_not_allowed("GET, HEAD", false));
    }
    if let Err(status) = authorized(state, req.headers()) {
        let title = status.canonical_reason().unwrap_or("Unauthorized");
        return Reply::normal(error(status, title, head));
    }
    let response = match resolve(state, path) {
        Resolved::Body(body) => text(StatusCode::OK, "text/plain", body, head),
        Resolved::NotFound => error(StatusCode::NOT_FOUND, "Not Found", head),
    };
    Reply::normal(response)
}

/// `PUT /latest/api/token`.
fn issue_token(state: &State, flow: TokenFlow, headers: &HeaderMap) -> Reply {
    if headers.contains_key(FORWARDED_HEADER) {
        return Reply::normal(error(StatusCode::FORBIDDEN, "Forbidden", false));
    }
    let Some(secs) = ttl_in(headers, flow.ttl_header) else {
        return Reply::normal(error(StatusCode::BAD_REQUEST, "Bad Request", false));
    };
    let token = state.store.issue(Duration::from_secs(secs), Instant::now());
    let mut response = text(StatusCode::OK, "text/plain", token, false);
    response
        .headers_mut()
        .insert(flow.ttl_header, HeaderValue::from(secs));
    Reply {
        response,
        ttl: ResponseTtl::HopLimit(state.hop_limit),
    }
}

/// The token lifetime asked for in AWS's header.
#[cfg(test)]
fn requested_ttl(headers: &HeaderMap) -> Option<u64> {
    ttl_in(headers, TTL_HEADER)
}

/// The token lifetime asked for: exactly one `name` header holding a plain decimal
/// number within the range AWS (and Alibaba) accept.
fn ttl_in(headers: &HeaderMap, name: &str) -> Option<u64> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    // Digits only: `u64::from_str` would also take a leading `+`.
    if value.is_empty() || value.len() > 10 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = value.parse().ok()?;
    (MIN_TTL_SECS..=MAX_TTL_SECS)
        .contains(&secs)
        .then_some(secs)
}

/// Checks the session token of a read. A token that is sent must be valid in
/// either mode (else 401); only optional mode serves requests without one (else the
/// protocol's tokenless status).
fn authorized(state: &State, headers: &HeaderMap) -> Result<(), StatusCode> {
    let Some(flow) = state.protocol.tokens else {
        return Ok(());
    };
    let mut values = headers.get_all(flow.token_header).iter();
    let valid = match (values.next(), values.next()) {
        (None, _) if state.tokens == TokenMode::Optional => true,
        (None, _) => return Err(flow.tokenless),
        (Some(token), None) => token
            .to_str()
            .is_ok_and(|token| state.store.is_valid(token, Instant::now())),
        // Several tokens at once: refuse rather than guess.
        (Some(_), Some(_)) => false,
    };
    if valid {
        Ok(())
    } else {
        Err(StatusCode::UNAUTHORIZED)
    }
}

enum Resolved {
    Body(String),
    NotFound,
}

/// Maps a URL path to what is served there: `/` lists the protocol's roots, and each root
/// (`/latest`, Exoscale's `/1.0` too) serves the whole tree.
fn resolve(state: &State, path: &str) -> Resolved {
    let roots = state.protocol.roots;
    if path == "/" {
        return Resolved::Body(roots.join("\n"));
    }
    let Some(rest) = roots.iter().find_map(|root| {
        path.strip_prefix('/')
            .and_then(|p| p.strip_prefix(root))
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    }) else {
        return Resolved::NotFound;
    };
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    let segments: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        // One trailing slash is allowed on directories and leaves alike; any
        // other empty segment (`//`) is kept and resolves to nothing.
        rest.strip_suffix('/').unwrap_or(rest).split('/').collect()
    };
    let credentials = state.protocol.credentials;
    match state.tree.lookup_in(&segments, credentials.map(|c| c.dir)) {
        Lookup::Listing(listing) => Resolved::Body(listing),
        Lookup::Value(value) => Resolved::Body(value.to_owned()),
        Lookup::Credentials(role) => {
            let now = SystemTime::now();
            let source = &state.credentials;
            Resolved::Body(match credentials.map(|c| c.format) {
                Some(CredentialsFormat::Alibaba) => source.alibaba_document(role, now),
                Some(CredentialsFormat::Tencent) => source.tencent_document(role, now),
                Some(CredentialsFormat::Aws) | None => source.document(role, now),
            })
        }
        Lookup::NotFound => Resolved::NotFound,
    }
}

/// A response with the headers AWS sends. For HEAD the body is left out but
/// its length is still announced.
fn text(
    status: StatusCode,
    content_type: &'static str,
    body: String,
    head: bool,
) -> Response<Full<Bytes>> {
    let length = body.len();
    let body = if head {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(SERVER, HeaderValue::from_static(AWS_SERVER));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// A short HTML error page in the style of the AWS service.
fn error(status: StatusCode, title: &str, head: bool) -> Response<Full<Bytes>> {
    let code = status.as_u16();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
         <html><head><title>{code} - {title}</title></head>\
         <body><h1>{code} - {title}</h1></body></html>\n"
    );
    text(status, "text/html", body, head)
}

fn method_not_allowed(allow: &'static str, head: bool) -> Response<Full<Bytes>> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed", head);
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

#[cfg(test)]
mod tests;
