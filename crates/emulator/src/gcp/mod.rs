//! An emulator of the GCE metadata server (`imds-guard emulate --cloud gcp`).
//!
//! - Gate: every request needs exactly one `Metadata-Flavor: Google`, else 403 with GKE's text
//!   body "Missing required header"; `X-Forwarded-For` is refused with 403. Every answer, refusals
//!   included, carries `Metadata-Flavor: Google`.
//! - `/computeMetadata/v1/`: the tree of [`tree`]. A directory asked for without its trailing
//!   slash is redirected (301) to it, query kept, as GCE does; the `Location` is relative where
//!   GCE names `metadata.google.internal`, so that clients stay on the emulator's address.
//! - Queries are read strictly (the core's query reader: `+`, `;`, bare keys and duplicates are
//!   refused) and checked against the core's table of the keys each endpoint takes; anything else
//!   is 400 "improper query parameters".
//! - `recursive=true` returns a directory's subtree as JSON with GCE's camelCase keys;
//!   `alt=json|text` picks the form; every 200 carries an `ETag` (a hash of the body).
//! - `wait_for_change=true` answers once the value's ETag differs from `last_etag` (or, without
//!   one, from the ETag at the start), or at `timeout_sec` with the current value. GCE does not
//!   document a default or a cap: here the default is 60 s and the cap 300 s.
//!   [`EmulatorOptions::change_every`](super::EmulatorOptions) flips `instance/maintenance-event`
//!   so a long poll can see a change; a guest attribute written with PUT wakes polls too.
//! - `service-accounts/<sa>/token` and `/identity` are generated per request ([`tokens`]).
//! - The legacy trees `/0.1/meta-data/` and `/computeMetadata/v1beta1/` need no header, as the
//!   real ones did: `v1beta1` mirrors `v1` (tokens included, GET only), `0.1` serves `project-id`
//!   and the instance attributes. They let tests show the guard refusing what the server serves.
//! - Methods: GET; PUT only on `instance/guest-attributes/<namespace>/<key>` (the body is the
//!   value). Anything else is 405 — HEAD included, which GCE does not document.

mod read;
mod service_account;
mod tree;

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, SERVER};
use http::{HeaderMap, Method, Request, StatusCode};
use imds_guard_core::cloud::{GCP_FLAVOR, GCP_FLAVOR_HEADER};
use imds_guard_core::query::{self, Query};
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

use super::answer::{self, Answer};
use super::handler::State;
use read::{legacy, read_v1, text, NotServed, Served, IMPROPER, NOT_FOUND};

const TEXT: &str = "application/text";
const JSON: &str = "application/json";
const ERROR_TEXT: &str = "text/plain; charset=utf-8";
/// The `Server` header of GCE's answers.
const SERVER_NAME: &str = "Metadata Server for VM";
const MAINTENANCE_VALUES: [&str; 2] = ["NONE", "MIGRATE_ON_HOST_MAINTENANCE"];

/// What changes on the emulated GCE server.
#[derive(Debug)]
pub(crate) struct GcpState {
    /// The tree without its changing parts.
    base: Value,
    /// When `maintenance-event` started flipping, and how often it flips.
    started: Instant,
    change_every: Option<Duration>,
    /// Guest attributes written with PUT: namespace → key → value.
    guest: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Bumped on every write, to wake long polls.
    writes: watch::Sender<u64>,
}

impl GcpState {
    pub(crate) fn new(change_every: Option<Duration>) -> Self {
        GcpState {
            base: tree::builtin(),
            started: Instant::now(),
            change_every,
            guest: Mutex::new(BTreeMap::new()),
            writes: watch::Sender::new(0),
        }
    }

    /// The flips of `maintenance-event` so far, and when the next one falls.
    fn flips(&self, now: Instant) -> (u128, Option<Instant>) {
        let Some(every) = self.change_every.filter(|e| !e.is_zero()) else {
            return (0, None);
        };
        let n = now.duration_since(self.started).as_nanos() / every.as_nanos();
        let next = u64::try_from(every.as_nanos() * (n + 1)).ok();
        (n, next.map(|ns| self.started + Duration::from_nanos(ns)))
    }

    /// The whole tree as it is now.
    fn snapshot(&self) -> Value {
        let mut tree = self.base.clone();
        let (flips, _) = self.flips(Instant::now());
        tree["instance"]["maintenance-event"] =
            Value::from(MAINTENANCE_VALUES[(flips % 2) as usize]);
        let guest = self.guest.lock();
        tree["instance"]["guest-attributes"] = serde_json::to_value(&*guest).unwrap_or_default();
        tree
    }
}

/// A GCP error answer (without the GCE headers, which [`handle`] adds).
pub(crate) fn error(status: StatusCode, text: &'static str) -> Answer {
    answer::answer(status, ERROR_TEXT, text)
}

