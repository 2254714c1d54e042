//! Decision tests: ordinary `#[test]`s, no IO.

use super::*;
use crate::target::parse_target;

fn pod(namespace: &str, name: &str, labels: &[(&str, &str)]) -> Pod {
    Pod {
        namespace: namespace.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        namespace_labels: BTreeMap::new(),
        owner: None,
        host_network: false,
    }
}

fn patterns(list: &[&str]) -> Vec<PathPattern> {
    list.iter()
        .map(|p| PathPattern::parse(p).unwrap())
        .collect()
}

fn rule(name: &str, selector: Selector, allow: &[&str], deny: &[&str]) -> Rule {
    Rule {
        name: name.into(),
        selector,
        allow: patterns(allow),
        deny: patterns(deny),
        require_tokens: false,
        max_token_ttl_seconds: None,
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn seed_policy() -> Policy {
    Policy::new(
        vec![
            rule(
                "seed",
                Selector {
                    pod_labels: labels(&[("allow-node-metadata-lookup", "true")]),
                    ..Selector::default()
                },
                &["/latest/**"],
                &[],
            ),
            rule(
                "imds-prod",
                Selector {
                    namespaces: Some(vec!["imds".into()]),
                    pod_labels: labels(&[("app", "prod")]),
                    ..Selector::default()
                },
                &[
                    "/latest/meta-data/**",
                    "/latest/dynamic/instance-identity/document",
                ],
                &["/latest/meta-data/iam/**"],
            ),
        ],
        Imdsv2::default(),
    )
}

fn decide(policy: &Policy, pod: &Pod, method: &str, path: &str, has_token: bool) -> Decision {
    let path = parse_target(path).unwrap();
    policy.decide(
        pod,
        &Facts::new(Method::from_name(method), &path, has_token),
    )
}

fn outcome(d: &Decision) -> (Verdict, Reason, Option<&str>) {
    (d.verdict, d.reason, d.rule.as_deref())
}

#[test]
fn seed_scenario() {
    let policy = seed_policy();
    let prod = pod("imds", "prod-5c7b9", &[("app", "prod")]);
    let test = pod("imds", "test-6d8f", &[("app", "test")]);
    let labelled = pod("default", "tool", &[("allow-node-metadata-lookup", "true")]);

    let d = decide(
        &policy,
        &prod,
        "GET",
        "/latest/meta-data/instance-id",
        false,
    );
    assert_eq!(
        outcome(&d),
        (Verdict::Allow, Reason::PathAllowed, Some("imds-prod"))
    );
    let d = decide(
        &policy,
        &test,
        "GET",
        "/latest/meta-data/instance-id",
        false,
    );
    assert_eq!(outcome(&d), (Verdict::Deny, Reason::NoRule, None));
    let d = decide(&policy, &labelled, "GET", "/latest/user-data", false);
    assert_eq!(
        outcome(&d),
        (Verdict::Allow, Reason::PathAllowed, Some("seed"))
    );
}

#[test]
fn per_path_allow_and_deny() {
    let policy = seed_policy();
    let prod = pod("imds", "prod-5c7b9", &[("app", "prod")]);
    let d = decide(&policy, &prod, "GET", "/latest/user-data", false);
    assert_eq!(outcome(&d), (Verdict::Deny, Reason::PathNotAllowed, None));
    let d = decide(
        &policy,
        &prod,
        "GET",
        "/latest/meta-data/iam/security-credentials/role",
        false,
    );
    assert_eq!(
        outcome(&d),
        (Verdict::Deny, Reason::DeniedByRule, Some("imds-prod"))
    );
    // `**` includes zero segments: the directory itself is denied too.
    let d = decide(&policy, &prod, "GET", "/latest/meta-data/iam/", false);
    assert_eq!(d.reason, Reason::DeniedByRule);
    // Case variants of a denied path are denied.
    let d = decide(&policy, &prod, "GET", "/latest/meta-data/IAM/info", false);
    assert_eq!(d.reason, Reason::DeniedByRule);
    let d = decide(
        &policy,
        &prod,
        "GET",
        "/latest/dynamic/instance-identity/document",
        false,
    );
    assert_eq!(d.verdict, Verdict::Allow);
    let d = decide(
        &policy,
        &prod,
        "HEAD",
        "/latest/meta-data/placement/availability-zone/",
        false,
    );
    assert_eq!(d.verdict, Verdict::Allow);
}

#[test]
fn deny_wins_across_rules() {
    let mut policy = seed_policy();
    // A pod selected by both rules: the seed rule allows everything, the prod rule denies iam.
    let both = pod(
        "imds",
        "prod-x",
        &[("app", "prod"), ("allow-node-metadata-lookup", "true")],
    );
    let d = decide(&policy, &both, "GET", "/latest/meta-data/iam/info", false);
    assert_eq!(
        outcome(&d),
        (Verdict::Deny, Reason::DeniedByRule, Some("imds-prod"))
    );
    // Order of rules does not matter.
    policy.rules.reverse();
    let d = decide(&policy, &both, "GET", "/latest/meta-data/iam/info", false);
    assert_eq!(
        outcome(&d),
        (Verdict::Deny, Reason::DeniedByRule, Some("imds-prod"))
    );
    let d = decide(&policy, &both, "GET", "/latest/user-data", false);
    assert_eq!(
        outcome(&d),
        (Verdict::Allow, Reason::PathAllowed, Some("seed"))
    );
}

#[test]
fn selectors_all_must_match() {
    let policy = seed_policy();
    // Right label, wrong namespace.
    let other_ns = pod("other", "prod-1", &[("app", "prod")]);
    assert_eq!(
        decide(&policy, &other_ns, "GET", "/latest/meta-data/", false).reason,
        Reason::NoRule
    );
    // Label value must be equal, not just present.
    let wrong_value = pod("default", "x", &[("allow-node-metadata-lookup", "yes")]);
    assert_eq!(
        decide(&policy, &wrong_value, "GET", "/latest/meta-data/", false).reason,
        Reason::NoRule
    );
}

#[test]
fn namespace_labels_select() {
    let policy = Policy::new(
        vec![rule(
            "infra",
            Selector {
                namespace_labels: labels(&[("team", "infra")]),
                ..Selector::default()
            },
            &["/latest/meta-data/**"],
            &[],
        )],
        Imdsv2::default(),
    );
    let mut p = pod("infra-tools", "a", &[]);
    assert_eq!(
        decide(&policy, &p, "GET", "/latest/meta-data/", false).reason,
        Reason::NoRule
    );
    p.namespace_labels = labels(&[("team", "infra")]);
    assert_eq!(
        decide(&policy, &p, "GET", "/latest/meta-data/", false).verdict,
        Verdict::Allow
    );
}

#[test]
fn all_pods_selector() {
    let selector = Selector {
        all_pods: true,
        ..Selector::default()
    };
    assert!(!selector.is_empty());
    assert!(selector.selects(&pod("any", "thing", &[])));
    assert!(Selector::default().is_empty());
}

#[test]
fn methods() {
    let policy = seed_policy();
    let prod = pod("imds", "prod-5c7b9", &[("app", "prod")]);
    for (method, path) in [
        ("POST", "/latest/meta-data/"),
        ("DELETE", "/latest/meta-data/"),
        ("get", "/latest/meta-data/"),
        ("PUT", "/latest/meta-data/"),
        ("GET", "/latest/api/token"),
        ("OPTIONS", "/latest/api/token"),
    ] {
        let d = decide(&policy, &prod, method, path, false);
        assert_eq!(
            outcome(&d),
            (Verdict::Deny, Reason::MethodNotAllowed, None),
            "{method} {path}"
        );
        assert_eq!(d.reason.status(), 405);
    }
    // Method checks come first, even for pods no rule selects.
    let nobody = pod("x", "y", &[]);
    assert_eq!(
        decide(&policy, &nobody, "POST", "/", false).reason,
        Reason::MethodNotAllowed
    );
}

#[test]
fn tokens_for_any_access_only() {
    let policy = seed_policy();
    let prod = pod("imds", "prod-5c7b9", &[("app", "prod")]);
    let test = pod("imds", "test-6d8f", &[("app", "test")]);
    let d = decide(&policy, &prod, "PUT", "/latest/api/token", false);
    assert_eq!(
        outcome(&d),
        (Verdict::Allow, Reason::TokenAllowed, Some("imds-prod"))
    );
    let d = decide(&policy, &test, "PUT", "/latest/api/token", false);
    assert_eq!(outcome(&d), (Verdict::Deny, Reason::NoRule, None));
    // A rule that selects a pod but allows nothing gives no token.
    let empty = Policy::new(
        vec![rule(
            "nothing",
            Selector {
                all_pods: true,
                ..Selector::default()
            },
            &[],
            &[],
        )],
        Imdsv2::default(),
    );
    let d = decide(&empty, &prod, "PUT", "/latest/api/token", false);
    assert_eq!(outcome(&d), (Verdict::Deny, Reason::PathNotAllowed, None));
    // An explicit deny of the token endpoint is honoured.
    let no_tokens = Policy::new(
        vec![rule(
            "no-v2",
            Selector {
                all_pods: true,
                ..Selector::default()
            },
            &["/latest/**"],
            &["/latest/api/token"],
        )],
        Imdsv2::default(),
    );
    let d = decide(&no_tokens, &prod, "PUT", "/latest/api/token", false);
    assert_eq!(
        outcome(&d),
        (Verdict::Deny, Reason::DeniedByRule, Some("no-v2"))
    );
}

#[test]
fn require_tokens_global_and_per_rule() {
    let prod = pod("imds", "prod-5c7b9", &[("app", "prod")]);
    let mut policy = seed_policy();
    policy.imdsv2.require_tokens = true;
    let d = decide(&policy, &prod, "GET", "/latest/meta-data/ami-id", false);
    assert_eq!(
        outcome(&d),
        (Verdict::Deny, Reason::TokenRequired, Some("imds-prod"))
    );
    assert_eq!(d.reason.status(), 401);
    assert_eq!(
        decide(&policy, &prod, "GET", "/latest/meta-data/ami-id", true).verdict,
        Verdict::Allow
    );
    // A denied path stays a 403 with or without a token.
    assert_eq!(
        decide(&policy, &prod, "GET", "/latest/user-data", false).reason,
        Reason::PathNotAllowed
    );
    // The token request itself needs no token.
    assert_eq!(
        decide(&policy, &prod, "PUT", "/latest/api/token", false).verdict,
        Verdict::Allow
    );

    let mut policy = seed_policy();
    policy.rules[1].require_tokens = true;
    assert_eq!(
        decide(&policy, &prod, "GET", "/latest/meta-data/ami-id", false).reason,
        Reason::TokenRequired
    );
    let labelled = pod("default", "tool", &[("allow-node-metadata-lookup", "true")]);
    assert_eq!(
        decide(&policy, &labelled, "GET", "/latest/meta-data/ami-id", false).verdict,
        Verdict::Allow
    );
}

#[test]
fn token_ttl_cap_is_the_smallest() {
    let prod = pod(
        "imds",
        "prod-5c7b9",
        &[("app", "prod"), ("allow-node-metadata-lookup", "true")],
    );
    let mut policy = seed_policy();
    policy.imdsv2.max_token_ttl_seconds = 3600;
    assert_eq!(
        decide(&policy, &prod, "PUT", "/latest/api/token", false).max_token_ttl_seconds,
        3600
    );
    policy.rules[1].max_token_ttl_seconds = Some(60);
    assert_eq!(
        decide(&policy, &prod, "PUT", "/latest/api/token", false).max_token_ttl_seconds,
        60
    );
    // A rule cannot raise the global cap.
    policy.rules[1].max_token_ttl_seconds = Some(21600);
    assert_eq!(
        decide(&policy, &prod, "PUT", "/latest/api/token", false).max_token_ttl_seconds,
        3600
    );
}

#[test]
fn refusals_carry_the_global_settings() {
    let mut policy = seed_policy();
    policy.imdsv2.max_token_ttl_seconds = 100;
    let d = policy.refuse(Reason::UnknownSource);
    assert_eq!(
        (d.verdict, d.reason, d.rule, d.max_token_ttl_seconds),
        (Verdict::Deny, Reason::UnknownSource, None, 100)
    );
}

#[test]
fn reason_names_and_statuses() {
    let all = [
        (Reason::PathAllowed, "path-allowed"),
        (Reason::TokenAllowed, "token-allowed"),
        (Reason::UnknownSource, "unknown-source"),
        (Reason::AmbiguousSource, "ambiguous-source"),
        (Reason::NotReady, "not-ready"),
        (Reason::NoRule, "no-rule"),
        (Reason::PathNotAllowed, "path-not-allowed"),
        (Reason::DeniedByRule, "denied-by-rule"),
        (Reason::MethodNotAllowed, "method-not-allowed"),
        (Reason::TokenRequired, "token-required"),
        (Reason::BadRequest, "bad-request"),
    ];
    for (reason, name) in all {
        assert_eq!(reason.as_str(), name);
    }
    assert_eq!(Reason::NotReady.status(), 503);
    assert_eq!(Reason::BadRequest.status(), 400);
    assert_eq!(Reason::UnknownSource.status(), 403);
    assert!(!Reason::BadRequest.audit_mode_may_forward());
    assert!(Reason::PathNotAllowed.audit_mode_may_forward());
}

#[test]
fn decide_for_maps_every_lookup() {
    let policy = seed_policy();
    let path = parse_target("/latest/meta-data/ami-id").unwrap();
    let facts = Facts::new(Method::Get, &path, false);
    let prod = pod("imds", "prod-5c7b9", &[("app", "prod")]);
    let found = policy.decide_for(&Lookup::Found(std::sync::Arc::new(prod.clone())), &facts);
    assert_eq!(found, policy.decide(&prod, &facts));
    for (lookup, reason) in [
        (Lookup::Unknown, Reason::UnknownSource),
        (Lookup::Ambiguous, Reason::AmbiguousSource),
        (Lookup::NotReady, Reason::NotReady),
    ] {
        let d = policy.decide_for(&lookup, &facts);
        assert_eq!((d.verdict, d.reason, d.rule), (Verdict::Deny, reason, None));
    }
}

fn cloud_rule(allow: &[&str], deny: &[&str]) -> Rule {
    let compile = |list: &[&str]| {
        list.iter()
            .map(|p| PathPattern::parse_with_query(p).unwrap())
            .collect()
    };
    Rule {
        allow: compile(allow),
        deny: compile(deny),
        ..rule(
            "cloud",
            Selector {
                namespaces: Some(vec!["imds".into()]),
                ..Selector::default()
            },
            &[],
            &[],
        )
    }
}

fn decide_in(policy: &Policy, target: &str) -> Decision {
    let (path, query) = crate::query::split(target);
    let path = parse_target(path).unwrap();
    let query = query.map_or(Query::none(), |q| crate::query::parse(q).unwrap());
    let facts = Facts::in_cloud(policy.cloud(), Method::Get, &path, &query, false);
    policy.decide(&pod("imds", "prod-1", &[]), &facts)
}

#[test]
fn query_constraints_pick_values() {
    let policy = Policy::new(
        vec![cloud_rule(
            &[
                "/metadata/identity/oauth2/token?resource=https://vault.azure.net",
                "/metadata/instance/compute/vmid",
            ],
            &["/metadata/identity/oauth2/token?client_id=*"],
        )],
        Imdsv2::default(),
    )
    .for_cloud(Cloud::Azure);
    let token = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=";
    let d = decide_in(&policy, &format!("{token}https%3A%2F%2Fvault.azure.net"));
    assert_eq!(d.reason, Reason::PathAllowed);
    let d = decide_in(
        &policy,
        &format!("{token}https%3A%2F%2Fmanagement.azure.com%2F"),
    );
    assert_eq!(d.reason, Reason::PathNotAllowed);
    // Another identity than the VM's own is denied, whichever resource.
    let d = decide_in(
        &policy,
        &format!("{token}https%3A%2F%2Fvault.azure.net&client_id=abc"),
    );
    assert_eq!(d.reason, Reason::DeniedByRule);
    // Deny values compare leniently (case, trailing slash); allow values exactly.
    let lenient = Policy::new(
        vec![cloud_rule(
            &["/metadata/identity/oauth2/token?resource=*"],
            &["/metadata/identity/oauth2/token?resource=https://management.azure.com"],
        )],
        Imdsv2::default(),
    )
    .for_cloud(Cloud::Azure);
    for spelling in [
        "HTTPS://Management.Azure.com/",
        "https://management.azure.com:443",
        "https://management.azure.com//",
        "https://management.azure.com/./",
        "https://management.azure.com/.default",
        "%20https://management.azure.com%20",
        "https://management.azure.com%2B",
        "https%253A%252F%252Fmanagement.azure.com",
    ] {
        let d = decide_in(&lenient, &format!("{token}{spelling}"));
        assert_eq!(d.reason, Reason::DeniedByRule, "{spelling}");
    }
    let d = decide_in(&lenient, &format!("{token}https://vault.azure.net"));
    assert_eq!(d.reason, Reason::PathAllowed);
}

#[test]
fn aggregates_pass_only_when_all_below_would() {
    let gcp = |allow: &[&str], deny: &[&str]| {
        Policy::new(vec![cloud_rule(allow, deny)], Imdsv2::default()).for_cloud(Cloud::Gcp)
    };
    let policy = gcp(
        &["/computeMetadata/v1/**"],
        &["/computeMetadata/v1/instance/attributes/kube-env"],
    );
    let v1 = "/computeMetadata/v1";
    // Recursive on a parent of a denied path: refused, naming the rule.
    for parent in [
        "/instance/?recursive=true",
        "/?recursive=true",
        "/instance/attributes/?recursive=true",
    ] {
        let d = decide_in(&policy, &format!("{v1}{parent}"));
        assert_eq!(d.reason, Reason::AggregateDenied, "{parent}");
        assert_eq!(d.rule.as_deref(), Some("cloud"));
    }
    // Listing without recursive, recursive elsewhere: allowed.
    assert_eq!(
        decide_in(&policy, &format!("{v1}/instance/")).reason,
        Reason::PathAllowed
    );
    assert_eq!(
        decide_in(
            &policy,
            &format!("{v1}/instance/service-accounts/default/?recursive=true")
        )
        .reason,
        Reason::PathAllowed
    );
    // A deny with a wildcard below the root counts too.
    let policy = gcp(
        &["/computeMetadata/v1/**"],
        &["/computeMetadata/v1/instance/network-interfaces/*/access-configs/**"],
    );
    let d = decide_in(
        &policy,
        &format!("{v1}/instance/network-interfaces/?recursive=true"),
    );
    assert_eq!(d.reason, Reason::AggregateDenied);
    // Service-account tokens and identities are made on request, never part of a recursive
    // answer: denying them does not refuse the account's recursive read (google-auth makes it).
    let policy = gcp(
        &["/computeMetadata/v1/**"],
        &[
            "/computeMetadata/v1/instance/service-accounts/*/identity",
            "/computeMetadata/v1/instance/service-accounts/default/token",
        ],
    );
    let d = decide_in(
        &policy,
        &format!("{v1}/instance/service-accounts/default/?recursive=true"),
    );
    assert_eq!(d.reason, Reason::PathAllowed);
    let d = decide_in(
        &policy,
        &format!("{v1}/instance/service-accounts/default/token"),
    );
    assert_eq!(d.reason, Reason::DeniedByRule);
    // An allow that does not cover all below: refused.
    let policy = gcp(
        &[
            "/computeMetadata/v1/instance/",
            "/computeMetadata/v1/instance/id",
        ],
        &[],
    );
    let d = decide_in(&policy, &format!("{v1}/instance/?recursive=true"));
    assert_eq!(d.reason, Reason::AggregateDenied);
    assert_eq!(
        decide_in(&policy, &format!("{v1}/instance/id")).reason,
        Reason::PathAllowed
    );

    // Azure: the instance document holds userData.
    let azure = Policy::new(
        vec![cloud_rule(
            &["/metadata/instance/**"],
            &["/metadata/instance/compute/userdata"],
        )],
        Imdsv2::default(),
    )
    .for_cloud(Cloud::Azure);
    let api = "api-version=2021-02-01";
    for doc in [
        "/metadata/instance",
        "/metadata/instance/compute",
        "/metadata/instance/compute/",
    ] {
        let d = decide_in(&azure, &format!("{doc}?{api}"));
        assert_eq!(d.reason, Reason::AggregateDenied, "{doc}");
    }
    let d = decide_in(&azure, &format!("/metadata/instance/network?{api}"));
    assert_eq!(d.reason, Reason::PathAllowed);
    let d = decide_in(
        &azure,
        &format!("/metadata/instance/compute/vmid?{api}&format=text"),
    );
    assert_eq!(d.reason, Reason::PathAllowed);
    let d = decide_in(
        &azure,
        &format!("/metadata/instance/compute/userdata?{api}&format=text"),
    );
    assert_eq!(d.reason, Reason::DeniedByRule);
}

#[test]
fn token_requests_only_where_the_cloud_has_them() {
    let path = parse_target("/latest/api/token").unwrap();
    let q = Query::none();
    assert_eq!(
        Facts::in_cloud(Cloud::Openstack, Method::Put, &path, &q, false).kind,
        Kind::NotAllowed
    );
    assert_eq!(
        Facts::in_cloud(Cloud::Alibaba, Method::Put, &path, &q, false).kind,
        Kind::TokenRequest
    );
}

#[test]
fn gcp_conceals_bootstrap_secrets_unless_a_rule_names_them() {
    let gcp = |allow: &[&str]| {
        Policy::new(vec![cloud_rule(allow, &[])], Imdsv2::default()).for_cloud(Cloud::Gcp)
    };
    let v1 = "/computeMetadata/v1";
    let wide = gcp(&["/computeMetadata/v1/**"]);
    for concealed in [
        "/instance/attributes/kube-env",
        "/instance/attributes/startup-script",
        "/project/attributes/startup-script",
        "/instance/attributes/Kube-Env",
        "/instance/service-accounts/default/identity?audience=https://x",
    ] {
        let d = decide_in(&wide, &format!("{v1}{concealed}"));
        assert_eq!(d.reason, Reason::ConcealedPath, "{concealed}");
        assert_eq!(d.rule.as_deref(), Some("cloud"));
    }
    assert_eq!(
        decide_in(&wide, &format!("{v1}/instance/attributes/cluster-name")).reason,
        Reason::PathAllowed
    );
    // Nor can a recursive read return them.
    for root in ["/instance/attributes/", "/instance/", "/project/", "/"] {
        let d = decide_in(&wide, &format!("{v1}{root}?recursive=true"));
        assert_eq!(d.reason, Reason::AggregateDenied, "{root}");
    }
    assert_eq!(
        decide_in(
            &wide,
            &format!("{v1}/instance/service-accounts/?recursive=true")
        )
        .reason,
        Reason::PathAllowed
    );
    // Named (a `*` for one segment at most): allowed.
    let named = gcp(&[
        "/computeMetadata/v1/**",
        "/computeMetadata/v1/instance/attributes/kube-env",
        "/computeMetadata/v1/instance/service-accounts/*/identity?audience=https://x",
    ]);
    assert_eq!(
        decide_in(&named, &format!("{v1}/instance/attributes/kube-env")).reason,
        Reason::PathAllowed
    );
    let id = format!("{v1}/instance/service-accounts/default/identity?audience=https://x");
    assert_eq!(decide_in(&named, &id).reason, Reason::PathAllowed);
    let other = format!("{v1}/instance/service-accounts/default/identity?audience=https://y");
    assert_eq!(decide_in(&named, &other).reason, Reason::ConcealedPath);
    // Other clouds conceal nothing of their own.
    let aws = Policy::new(vec![cloud_rule(&["/latest/**"], &[])], Imdsv2::default())
        .for_cloud(Cloud::Aws);
    assert_eq!(
        decide_in(&aws, "/latest/user-data").reason,
        Reason::PathAllowed
    );
}
