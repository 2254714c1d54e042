//! Generators for the property tests of the query reader, per-cloud targets and patterns: strings
//! built from the pieces query and path tricks are made of (the keys and values the clouds use,
//! escapes of separators, `+`, `;`, `#`, non-ASCII, case variants), so that many are accepted and
//! land near the boundary of what the strict readers take.

use proptest::prelude::*;
use proptest::sample::select;

const KEYS: &[&str] = &[
    "recursive",
    "alt",
    "wait_for_change",
    "timeout_sec",
    "last_etag",
    "audience",
    "format",
    "scopes",
    "api-version",
    "resource",
    "client_id",
    "nonce",
    "Recursive",
    "%72ecursive",
    "re cursive",
    "x_y-z",
    "",
];

/// Values the readers take as they are or decoded.
const VALUES: &[&str] = &[
    "true",
    "false",
    "True",
    "1",
    "json",
    "text",
    "full",
    "10",
    "2018-02-01",
    "2021-02-01-preview",
    "https://vault.azure.net",
    "https%3A%2F%2Fvault.azure.net%2f",
    "%3A",
    "%2F",
    "%26",
    "%3D",
    "%3B",
    "%25",
    "%2525",
    "%C3%A9",
    "%c3%a9",
    "%2B",
    "%20",
    "~",
    "*",
    "!",
    "(",
    ")",
    "'",
    "$",
    ",",
    "@",
    ":",
    "/",
    ".",
    "",
];

/// Pieces of values that some reader reads differently, or that are malformed.
const BAD_VALUES: &[&str] = &[
    "%00", "%0a", "%7f", "%ff", "%c0%ae", "%", "%4", "%zz", "+", "é", " ", "=", "?", "#", ";",
];

/// Query strings (without `?`): mostly pairs joined by `&`, with stray separators and characters.
pub fn query_strings() -> impl Strategy<Value = String> {
    let value_piece = prop_oneof![
        12 => select(VALUES),
        1 => select(BAD_VALUES),
    ];
    let value = proptest::collection::vec(value_piece, 0..3).prop_map(|v| v.concat());
    let eq = prop_oneof![12 => Just("="), 1 => Just("")];
    let pair = (select(KEYS), eq, value).prop_map(|(k, eq, v)| format!("{k}{eq}{v}"));
    let separator = prop_oneof![
        16 => Just("&"),
        1 => select(&[";", "&&", "#", "?", " ", "+"][..]),
    ];
    let piece = prop_oneof![
        16 => (separator, pair).prop_map(|(s, p)| format!("{s}{p}")),
        1 => "[a-zA-Z0-9%=&;+:/._~# -]{1,4}",
    ];
    proptest::collection::vec(piece, 1..5).prop_map(|pieces| {
        let text = pieces.concat();
        // Mostly without the leading separator of the first piece.
        text.strip_prefix('&').map(str::to_owned).unwrap_or(text)
    })
}

const PATH_PIECES: &[&str] = &[
    "computeMetadata",
    "computemetadata",
    "v1",
    "V1",
    "v1beta1",
    "0.1",
    "instance",
    "attributes",
    "kube-env",
    "service-accounts",
    "default",
    "identity",
    "token",
    "metadata",
    "Metadata",
    "oauth2",
    "compute",
    "userData",
    "versions",
    "opc",
    "v2",
    "latest",
    "meta-data",
    "all",
    "ram",
    "openstack",
    "user_data",
    "x",
    ".",
    "..",
    "...",
    "%2e",
    "%2E",
    "%20",
    "%3A",
    "%3f",
    "%41",
    "%",
    ";",
    "\\",
    "#",
    "é",
];

/// Pairs the clouds' endpoints take.
const GOOD_PAIRS: &[&str] = &[
    "recursive=true",
    "recursive=false",
    "alt=json",
    "alt=text",
    "wait_for_change=true",
    "timeout_sec=5",
    "last_etag=ab%26c",
    "api-version=2021-02-01",
    "api-version=2018-02-01",
    "format=text",
    "format=json",
    "resource=https%3A%2F%2Fvault.azure.net",
    "resource=https://management.azure.com/",
    "client_id=x",
];

/// Queries an endpoint may take: known pairs, now and then with a trick among them.
fn endpoint_queries() -> impl Strategy<Value = String> {
    let pair = prop_oneof![
        8 => select(GOOD_PAIRS).prop_map(str::to_owned),
        1 => query_strings(),
    ];
    proptest::collection::vec(pair, 1..4).prop_map(|pairs| pairs.join("&"))
}

/// Where the clouds' paths start.
const ROOTS: &[&str] = &[
    "/computeMetadata/v1",
    "/computeMetadata/v1/instance",
    "/metadata/instance",
    "/metadata/identity/oauth2/token",
    "/METADATA/Instance",
    "/opc/v2/instance",
    "/latest/meta-data",
    "/openstack/latest",
    "",
];

/// Paths made of the clouds' names and the tricks around them.
pub fn cloud_paths() -> impl Strategy<Value = String> {
    let separator = select(&["/", "/", "/", "//"][..]);
    let piece = (
        select(PATH_PIECES),
        select(&["", "", "", ".", "%20", "~"][..]),
    )
        .prop_map(|(p, s)| format!("{p}{s}"));
    (
        select(ROOTS),
        proptest::collection::vec((separator, piece), 0..5),
        any::<bool>(),
    )
        .prop_map(|(root, parts, trailing)| {
            let mut out = root.to_owned();
            out.extend(parts.into_iter().map(|(s, p)| format!("{s}{p}")));
            if trailing || out.is_empty() {
                out.push('/');
            }
            out
        })
}

/// Request targets for any cloud: a cloud path, and a query most of the time.
pub fn cloud_targets() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (cloud_paths(), endpoint_queries()).prop_map(|(p, q)| format!("{p}?{q}")),
        2 => (cloud_paths(), query_strings()).prop_map(|(p, q)| format!("{p}?{q}")),
        2 => cloud_paths(),
        1 => any::<String>(),
    ]
}

/// Pattern sources: paths with `*` and `**` among the pieces, and query constraints at times.
pub fn pattern_sources() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        6 => select(PATH_PIECES).prop_map(str::to_owned),
        2 => select(&["*", "**", "a*", "***"][..]).prop_map(str::to_owned),
    ];
    (
        proptest::collection::vec(piece, 0..6),
        proptest::option::weighted(0.3, query_strings()),
    )
        .prop_map(|(segments, query)| {
            let mut out = format!("/{}", segments.join("/"));
            if let Some(q) = query {
                out.push('?');
                out.push_str(&q);
            }
            out
        })
}

/// Path segments as a matcher may be handed them (raw: escapes and dots left as they are).
pub fn raw_segments() -> impl Strategy<Value = Vec<String>> {
    let piece = (select(PATH_PIECES), select(&["", "", ".", "%20", " "][..]))
        .prop_map(|(p, s)| format!("{p}{s}"));
    proptest::collection::vec(piece, 0..7)
}
