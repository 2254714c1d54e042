//! Reads of the GCE tree: one value in the form the query asks for, long polls, the generated
//! leaves of service accounts, and the legacy `0.1` tree.

use std::time::Duration;

use http::header::{HeaderValue, ETAG, LOCATION};
use http::StatusCode;
use imds_guard_core::cloud::Cloud;
use imds_guard_core::query::{self, Query, QueryError};
use serde_json::Value;
use tokio::time::Instant;

use super::super::answer::{self, etag, Answer};
use super::super::handler::State;
use super::{error, service_account, tree, JSON, TEXT};

/// Long polls without `timeout_sec`, and the longest one.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);
const MAX_WAIT: Duration = Duration::from_secs(300);

/// A refusal, or a redirect, in place of a value.
pub(super) enum NotServed {
    Status(StatusCode, &'static str),
    Redirect(String),
}

impl NotServed {
    pub(super) fn answer(self) -> Answer {
        match self {
            NotServed::Status(status, text) => error(status, text),
            NotServed::Redirect(location) => {
                let mut response = answer::answer(
                    StatusCode::MOVED_PERMANENTLY,
                    "text/html",
                    format!("{location}\n"),
                );
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(LOCATION, value);
                }
                response
            }
        }
    }
}

pub(super) const NOT_FOUND: NotServed = NotServed::Status(StatusCode::NOT_FOUND, "Not Found\n");
pub(super) const IMPROPER: NotServed =
    NotServed::Status(StatusCode::BAD_REQUEST, "improper query parameters\n");

/// A value ready to send.
pub(super) struct Served {
    content_type: &'static str,
    body: String,
}

pub(super) fn text(body: String) -> Served {
    Served {
        content_type: TEXT,
        body,
    }
}

impl Served {
    fn etag(&self) -> String {
        etag(self.body.as_bytes())
    }

    pub(super) fn answer(self) -> Answer {
        let tag = self.etag();
        let mut response = answer::answer(StatusCode::OK, self.content_type, self.body);
        if let Ok(value) = HeaderValue::from_str(&tag) {
            response.headers_mut().insert(ETAG, value);
        }
        response
    }
}

/// A read below `/computeMetadata/v1` (or `v1beta1`, read the same way).
pub(super) async fn read_v1(state: &State, path: &str, rest: &str, query: &Query) -> Answer {
    // The core's table names `v1` paths; `v1beta1` takes the same queries.
    let checked = imds_guard_core::target::parse_target(&format!("/computeMetadata/v1{rest}"));
    let Ok(checked) = checked else {
        return NOT_FOUND.answer();
    };
    if let Err(e) = query::check(Cloud::Gcp, &checked, query) {
        return match e {
            QueryError::MissingKey("audience") => error(
                StatusCode::BAD_REQUEST,
                "non-empty audience parameter required\n",
            ),
            _ => IMPROPER.answer(),
        };
    }
    if rest.is_empty() {
        return NotServed::Redirect(redirect(path, query)).answer();
    }
    let Some((segments, slash)) = answer::segments(&rest[1..]) else {
        return NOT_FOUND.answer();
    };
    if let ["instance", "service-accounts", account, leaf @ ("token" | "identity")] = segments[..] {
        return generated(state, account, leaf, slash, query)
            .map_or_else(NotServed::answer, Served::answer);
    }
    if query.get("wait_for_change") == Some("true") {
        return wait(state, path, &segments, slash, query).await;
    }
    render(state, path, &segments, slash, query).map_or_else(NotServed::answer, Served::answer)
}

fn redirect(path: &str, query: &Query) -> String {
    if query.is_empty() {
        format!("{path}/")
    } else {
        format!("{path}/?{}", query.canonical())
    }
}

/// The token or identity of a service account.
fn generated(
    state: &State,
    account: &str,
    leaf: &str,
    slash: bool,
    query: &Query,
) -> Result<Served, NotServed> {
    let accounts = &state.gcp.base["instance"]["service-accounts"];
    let email = accounts[account]["email"].as_str().ok_or(NOT_FOUND)?;
    if slash {
        return Err(NOT_FOUND);
    }
    if leaf == "token" {
        let (body, is_json) = service_account::access_token(query);
        let content_type = if is_json { JSON } else { TEXT };
        return Ok(Served { content_type, body });
    }
    let token = service_account::identity(email, query).ok_or(NotServed::Status(
        StatusCode::BAD_REQUEST,
        "non-empty audience parameter required\n",
    ))?;
    Ok(text(token))
}

