//! Path patterns of the policy: `*` is one segment, `**` any number of segments (zero too).
//!
//! A pattern is written like a path and goes through the same strict reader as request targets,
//! so a pattern and a request can only ever be compared in one canonical form. Matching ignores a
//! trailing slash on either side: in the metadata tree `meta-data` and `meta-data/` are the same
//! resource.
//!
//! Allow patterns compare canonical segments exactly. Deny patterns compare them the way the most
//! lenient server behind the guard could read them: ASCII case ignored, percent-escapes decoded
//! (`aws%3Aname` is `aws:name`), spaces around a segment and dots after it ignored (`iam.` and
//! `iam%20` are `iam` to Windows), and a segment that is nothing once trimmed (`...`) skipped. So a
//! spelling variant of a denied path can never slip past a deny to an upstream that reads it as
//! the denied path; at worst a deny catches a little more than it names.

use std::borrow::Cow;
use std::fmt;

use crate::target::{parse_target, CanonicalPath};

/// One compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// The pattern as written, for messages and `explain`.
    source: String,
    segments: Vec<Segment>,
    /// Query constraints (`?key=value`, `?key=*`): each key present, with that decoded value when
    /// one is given. Empty: the query is not constrained.
    query: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// A literal segment: its canonical text (allow), and how a lenient server reads it (deny).
    Literal { exact: String, lenient: String },
    /// `*`: exactly one segment.
    One,
    /// `**`: any number of segments, zero included.
    Any,
}

