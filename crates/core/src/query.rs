//! Strict reading of query strings, for the clouds whose metadata servers use them (GCP, Azure).
//!
//! A query is read once into decoded key/value pairs and written back in one canonical form, which
//! is what the policy checks and, byte for byte, what is forwarded. Anything two servers could read
//! in two ways is refused:
//! - pairs separated by `&` only (a `;` is a separator to some servers); no empty pair, every pair
//!   `key=value` (a bare key is `true` to some readers and `""` to others);
//! - keys are ASCII letters, digits, `-` and `_`, never escaped (`%72ecursive` is `recursive` to
//!   the server and not to a literal check);
//! - no key twice (first-wins and last-wins servers both exist);
//! - values: unreserved characters, `:`, `@`, `/`, `,`, `!`, `$`, `'`, `(`, `)`, `*` as they are,
//!   anything else percent-escaped; `+` is refused (a space to form decoders, a plus to others),
//!   and so are escapes that decode to a control byte or to bytes that are not UTF-8;
//! - canonical form: the pairs in the order sent, each value re-encoded with every byte that is
//!   not unreserved escaped in upper-case hex.
//!
//! Which keys an endpoint takes, and which values, is the cloud's business ([`check`]).

use std::fmt::Write as _;

use crate::cloud::Cloud;
use crate::target::CanonicalPath;

/// The longest query accepted.
pub const MAX_QUERY_LEN: usize = 2048;

/// A query that passed [`parse`]: decoded pairs in the order sent, no key twice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

/// Why a query was refused. Every variant ends in a 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("query strings are not accepted by this metadata server")]
    NotAccepted,
    #[error("query longer than {MAX_QUERY_LEN} bytes")]
    TooLong,
    #[error("empty query or empty pair in query")]
    EmptyPair,
    #[error("`;` in query")]
    Semicolon,
    #[error("query pair without `=`")]
    NoValue,
    #[error("query key is not made of letters, digits, `-` and `_`")]
    BadKey,
    #[error("query key {0:?} given twice")]
    Duplicate(String),
    #[error("`+` in a query value (a space to some readers, a plus to others); escape it")]
    Plus,
    #[error("character not allowed in a query value")]
    BadChar,
    #[error("malformed percent-escape in query")]
    BadEscape,
    #[error("query value decodes to a control byte or to bytes that are not UTF-8")]
    BadValue,
    #[error("query value decodes to `&`, `;` or `#`: another pair to a server that decodes before it splits")]
    EscapedSeparator,
    #[error("query key {0:?} is not taken by this endpoint")]
    UnknownKey(String),
    #[error("query key {0:?} is required by this endpoint")]
    MissingKey(&'static str),
    #[error("value of query key {0:?} is not one this endpoint takes")]
    BadKeyValue(String),
}

impl Query {
    /// The empty query (no `?` at all).
    pub const fn none() -> Self {
        Self { pairs: Vec::new() }
    }

    /// Whether there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.pairs.is_empty()
    }

    /// The decoded value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded pairs, in the order sent.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The canonical text, without the `?`: empty for no query.
    pub fn canonical(&self) -> String {
        let mut out = String::new();
        for (i, (k, v)) in self.pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            encode_into(&mut out, v);
        }
        out
    }
}

/// Escapes every byte that is not unreserved.
pub fn encode_into(out: &mut String, value: &str) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// Splits a request target at its first `?`: the path part and the query part, if any.
pub fn split(target: &str) -> (&str, Option<&str>) {
    match target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (target, None),
    }
}

/// Reads a query string (the text after `?`) strictly.
pub fn parse(raw: &str) -> Result<Query, QueryError> {
    if raw.len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong);
    }
    if raw.contains(';') {
        return Err(QueryError::Semicolon);
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    for pair in raw.split('&') {
        if pair.is_empty() {
            return Err(QueryError::EmptyPair);
        }
        let (key, value) = pair.split_once('=').ok_or(QueryError::NoValue)?;
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(QueryError::BadKey);
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(QueryError::Duplicate(key.to_owned()));
        }
        pairs.push((key.to_owned(), decode_value(value)?));
    }
    let query = Query { pairs };
    // The canonical form is what is forwarded, and read again by whoever reads it: it must fit
    // as well.
    if query.canonical().len() > MAX_QUERY_LEN {
        return Err(QueryError::TooLong);
    }
    Ok(query)
}

/// Decodes one value: raw characters from a short list, escapes of anything.
pub fn decode_value(value: &str) -> Result<String, QueryError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'+' => return Err(QueryError::Plus),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(QueryError::BadEscape)?;
                let digit = |c: u8| char::from(c).to_digit(16).ok_or(QueryError::BadEscape);
                let v = digit(hex[0])? * 16 + digit(hex[1])?;
                out.push(u8::try_from(v).map_err(|_| QueryError::BadEscape)?);
                i += 3;
            }
            _ if b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b':'
                        | b'@'
                        | b'/'
                        | b','
                        | b'!'
                        | b'$'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                ) =>
            {
                out.push(b);
                i += 1;
            }
            _ => return Err(QueryError::BadChar),
        }
    }
    let text = String::from_utf8(out).map_err(|_| QueryError::BadValue)?;
    if text.chars().any(char::is_control) {
        return Err(QueryError::BadValue);
    }
    // An escaped separator (`x%26recursive%3Dtrue`) is one more pair to a server that decodes
    // before it splits.
    if text.contains(['&', ';', '#']) {
        return Err(QueryError::EscapedSeparator);
    }
    Ok(text)
}

/// Why a request target was refused by [`read`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Target(#[from] crate::target::TargetError),
    #[error(transparent)]
    Query(#[from] QueryError),
}

/// Reads a request target for `cloud`'s server: the strict path, and, where the cloud takes
/// queries, the strict query checked against the endpoint. Azure reads paths regardless of case,
/// so there the path is read in lower case: the spelling checked is the spelling the server reads.
pub fn read(cloud: Cloud, target: &str) -> Result<(CanonicalPath, Query), ReadError> {
    if !cloud.takes_queries() {
        return Ok((crate::target::parse_target(target)?, Query::none()));
    }
    let (path, query) = split(target);
    let path = if cloud.case_insensitive_paths() {
        crate::target::parse_target(&path.to_ascii_lowercase())?
    } else {
        crate::target::parse_target(path)?
    };
    if query.is_some_and(|q| q.contains('#')) {
        return Err(crate::target::TargetError::Fragment.into());
    }
    let query = match query {
        None => Query::none(),
        Some(raw) => parse(raw)?,
    };
    check(cloud, &path, &query)?;
    Ok((path, query))
}

/// Checks a parsed query against what the cloud's endpoint for `path` takes: known keys only,
/// each with a value it takes, required keys present. No query at all for clouds without them.
pub fn check(cloud: Cloud, path: &CanonicalPath, query: &Query) -> Result<(), QueryError> {
    let Some(endpoint) = cloud.endpoint(path) else {
        return if query.is_empty() {
            Ok(())
        } else {
            Err(QueryError::NotAccepted)
        };
    };
    for (key, value) in query.pairs() {
        let Some((_, values)) = endpoint.keys.iter().find(|(k, _)| *k == key) else {
            return Err(QueryError::UnknownKey(key.to_owned()));
        };
        if !values.accepts(value) {
            return Err(QueryError::BadKeyValue(key.to_owned()));
        }
    }
    if let Some(missing) = endpoint.required.iter().find(|k| query.get(k).is_none()) {
        return Err(QueryError::MissingKey(missing));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
