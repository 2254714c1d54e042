//! Every cloud's protocol rules at the guard, on real sockets, with a recording upstream: what is
//! refused before any pod is looked up (gate headers, legacy trees, forwarding headers), what is
//! read strictly and forwarded canonically (queries), which headers pass, what aggregates may read,
//! and GCP's header on every answer. Against each cloud's emulator: `tests/clouds_emulated.rs`.

use crate::support;

use std::time::Duration;

use support::{recorder, request, Guard, PROD, TEST};

const FLAVOR: (&str, &str) = ("metadata-flavor", "Google");
const AZURE: (&str, &str) = ("metadata", "true");

#[tokio::test]
async fn gcp_header_gate_legacy_trees_and_its_header_on_every_answer() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "gcp",
        &["/", "/computeMetadata/v1/**"],
        &["/computeMetadata/v1/instance/attributes/kube-env"],
        "",
    );
    let guard = Guard::start(&config, rec.addr).await;
    let v1 = "/computeMetadata/v1";

    let ok = request(
        PROD,
        guard.proxy,
        "GET",
        &format!("{v1}/project/project-id"),
        &[FLAVOR],
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.headers["metadata-flavor"], "Google");

    // No header, a wrong one, two of them: 403 as GCP answers, with the header, nothing forwarded.
    for headers in [
        vec![],
        vec![("metadata-flavor", "google")],
        vec![("metadata-flavor", "Google"), ("metadata-flavor", "Google")],
    ] {
        let a = request(
            PROD,
            guard.proxy,
            "GET",
            &format!("{v1}/project/project-id"),
            &headers,
        )
        .await;
        assert_eq!(a.status, 403, "{headers:?}");
        assert_eq!(a.json()["reason"], "header-missing");
        assert_eq!(a.headers["metadata-flavor"], "Google");
    }
    // Legacy trees need no header on GCP, and so are never served.
    for legacy in [
        "/0.1/meta-data/attributes/kube-env",
        "/computeMetadata/v1beta1/instance/attributes/kube-env",
    ] {
        let a = request(PROD, guard.proxy, "GET", legacy, &[FLAVOR]).await;
        assert_eq!(
            (a.status.as_u16(), a.json()["reason"].as_str()),
            (403, Some("legacy-endpoint")),
            "{legacy}"
        );
        assert_eq!(a.headers["metadata-flavor"], "Google");
    }
    // Policy refusals and bad requests carry it too.
    let denied = request(
        TEST,
        guard.proxy,
        "GET",
        &format!("{v1}/project/project-id"),
        &[FLAVOR],
    )
    .await;
    assert_eq!(denied.status, 403);
    assert_eq!(denied.headers["metadata-flavor"], "Google");
    let bad = request(
        PROD,
        guard.proxy,
        "GET",
        &format!("{v1}/?recursive=true&recursive=false"),
        &[FLAVOR],
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.headers["metadata-flavor"], "Google");
    // Forwarding headers: refused.
    let fwd = request(
        PROD,
        guard.proxy,
        "GET",
        &format!("{v1}/project/project-id"),
        &[FLAVOR, ("x-forwarded-for", "10.0.0.1")],
    )
    .await;
    assert_eq!(
        (fwd.status.as_u16(), fwd.json()["reason"].as_str()),
        (403, Some("forwarded-request"))
    );

    let seen = rec.seen();
    assert_eq!(
        seen.len(),
        1,
        "only the good request was forwarded: {seen:?}"
    );
    assert_eq!(seen[0].headers["metadata-flavor"], "Google");
}

