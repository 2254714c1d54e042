//! Properties of the strict request-target reader and of the policy decision, over generated
//! targets: arbitrary strings and bytes, and strings built from the characters and pieces that
//! path tricks are made of (`%`, `.`, `/`, `\`, `;`, `?`, `#`, hex digits, letters, non-ASCII,
//! metadata path names in any case).
//!
//! What must hold: the reader never panics; what it accepts is canonical (nothing a lenient server
//! could decode into a separator or a dot segment) and a fixed point; a decision depends only on
//! the canonical form; and no accepted target that the policy allows can be read by a lenient
//! server as a path the policy denies.
//!
//! The same promises for the query reader and the pattern matchers (the fuzz targets in `fuzz/`
//! check them on unbounded input): `query::parse` never panics, and what it accepts has a
//! canonical form of unreserved characters, upper-case `%XX`, `=` and `&` that parses back to the
//! same query; `query::read` never panics for any cloud, and what it accepts is a canonical path
//! whose canonical target reads again the same; `PathPattern::parse_with_query` and the matchers
//! never panic, and a lenient match is always a match "at or below".

use crate::bypass::{canonical, lenient};
#[path = "bypass/queries.rs"]
mod queries;

use std::collections::BTreeMap;

use imds_guard::cloud::{Cloud, ALL as CLOUDS};
use imds_guard::imds::Method;
use imds_guard::inventory::Pod;
use imds_guard::policy::pattern::PathPattern;
use imds_guard::policy::{Decision, Facts, Imdsv2, Policy, Rule, Selector, Verdict};
use imds_guard::query;
use imds_guard::target::{parse_target, CanonicalPath};
use proptest::prelude::*;
use proptest::sample::select;

/// Pieces that path tricks are made of.
const PIECES: &[&str] = &[
    "/",
    "/",
    "//",
    "latest",
    "meta-data",
    "user-data",
    "iam",
    "IAM",
    "Iam",
    "info",
    "api",
    "token",
    "security-credentials",
    ".",
    "..",
    "...",
    "%2e",
    "%2E",
    "%2f",
    "%2F",
    "%5c",
    "%5C",
    "%25",
    "%252e",
    "%3b",
    "%3B",
    "%3f",
    "%23",
    "%20",
    "%3a",
    "%3A",
    "%40",
    "%21",
    "%41",
    "%61",
    "%00",
    "%0a",
    "%7f",
    "%c0%ae",
    "%e0%80%ae",
    "%ff",
    "%",
    "%2",
    "%g1",
    "\\",
    ";",
    "?",
    "#",
    "a",
    "Z",
    "0",
    "9",
    "f",
    "-",
    "_",
    "~",
    "*",
    "**",
    "@",
    ":",
    "=",
    "!",
    "é",
    "\u{ff0e}",
    "\u{2215}",
    "\u{131}",
    "\0",
    "\t",
    " ",
    "\r\n",
];

/// Strings from the pieces above and from a path-ish alphabet, one character at a time.
fn pathish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => select(PIECES).prop_map(str::to_owned),
        1 => "[/%.\\\\;?#0-9a-fA-FgzZ~ _:@!é\u{ff0e}-]{1,3}",
    ];
    proptest::collection::vec(piece, 0..16).prop_map(|pieces| pieces.concat())
}

/// Metadata-like paths: real names with tricks around them, so that many are accepted and land
/// near the boundary between what is allowed and what is denied.
fn metadata_like() -> impl Strategy<Value = String> {
    let name = select(
        &[
            "latest",
            "meta-data",
            "iam",
            "user-data",
            "info",
            "security-credentials",
            "instance-id",
            "x",
        ][..],
    );
    let prefix = select(&["", "", "", "%20", ".", "%20%20"][..]);
    let suffix = select(
        &[
            "", "", "", "", ".", "..", "%20", ".%20", "%20.", "%2e", ";x", "%3A", "%21", "~",
        ][..],
    );
    let segment = (name, prefix, suffix, any::<u32>()).prop_map(|(name, pre, suf, case)| {
        let cased: String = name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if case >> (i % 32) & 1 == 1 && case % 3 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        format!("{pre}{cased}{suf}")
    });
    let piece = prop_oneof![
        8 => segment,
        1 => select(&[".", "..", "...", "%2e%2e", ".%20", "%20", ""][..]).prop_map(str::to_owned),
    ];
    let separator = select(&["/", "/", "/", "//", "\\", "%2f"][..]);
    (
        proptest::bool::weighted(0.8),
        proptest::collection::vec((separator, piece), 0..6),
        any::<bool>(),
    )
        .prop_map(|(under_meta_data, parts, trailing)| {
            let mut out = String::from(if under_meta_data {
                "/latest/meta-data"
            } else {
                ""
            });
            for (sep, piece) in parts {
                out.push_str(sep);
                out.push_str(&piece);
            }
            if trailing || out.is_empty() {
                out.push('/');
            }
            out
        })
}