/// Why a pattern was refused by the config check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    #[error("a pattern must start with `/`")]
    NotAbsolute,
    #[error("not a valid path: {0}")]
    Path(#[from] crate::target::TargetError),
    #[error("`*` and `**` must stand alone as a whole segment (`/a/*/b`, `/a/**`), not in `{0}`")]
    PartialWildcard(String),
    #[error("query constraint: {0}")]
    Query(#[from] crate::query::QueryError),
}

impl PathPattern {
    /// Compiles a pattern such as `/latest/meta-data/**`.
    pub fn parse(source: &str) -> Result<Self, PatternError> {
        if !source.starts_with('/') {
            return Err(PatternError::NotAbsolute);
        }
        let path = parse_target(source)?;
        let segments = path
            .segments()
            .map(|seg| match seg {
                "*" => Ok(Segment::One),
                "**" => Ok(Segment::Any),
                s if s.contains('*') => Err(PatternError::PartialWildcard(s.to_owned())),
                s => Ok(Segment::Literal {
                    exact: s.to_owned(),
                    lenient: lenient_view(s).to_ascii_lowercase(),
                }),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            source: source.to_owned(),
            segments,
            query: Vec::new(),
        })
    }

    /// Compiles a pattern that may end in query constraints, for clouds whose servers take
    /// queries: `/metadata/identity/oauth2/token?resource=https://vault.azure.net` allows that
    /// resource only; `?audience=*` asks for the key with any value. Values are read like request
    /// values (escapes decoded) and compared decoded.
    pub fn parse_with_query(source: &str) -> Result<Self, PatternError> {
        let (path, query) = crate::query::split(source);
        let mut pattern = Self::parse(path)?;
        pattern.source = source.to_owned();
        if let Some(raw) = query {
            pattern.query = crate::query::parse(raw)?
                .pairs()
                .map(|(k, v)| (k.to_owned(), (v != "*").then(|| v.to_owned())))
                .collect();
        }
        Ok(pattern)
    }

    /// Whether the pattern has a `**` (so it names no path in particular below it).
    pub fn has_any_depth(&self) -> bool {
        self.segments.contains(&Segment::Any)
    }

    /// The query constraints: keys, and the value each must have (`None`: any).
    pub fn query_constraints(&self) -> &[(String, Option<String>)] {
        &self.query
    }

    /// Whether `query` meets the constraints. `lenient` (deny patterns) compares values ignoring
    /// ASCII case and a trailing `/`, as a server normalising a resource URL might.
    pub fn matches_query(&self, query: &crate::query::Query, lenient: bool) -> bool {
        self.query
            .iter()
            .all(|(key, want)| match (query.get(key), want) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(have), Some(want)) if lenient => lenient_value(have) == lenient_value(want),
                (Some(have), Some(want)) => have == want,
            })
    }

    /// Whether the pattern (as a deny, leniently) can match `root` or anything below it: the
    /// aggregate check, for reads that return a whole subtree. Query constraints are not looked
    /// at: a subtree read is refused if any of its members could be denied.
    pub fn matches_at_or_below(&self, root: &[&str]) -> bool {
        let kept: Vec<&str> = root
            .iter()
            .copied()
            .filter(|s| !lenient_view(s).is_empty())
            .collect();
        let (n, m) = (self.segments.len(), kept.len());
        // reach[p][s]: pattern from p can consume path from s with some suffix after the path.
        let mut reach = vec![vec![false; m + 1]; n + 1];
        for p in (0..=n).rev() {
            for s in (0..=m).rev() {
                reach[p][s] = if s == m {
                    true
                } else {
                    match self.segments.get(p) {
                        None => false,
                        Some(Segment::Any) => reach[p + 1][s] || reach[p][s + 1],
                        Some(Segment::One) => reach[p + 1][s + 1],
                        Some(Segment::Literal { exact, lenient }) => {
                            literal_eq(exact, lenient, kept[s], true) && reach[p + 1][s + 1]
                        }
                    }
                };
            }
        }
        reach[0][0]
    }

    /// Whether the pattern (as an allow) matches `root` and everything below it: it ends in `**`
    /// and matches `root` itself.
    pub fn covers(&self, root: &[&str]) -> bool {
        self.segments.last() == Some(&Segment::Any) && self.matches_segments(root, false)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `path` matches; `lenient` compares segments as a deny pattern does (case, escapes,
    /// trailing dots and spaces ignored: see the module docs), otherwise exactly.
    pub fn matches(&self, path: &CanonicalPath, lenient: bool) -> bool {
        let segments: Vec<&str> = path.segments().collect();
        self.matches_segments(&segments, lenient)
    }

    /// Wildcard matching with backtracking to the last `**` only: O(pattern × path).
    /// Callers that try many patterns split the path once and use this.
    pub fn matches_segments(&self, path: &[&str], lenient: bool) -> bool {
        if lenient && path.iter().any(|s| lenient_view(s).is_empty()) {
            // A lenient server drops what trims to nothing (`...`), so the deny sees the path
            // without it.
            let kept: Vec<&str> = path
                .iter()
                .copied()
                .filter(|s| !lenient_view(s).is_empty())
                .collect();
            return self.match_wildcards(&kept, true);
        }
        self.match_wildcards(path, lenient)
    }

    fn match_wildcards(&self, path: &[&str], lenient: bool) -> bool {
        let pat = &self.segments;
        let (mut p, mut s) = (0, 0);
        // Where the last `**` was seen, and how many path segments it currently swallows up to.
        let mut backtrack: Option<(usize, usize)> = None;
        while s < path.len() {
            match pat.get(p) {
                Some(Segment::Any) => {
                    backtrack = Some((p, s));
                    p += 1;
                    continue;
                }
                Some(Segment::One) => {
                    p += 1;
                    s += 1;
                    continue;
                }
                Some(Segment::Literal {
                    exact,
                    lenient: lenient_lit,
                }) if literal_eq(exact, lenient_lit, path[s], lenient) => {
                    p += 1;
                    s += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((star_p, star_s)) => {
                    p = star_p + 1;
                    s = star_s + 1;
                    backtrack = Some((star_p, star_s + 1));
                }
                None => return false,
            }
        }
        pat[p..].iter().all(|seg| *seg == Segment::Any)
    }
}

fn literal_eq(exact: &str, lenient_lit: &str, segment: &str, lenient: bool) -> bool {
    if lenient {
        lenient_view(segment).eq_ignore_ascii_case(lenient_lit)
    } else {
        exact == segment
    }
}

/// A query value as a lenient server (or an identity service normalising a resource URL) may
/// read it: escapes decoded again (as often as there are any), `+` read as a space, spaces around
/// it dropped, ASCII case ignored, a default `:443` port, a final `/.default` scope and trailing
/// `/` and `/.` dropped.
fn lenient_value(value: &str) -> String {
    let mut v = value.to_owned();
    for _ in 0..4 {
        let decoded = percent_decode(&v);
        if decoded == v {
            break;
        }
        v = decoded;
    }
    let mut v = v.replace('+', " ").trim().to_ascii_lowercase();
    if let Some(rest) = v.strip_prefix("https://") {
        let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if let Some(host) = host.strip_suffix(":443") {
            v = format!("https://{host}{path}");
        }
    }
    loop {
        let before = v.len();
        for suffix in ["/.default", "/.", "/"] {
            if let Some(kept) = v.strip_suffix(suffix) {
                v.truncate(kept.len());
            }
        }
        v.truncate(v.trim_end().len());
        if v.len() == before {
            return v;
        }
    }
}

/// A segment as a lenient server reads it, but for case: escapes decoded, surrounding spaces and
/// trailing dots dropped. Borrowed unless there is an escape to decode.
fn lenient_view(segment: &str) -> Cow<'_, str> {
    fn trim(s: &str) -> &str {
        s.trim_start_matches(' ').trim_end_matches(['.', ' '])
    }
    if segment.contains('%') {
        Cow::Owned(trim(&percent_decode(segment)).to_owned())
    } else {
        Cow::Borrowed(trim(segment))
    }
}

/// Decodes `%XX` escapes; anything malformed stays as it is (canonical paths have none, but this
/// is public and must not trust its input).
fn percent_decode(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |k: usize| {
            bytes
                .get(i + k)
                .and_then(|&b| char::from(b).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        if let (b'%', Some(high), Some(low)) = (bytes[i], hex(1), hex(2)) {
            out.push((high << 4) | low);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests;