#[tokio::test]
async fn gcp_queries_are_strict_canonical_and_aggregates_cannot_leak() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "gcp",
        &[
            "/computeMetadata/v1/**",
            "/computeMetadata/v1/instance/service-accounts/*/identity?audience=https://allowed.example",
        ],
        &[
            "/computeMetadata/v1/instance/attributes/kube-env",
            "/computeMetadata/v1/instance/service-accounts/*/identity",
        ],
        "",
    );
    let guard = Guard::start(&config, rec.addr).await;
    let v1 = "/computeMetadata/v1";
    let get = |target: String| {
        let proxy = guard.proxy;
        async move { request(PROD, proxy, "GET", &target, &[FLAVOR]).await }
    };

    // The canonical form is what goes upstream.
    let a = get(format!("{v1}/instance/service-accounts/default/token?scopes=https://www.googleapis.com/auth/cloud-platform")).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        rec.seen().last().unwrap().target,
        format!("{v1}/instance/service-accounts/default/token?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2Fcloud-platform")
    );
    // Improper query parameters: 400, nothing forwarded.
    let before = rec.seen().len();
    for q in [
        "recursive=true;alt=json",
        "recursive",
        "Recursive=true",
        "recursive=TRUE",
        "x=1",
        "alt=json&alt=text",
        "alt=json&",
        "%72ecursive=true",
        "last_etag=a+b",
    ] {
        let a = get(format!("{v1}/instance/?{q}")).await;
        assert_eq!(a.status, 400, "{q}");
    }
    assert_eq!(rec.seen().len(), before, "a refused query was forwarded");

    // Recursive on a parent of a denied path: refused, naming the rule.
    for parent in ["/instance/", "/instance/attributes/", "/"] {
        let a = get(format!("{v1}{parent}?recursive=true")).await;
        assert_eq!(a.status, 403, "{parent}");
        assert_eq!(a.json()["reason"], "aggregate-denied");
        assert_eq!(a.json()["rule"], "imds-prod");
    }
    // Service-account tokens and identities are never part of a recursive answer (google-auth
    // reads the account this way); the network interfaces hold nothing denied.
    let a = get(format!(
        "{v1}/instance/service-accounts/default/?recursive=true"
    ))
    .await;
    assert_eq!(a.status, 200);
    let a = get(format!(
        "{v1}/instance/network-interfaces/?recursive=true&alt=json"
    ))
    .await;
    assert_eq!(a.status, 200);
    // The project's attributes may hold start-up scripts, concealed on GCP: refused.
    let a = get(format!("{v1}/project/?recursive=true")).await;
    assert_eq!(a.json()["reason"], "aggregate-denied");
    // A listing (not recursive) of the same parent names no values: allowed.
    assert_eq!(get(format!("{v1}/instance/attributes/")).await.status, 200);
    assert_eq!(
        get(format!("{v1}/instance/attributes/kube-env"))
            .await
            .status,
        403
    );

    // An identity token only for the audience a rule names… but the deny wins across rules.
    let id = format!("{v1}/instance/service-accounts/default/identity?audience=https://allowed.example&format=full");
    assert_eq!(get(id).await.status, 403);
}

#[tokio::test]
async fn gcp_long_polls_get_their_own_deadline() {
    // The upstream takes 2.5 s: past the configured 1.5 s, within the poll's timeout_sec.
    let rec = recorder(Duration::from_millis(2500)).await;
    let config = support::cloud_seed("gcp", &["/computeMetadata/v1/**"], &[], "");
    let guard = Guard::start(&config, rec.addr).await;
    let path = "/computeMetadata/v1/instance/maintenance-event";
    let poll = request(
        PROD,
        guard.proxy,
        "GET",
        &format!("{path}?wait_for_change=true&timeout_sec=10"),
        &[FLAVOR],
    )
    .await;
    assert_eq!(poll.status, 200, "{:?}", poll.body);
    let plain = request(PROD, guard.proxy, "GET", path, &[FLAVOR]).await;
    assert_eq!(
        plain.status, 504,
        "an ordinary read keeps the configured deadline"
    );
}

