//! The decision: may this pod make this request?
//!
//! Pure code: no IO, no Kubernetes or HTTP types. Rules select pods (namespace names, pod label
//! equality, namespace label equality; every selector given must match). Each selected rule brings
//! allow and deny path patterns. Deny wins over allow across all selected rules; no selected rule,
//! or no allow pattern matching, is a deny. Rule-level IMDSv2 settings can only tighten the global
//! ones, so adding a rule never loosens token requirements for anyone.

pub mod pattern;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::cloud::Cloud;
use crate::disposition::Refusal;
use crate::imds::{self, Kind, Method};
use crate::index::{Lookup, Pod};
use crate::query::Query;
use crate::target::CanonicalPath;
use pattern::PathPattern;

/// Which pods a rule applies to. Every selector that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    /// Explicitly select every pod (a rule with no selector at all is refused by the config check,
    /// so that "everyone" is never selected by accident).
    pub all_pods: bool,
    pub namespaces: Option<Vec<String>>,
    pub pod_labels: BTreeMap<String, String>,
    pub namespace_labels: BTreeMap<String, String>,
}

impl Selector {
    /// Whether the selector picks `pod`.
    pub fn selects(&self, pod: &Pod) -> bool {
        let namespace_ok = self
            .namespaces
            .as_ref()
            .is_none_or(|names| names.contains(&pod.namespace));
        namespace_ok
            && labels_match(&self.pod_labels, &pod.labels)
            && labels_match(&self.namespace_labels, &pod.namespace_labels)
    }

    /// Whether any selector is set at all.
    pub fn is_empty(&self) -> bool {
        !self.all_pods
            && self.namespaces.is_none()
            && self.pod_labels.is_empty()
            && self.namespace_labels.is_empty()
    }
}

fn labels_match(wanted: &BTreeMap<String, String>, have: &BTreeMap<String, String>) -> bool {
    wanted.iter().all(|(k, v)| have.get(k) == Some(v))
}

/// One policy rule, compiled.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Named in decisions, audit lines and refusals.
    pub name: Arc<str>,
    pub selector: Selector,
    pub allow: Vec<PathPattern>,
    pub deny: Vec<PathPattern>,
    /// `true` requires IMDSv2 tokens from the pods this rule selects.
    pub require_tokens: bool,
    /// Caps the token TTL the selected pods can get.
    pub max_token_ttl_seconds: Option<u32>,
}

/// Global IMDSv2 settings, the floor every pod gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Imdsv2 {
    pub require_tokens: bool,
    pub max_token_ttl_seconds: u32,
}

impl Default for Imdsv2 {
    fn default() -> Self {
        Self {
            require_tokens: false,
            max_token_ttl_seconds: imds::MAX_TOKEN_TTL_SECONDS,
        }
    }
}

/// The whole policy: rules in config order plus the global IMDSv2 settings.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    imdsv2: Imdsv2,
    /// Whose metadata server: decides which reads return a whole subtree.
    cloud: Cloud,
    /// The cloud's concealed paths ([`Cloud::concealed`]), compiled.
    concealed: Vec<PathPattern>,
}

/// The facts about one request that the decision needs.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub method: Method,
    /// What the request is in protocol terms, classified once ([`Facts::new`]) for the decision
    /// and for whoever carries it out.
    pub kind: Kind,
    pub path: &'a CanonicalPath,
    /// The canonical query (empty for clouds without queries).
    pub query: &'a Query,
    /// Whether the request carries an IMDSv2 token header.
    pub has_token: bool,
}

/// The query of requests without one.
static NO_QUERY: Query = Query::none();

impl<'a> Facts<'a> {
    /// The facts of a request with this method, canonical path and token header (or none).
    pub fn new(method: Method, path: &'a CanonicalPath, has_token: bool) -> Self {
        Self {
            method,
            kind: imds::classify(method, path),
            path,
            query: &NO_QUERY,
            has_token,
        }
    }

