//! The soak's oracle and judge.
//!
//! The oracle re-implements, from the description in docs/configuration.md ("How decisions are
//! made") and without calling the crate, what the guard must decide for one request under the
//! soak's policy (written as TOML in `soak.rs`): allow or deny, the reason, the rule named, the
//! status the client must see. The judge holds one audit line against the request it belongs to,
//! the pod its `pod_uid` names (each uid has fixed labels for life) and the times each source
//! address had no pod.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// The largest token TTL the metadata service grants.
const MAX_TTL: u32 = 21_600;

/// How long after its deletion a pod may still be named in an audit line: the guard learns of the
/// deletion through the watch, a few milliseconds later normally. Far beyond any sane watch delay,
/// and far below the time a wrongly kept pod would stay named.
pub const WATCH_LAG_ALLOWANCE: Duration = Duration::from_secs(2);

/// One rule of the soak policy, as the oracle understands it.
struct Rule {
    name: &'static str,
    /// `namespaces = [..]`, when set.
    namespace: Option<&'static str>,
    /// `pod_labels`: every one must be present with exactly this value.
    labels: &'static [(&'static str, &'static str)],
    allow: &'static [&'static str],
    deny: &'static [&'static str],
    require_tokens: bool,
    ttl_cap: Option<u32>,
}

/// The soak policy, in config order (the first matching rule is the one named).
const RULES: [Rule; 3] = [
    Rule {
        name: "node-metadata-lookup",
        namespace: None,
        labels: &[("allow-node-metadata-lookup", "true")],
        allow: &["/latest/**"],
        deny: &[],
        require_tokens: false,
        ttl_cap: None,
    },
    Rule {
        name: "shop-web",
        namespace: Some("shop"),
        labels: &[("app", "web")],
        allow: &["/latest/meta-data/**"],
        deny: &["/latest/meta-data/iam/**"],
        require_tokens: false,
        ttl_cap: None,
    },
    Rule {
        name: "batch-dynamic",
        namespace: Some("batch"),
        labels: &[],
        allow: &["/latest/dynamic/**"],
        deny: &[],
        require_tokens: true,
        ttl_cap: Some(60),
    },
];

impl Rule {
    fn selects(&self, pod: &PodRecord) -> bool {
        self.namespace.is_none_or(|ns| ns == pod.namespace)
            && self
                .labels
                .iter()
                .all(|(k, v)| pod.labels.get(*k).map(String::as_str) == Some(*v))
    }
}

/// Whether `pattern` matches `path`, segment by segment: `*` is one segment, `**` any number
/// (none included), a trailing slash counts for nothing.
fn matches(pattern: &str, path: &str, ignore_case: bool) -> bool {
    fn segments(text: &str) -> Vec<&str> {
        text.split('/').filter(|s| !s.is_empty()).collect()
    }
    fn walk(pattern: &[&str], path: &[&str], ignore_case: bool) -> bool {
        match pattern.split_first() {
            None => path.is_empty(),
            Some((&"**", rest)) => (0..=path.len()).any(|i| walk(rest, &path[i..], ignore_case)),
            Some((&"*", rest)) => !path.is_empty() && walk(rest, &path[1..], ignore_case),
            Some((literal, rest)) => {
                path.first().is_some_and(|segment| {
                    if ignore_case {
                        segment.eq_ignore_ascii_case(literal)
                    } else {
                        segment == literal
                    }
                }) && walk(rest, &path[1..], ignore_case)
            }
        }
    }
    walk(&segments(pattern), &segments(path), ignore_case)
}

/// A TTL header value as the service reads it: 1 to 5 digits, 1..=21600.
fn parse_ttl(value: &str) -> Option<u32> {
    if value.is_empty() || value.len() > 5 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok().filter(|ttl| (1..=MAX_TTL).contains(ttl))
}

/// Every pod the soak ever created, by uid. Labels never change for a uid.
#[derive(Debug, Clone)]
pub struct PodRecord {
    pub ip: Ipv4Addr,
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Taken just before the pod was created in the API.
    pub created: Instant,
    /// Taken just after it was deleted there.
    pub deleted: Option<Instant>,
}

/// Which IMDSv2 token a read carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token {
    None,
    /// A live token from the metadata service.
    Valid,
    /// A token the service never issued: it answers 401 when the guard forwards.
    Bogus,
}