#[tokio::test]
async fn azure_gate_api_version_case_and_the_instance_document() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "azure",
        &[
            "/metadata/instance/**",
            "/metadata/identity/oauth2/token?resource=https://vault.azure.net",
            "/metadata/versions",
        ],
        &[
            "/metadata/instance/compute/userData",
            "/metadata/identity/oauth2/token?client_id=*",
        ],
        "",
    );
    let guard = Guard::start(&config, rec.addr).await;
    let get = |target: &str, headers: &[(&'static str, &'static str)]| {
        let (proxy, target, headers) = (guard.proxy, target.to_owned(), headers.to_vec());
        async move { request(PROD, proxy, "GET", &target, &headers).await }
    };
    let api = "api-version=2021-02-01";

    // Missing `Metadata: true`: 400, as Azure answers.
    let a = get(
        &format!("/metadata/instance/compute/vmId?{api}&format=text"),
        &[],
    )
    .await;
    assert_eq!(
        (a.status.as_u16(), a.json()["reason"].as_str()),
        (400, Some("header-missing"))
    );
    // Azure reads the value regardless of case (its own samples send `True`); it goes upstream as
    // `true`.
    let a = get(
        &format!("/metadata/instance/compute/vmId?{api}&format=text"),
        &[("metadata", "True")],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(rec.seen().last().unwrap().headers["metadata"], "true");
    let a = get(
        &format!("/metadata/instance/compute/vmId?{api}&format=text"),
        &[("metadata", "yes")],
    )
    .await;
    assert_eq!(a.status, 400);
    // api-version is required, except on /metadata/versions.
    assert_eq!(
        get("/metadata/instance/compute/vmId?format=text", &[AZURE])
            .await
            .status,
        400
    );
    assert_eq!(get("/metadata/versions", &[AZURE]).await.status, 200);

    // Read and forwarded in lower case; a case variant of a denied path is that path.
    let a = get(
        &format!("/Metadata/Instance/compute/vmId?{api}&format=text"),
        &[AZURE],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        rec.seen().last().unwrap().target,
        format!("/metadata/instance/compute/vmid?{api}&format=text")
    );
    for spelling in [
        "/metadata/instance/compute/userData",
        "/METADATA/INSTANCE/COMPUTE/USERDATA",
        "/metadata/instance/compute/userdata",
    ] {
        let a = get(&format!("{spelling}?{api}&format=text"), &[AZURE]).await;
        assert_eq!(
            (a.status.as_u16(), a.json()["reason"].as_str()),
            (403, Some("denied-by-rule")),
            "{spelling}"
        );
    }
    // The whole document, or compute, holds userData: refused; network does not.
    for doc in [
        "/metadata/instance",
        "/metadata/instance/",
        "/metadata/instance/compute",
        "/Metadata/instance",
    ] {
        let a = get(&format!("{doc}?{api}"), &[AZURE]).await;
        assert_eq!(
            (a.status.as_u16(), a.json()["reason"].as_str()),
            (403, Some("aggregate-denied")),
            "{doc}"
        );
    }
    assert_eq!(
        get(&format!("/metadata/instance/network?{api}"), &[AZURE])
            .await
            .status,
        200
    );

    // Managed identity: only the resource a rule names, never another identity; denials are 403
    // (400 would tell an SDK there is no identity).
    let token = "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=";
    assert_eq!(
        get(&format!("{token}https%3A%2F%2Fvault.azure.net"), &[AZURE])
            .await
            .status,
        200
    );
    assert_eq!(
        rec.seen().last().unwrap().headers["metadata"],
        "true",
        "the gate header goes upstream"
    );
    let other = get(
        &format!("{token}https%3A%2F%2Fmanagement.azure.com%2F"),
        &[AZURE],
    )
    .await;
    assert_eq!(
        (other.status.as_u16(), other.json()["reason"].as_str()),
        (403, Some("path-not-allowed"))
    );
    let user = get(
        &format!("{token}https%3A%2F%2Fvault.azure.net&client_id=x"),
        &[AZURE],
    )
    .await;
    assert_eq!(user.status, 403);
    // Duplicate names, unknown keys: 400.
    assert_eq!(
        get(&format!("{token}a&resource=b"), &[AZURE]).await.status,
        400
    );
    assert_eq!(get(&format!("{token}a&foo=b"), &[AZURE]).await.status, 400);
    // A pod nothing selects: 403.
    let a = request(
        TEST,
        guard.proxy,
        "GET",
        &format!("{token}https%3A%2F%2Fvault.azure.net"),
        &[AZURE],
    )
    .await;
    assert_eq!(a.status, 403);
}

#[tokio::test]
async fn azure_budget_defaults_to_five_per_second() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "azure",
        &["/metadata/instance/**"],
        &[],
        "[limits]\npod_requests_per_second = 0",
    );
    let guard = Guard::start(&config, rec.addr).await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let a = request(
            PROD,
            guard.proxy,
            "GET",
            "/metadata/instance/compute/vmid?api-version=2021-02-01&format=text",
            &[AZURE],
        )
        .await;
        statuses.push(a.status.as_u16());
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        rec.seen().len() <= 6,
        "the service saw {} requests",
        rec.seen().len()
    );
}