/// Every kind of target: mostly origin-form ones, and anything at all.
fn targets() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => pathish().prop_map(|s| format!("/{s}")),
        6 => metadata_like(),
        1 => pathish(),
        1 => any::<String>(),
        1 => proptest::collection::vec(any::<u8>(), 0..64)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn pod(namespace: &str, name: &str, app: &str) -> Pod {
    Pod {
        namespace: namespace.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
        namespace_labels: BTreeMap::new(),
        owner: None,
        host_network: false,
    }
}

fn rule(name: &str, app: &str, allow: &[&str], deny: &[&str], require_tokens: bool) -> Rule {
    let patterns = |list: &[&str]| {
        list.iter()
            .map(|p| PathPattern::parse(p).unwrap())
            .collect()
    };
    Rule {
        name: name.into(),
        selector: Selector {
            pod_labels: BTreeMap::from([("app".to_owned(), app.to_owned())]),
            ..Selector::default()
        },
        allow: patterns(allow),
        deny: patterns(deny),
        require_tokens,
        max_token_ttl_seconds: Some(300),
    }
}

/// The policy of the bypass corpus (frontend: `/latest/meta-data/**` minus `iam/**`), and rules
/// with wildcards in the middle, exact names and tokens required for other pods.
fn policy() -> Policy {
    Policy::new(
        vec![
            rule(
                "frontend",
                "frontend",
                &["/latest/meta-data/**"],
                &["/latest/meta-data/iam/**"],
                false,
            ),
            rule(
                "batch",
                "batch",
                &[
                    "/latest/meta-data/*/instance-id",
                    "/latest/dynamic/**/document",
                    "/latest/meta-data/tags/instance/aws:name",
                ],
                &["/latest/meta-data/iam/**", "/latest/**/user-data"],
                true,
            ),
            rule("inspector", "inspector", &["/latest/**"], &[], false),
        ],
        Imdsv2::default(),
    )
}

fn pods() -> Vec<Pod> {
    vec![
        pod("web", "frontend-0", "frontend"),
        pod("jobs", "batch-0", "batch"),
        pod("tools", "inspector-0", "inspector"),
        pod("web", "nobody-0", "nobody"),
    ]
}

fn decide(
    policy: &Policy,
    pod: &Pod,
    method: Method,
    path: &CanonicalPath,
    token: bool,
) -> Decision {
    policy.decide(pod, &Facts::new(method, path, token))
}

fn methods() -> impl Strategy<Value = Method> {
    select(&[Method::Get, Method::Head, Method::Put, Method::Other][..])
}

