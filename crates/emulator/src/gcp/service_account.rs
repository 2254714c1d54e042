//! The two generated leaves of a service account: `token` (an OAuth access token) and
//! `identity` (an ID token for an audience).

use imds_guard_core::query::Query;
use serde_json::{json, Value};

use super::super::answer::{jwt, random_text, unix_now, URL_SAFE};
use super::tree::{INSTANCE_ID, INSTANCE_NAME, PROJECT_ID, PROJECT_NUMBER, SA_UNIQUE_ID, ZONE};

/// Seconds an access token is said to live, as GCE says of a fresh one.
const ACCESS_TOKEN_SECS: u64 = 3599;
/// Lifetime of identity tokens.
const IDENTITY_SECS: u64 = 3600;

/// `…/token`: a fresh `ya29.` token per request. `scopes` is accepted and does not change it.
/// With `alt=text`, the three members as `name value` lines.
pub(super) fn access_token(query: &Query) -> (String, bool) {
    let token = format!("ya29.c.{}", random_text(URL_SAFE, 180));
    if query.get("alt") == Some("text") {
        let text =
            format!("access_token {token}\nexpires_in {ACCESS_TOKEN_SECS}\ntoken_type Bearer\n");
        return (text, false);
    }
    let doc = json!({
        "access_token": token,
        "expires_in": ACCESS_TOKEN_SECS,
        "token_type": "Bearer",
    });
    (doc.to_string(), true)
}

/// `…/identity?audience=A[&format=full][&licenses=TRUE]`: an ID token for `email`, or `None`
/// without a non-empty audience. As on GCE, the standard format carries `aud`, `azp`, `exp`,
/// `iat`, `iss` and `sub`; `format=full` adds `email`, `email_verified` and the instance's
/// `google.compute_engine` claims, and `licenses=TRUE` (with `full`) its license ids.
pub(super) fn identity(email: &str, query: &Query) -> Option<String> {
    let audience = query.get("audience").filter(|a| !a.is_empty())?;
    let now = unix_now();
    let mut payload = json!({
        "aud": audience,
        "azp": SA_UNIQUE_ID,
        "exp": now + IDENTITY_SECS,
        "iat": now,
        "iss": "https://accounts.google.com",
        "sub": SA_UNIQUE_ID,
    });
    if query.get("format") == Some("full") {
        payload["email"] = Value::from(email);
        payload["email_verified"] = Value::Bool(true);
        let mut engine = json!({
            "instance_creation_timestamp": 1_700_000_000u64,
            "instance_id": INSTANCE_ID.to_string(),
            "instance_name": INSTANCE_NAME,
            "project_id": PROJECT_ID,
            "project_number": PROJECT_NUMBER,
            "zone": ZONE,
        });
        if query
            .get("licenses")
            .is_some_and(|l| l.eq_ignore_ascii_case("true"))
        {
            engine["license_id"] = json!(["1001010"]);
        }
        payload["google"] = json!({ "compute_engine": engine });
    }
    let header = json!({
        "alg": "RS256",
        "kid": "0e3f5ee6b1c3a1b0e2d0f3a5c7e9b1d3f5a7c9e1",
        "typ": "JWT",
    });
    Some(jwt(&header, &payload))
}