#[tokio::test]
async fn oci_bearer_gate_and_only_its_authorization_goes_upstream() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "oci",
        &[
            "/opc/v2/instance/region",
            "/opc/v2/instance/**",
            "/opc/v1/**",
        ],
        &["/opc/v2/instance/metadata/user_data"],
        "",
    );
    let guard = Guard::start(&config, rec.addr).await;
    let bearer = ("authorization", "Bearer Oracle");
    let a = request(
        PROD,
        guard.proxy,
        "GET",
        "/opc/v2/instance/region",
        &[bearer],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        rec.seen().last().unwrap().headers["authorization"],
        "Bearer Oracle"
    );
    let a = request(
        PROD,
        guard.proxy,
        "GET",
        "/opc/v2/instance/region",
        &[("authorization", "Bearer other")],
    )
    .await;
    assert_eq!(
        (a.status.as_u16(), a.json()["reason"].as_str()),
        (401, Some("header-missing"))
    );
    // v1 needs no header; any Authorization a pod sends there is not passed on.
    let a = request(
        PROD,
        guard.proxy,
        "GET",
        "/opc/v1/instance/region",
        &[("authorization", "Basic c2VjcmV0")],
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(!rec
        .seen()
        .last()
        .unwrap()
        .headers
        .contains_key("authorization"));
    // The instance document holds user_data.
    let a = request(PROD, guard.proxy, "GET", "/opc/v2/instance/", &[bearer]).await;
    assert_eq!(
        (a.status.as_u16(), a.json()["reason"].as_str()),
        (403, Some("aggregate-denied"))
    );
    for forwarded in ["forwarded", "x-forwarded-host", "x-forwarded-for"] {
        let a = request(
            PROD,
            guard.proxy,
            "GET",
            "/opc/v2/instance/region",
            &[bearer, (forwarded, "x")],
        )
        .await;
        assert_eq!(a.status, 403, "{forwarded}");
    }
    // No queries on OCI.
    assert_eq!(
        request(
            PROD,
            guard.proxy,
            "GET",
            "/opc/v2/instance/region?x=1",
            &[bearer]
        )
        .await
        .status,
        400
    );
}

#[tokio::test]
async fn alibaba_token_flow_uses_its_own_headers() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "alibaba",
        &["/latest/meta-data/**"],
        &["/latest/meta-data/ram/**"],
        "",
    );
    let guard = Guard::start(&config, rec.addr).await;
    let put = request(
        PROD,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[("x-aliyun-ecs-metadata-token-ttl-seconds", "21600")],
    )
    .await;
    assert_eq!(put.status, 200);
    let seen = rec.seen();
    assert_eq!(
        seen[0].headers["x-aliyun-ecs-metadata-token-ttl-seconds"],
        "21600"
    );
    assert_eq!(
        put.headers["x-aliyun-ecs-metadata-token-ttl-seconds"],
        "21600"
    );
    // The AWS header means nothing here, and a bad TTL is refused by the guard.
    let aws = request(
        PROD,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(aws.status, 400);
    let read = request(
        PROD,
        guard.proxy,
        "GET",
        "/latest/meta-data/instance-id",
        &[
            ("x-aliyun-ecs-metadata-token", "tok"),
            ("x-aws-ec2-metadata-token", "other"),
        ],
    )
    .await;
    assert_eq!(read.status, 200);
    let last = rec.seen().last().unwrap().clone();
    assert_eq!(last.headers["x-aliyun-ecs-metadata-token"], "tok");
    assert!(!last.headers.contains_key("x-aws-ec2-metadata-token"));
    // Forwarded token requests are refused, as the service refuses them.
    let fwd = request(
        PROD,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[
            ("x-aliyun-ecs-metadata-token-ttl-seconds", "60"),
            ("x-forwarded-for", "1.2.3.4"),
        ],
    )
    .await;
    assert_eq!(fwd.status, 403);
    let creds = request(
        PROD,
        guard.proxy,
        "GET",
        "/latest/meta-data/ram/security-credentials/role",
        &[("x-aliyun-ecs-metadata-token", "tok")],
    )
    .await;
    assert_eq!(creds.status, 403);
    let all = request(
        PROD,
        guard.proxy,
        "GET",
        "/latest/meta-data/all",
        &[("x-aliyun-ecs-metadata-token", "tok")],
    )
    .await;
    assert_eq!(
        (all.status.as_u16(), all.json()["reason"].as_str()),
        (403, Some("aggregate-denied"))
    );
}