/// Puts GCE's headers on an answer.
pub(crate) fn decorate(mut response: Answer) -> Answer {
    let headers = response.headers_mut();
    headers.insert(GCP_FLAVOR_HEADER, HeaderValue::from_static(GCP_FLAVOR));
    headers.insert(SERVER, HeaderValue::from_static(SERVER_NAME));
    response
}

/// Where a path leads.
enum Route<'a> {
    /// `/`
    Root,
    /// `/computeMetadata` (`false`) or `/computeMetadata/` (`true`).
    Versions(bool),
    /// Below `/computeMetadata/v1` (`rest` starts with `/` or is empty); `beta` for `v1beta1`.
    V1 {
        rest: &'a str,
        beta: bool,
    },
    /// Below `/0.1/meta-data`.
    Legacy(&'a str),
    Unknown,
}

fn route(path: &str) -> Route<'_> {
    let below = |prefix: &str| {
        path.strip_prefix(prefix)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    };
    match path {
        "/" => Route::Root,
        "/computeMetadata" => Route::Versions(false),
        "/computeMetadata/" => Route::Versions(true),
        _ => {
            if let Some(rest) = below("/computeMetadata/v1") {
                Route::V1 { rest, beta: false }
            } else if let Some(rest) = below("/computeMetadata/v1beta1") {
                Route::V1 { rest, beta: true }
            } else if let Some(rest) = below("/0.1/meta-data") {
                Route::Legacy(rest)
            } else {
                Route::Unknown
            }
        }
    }
}

/// Answers one request.
pub(crate) async fn handle(state: Arc<State>, req: Request<Bytes>) -> Answer {
    decorate(respond(&state, &req).await)
}

async fn respond(state: &State, req: &Request<Bytes>) -> Answer {
    if req.headers().contains_key("x-forwarded-for") {
        return error(
            StatusCode::FORBIDDEN,
            "Request had an X-Forwarded-For header\n",
        );
    }
    let path = req.uri().path();
    let route = route(path);
    let gated = !matches!(route, Route::Legacy(_) | Route::V1 { beta: true, .. });
    if gated && !flavored(req.headers()) {
        return error(StatusCode::FORBIDDEN, "Missing required header\n");
    }
    let query = match req.uri().query().map(query::parse).transpose() {
        Ok(query) => query.unwrap_or_default(),
        Err(_) => return IMPROPER.answer(),
    };
    let method = req.method();
    let writable = matches!(route, Route::V1 { beta: false, .. });
    if method == Method::PUT && writable {
        return match route {
            Route::V1 { rest, .. } => write(state, rest, &query, req.body()),
            _ => NOT_FOUND.answer(),
        };
    }
    if method != Method::GET {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    }
    let read = match route {
        Route::Root if query.is_empty() => Ok(text("computeMetadata/\n".into())),
        Route::Versions(true) if query.is_empty() => Ok(text("v1/\n".into())),
        Route::Versions(false) if query.is_empty() => {
            Err(NotServed::Redirect("/computeMetadata/".into()))
        }
        Route::Legacy(rest) if query.is_empty() => legacy(state, rest),
        Route::V1 { rest, .. } => return read_v1(state, path, rest, &query).await,
        Route::Unknown => Err(NOT_FOUND),
        _ => Err(IMPROPER),
    };
    read.map_or_else(NotServed::answer, Served::answer)
}

/// Whether the request carries exactly one `Metadata-Flavor`, with exactly GCE's value.
fn flavored(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(GCP_FLAVOR_HEADER).iter();
    matches!((values.next(), values.next()), (Some(v), None) if v == GCP_FLAVOR)
}

/// `PUT /computeMetadata/v1/instance/guest-attributes/<namespace>/<key>`.
fn write(state: &State, rest: &str, query: &Query, body: &Bytes) -> Answer {
    let segments = answer::segments(rest.strip_prefix('/').unwrap_or(rest));
    let Some((["instance", "guest-attributes", namespace, key], false)) =
        segments.as_ref().map(|(s, slash)| (&s[..], *slash))
    else {
        let mut response = error(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET"));
        return response;
    };
    if !query.is_empty() {
        return IMPROPER.answer();
    }
    // GCE's naming rules for guest attributes are not documented in full: letters, digits, `-`
    // and `_`, at most 64 characters, is the strict reading.
    let name_ok = |n: &str| {
        n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !name_ok(namespace) || !name_ok(key) {
        return error(StatusCode::BAD_REQUEST, "invalid guest attribute name\n");
    }
    let Ok(value) = std::str::from_utf8(body) else {
        return error(StatusCode::BAD_REQUEST, "guest attribute values are text\n");
    };
    state
        .gcp
        .guest
        .lock()
        .entry((*namespace).to_owned())
        .or_default()
        .insert((*key).to_owned(), value.to_owned());
    state.gcp.writes.send_modify(|n| *n += 1);
    answer::answer(StatusCode::OK, TEXT, "")
}

#[cfg(test)]
mod tests;
