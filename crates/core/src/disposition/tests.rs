use super::*;
use std::sync::Arc;

fn decision(verdict: Verdict, reason: Reason) -> Decision {
    Decision {
        verdict,
        reason,
        rule: Some(Arc::from("r")),
        max_token_ttl_seconds: 21_600,
        require_tokens: false,
    }
}

#[test]
fn every_refusal_has_its_status_and_words() {
    let cases = [
        (
            Refusal::Denied(Reason::BadRequest),
            400,
            "bad-request",
            "bad-request",
        ),
        (
            Refusal::Denied(Reason::TokenRequired),
            401,
            "unauthorized",
            "token-required",
        ),
        (
            Refusal::Denied(Reason::PathNotAllowed),
            403,
            "forbidden",
            "path-not-allowed",
        ),
        (
            Refusal::Denied(Reason::DeniedByRule),
            403,
            "forbidden",
            "denied-by-rule",
        ),
        (Refusal::Denied(Reason::NoRule), 403, "forbidden", "no-rule"),
        (
            Refusal::Denied(Reason::UnknownSource),
            403,
            "forbidden",
            "unknown-source",
        ),
        (
            Refusal::Denied(Reason::AmbiguousSource),
            403,
            "forbidden",
            "ambiguous-source",
        ),
        (
            Refusal::Denied(Reason::IdentityMismatch),
            403,
            "forbidden",
            "identity-mismatch",
        ),
        (
            Refusal::Denied(Reason::MethodNotAllowed),
            405,
            "method-not-allowed",
            "method-not-allowed",
        ),
        (
            Refusal::Denied(Reason::TokenInvalid),
            401,
            "unauthorized",
            "token-invalid",
        ),
        (
            Refusal::Denied(Reason::ForwardedTokenRequest),
            403,
            "forbidden",
            "forwarded-token-request",
        ),
        (
            Refusal::Denied(Reason::RateLimited),
            429,
            "too-many-requests",
            "rate-limited",
        ),
        (
            Refusal::Denied(Reason::NotReady),
            503,
            "unavailable",
            "not-ready",
        ),
        (
            Refusal::Upstream(UpstreamFailure::Timeout),
            504,
            "gateway-timeout",
            "upstream-timeout",
        ),
        (
            Refusal::Upstream(UpstreamFailure::Unreachable),
            502,
            "bad-gateway",
            "upstream-unreachable",
        ),
        (
            Refusal::Upstream(UpstreamFailure::Broken),
            502,
            "bad-gateway",
            "upstream-broken",
        ),
        (
            Refusal::Upstream(UpstreamFailure::TooLarge),
            502,
            "bad-gateway",
            "upstream-too-large",
        ),
        (
            Refusal::ConnectionLimit,
            429,
            "too-many-requests",
            "connection-limit",
        ),
    ];
    for (refusal, status, error, reason) in cases {
        let d = refusal.answer();
        assert_eq!(
            (d.status, d.error, d.reason),
            (status, error, reason),
            "{refusal:?}"
        );
    }
}

#[test]
fn extra_headers_go_with_their_refusals() {
    let d = Refusal::Denied(Reason::MethodNotAllowed).answer();
    assert_eq!((d.allow, d.retry_after), (Some("GET, HEAD, PUT"), None));
    let d = Refusal::Denied(Reason::NotReady).answer();
    assert_eq!((d.allow, d.retry_after), (None, Some(1)));
    let d = Refusal::Denied(Reason::RateLimited).answer();
    assert_eq!((d.allow, d.retry_after), (None, Some(1)));
    let d = Refusal::ConnectionLimit.answer();
    assert_eq!(d.retry_after, Some(1));
    let d = Refusal::Denied(Reason::PathNotAllowed).answer();
    assert_eq!((d.allow, d.retry_after), (None, None));
}

#[test]
fn audit_mode_forwards_policy_denials_only() {
    let allow = decision(Verdict::Allow, Reason::PathAllowed);
    assert_eq!(Disposal::of(&allow, Mode::Enforce), Disposal::Forward);
    assert_eq!(Disposal::of(&allow, Mode::Audit), Disposal::Forward);
    for reason in [
        Reason::PathNotAllowed,
        Reason::DeniedByRule,
        Reason::NoRule,
        Reason::UnknownSource,
        Reason::TokenRequired,
    ] {
        let deny = decision(Verdict::Deny, reason);
        assert_eq!(
            Disposal::of(&deny, Mode::Enforce),
            Disposal::Refuse,
            "{reason:?}"
        );
        assert_eq!(
            Disposal::of(&deny, Mode::Audit),
            Disposal::WouldDeny,
            "{reason:?}"
        );
    }
    for reason in [
        Reason::BadRequest,
        Reason::MethodNotAllowed,
        Reason::NotReady,
        Reason::TokenInvalid,
        Reason::ForwardedTokenRequest,
        Reason::RateLimited,
        Reason::IdentityMismatch,
    ] {
        let deny = decision(Verdict::Deny, reason);
        assert_eq!(
            Disposal::of(&deny, Mode::Audit),
            Disposal::Refuse,
            "{reason:?}"
        );
    }
    assert_eq!(
        [Disposal::Forward, Disposal::WouldDeny, Disposal::Refuse].map(Disposal::as_str),
        ["allow", "would-deny", "deny"]
    );
    assert!(Disposal::WouldDeny.forwards() && !Disposal::Refuse.forwards());
}