    /// The facts of a request to `cloud`'s server: its query too, and a token request only where
    /// the cloud has a token flow.
    pub fn in_cloud(
        cloud: Cloud,
        method: Method,
        path: &'a CanonicalPath,
        query: &'a Query,
        has_token: bool,
    ) -> Self {
        // A cloud without a token flow keeps AWS's endpoint special (a PUT there is refused, a
        // GET is no read), as its EC2-style tree has no such path.
        let endpoint = cloud.token_flow().map_or(imds::TOKEN_PATH, |f| f.path);
        let mut kind = imds::classify_at(method, path, endpoint);
        if kind == Kind::TokenRequest && cloud.token_flow().is_none() {
            kind = Kind::NotAllowed;
        }
        Self {
            method,
            kind,
            path,
            query,
            has_token,
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
}

/// Why a decision was made; the names appear in audit lines, refusals and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A rule allows the path.
    PathAllowed,
    /// A pod with access asked for an IMDSv2 token.
    TokenAllowed,
    UnknownSource,
    AmbiguousSource,
    /// The cgroup that opened the connection is another pod's than the source address's.
    IdentityMismatch,
    /// The inventory has not synced yet; the client should retry.
    NotReady,
    NoRule,
    PathNotAllowed,
    DeniedByRule,
    MethodNotAllowed,
    TokenRequired,
    BadRequest,
    /// A guard-issued token that is forged, expired, or issued to another pod (`[imdsv2] tokens =
    /// "guard"`): refused, nothing forwarded.
    TokenInvalid,
    /// A token request that says it came through a proxy (`X-Forwarded-For`), refused as the
    /// service refuses it.
    ForwardedTokenRequest,
    /// Over the pod's request rate or the node's upstream budget (`[limits]`).
    RateLimited,
    /// The cloud's gate header (`Metadata-Flavor: Google`, `Metadata: true`, OCI's
    /// `Authorization: Bearer Oracle`) is missing or wrong; answered as that server answers.
    HeaderMissing,
    /// A request carrying `Forwarded` or `X-Forwarded-*`: pods never send them, and a server
    /// behind the guard may trust them.
    ForwardedRequest,
    /// A legacy tree the guard never serves (GCP's `/0.1/` and `v1beta1`).
    LegacyEndpoint,
    /// A read that returns a whole subtree, of which some part is denied or not allowed.
    AggregateDenied,
    /// A path the cloud conceals unless a rule names it ([`Cloud::concealed`]).
    ConcealedPath,
}

impl Reason {
    /// The reason's name in audit lines and JSON refusals.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PathAllowed => "path-allowed",
            Self::TokenAllowed => "token-allowed",
            Self::UnknownSource => "unknown-source",
            Self::AmbiguousSource => "ambiguous-source",
            Self::IdentityMismatch => "identity-mismatch",
            Self::NotReady => "not-ready",
            Self::NoRule => "no-rule",
            Self::PathNotAllowed => "path-not-allowed",
            Self::DeniedByRule => "denied-by-rule",
            Self::MethodNotAllowed => "method-not-allowed",
            Self::TokenRequired => "token-required",
            Self::BadRequest => "bad-request",
            Self::TokenInvalid => "token-invalid",
            Self::ForwardedTokenRequest => "forwarded-token-request",
            Self::RateLimited => "rate-limited",
            Self::HeaderMissing => "header-missing",
            Self::ForwardedRequest => "forwarded-request",
            Self::LegacyEndpoint => "legacy-endpoint",
            Self::AggregateDenied => "aggregate-denied",
            Self::ConcealedPath => "concealed-path",
        }
    }

    /// The HTTP status of a refusal for this reason (from the one table,
    /// [`Refusal::disposition`]).
    pub fn status(self) -> u16 {
        Refusal::Denied(self).answer().status
    }

    /// Whether `mode = "audit"` may forward a request denied for this reason. Malformed and
    /// unsupported requests are refused in every mode: audit mode is for trying out a policy,
    /// not for forwarding what the strict reader could not vouch for; nor is a connection whose
    /// address another pod's cgroup used, which says who is trying, not what a policy would do.
    pub fn audit_mode_may_forward(self) -> bool {
        !matches!(
            self,
            Self::BadRequest
                | Self::MethodNotAllowed
                | Self::NotReady
                | Self::TokenInvalid
                | Self::ForwardedTokenRequest
                | Self::RateLimited
                | Self::HeaderMissing
                | Self::ForwardedRequest
                | Self::LegacyEndpoint
                | Self::IdentityMismatch
        )
    }
}

/// The outcome of [`Policy::decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub reason: Reason,
    /// The rule that allowed or denied, when one did.
    pub rule: Option<Arc<str>>,
    /// The largest token TTL this pod may get (meaningful for token requests).
    pub max_token_ttl_seconds: u32,
    /// Whether tokens are required of this pod.
    pub require_tokens: bool,
}

impl Policy {
    /// Builds a policy from compiled rules and the global IMDSv2 settings.
    pub fn new(rules: Vec<Rule>, imdsv2: Imdsv2) -> Self {
        Self {
            rules,
            imdsv2,
            cloud: Cloud::Aws,
            concealed: Vec::new(),
        }
    }

    /// The same policy for `cloud`'s server.
    pub fn for_cloud(mut self, cloud: Cloud) -> Self {
        self.cloud = cloud;
        self.concealed = cloud
            .concealed()
            .iter()
            .filter_map(|p| PathPattern::parse(p).ok())
            .collect();
        self
    }

    /// Whose metadata server the policy is for.
    pub fn cloud(&self) -> Cloud {
        self.cloud
    }

    /// The rules, in config order.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Whether any rule selects on namespace labels (the Kubernetes source then watches
    /// namespaces too).
    pub fn uses_namespace_labels(&self) -> bool {
        self.rules
            .iter()
            .any(|r| !r.selector.namespace_labels.is_empty())
    }