/// The value at `segments` now, in the form the query asks for.
fn render(
    state: &State,
    path: &str,
    segments: &[&str],
    slash: bool,
    query: &Query,
) -> Result<Served, NotServed> {
    let snapshot = state.gcp.snapshot();
    let node = answer::walk(&snapshot, segments, false).ok_or(NOT_FOUND)?;
    let alt = query.get("alt");
    if !tree::is_dir(node) {
        if slash {
            return Err(NOT_FOUND);
        }
        return Ok(if alt == Some("json") {
            Served {
                content_type: JSON,
                body: node.to_string(),
            }
        } else {
            text(tree::leaf_text(node))
        });
    }
    if !slash && !segments.is_empty() {
        return Err(NotServed::Redirect(redirect(path, query)));
    }
    let name = segments.last().copied().unwrap_or("");
    let parents = &segments[..segments.len().saturating_sub(1)];
    if query.get("recursive") == Some("true") {
        if alt == Some("text") {
            let mut body = String::new();
            tree::recursive_text(node, "", &mut body);
            return Ok(text(body));
        }
        let user_named = parents.contains(&"guest-attributes");
        let doc = tree::recursive_json(node, name, user_named);
        return Ok(Served {
            content_type: JSON,
            body: doc.to_string(),
        });
    }
    let account = parents == ["instance", "service-accounts"];
    let entries = tree::entries(node, account);
    Ok(if alt == Some("json") {
        Served {
            content_type: JSON,
            body: Value::from(entries).to_string(),
        }
    } else {
        text(tree::listing(&entries))
    })
}

/// A long poll: the value once its ETag differs from the one the client has, or at the timeout.
async fn wait(state: &State, path: &str, segments: &[&str], slash: bool, query: &Query) -> Answer {
    let timeout = query
        .get("timeout_sec")
        .and_then(|t| t.parse().ok())
        .map_or(DEFAULT_WAIT, Duration::from_secs)
        .min(MAX_WAIT);
    let deadline = Instant::now() + timeout;
    let mut writes = state.gcp.writes.subscribe();
    let mut current = match render(state, path, segments, slash, query) {
        Ok(served) => served,
        Err(not) => return not.answer(),
    };
    let known = match query.get("last_etag") {
        Some(tag) => tag.to_owned(),
        None => current.etag(),
    };
    loop {
        let now = Instant::now();
        if current.etag() != known || now >= deadline {
            return current.answer();
        }
        let wake = match state.gcp.flips(now).1 {
            Some(flip) => flip.min(deadline),
            None => deadline,
        };
        tokio::select! {
            changed = writes.changed() => {
                if changed.is_err() {
                    tokio::time::sleep_until(wake).await;
                }
            }
            () = tokio::time::sleep_until(wake) => {}
        }
        current = match render(state, path, segments, slash, query) {
            Ok(served) => served,
            Err(not) => return not.answer(),
        };
    }
}

/// `/0.1/meta-data/…`: `project-id` and the instance attributes, listings with or without a
/// trailing slash (how the retired server treated them is not documented).
pub(super) fn legacy(state: &State, rest: &str) -> Result<Served, NotServed> {
    let (segments, _) =
        answer::segments(rest.strip_prefix('/').unwrap_or(rest)).ok_or(NOT_FOUND)?;
    let base = &state.gcp.base;
    let attributes = &base["instance"]["attributes"];
    match segments[..] {
        [] => Ok(text("attributes/\nproject-id\n".into())),
        ["project-id"] => Ok(text(tree::leaf_text(&base["project"]["project-id"]))),
        ["attributes"] => Ok(text(tree::listing(&tree::entries(attributes, false)))),
        ["attributes", key] => attributes
            .get(key)
            .map(|v| text(tree::leaf_text(v)))
            .ok_or(NOT_FOUND),
        _ => Err(NOT_FOUND),
    }
}
