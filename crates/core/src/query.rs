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
mod tests {
    use super::*;
    use crate::target::parse_target;

    #[test]
    fn reads_and_re_encodes() {
        let q = parse("api-version=2018-02-01&resource=https%3a%2F%2Fvault.azure.net").unwrap();
        assert_eq!(q.get("resource"), Some("https://vault.azure.net"));
        assert_eq!(
            q.canonical(),
            "api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net"
        );
        let raw = parse("resource=https://vault.azure.net/").unwrap();
        assert_eq!(raw.canonical(), "resource=https%3A%2F%2Fvault.azure.net%2F");
        assert_eq!(parse(&raw.canonical()).unwrap(), raw, "a fixed point");
        assert_eq!(parse("a=").unwrap().get("a"), Some(""));
    }

    #[test]
    fn refuses_what_two_readers_read_differently() {
        use QueryError::*;
        let refused: &[(&str, QueryError)] = &[
            ("", EmptyPair),
            ("a=1&", EmptyPair),
            ("&a=1", EmptyPair),
            ("a=1&&b=2", EmptyPair),
            ("a=1;b=2", Semicolon),
            ("recursive", NoValue),
            ("%72ecursive=true", BadKey),
            ("re cursive=true", BadKey),
            ("=x", BadKey),
            ("a=1&a=2", Duplicate("a".into())),
            ("a=x+y", Plus),
            ("a=x y", BadChar),
            ("a=x#y", BadChar),
            ("a=x?y", BadChar),
            ("a=b=c", BadChar),
            ("a=%zz", BadEscape),
            ("a=%4", BadEscape),
            ("a=%00", BadValue),
            ("a=%0d%0a", BadValue),
            ("a=%c0%ae", BadValue),
            ("a=%ff", BadValue),
            ("last_etag=x%26recursive%3Dtrue", EscapedSeparator),
            ("last_etag=x%3Brecursive%3Dtrue", EscapedSeparator),
            ("a=x%23y", EscapedSeparator),
        ];
        for (raw, want) in refused {
            assert_eq!(parse(raw).as_ref(), Err(want), "{raw:?}");
        }
        assert_eq!(parse(&"a".repeat(MAX_QUERY_LEN + 1)), Err(TooLong));
        // Short enough as sent, too long once every `:` is escaped: refused, so that the
        // canonical form always reads back.
        let long = format!("last_etag={}", ":".repeat(1000));
        assert_eq!(parse(&long), Err(TooLong));
        let fits = format!("last_etag={}", ":".repeat(600));
        assert_eq!(
            parse(&parse(&fits).unwrap().canonical())
                .unwrap()
                .get("last_etag")
                .unwrap()
                .len(),
            600
        );
    }

    #[test]
    fn reads_targets_per_cloud() {
        let (p, q) = read(
            Cloud::Azure,
            "/METADATA/Instance/compute?api-version=2021-02-01",
        )
        .unwrap();
        assert_eq!(p.as_str(), "/metadata/instance/compute");
        assert_eq!(q.canonical(), "api-version=2021-02-01");
        assert!(matches!(
            read(Cloud::Aws, "/latest/meta-data/?x=1"),
            Err(ReadError::Target(crate::target::TargetError::Query))
        ));
        assert!(matches!(
            read(Cloud::Gcp, "/computeMetadata/v1/?recursive=true#x"),
            Err(ReadError::Target(crate::target::TargetError::Fragment))
        ));
        assert!(matches!(
            read(Cloud::Gcp, "/computeMetadata/v1/../0.1/?recursive=true"),
            Err(ReadError::Target(crate::target::TargetError::DotSegment))
        ));
        let (p, q) = read(Cloud::Gcp, "/computeMetadata/v1/instance/").unwrap();
        assert_eq!(
            (p.as_str(), q.is_empty()),
            ("/computeMetadata/v1/instance/", true)
        );
        assert!(read(Cloud::Gcp, "/computeMetadata/v1/instance/?").is_err());
    }

    #[test]
    fn cloud_endpoints_take_only_their_keys() {
        let path = |p: &str| parse_target(p).unwrap();
        let q = |raw: &str| parse(raw).unwrap();
        let token = path("/metadata/identity/oauth2/token");
        assert_eq!(
            check(
                Cloud::Azure,
                &token,
                &q("api-version=2018-02-01&resource=r")
            ),
            Ok(())
        );
        assert_eq!(
            check(Cloud::Azure, &token, &q("resource=r")),
            Err(QueryError::MissingKey("api-version"))
        );
        assert_eq!(
            check(
                Cloud::Azure,
                &token,
                &q("api-version=2018-02-01&resource=r&x=1")
            ),
            Err(QueryError::UnknownKey("x".into()))
        );
        assert_eq!(
            check(Cloud::Azure, &path("/metadata/versions"), &Query::none()),
            Ok(())
        );
        assert_eq!(
            check(
                Cloud::Azure,
                &path("/metadata/instance"),
                &q("api-version=yesterday")
            ),
            Err(QueryError::BadKeyValue("api-version".into()))
        );
        let gcp = path("/computeMetadata/v1/instance/service-accounts/default/");
        assert_eq!(check(Cloud::Gcp, &gcp, &q("recursive=true")), Ok(()));
        assert_eq!(
            check(Cloud::Gcp, &gcp, &q("recursive=1")),
            Err(QueryError::BadKeyValue("recursive".into()))
        );
        assert_eq!(
            check(Cloud::Gcp, &gcp, &q("audience=x")),
            Err(QueryError::UnknownKey("audience".into()))
        );
        let id = path("/computeMetadata/v1/instance/service-accounts/default/identity");
        assert_eq!(
            check(Cloud::Gcp, &id, &q("audience=https://x&format=full")),
            Ok(())
        );
        assert_eq!(
            check(Cloud::Aws, &path("/latest/meta-data/"), &q("a=1")),
            Err(QueryError::NotAccepted)
        );
        assert_eq!(
            check(Cloud::Gcp, &path("/"), &q("recursive=true")),
            Err(QueryError::NotAccepted)
        );
    }
}