#[tokio::test]
async fn openstack_documents_and_no_token_flow() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "openstack",
        &["/openstack/*/meta_data.json", "/latest/meta-data/**"],
        &["/openstack/*/user_data", "/openstack/*/password"],
        "",
    );
    let guard = Guard::start(&config, rec.addr).await;
    assert_eq!(
        request(
            PROD,
            guard.proxy,
            "GET",
            "/openstack/latest/meta_data.json",
            &[]
        )
        .await
        .status,
        200
    );
    assert_eq!(
        request(
            PROD,
            guard.proxy,
            "GET",
            "/openstack/2018-08-27/user_data",
            &[]
        )
        .await
        .status,
        403
    );
    assert_eq!(
        request(
            TEST,
            guard.proxy,
            "GET",
            "/openstack/latest/meta_data.json",
            &[]
        )
        .await
        .status,
        403
    );
    // Neutron's proxy identifies instances by headers it adds itself: a pod's never pass.
    let a = request(
        PROD,
        guard.proxy,
        "GET",
        "/openstack/latest/meta_data.json",
        &[("x-forwarded-for", "10.0.0.9")],
    )
    .await;
    assert_eq!(a.status, 403);
    let a = request(
        PROD,
        guard.proxy,
        "GET",
        "/openstack/latest/meta_data.json",
        &[("x-instance-id", "i-other")],
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(!rec
        .seen()
        .last()
        .unwrap()
        .headers
        .contains_key("x-instance-id"));
    // No token flow here: a token PUT is not something this server takes.
    let put = request(
        PROD,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(put.status, 405);
    assert_eq!(rec.seen().len(), 2);
}

/// The status and, for a refusal, the reason of a GET of `path` from `from`.
async fn outcome(guard: &Guard, from: &str, path: &str) -> (u16, String) {
    let answer = request(from, guard.proxy, "GET", path, &[]).await;
    let reason = match answer.status.as_u16() {
        200 => String::new(),
        _ => answer.json()["reason"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    };
    (answer.status.as_u16(), reason)
}

#[tokio::test]
async fn digitalocean_leaves_and_the_whole_document_as_an_aggregate() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "digitalocean",
        &["/metadata/v1/**", "/metadata/v1.json"],
        &["/metadata/v1/user-data", "/metadata/v1/vendor-data"],
        "",
    );
    let guard = Guard::start(&config, rec.addr).await;
    for path in [
        "/metadata/v1/",
        "/metadata/v1/id",
        "/metadata/v1/interfaces/public/0/ipv4/address",
    ] {
        assert_eq!(
            outcome(&guard, PROD, path).await,
            (200, String::new()),
            "{path}"
        );
    }
    for (path, reason) in [
        ("/metadata/v1/user-data", "denied-by-rule"),
        ("/metadata/v1/vendor-data", "denied-by-rule"),
        // The document embeds both.
        ("/metadata/v1.json", "aggregate-denied"),
        // Another spelling is another path to the policy, not allowed; a lenient server's
        // reading of it as the document is what the deny patterns and the aggregate check catch
        // (tests/bypass.rs).
        ("/metadata/V1.JSON", "path-not-allowed"),
        // AWS's paths are not this server's.
        (
            "/latest/meta-data/iam/security-credentials/",
            "path-not-allowed",
        ),
    ] {
        let (status, got) = outcome(&guard, PROD, path).await;
        assert_eq!((status, got.as_str()), (403, reason), "{path}");
    }
    assert_eq!(outcome(&guard, TEST, "/metadata/v1/id").await.0, 403);
    // No queries, no token flow.
    assert_eq!(outcome(&guard, PROD, "/metadata/v1/id?x=1").await.0, 400);
    let put = request(PROD, guard.proxy, "PUT", "/latest/api/token", &[]).await;
    assert_eq!(put.status, 405);
    let forwarded: Vec<String> = rec.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(
        forwarded,
        [
            "/metadata/v1/",
            "/metadata/v1/id",
            "/metadata/v1/interfaces/public/0/ipv4/address"
        ]
    );
}

