//! Path patterns of the policy: `*` is one segment, `**` any number of segments (zero too).
//!
//! A pattern is written like a path and goes through the same strict reader as request targets,
//! so a pattern and a request can only ever be compared in one canonical form. Matching ignores a
//! trailing slash on either side: in the metadata tree `meta-data` and `meta-data/` are the same
//! resource. Deny patterns are compared case-insensitively and allow patterns exactly, so a case
//! variant of a denied path can never slip past a deny on a case-insensitive upstream.

use std::fmt;

use super::target::{parse_target, CanonicalPath};

/// One compiled path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathPattern {
    /// The pattern as written, for messages and `explain`.
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
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
    Path(#[from] super::target::TargetError),
    #[error("`*` and `**` must stand alone as a whole segment (`/a/*/b`, `/a/**`), not in `{0}`")]
    PartialWildcard(String),
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
                s => Ok(Segment::Literal(s.to_owned())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            source: source.to_owned(),
            segments,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `path` matches; `ignore_case` compares literal segments ASCII-case-insensitively.
    pub fn matches(&self, path: &CanonicalPath, ignore_case: bool) -> bool {
        let segments: Vec<&str> = path.segments().collect();
        self.matches_segments(&segments, ignore_case)
    }

    /// Wildcard matching with backtracking to the last `**` only: O(pattern × path).
    /// Callers that try many patterns split the path once and use this.
    pub fn matches_segments(&self, path: &[&str], ignore_case: bool) -> bool {
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
                Some(Segment::Literal(lit)) if literal_eq(lit, path[s], ignore_case) => {
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

fn literal_eq(pattern: &str, segment: &str, ignore_case: bool) -> bool {
    if ignore_case {
        pattern.eq_ignore_ascii_case(segment)
    } else {
        pattern == segment
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> CanonicalPath {
        parse_target(p).unwrap()
    }

    fn m(pattern: &str, p: &str) -> bool {
        PathPattern::parse(pattern)
            .unwrap()
            .matches(&path(p), false)
    }

    #[test]
    fn double_star_matches_any_depth_including_zero() {
        assert!(m("/latest/**", "/latest"));
        assert!(m("/latest/**", "/latest/"));
        assert!(m("/latest/**", "/latest/meta-data/iam/info"));
        assert!(!m("/latest/**", "/"));
        assert!(!m("/latest/**", "/latestx/meta-data"));
        assert!(m("/**", "/"));
        assert!(m("/**", "/anything/at/all"));
        assert!(m("/latest/**/info", "/latest/info"));
        assert!(m("/latest/**/info", "/latest/meta-data/iam/info"));
        assert!(!m("/latest/**/info", "/latest/meta-data/iam/info/x"));
        assert!(m("/a/**/b/**/c", "/a/x/b/y/b/z/c"));
        assert!(!m("/a/**/b/**/c", "/a/x/c"));
    }

    #[test]
    fn single_star_is_exactly_one_segment() {
        assert!(m(
            "/latest/meta-data/iam/security-credentials/*",
            "/latest/meta-data/iam/security-credentials/role"
        ));
        assert!(!m(
            "/latest/meta-data/iam/security-credentials/*",
            "/latest/meta-data/iam/security-credentials/"
        ));
        assert!(!m("/latest/*", "/latest/meta-data/ami-id"));
        assert!(m("/latest/*/ami-id", "/latest/meta-data/ami-id"));
    }

    #[test]
    fn trailing_slash_is_ignored_on_both_sides() {
        assert!(m(
            "/latest/meta-data/placement/availability-zone",
            "/latest/meta-data/placement/availability-zone/"
        ));
        assert!(m("/latest/meta-data/", "/latest/meta-data"));
        assert!(m("/latest/meta-data", "/latest/meta-data/"));
    }

    #[test]
    fn literals_are_exact_unless_ignoring_case() {
        let p = PathPattern::parse("/latest/user-data").unwrap();
        assert!(!p.matches(&path("/latest/User-Data"), false));
        assert!(p.matches(&path("/latest/User-Data"), true));
        assert!(!p.matches(&path("/latest/user-data2"), true));
    }

    #[test]
    fn escapes_compare_in_canonical_form() {
        assert!(m(
            "/latest/meta-data/tags/a%3ab",
            "/latest/meta-data/tags/a%3Ab"
        ));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert_eq!(
            PathPattern::parse("latest/**"),
            Err(PatternError::NotAbsolute)
        );
        assert!(matches!(
            PathPattern::parse("/latest/../x"),
            Err(PatternError::Path(_))
        ));
        assert!(matches!(
            PathPattern::parse("/latest/x?y"),
            Err(PatternError::Path(_))
        ));
        assert_eq!(
            PathPattern::parse("/latest/ami-*"),
            Err(PatternError::PartialWildcard("ami-*".into()))
        );
        assert!(matches!(
            PathPattern::parse("/latest/***"),
            Err(PatternError::PartialWildcard(_))
        ));
    }

    #[test]
    fn long_paths_match() {
        let deep = format!("/latest/{}", vec!["x"; 40].join("/"));
        assert!(m("/latest/**", &deep));
        assert!(m("/latest/**/x", &deep));
        assert!(!m("/latest/**/y", &deep));
    }
}
