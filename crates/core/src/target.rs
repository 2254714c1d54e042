//! Strict handling of the HTTP request target.
//!
//! Path filters are bypassed where the filter and the server behind it read one target in two
//! ways: `..` resolved by one and not the other, `%2e` or `%2f` decoded by one, `;` parameters
//! dropped, a backslash taken for a slash. So the target is parsed exactly once, into a canonical
//! path that has none of these ambiguities, and anything that could be read differently is
//! refused. The canonical path is both what the policy checks and, byte for byte, what is
//! forwarded upstream.
//!
//! Rules (everything else is refused):
//! - origin form only: `/` followed by path characters; no asterisk, absolute or authority form;
//! - no query and no fragment (the AWS metadata service uses neither);
//! - characters: RFC 3986 `pchar` (unreserved, sub-delims, `:` and `@`) and `/`, except `;`;
//! - percent-escapes only for characters that have no other meaning here (space, `"`, `:`, …),
//!   with hex digits upper-cased; an escape of an unreserved character, `/`, `\`, `%`, `;`, `?`,
//!   `#`, a control byte or any byte ≥ 0x80 (overlong UTF-8 included) is refused;
//! - no `.` or `..` segments, nor segments of dots and escaped spaces (`..%20`, `%20`), which a
//!   server that trims spaces reads as one or as nothing; runs of `/` collapse to one; a trailing
//!   slash is kept (botocore asks for `placement/availability-zone/` with one).

use std::fmt;

/// The longest target accepted. Metadata paths are short; a long one is an attack or a mistake.
pub const MAX_TARGET_LEN: usize = 1024;

/// A request path that passed [`parse_target`]: starts with `/`, ASCII only, no dot segments, no
/// empty segments except a trailing slash, escapes upper-cased.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CanonicalPath(String);

impl CanonicalPath {
    /// The canonical text, as checked and as forwarded.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments, without the empty one a trailing slash would give.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|s| !s.is_empty())
    }

    /// Whether the path ends in `/` (a directory listing, in metadata terms).
    pub fn has_trailing_slash(&self) -> bool {
        self.0.len() > 1 && self.0.ends_with('/')
    }
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a target was refused. Every variant ends in a 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    #[error("empty request target")]
    Empty,
    #[error("asterisk-form request target")]
    Asterisk,
    #[error("absolute-form request target")]
    AbsoluteForm,
    #[error("authority-form request target")]
    AuthorityForm,
    #[error("request target longer than {MAX_TARGET_LEN} bytes")]
    TooLong,
    #[error("query strings are not accepted")]
    Query,
    #[error("fragment in request target")]
    Fragment,
    #[error("control or non-ASCII byte in path")]
    ControlByte,
    #[error("backslash in path")]
    Backslash,
    #[error("path parameter (`;`) in path")]
    Semicolon,
    #[error("character not allowed in a path")]
    BadChar,
    #[error("malformed percent-escape")]
    BadEscape,
    #[error("percent-escape of a character that must not be escaped")]
    ForbiddenEscape,
    #[error("dot segment in path")]
    DotSegment,
}

/// Parses a raw request target into its canonical path, or says why it is refused.
pub fn parse_target(target: &str) -> Result<CanonicalPath, TargetError> {
    let bytes = target.as_bytes();
    if bytes.is_empty() {
        return Err(TargetError::Empty);
    }
    if bytes.len() > MAX_TARGET_LEN {
        return Err(TargetError::TooLong);
    }
    if target == "*" {
        return Err(TargetError::Asterisk);
    }
    if bytes[0] != b'/' {
        return Err(if target.contains("://") {
            TargetError::AbsoluteForm
        } else {
            TargetError::AuthorityForm
        });
    }

    let mut out = String::with_capacity(bytes.len());
    // Start of the current segment in `out`, to check it for dot segments when it ends.
    let mut seg_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'/' => {
                check_segment(&out[seg_start..])?;
                // Collapse `//`: only push a slash when the last one pushed is not one.
                if !out.ends_with('/') {
                    out.push('/');
                }
                seg_start = out.len();
                i += 1;
            }
            b'%' => {
                let escaped = decode_escape(bytes.get(i + 1..i + 3))?;
                if !escape_allowed(escaped) {
                    return Err(TargetError::ForbiddenEscape);
                }
                out.push('%');
                out.push(char::from(HEX_UPPER[usize::from(escaped >> 4)]));
                out.push(char::from(HEX_UPPER[usize::from(escaped & 0x0f)]));
                i += 3;
            }
            b'?' => return Err(TargetError::Query),
            b'#' => return Err(TargetError::Fragment),
            b'\\' => return Err(TargetError::Backslash),
            b';' => return Err(TargetError::Semicolon),
            _ if !(0x20..0x7f).contains(&b) => return Err(TargetError::ControlByte),
            _ if is_pchar(b) => {
                out.push(char::from(b));
                i += 1;
            }
            _ => return Err(TargetError::BadChar),
        }
    }
    check_segment(&out[seg_start..])?;
    Ok(CanonicalPath(out))
}

const HEX_UPPER: &[u8; 16] = b"0123456789ABCDEF";

fn decode_escape(hex: Option<&[u8]>) -> Result<u8, TargetError> {
    let hex = hex.ok_or(TargetError::BadEscape)?;
    let digit = |c: u8| char::from(c).to_digit(16).ok_or(TargetError::BadEscape);
    let value = digit(hex[0])? * 16 + digit(hex[1])?;
    u8::try_from(value).map_err(|_| TargetError::BadEscape)
}

/// RFC 3986 unreserved characters: escaping one of them is never needed, so an escaped one is
/// an attempt to hide a name (`user-d%61ta`) from a literal filter.
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Path characters taken as they are (RFC 3986 `pchar` without `%` and `;`).
fn is_pchar(b: u8) -> bool {
    is_unreserved(b)
        || matches!(
            b,
            b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b'=' | b':' | b'@'
        )
}

/// Escapes kept: printable ASCII that is neither unreserved nor a separator a lenient server
/// might act on after decoding.
fn escape_allowed(b: u8) -> bool {
    (0x20..0x7f).contains(&b)
        && !is_unreserved(b)
        && !matches!(b, b'/' | b'\\' | b'%' | b';' | b'?' | b'#')
}

/// `segment` is in canonical form here (escapes upper-cased), so a space is always `%20`.
fn check_segment(segment: &str) -> Result<(), TargetError> {
    if segment == "." || segment == ".." {
        return Err(TargetError::DotSegment);
    }
    // Windows and some other servers trim the spaces around a name (and its trailing dots), so
    // `..%20` or `%20.` reads as a dot segment there, and a segment of spaces as no segment. No
    // metadata path has such a segment.
    if segment.contains("%20") && segment.replace("%20", "").bytes().all(|b| b == b'.') {
        return Err(TargetError::DotSegment);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
