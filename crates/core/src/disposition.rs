//! What becomes of a request, and the one table of the answers the guard makes itself.
//!
//! A decided request is forwarded, forwarded in audit mode (`would-deny`), or refused
//! ([`Disposal::of`], shared by the proxy and `explain`). Every answer the guard makes itself — a
//! refusal for a policy or protocol reason, a failed forward, a connection over a limit — takes
//! its status, its JSON `error` word, its JSON `reason` and its extra headers from
//! [`Refusal::disposition`], and from nowhere else.

use crate::cloud::Cloud;
use crate::policy::{Decision, Reason, Verdict};

/// Enforce the policy, or only report what it would deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    #[default]
    Enforce,
    /// Forward what would be denied and log `would-deny`: for a safe roll-out.
    Audit,
}

/// What becomes of a decided request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposal {
    /// Allowed: forwarded.
    Forward,
    /// Denied, but audit mode forwards it.
    WouldDeny,
    /// Refused with the decision's reason.
    Refuse,
}

impl Disposal {
    /// The one audit-mode gate: audit mode forwards what the policy would deny, never what the
    /// strict reader could not vouch for ([`Reason::audit_mode_may_forward`]).
    pub fn of(decision: &Decision, mode: Mode) -> Self {
        match decision.verdict {
            Verdict::Allow => Self::Forward,
            Verdict::Deny if mode == Mode::Audit && decision.reason.audit_mode_may_forward() => {
                Self::WouldDeny
            }
            Verdict::Deny => Self::Refuse,
        }
    }

    /// Whether the request goes to the metadata service.
    pub fn forwards(self) -> bool {
        self != Self::Refuse
    }

    /// The `decision` word of audit lines and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Forward => "allow",
            Self::WouldDeny => "would-deny",
            Self::Refuse => "deny",
        }
    }
}

/// Why forwarding to the metadata service failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UpstreamFailure {
    /// No connection could be made.
    Unreachable,
    /// No complete answer in time.
    Timeout,
    /// The answer was not HTTP the guard can relay.
    Broken,
    /// The answer was larger than the guard relays.
    TooLarge,
}

impl UpstreamFailure {
    /// The name in audit lines (`error`), metrics and the JSON answer (`reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unreachable => "upstream-unreachable",
            Self::Timeout => "upstream-timeout",
            Self::Broken => "upstream-broken",
            Self::TooLarge => "upstream-too-large",
        }
    }
}

/// Why the guard answers itself instead of the metadata service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The policy or the protocol refused the request.
    Denied(Reason),
    /// The request was to be forwarded, and forwarding failed.
    Upstream(UpstreamFailure),
    /// A connection over a connection limit, answered before any request is read.
    ConnectionLimit,
}

/// How the guard answers: the status, the JSON body's words, and the headers that go with them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalAnswer {
    pub status: u16,
    /// The JSON body's `error`: the status in a word.
    pub error: &'static str,
    /// The JSON body's `reason`.
    pub reason: &'static str,
    /// `Retry-After` in seconds, for refusals a client should retry shortly.
    pub retry_after: Option<u32>,
    /// `Allow`, for methods that are not allowed.
    pub allow: Option<&'static str>,
}

/// The methods the metadata service accepts, as a 405 names them.
pub const ALLOWED_METHODS: &str = "GET, HEAD, PUT";

impl Refusal {
    /// The table: every answer the guard makes itself (as in front of AWS's server).
    pub fn answer(self) -> RefusalAnswer {
        self.answer_in(Cloud::Aws)
    }

    /// The table in front of `cloud`'s server: a missing gate header is answered with the status
    /// that server gives (GCP 403, Azure 400, OCI 401).
    pub fn answer_in(self, cloud: Cloud) -> RefusalAnswer {
        let (status, reason, retry_after, allow) = match self {
            Self::Denied(reason) => {
                let status = match reason {
                    Reason::BadRequest => 400,
                    Reason::HeaderMissing => cloud.gate().map_or(400, |g| g.status),
                    Reason::TokenRequired | Reason::TokenInvalid => 401,
                    Reason::MethodNotAllowed => 405,
                    Reason::RateLimited => 429,
                    Reason::NotReady => 503,
                    _ => 403,
                };
                let allow = (reason == Reason::MethodNotAllowed).then_some(ALLOWED_METHODS);
                // Not ready and over a rate are temporary: ask well-behaved clients to come back
                // shortly.
                let retry_after =
                    matches!(reason, Reason::NotReady | Reason::RateLimited).then_some(1);
                (status, reason.as_str(), retry_after, allow)
            }
            Self::Upstream(failure) => {
                let status = match failure {
                    UpstreamFailure::Timeout => 504,
                    _ => 502,
                };
                (status, failure.as_str(), None, None)
            }
            Self::ConnectionLimit => (429, "connection-limit", Some(1), None),
        };
        RefusalAnswer {
            status,
            error: error_word(status),
            reason,
            retry_after,
            allow,
        }
    }
}

/// The `error` word for a status.
fn error_word(status: u16) -> &'static str {
    match status {
        400 => "bad-request",
        401 => "unauthorized",
        403 => "forbidden",
        405 => "method-not-allowed",
        429 => "too-many-requests",
        502 => "bad-gateway",
        503 => "unavailable",
        504 => "gateway-timeout",
        _ => "error",
    }
}

#[cfg(test)]
mod tests;