    /// A refusal made before any rule is consulted (unknown source, bad request…).
    pub fn refuse(&self, reason: Reason) -> Decision {
        Decision {
            verdict: Verdict::Deny,
            reason,
            rule: None,
            max_token_ttl_seconds: self.imdsv2.max_token_ttl_seconds,
            require_tokens: self.imdsv2.require_tokens,
        }
    }

    /// Decides one request from whoever the inventory says the source is: the proxy and `explain`
    /// share this, so they cannot disagree about an unknown, ambiguous or not-yet-known source.
    pub fn decide_for(&self, lookup: &Lookup, facts: &Facts<'_>) -> Decision {
        match lookup {
            Lookup::Found(pod) => self.decide(pod, facts),
            Lookup::Unknown => self.refuse(Reason::UnknownSource),
            Lookup::Ambiguous => self.refuse(Reason::AmbiguousSource),
            Lookup::NotReady => self.refuse(Reason::NotReady),
            Lookup::Mismatch(_) => self.refuse(Reason::IdentityMismatch),
        }
    }

    /// Decides one request from one identified pod.
    pub fn decide(&self, pod: &Pod, facts: &Facts<'_>) -> Decision {
        let selected: Vec<&Rule> = self
            .rules
            .iter()
            .filter(|r| r.selector.selects(pod))
            .collect();
        let mut decision = self.refuse(Reason::NoRule);
        for rule in &selected {
            decision.require_tokens |= rule.require_tokens;
            if let Some(cap) = rule.max_token_ttl_seconds {
                decision.max_token_ttl_seconds = decision.max_token_ttl_seconds.min(cap);
            }
        }
        let deny = |reason, rule: Option<&Rule>| Decision {
            verdict: Verdict::Deny,
            reason,
            rule: rule.map(|r| Arc::clone(&r.name)),
            ..decision.clone()
        };
        let allow = |reason, rule: &Rule| Decision {
            verdict: Verdict::Allow,
            reason,
            rule: Some(Arc::clone(&rule.name)),
            ..decision.clone()
        };

        let kind = facts.kind;
        if kind == Kind::NotAllowed {
            return deny(Reason::MethodNotAllowed, None);
        }
        if selected.is_empty() {
            return deny(Reason::NoRule, None);
        }
        let segments: Vec<&str> = facts.path.segments().collect();
        let query = facts.query;
        // Deny patterns ignore case: a case variant of a denied path is denied too.
        if let Some(rule) = selected.iter().find(|r| {
            r.deny
                .iter()
                .any(|p| p.matches_segments(&segments, true) && p.matches_query(query, true))
        }) {
            return deny(Reason::DeniedByRule, Some(rule));
        }
        match kind {
            // Any access at all earns a token: refusing the PUT would silently push SDKs back to
            // IMDSv1 (botocore and the JS SDK fall back on 403).
            Kind::TokenRequest => match selected.iter().find(|r| !r.allow.is_empty()) {
                Some(rule) => allow(Reason::TokenAllowed, rule),
                None => deny(Reason::PathNotAllowed, None),
            },
            _ => {
                let Some(rule) = selected.iter().find(|r| {
                    r.allow.iter().any(|p| {
                        p.matches_segments(&segments, false) && p.matches_query(query, false)
                    })
                }) else {
                    return deny(Reason::PathNotAllowed, None);
                };
                // A concealed path needs an allow that names it.
                if self
                    .concealed
                    .iter()
                    .any(|c| c.matches_segments(&segments, true))
                    && !selected.iter().any(|r| {
                        r.allow.iter().any(|p| {
                            !p.has_any_depth()
                                && p.matches_segments(&segments, false)
                                && p.matches_query(query, false)
                        })
                    })
                {
                    return deny(Reason::ConcealedPath, Some(rule));
                }
                // A read that returns everything below it passes only if all of that would.
                if let Some(root) = self.cloud.aggregate_root(facts.path, query) {
                    let root: Vec<&str> = root.split('/').filter(|s| !s.is_empty()).collect();
                    let in_aggregate = |p: &&PathPattern| {
                        !self.cloud.outside_aggregates(p.as_str()) && p.matches_at_or_below(&root)
                    };
                    if let Some(rule) = selected
                        .iter()
                        .find(|r| r.deny.iter().any(|p| in_aggregate(&p)))
                    {
                        return deny(Reason::AggregateDenied, Some(rule));
                    }
                    if self.concealed.iter().any(|p| in_aggregate(&p)) {
                        return deny(Reason::AggregateDenied, Some(rule));
                    }
                    let covered = selected.iter().any(|r| {
                        r.allow
                            .iter()
                            .any(|p| p.covers(&root) && p.matches_query(query, false))
                    });
                    if !covered {
                        return deny(Reason::AggregateDenied, Some(rule));
                    }
                }
                if decision.require_tokens && !facts.has_token {
                    return deny(Reason::TokenRequired, Some(rule));
                }
                allow(Reason::PathAllowed, rule)
            }
        }
    }
}

#[cfg(test)]
mod tests;