/// What was sent, in the terms the decision depends on.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The canonical path, or the target exactly as sent when it is malformed.
    pub path: String,
    pub well_formed: bool,
    pub body: bool,
    pub token: Token,
    /// The TTL header of a token PUT, when sent.
    pub ttl: Option<String>,
}

/// What the guard must do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub decision: &'static str,
    pub reason: &'static str,
    pub rule: Option<&'static str>,
    /// The status the client must get (the upstream's own, when forwarded).
    pub status: u16,
    /// The TTL the client must be granted, for a token answer.
    pub ttl: Option<u32>,
}

fn refusal_status(reason: &str) -> u16 {
    match reason {
        "bad-request" => 400,
        "token-required" => 401,
        "method-not-allowed" => 405,
        "not-ready" => 503,
        _ => 403,
    }
}

/// The oracle: the decision for `request` from `pod` (`None`: no pod has the address).
pub fn expect(pod: Option<&PodRecord>, request: &Request) -> Expected {
    let deny = |reason: &'static str, rule: Option<&'static str>| Expected {
        decision: "deny",
        reason,
        rule,
        status: refusal_status(reason),
        ttl: None,
    };
    let allow =
        |reason: &'static str, rule: &'static str, status: u16, ttl: Option<u32>| Expected {
            decision: "allow",
            reason,
            rule: Some(rule),
            status,
            ttl,
        };
    // Read strictly first: what cannot be read safely is refused whoever sent it.
    if !request.well_formed || request.body {
        return deny("bad-request", None);
    }
    let Some(pod) = pod else {
        return deny("unknown-source", None);
    };
    let path = request.path.as_str();
    let token_endpoint = path.strip_suffix('/').unwrap_or(path) == "/latest/api/token";
    let method_ok = match request.method.as_str() {
        "GET" | "HEAD" => !token_endpoint,
        "PUT" => token_endpoint,
        _ => false,
    };
    if !method_ok {
        return deny("method-not-allowed", None);
    }
    let selected: Vec<&Rule> = RULES.iter().filter(|r| r.selects(pod)).collect();
    if selected.is_empty() {
        return deny("no-rule", None);
    }
    if let Some(rule) = selected
        .iter()
        .find(|r| r.deny.iter().any(|p| matches(p, path, true)))
    {
        return deny("denied-by-rule", Some(rule.name));
    }
    if token_endpoint {
        // Any access at all earns a token, capped by every selected rule.
        let Some(rule) = selected.iter().find(|r| !r.allow.is_empty()) else {
            return deny("path-not-allowed", None);
        };
        let cap = selected
            .iter()
            .filter_map(|r| r.ttl_cap)
            .fold(MAX_TTL, u32::min);
        return match request.ttl.as_deref().and_then(parse_ttl) {
            Some(ttl) => allow("token-allowed", rule.name, 200, Some(ttl.min(cap))),
            None => deny("bad-request", Some(rule.name)),
        };
    }
    let Some(rule) = selected
        .iter()
        .find(|r| r.allow.iter().any(|p| matches(p, path, false)))
    else {
        return deny("path-not-allowed", None);
    };
    if request.token == Token::None && selected.iter().any(|r| r.require_tokens) {
        return deny("token-required", Some(rule.name));
    }
    // Forwarded: the soak's paths do not exist upstream (404), an unissued token is 401.
    let status = if request.token == Token::Bogus {
        401
    } else {
        404
    };
    allow("path-allowed", rule.name, status, None)
}

/// One audit line, as far as the judge needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct Line {
    pub src: String,
    pub pod: Option<String>,
    pub pod_uid: Option<String>,
    pub method: String,
    pub path: String,
    pub decision: String,
    pub reason: String,
    pub rule: Option<String>,
    pub status: u16,
}

/// What the client got back.
#[derive(Debug, Clone)]
pub struct Got {
    pub status: u16,
    /// `x-aws-ec2-metadata-token-ttl-seconds` of the answer.
    pub ttl: Option<u32>,
}

/// A request as sent, with its time window and what came back.
#[derive(Debug, Clone)]
pub struct Sent {
    pub src: Ipv4Addr,
    pub request: Request,
    /// Order of sending; for requests without a unique path, also the order of their lines.
    pub seq: u64,
    pub start: Instant,
    pub end: Instant,
    pub got: Result<Got, String>,
}