#[tokio::test]
async fn hetzner_keys_the_document_and_never_the_user_data() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "hetzner",
        &["/hetzner/v1/metadata", "/hetzner/v1/metadata/**"],
        &["/hetzner/v1/userdata"],
        "",
    );
    let guard = Guard::start(&config, rec.addr).await;
    for path in [
        "/hetzner/v1/metadata",
        "/hetzner/v1/metadata/instance-id",
        "/hetzner/v1/metadata/private-networks",
    ] {
        assert_eq!(
            outcome(&guard, PROD, path).await,
            (200, String::new()),
            "{path}"
        );
    }
    for path in ["/hetzner/v1/userdata", "/hetzner/v1/UserData"] {
        let (status, reason) = outcome(&guard, PROD, path).await;
        assert_eq!(status, 403, "{path}: {reason}");
    }
    // A dot segment is refused as malformed before anything is decided.
    assert_eq!(
        outcome(&guard, PROD, "/hetzner/v1/./userdata").await,
        (400, "bad-request".to_owned())
    );
    assert_eq!(
        outcome(&guard, TEST, "/hetzner/v1/metadata/instance-id")
            .await
            .0,
        403
    );
    let forwarded: Vec<String> = rec.seen().iter().map(|s| s.target.clone()).collect();
    assert_eq!(
        forwarded,
        [
            "/hetzner/v1/metadata",
            "/hetzner/v1/metadata/instance-id",
            "/hetzner/v1/metadata/private-networks"
        ]
    );
}

#[tokio::test]
async fn a_hetzner_document_holding_a_denied_key_is_an_aggregate_refused() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed(
        "hetzner",
        &["/hetzner/v1/metadata", "/hetzner/v1/metadata/**"],
        &["/hetzner/v1/metadata/public-keys"],
        "",
    );
    let guard = Guard::start(&config, rec.addr).await;
    for path in ["/hetzner/v1/metadata", "/hetzner/v1/metadata/"] {
        let (status, reason) = outcome(&guard, PROD, path).await;
        assert_eq!(
            (status, reason.as_str()),
            (403, "aggregate-denied"),
            "{path}"
        );
    }
    assert_eq!(
        outcome(&guard, PROD, "/hetzner/v1/metadata/region").await.0,
        200
    );
    assert_eq!(rec.seen().len(), 1);
}

#[tokio::test]
async fn linode_token_flow_at_its_own_endpoint_with_its_own_headers() {
    let rec = recorder(Duration::ZERO).await;
    let config = support::cloud_seed("linode", &["/v1/instance"], &["/v1/user-data"], "");
    let guard = Guard::start(&config, rec.addr).await;
    let ttl = "metadata-token-expiry-seconds";
    // Up to a day, which AWS's range would refuse; the rule's cap (21600 by default) lowers it.
    let put = request(PROD, guard.proxy, "PUT", "/v1/token", &[(ttl, "86400")]).await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    assert_eq!(rec.seen()[0].target, "/v1/token");
    assert_eq!(rec.seen()[0].headers[ttl], "21600");
    assert_eq!(put.headers[ttl], "21600");
    for (headers, why) in [
        (vec![(ttl, "86401")], "beyond a day"),
        (vec![(ttl, "0")], "zero"),
        (
            vec![("x-aws-ec2-metadata-token-ttl-seconds", "60")],
            "AWS's header",
        ),
    ] {
        let bad = request(PROD, guard.proxy, "PUT", "/v1/token", &headers).await;
        assert_eq!(bad.status, 400, "{why}");
    }
    // AWS's endpoint is no token endpoint here, and the token endpoint takes no GET.
    let aws = request(
        PROD,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[(ttl, "60")],
    )
    .await;
    assert_eq!(aws.status, 405);
    let get = request(PROD, guard.proxy, "GET", "/v1/token", &[]).await;
    assert_eq!(get.status, 405);
    // A read carries the pod's token, and only this cloud's token header goes upstream.
    let read = request(
        PROD,
        guard.proxy,
        "GET",
        "/v1/instance",
        &[
            ("metadata-token", "tok"),
            ("x-aws-ec2-metadata-token", "other"),
        ],
    )
    .await;
    assert_eq!(read.status, 200);
    let last = rec.seen().last().unwrap().clone();
    assert_eq!(last.headers["metadata-token"], "tok");
    assert!(!last.headers.contains_key("x-aws-ec2-metadata-token"));
    let user = request(
        PROD,
        guard.proxy,
        "GET",
        "/v1/user-data",
        &[("metadata-token", "tok")],
    )
    .await;
    assert_eq!(user.status, 403);
    // A pod without a rule gets no token.
    let put = request(TEST, guard.proxy, "PUT", "/v1/token", &[(ttl, "60")]).await;
    assert_eq!(put.status, 403);
    assert_eq!(rec.seen().len(), 2);
}