/// The frontend's policy on a (lower-cased, resolved) reading of a GET.
fn frontend_may_read(segments: &[String]) -> bool {
    segments.starts_with(&["latest".to_owned(), "meta-data".to_owned()])
        && segments.get(2).map(String::as_str) != Some("iam")
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_reader_never_panics(target in targets()) {
        let _ = parse_target(&target);
    }

    #[test]
    fn accepted_targets_are_canonical(target in targets()) {
        if let Ok(path) = parse_target(&target) {
            let problems = canonical::canonical_problems(path.as_str());
            prop_assert!(problems.is_empty(), "{:?} -> {:?}: {:?}", target, path.as_str(), problems);
        }
    }

    #[test]
    fn the_canonical_form_is_a_fixed_point(target in targets()) {
        if let Ok(path) = parse_target(&target) {
            prop_assert_eq!(parse_target(path.as_str()), Ok(path.clone()), "from {:?}", target);
        }
    }

    #[test]
    fn a_decision_is_the_decision_for_the_canonical_form(
        target in targets(),
        method in methods(),
        token in any::<bool>(),
    ) {
        let Ok(path) = parse_target(&target) else { return Ok(()) };
        let canonical = parse_target(path.as_str()).unwrap();
        let policy = policy();
        for pod in pods() {
            prop_assert_eq!(
                decide(&policy, &pod, method, &path, token),
                decide(&policy, &pod, method, &canonical, token),
                "{:?} for {}", target, pod.name
            );
        }
    }

    /// Spellings that differ only in slash runs and escape case read alike: same canonical path,
    /// same decision.
    #[test]
    fn spelling_variants_are_decided_alike(target in targets(), seed in any::<u64>()) {
        let Ok(path) = parse_target(&target) else { return Ok(()) };
        let mut variant = String::new();
        let mut bits = seed;
        let mut after_percent = 0;
        for c in target.chars() {
            bits = bits.rotate_left(1);
            if after_percent > 0 {
                after_percent -= 1;
                variant.push(if bits & 1 == 1 { c.to_ascii_lowercase() } else { c });
                continue;
            }
            variant.push(c);
            match c {
                '%' => after_percent = 2,
                '/' if bits & 2 == 2 => variant.push('/'),
                _ => {}
            }
        }
        let other = parse_target(&variant);
        prop_assert_eq!(other.as_ref(), Ok(&path), "{:?} vs {:?}", target, variant);
        let policy = policy();
        let other = other.unwrap();
        for pod in pods() {
            prop_assert_eq!(
                decide(&policy, &pod, Method::Get, &path, false),
                decide(&policy, &pod, Method::Get, &other, false)
            );
        }
    }

    /// A lenient server decoding the canonical path finds the same segments: decoding cannot
    /// make a `/`, a `\`, a dot segment, another escape or a query.
    #[test]
    fn decoding_cannot_change_the_structure(target in targets()) {
        let Ok(path) = parse_target(&target) else { return Ok(()) };
        let problems = canonical::decoding_problems(path.as_str());
        prop_assert!(problems.is_empty(), "{:?}: {:?}", path.as_str(), problems);
    }

    /// The end-to-end promise: whatever the frontend pod is allowed to read, no lenient reading
    /// of it (decoded, trimmed, case-folded, dot segments resolved) is a path it is denied.
    #[test]
    fn nothing_allowed_reads_as_denied_to_a_lenient_server(target in targets()) {
        let Ok(path) = parse_target(&target) else { return Ok(()) };
        let frontend = pod("web", "frontend-0", "frontend");
        let decision = decide(&policy(), &frontend, Method::Get, &path, false);
        if decision.verdict == Verdict::Allow {
            for reading in lenient::readings(path.as_str()) {
                prop_assert!(
                    frontend_may_read(&reading),
                    "{:?} (canonical {:?}) is allowed but reads as /{}",
                    target, path.as_str(), reading.join("/")
                );
            }
        }
    }
}

/// The generators reach both sides of the boundary often enough for the properties to mean
/// something: many targets are accepted, and of those, many are allowed and many denied.
#[test]
fn the_generators_cover_the_boundary() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let strategy = targets();
    let frontend = pod("web", "frontend-0", "frontend");
    let policy = policy();
    let (mut accepted, mut allowed, mut denied) = (0, 0, 0);
    for _ in 0..2000 {
        let target = strategy.new_tree(&mut runner).unwrap().current();
        if let Ok(path) = parse_target(&target) {
            accepted += 1;
            match decide(&policy, &frontend, Method::Get, &path, false).verdict {
                Verdict::Allow => allowed += 1,
                Verdict::Deny => denied += 1,
            }
        }
    }
    assert!(accepted > 250, "only {accepted} of 2000 accepted");
    assert!(
        allowed > 80 && denied > 80,
        "allowed {allowed}, denied {denied}"
    );
}

