//! Properties of the strict request-target reader and of the policy decision, over generated
//! targets: arbitrary strings and bytes, and strings built from the characters and pieces that
//! path tricks are made of (`%`, `.`, `/`, `\`, `;`, `?`, `#`, hex digits, letters, non-ASCII,
//! metadata path names in any case).
//!
//! What must hold: the reader never panics; what it accepts is canonical (nothing a lenient server
//! could decode into a separator or a dot segment) and a fixed point; a decision depends only on
//! the canonical form; and no accepted target that the policy allows can be read by a lenient
//! server as a path the policy denies.

#[path = "bypass/canonical.rs"]
mod canonical;
#[path = "bypass/lenient.rs"]
mod lenient;

use std::collections::BTreeMap;

use imds_guard::imds::Method;
use imds_guard::inventory::Pod;
use imds_guard::policy::pattern::PathPattern;
use imds_guard::policy::{Decision, Facts, Imdsv2, Policy, Rule, Selector, Verdict};
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