/// What the judge may consult.
pub struct World<'a> {
    pub pods: &'a HashMap<String, PodRecord>,
    /// Per source address, the intervals in which it had no pod (end `None`: still none).
    pub gaps: &'a HashMap<Ipv4Addr, Vec<(Instant, Option<Instant>)>>,
}

/// Holds `line` against `sent`; `Err` says what is wrong.
pub fn judge(sent: &Sent, line: &Line, world: &World<'_>) -> Result<(), String> {
    let got = sent
        .got
        .as_ref()
        .map_err(|e| format!("client error: {e}"))?;
    if line.src != sent.src.to_string() {
        return Err(format!(
            "line from {} for a request from {}",
            line.src, sent.src
        ));
    }
    let pod = match (&line.pod_uid, &line.pod) {
        (Some(uid), Some(name)) => {
            let pod = world
                .pods
                .get(uid)
                .ok_or_else(|| format!("uid {uid} ({name}) was never a pod on this node"))?;
            if pod.ip != sent.src || *name != format!("{}/{}", pod.namespace, pod.name) {
                return Err(format!(
                    "uid {uid} is {}/{} at {}, the line says {name} at {}",
                    pod.namespace, pod.name, pod.ip, sent.src
                ));
            }
            if pod.created > sent.end {
                return Err(format!("uid {uid} named before it was created"));
            }
            if pod
                .deleted
                .is_some_and(|d| sent.start > d + WATCH_LAG_ALLOWANCE)
            {
                return Err(format!(
                    "uid {uid} named {:?} after its deletion",
                    sent.start - pod.deleted.unwrap()
                ));
            }
            Some(pod)
        }
        (None, None) => {
            // A malformed request is answered without waiting for the index, which learns of a
            // new pod through the watch: such a request may find no pod for as long after the
            // pod's creation as the watch may lag. Every other request waits for it.
            let lag = if line.reason == "bad-request" {
                WATCH_LAG_ALLOWANCE
            } else {
                Duration::ZERO
            };
            let had_no_pod = world.gaps.get(&sent.src).is_some_and(|gaps| {
                gaps.iter().any(|(from, to)| {
                    *from <= sent.end && to.is_none_or(|to| to + lag >= sent.start)
                })
            });
            if !had_no_pod {
                return Err(format!(
                    "pod null, but {} had a pod throughout the request",
                    sent.src
                ));
            }
            None
        }
        _ => return Err("pod and pod_uid disagree".into()),
    };
    let want = expect(pod, &sent.request);
    let seen = (
        line.decision.as_str(),
        line.reason.as_str(),
        line.rule.as_deref(),
        line.status,
    );
    if seen != (want.decision, want.reason, want.rule, want.status) {
        return Err(format!(
            "audit says {seen:?}, oracle {:?} for {:?} labels {:?}",
            (want.decision, want.reason, want.rule, want.status),
            pod.map(|p| &p.namespace),
            pod.map(|p| &p.labels)
        ));
    }
    if got.status != want.status {
        return Err(format!(
            "client got {}, expected {}",
            got.status, want.status
        ));
    }
    if want.ttl.is_some() && got.ttl != want.ttl {
        return Err(format!("token TTL {:?}, expected {:?}", got.ttl, want.ttl));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("/latest/**", "/latest", false));
        assert!(matches("/latest/**", "/latest/a/b/", false));
        assert!(matches(
            "/latest/meta-data/iam/**",
            "/latest/meta-data/IAM/x",
            true
        ));
        assert!(!matches(
            "/latest/meta-data/iam/**",
            "/latest/meta-data/IAM/x",
            false
        ));
        assert!(!matches("/latest/meta-data/**", "/latest/user-data", false));
        assert!(matches("/a/*/c", "/a/b/c/", false));
        assert!(!matches("/a/*/c", "/a/c", false));
    }

    #[test]
    fn ttl() {
        assert_eq!(parse_ttl("60"), Some(60));
        for bad in ["", "0", "21601", "+5", "abc", "123456"] {
            assert_eq!(parse_ttl(bad), None, "{bad}");
        }
    }
}