/// Whether `path` has no upper-case letter outside the hex digits of its escapes (Azure's paths are
/// read in lower case).
fn lower_case_but_escapes(path: &str) -> bool {
    let mut parts = path.split('%');
    let first = parts.next().unwrap_or("");
    std::iter::once(first)
        .chain(parts.map(|s| s.get(2..).unwrap_or("")))
        .flat_map(str::bytes)
        .all(|b| !b.is_ascii_uppercase())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// `query::parse` never panics; what it accepts has a canonical form of unreserved
    /// characters, upper-case `%XX`, `=` and `&`, which parses back to the same query.
    #[test]
    fn the_query_reader_is_canonical_and_a_fixed_point(raw in queries::query_strings()) {
        let Ok(parsed) = query::parse(&raw) else { return Ok(()) };
        let canonical = parsed.canonical();
        let problems = canonical::query_problems(&canonical);
        prop_assert!(problems.is_empty(), "{:?} -> {:?}: {:?}", raw, canonical, problems);
        prop_assert_eq!(query::parse(&canonical), Ok(parsed.clone()), "{:?} -> {:?}", raw, canonical);
        prop_assert_eq!(parsed.canonical(), canonical);
    }

    /// `query::read` never panics for any cloud; what it accepts is a canonical path (in lower
    /// case on Azure) whose canonical target reads again as the same path and query, and the
    /// cloud's per-path rules never panic on it.
    #[test]
    fn every_cloud_reads_targets_into_canonical_forms(target in queries::cloud_targets()) {
        for cloud in CLOUDS {
            let Ok((path, q)) = query::read(cloud, &target) else { continue };
            let mut problems = canonical::canonical_problems(path.as_str());
            problems.extend(canonical::decoding_problems(path.as_str()));
            prop_assert!(problems.is_empty(), "{} {:?} -> {}: {:?}", cloud, target, path, problems);
            if cloud == Cloud::Azure {
                prop_assert!(lower_case_but_escapes(path.as_str()), "{:?} -> {}", target, path);
            }
            let again = if q.is_empty() {
                path.as_str().to_owned()
            } else {
                format!("{path}?{}", q.canonical())
            };
            prop_assert_eq!(
                query::read(cloud, &again),
                Ok((path.clone(), q.clone())),
                "{} {:?} -> {:?}", cloud, target, again
            );
            let _ = (cloud.endpoint(&path), cloud.is_legacy(&path), cloud.gated(&path));
            let _ = cloud.aggregate_root(&path, &q);
        }
    }

    /// Patterns with query constraints compile or are refused without a panic, and the matchers
    /// take any segments (they are public): a lenient match is always a match "at or below" (the
    /// aggregate check is never looser than the path check), and covering implies matching.
    #[test]
    fn patterns_never_panic_and_lenient_matches_are_matches_at_or_below(
        source in queries::pattern_sources(),
        segments in queries::raw_segments(),
        raw_query in queries::query_strings(),
    ) {
        let Ok(pattern) = PathPattern::parse_with_query(&source) else { return Ok(()) };
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        let lenient = pattern.matches_segments(&segments, true);
        prop_assert!(!lenient || pattern.matches_at_or_below(&segments), "{:?} {:?}", source, segments);
        prop_assert!(
            !pattern.covers(&segments) || pattern.matches_segments(&segments, false),
            "{:?} {:?}", source, segments
        );
        let q = query::parse(&raw_query).unwrap_or_default();
        let _ = (pattern.matches_query(&q, false), pattern.matches_query(&q, true));
    }
}

/// The query generators reach accepted queries and targets often enough for the properties above
/// to mean something.
#[test]
fn the_query_generators_reach_accepted_input() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (queries, targets, patterns) = (
        queries::query_strings(),
        queries::cloud_targets(),
        queries::pattern_sources(),
    );
    let (mut parsed, mut gcp, mut azure, mut compiled) = (0, 0, 0, 0);
    for _ in 0..2000 {
        let raw = queries.new_tree(&mut runner).unwrap().current();
        parsed += usize::from(query::parse(&raw).is_ok());
        let target = targets.new_tree(&mut runner).unwrap().current();
        gcp += usize::from(query::read(Cloud::Gcp, &target).is_ok_and(|(_, q)| !q.is_empty()));
        azure += usize::from(query::read(Cloud::Azure, &target).is_ok_and(|(_, q)| !q.is_empty()));
        let source = patterns.new_tree(&mut runner).unwrap().current();
        compiled += usize::from(PathPattern::parse_with_query(&source).is_ok());
    }
    assert!(parsed > 300, "only {parsed} of 2000 queries parsed");
    assert!(
        gcp > 10 && azure > 4,
        "targets with a query read: gcp {gcp}, azure {azure}"
    );
    assert!(compiled > 300, "only {compiled} of 2000 patterns compiled");
}

/// Found by the `query_parse` fuzz target: a query within `MAX_QUERY_LEN` whose canonical form is
/// longer (every `:` becomes `%3A`) is accepted, and then its canonical form — what is forwarded,
/// and what a re-read sees — is refused as too long: not a fixed point. The same holds for
/// `query::read` on a GCP target. (Refusing the query, or accepting its canonical form, both
/// make this pass.)
#[test]
fn a_long_query_s_canonical_form_is_a_fixed_point() {
    let raw = format!("last_etag={}", ":".repeat(1000));
    if let Ok(parsed) = query::parse(&raw) {
        let canonical = parsed.canonical();
        assert_eq!(
            query::parse(&canonical),
            Ok(parsed.clone()),
            "{} bytes accepted; the canonical form of {} bytes does not parse back",
            raw.len(),
            canonical.len()
        );
    }
    let target = format!("/computeMetadata/v1/instance/attributes/?{raw}");
    if let Ok((path, q)) = query::read(Cloud::Gcp, &target) {
        assert_eq!(
            query::read(Cloud::Gcp, &format!("{path}?{}", q.canonical())),
            Ok((path, q))
        );
    }
}
