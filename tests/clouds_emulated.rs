//! The seed scenario on every cloud, against that cloud's emulator through the guard on real
//! sockets: namespace `imds`, pod `prod` allowed what its rule names, pod `test` refused; what each
//! cloud keeps from pods (credentials, user data, aggregates holding them) refused to `prod` too;
//! and the real server's answers relayed whole.

use crate::support;

use imds_guard::cloud::Cloud;
use imds_guard_emulator::EmulatorOptions;
use support::{emulator, request, Guard, PROD, TEST};

async fn start(cloud: Cloud, allow: &[&str], deny: &[&str]) -> (support::Emulator, Guard) {
    let emulator = emulator(EmulatorOptions {
        cloud,
        ..EmulatorOptions::default()
    })
    .await;
    let guard = Guard::start(
        &support::cloud_seed(cloud.as_str(), allow, deny, ""),
        emulator.addr,
    )
    .await;
    (emulator, guard)
}

/// `prod` gets `path` (status, body); `test` is refused with 403 and nothing of the answer.
async fn prod_allowed_test_refused(
    guard: &Guard,
    path: &str,
    headers: &[(&str, &str)],
) -> support::Answer {
    let prod = request(PROD, guard.proxy, "GET", path, headers).await;
    assert_eq!(prod.status, 200, "prod {path}: {:?}", prod.body);
    let test = request(TEST, guard.proxy, "GET", path, headers).await;
    assert_eq!(test.status, 403, "test {path}");
    assert_eq!(test.json()["reason"], "no-rule");
    prod
}

/// A token from the guard's token endpoint for `prod`, asked with `ttl_header`.
async fn token(guard: &Guard, ttl_header: &str) -> String {
    let put = request(
        PROD,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[(ttl_header, "60")],
    )
    .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    String::from_utf8(put.body.to_vec()).unwrap()
}

fn refused(answer: &support::Answer, reason: &str) {
    assert_eq!(answer.status, 403, "{:?}", answer.body);
    assert_eq!(answer.json()["reason"], reason);
}

#[tokio::test]
async fn gcp_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Gcp,
        &["/", "/computeMetadata/v1/**"],
        &["/computeMetadata/v1/instance/service-accounts/*/token"],
    )
    .await;
    let flavor = [("metadata-flavor", "Google")];
    let v1 = "/computeMetadata/v1";
    let id = prod_allowed_test_refused(&guard, &format!("{v1}/project/project-id"), &flavor).await;
    assert!(!id.body.is_empty());
    assert_eq!(id.headers["metadata-flavor"], "Google");
    // The account's recursive read, as google-auth makes it: email and scopes, no token.
    let account = prod_allowed_test_refused(
        &guard,
        &format!("{v1}/instance/service-accounts/default/?recursive=true"),
        &flavor,
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&account.body).unwrap();
    assert!(json["email"].is_string(), "{json}");
    // Denied, concealed, aggregates over either, legacy trees.
    let get = |path: String| {
        let proxy = guard.proxy;
        async move { request(PROD, proxy, "GET", &path, &flavor).await }
    };
    refused(
        &get(format!("{v1}/instance/service-accounts/default/token")).await,
        "denied-by-rule",
    );
    refused(
        &get(format!("{v1}/instance/attributes/kube-env")).await,
        "concealed-path",
    );
    refused(
        &get(format!("{v1}/instance/?recursive=true")).await,
        "aggregate-denied",
    );
    refused(
        &get("/computeMetadata/v1beta1/instance/attributes/kube-env".into()).await,
        "legacy-endpoint",
    );
    // Without the header: 403 from the guard, as from GCP.
    let bare = request(
        PROD,
        guard.proxy,
        "GET",
        &format!("{v1}/project/project-id"),
        &[],
    )
    .await;
    refused(&bare, "header-missing");
    assert_eq!(bare.headers["metadata-flavor"], "Google");
}

#[tokio::test]
async fn azure_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Azure,
        &[
            "/metadata/instance/**",
            "/metadata/identity/oauth2/token?resource=https://vault.azure.net",
        ],
        &[
            "/metadata/instance/compute/userData",
            "/metadata/instance/compute/osProfile/**",
            "/metadata/instance/compute/publicKeys/**",
        ],
    )
    .await;
    let md = [("metadata", "true")];
    let vm = prod_allowed_test_refused(
        &guard,
        "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text",
        &md,
    )
    .await;
    assert!(!vm.body.is_empty());
    let network = prod_allowed_test_refused(
        &guard,
        "/metadata/instance/network?api-version=2021-02-01",
        &md,
    )
    .await;
    assert!(serde_json::from_slice::<serde_json::Value>(&network.body).is_ok());
    let token = prod_allowed_test_refused(
        &guard,
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net",
        &md,
    )
    .await;
    let json: serde_json::Value = serde_json::from_slice(&token.body).unwrap();
    assert_eq!(json["resource"], "https://vault.azure.net");
    let get = |path: &str| {
        let (proxy, path) = (guard.proxy, path.to_owned());
        async move { request(PROD, proxy, "GET", &path, &md).await }
    };
    for doc in [
        "/metadata/instance",
        "/metadata/instance/compute",
        "/METADATA/Instance",
    ] {
        refused(
            &get(&format!("{doc}?api-version=2021-02-01")).await,
            "aggregate-denied",
        );
    }
    refused(
        &get("/metadata/instance/compute/USERDATA?api-version=2021-02-01&format=text").await,
        "denied-by-rule",
    );
    refused(
        &get("/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fmanagement.azure.com%2F").await,
        "path-not-allowed",
    );
    let bare = request(
        PROD,
        guard.proxy,
        "GET",
        "/metadata/instance/compute/vmId?api-version=2021-02-01&format=text",
        &[],
    )
    .await;
    assert_eq!(bare.status, 400);
}

#[tokio::test]
async fn alibaba_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Alibaba,
        &["/latest/meta-data/**"],
        &["/latest/meta-data/ram/**"],
    )
    .await;
    let token = token(&guard, "x-aliyun-ecs-metadata-token-ttl-seconds").await;
    let with = [("x-aliyun-ecs-metadata-token", token.as_str())];
    let id = prod_allowed_test_refused(&guard, "/latest/meta-data/instance-id", &with).await;
    assert!(!id.body.is_empty());
    let creds = request(
        PROD,
        guard.proxy,
        "GET",
        "/latest/meta-data/ram/security-credentials/",
        &with,
    )
    .await;
    refused(&creds, "denied-by-rule");
    let refused_put = request(
        TEST,
        guard.proxy,
        "PUT",
        "/latest/api/token",
        &[("x-aliyun-ecs-metadata-token-ttl-seconds", "60")],
    )
    .await;
    assert_eq!(refused_put.status, 403);
}

#[tokio::test]
async fn oci_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Oci,
        &["/opc/v2/instance/**"],
        &["/opc/v2/instance/metadata/user_data"],
    )
    .await;
    let bearer = [("authorization", "Bearer Oracle")];
    let region = prod_allowed_test_refused(&guard, "/opc/v2/instance/region", &bearer).await;
    assert!(!region.body.is_empty());
    let get = |path: &str| {
        let (proxy, path) = (guard.proxy, path.to_owned());
        async move { request(PROD, proxy, "GET", &path, &bearer).await }
    };
    refused(&get("/opc/v2/instance/").await, "aggregate-denied");
    refused(&get("/opc/v2/instance/metadata").await, "aggregate-denied");
    refused(
        &get("/opc/v2/instance/metadata/user_data").await,
        "denied-by-rule",
    );
    // The instance principal's key: no rule allows it.
    refused(&get("/opc/v2/identity/key.pem").await, "path-not-allowed");
    let bare = request(PROD, guard.proxy, "GET", "/opc/v2/instance/region", &[]).await;
    assert_eq!(bare.status, 401);
}

#[tokio::test]
async fn openstack_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Openstack,
        &["/openstack/*/meta_data.json", "/latest/meta-data/**"],
        &["/openstack/*/user_data", "/openstack/*/password"],
    )
    .await;
    let doc = prod_allowed_test_refused(&guard, "/openstack/latest/meta_data.json", &[]).await;
    let json: serde_json::Value = serde_json::from_slice(&doc.body).unwrap();
    assert!(json["uuid"].is_string(), "{json}");
    let ec2 = prod_allowed_test_refused(&guard, "/latest/meta-data/instance-id", &[]).await;
    assert!(!ec2.body.is_empty());
    let user = request(PROD, guard.proxy, "GET", "/openstack/latest/user_data", &[]).await;
    refused(&user, "denied-by-rule");
}

#[tokio::test]
async fn digitalocean_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Digitalocean,
        &["/metadata/v1/**", "/metadata/v1.json"],
        &["/metadata/v1/user-data", "/metadata/v1/vendor-data"],
    )
    .await;
    let id = prod_allowed_test_refused(&guard, "/metadata/v1/id", &[]).await;
    assert_eq!(&id.body[..], b"2756294");
    let index = prod_allowed_test_refused(&guard, "/metadata/v1/", &[]).await;
    let index = String::from_utf8(index.body.to_vec()).unwrap();
    assert!(index.lines().any(|l| l == "interfaces/"), "{index}");
    // The service's redirect to an index's slash form is relayed as it is.
    let moved = request(PROD, guard.proxy, "GET", "/metadata/v1/interfaces", &[]).await;
    assert_eq!(moved.status, 301);
    assert_eq!(moved.headers["location"], "/metadata/v1/interfaces/");
    let user = request(PROD, guard.proxy, "GET", "/metadata/v1/user-data", &[]).await;
    refused(&user, "denied-by-rule");
    // The whole document embeds the user data: refused, and nothing of it reaches the pod.
    let whole = request(PROD, guard.proxy, "GET", "/metadata/v1.json", &[]).await;
    refused(&whole, "aggregate-denied");
    assert!(!String::from_utf8_lossy(&whole.body).contains("NODE_BOOTSTRAP_SECRET"));
}

#[tokio::test]
async fn hetzner_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Hetzner,
        &["/hetzner/v1/metadata", "/hetzner/v1/metadata/**"],
        &["/hetzner/v1/userdata"],
    )
    .await;
    let id = prod_allowed_test_refused(&guard, "/hetzner/v1/metadata/instance-id", &[]).await;
    assert_eq!(&id.body[..], b"42001337");
    let document = prod_allowed_test_refused(&guard, "/hetzner/v1/metadata", &[]).await;
    let document = String::from_utf8(document.body.to_vec()).unwrap();
    assert!(document.contains("instance-id: 42001337"), "{document}");
    let user = request(PROD, guard.proxy, "GET", "/hetzner/v1/userdata", &[]).await;
    refused(&user, "denied-by-rule");
    assert!(!String::from_utf8_lossy(&user.body).contains("NODE_BOOTSTRAP_SECRET"));
}

#[tokio::test]
async fn tencent_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Tencent,
        &["/latest/meta-data/**"],
        &["/latest/user-data"],
    )
    .await;
    let id = prod_allowed_test_refused(&guard, "/latest/meta-data/instance-id", &[]).await;
    assert_eq!(&id.body[..], b"ins-6p2kqn8s");
    // The CAM role's credentials, whole, to the pod the rule allows.
    let role = "/latest/meta-data/cam/security-credentials/imds-guard-node-role";
    let creds = prod_allowed_test_refused(&guard, role, &[]).await;
    let creds: serde_json::Value = serde_json::from_slice(&creds.body).unwrap();
    assert_eq!(creds["Code"], "Success");
    let user = request(PROD, guard.proxy, "GET", "/latest/user-data", &[]).await;
    refused(&user, "denied-by-rule");
}

#[tokio::test]
async fn huawei_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Huawei,
        &["/openstack/*/meta_data.json", "/latest/meta-data/**"],
        &["/openstack/*/securitykey", "/openstack/*/user_data"],
    )
    .await;
    let doc = prod_allowed_test_refused(&guard, "/openstack/latest/meta_data.json", &[]).await;
    let json: serde_json::Value = serde_json::from_slice(&doc.body).unwrap();
    assert_eq!(json["uuid"], "6b1c9e2a-4f3d-4a8b-9c7e-5d2f1a0b3c4e");
    for path in [
        "/openstack/latest/securitykey",
        "/openstack/latest/user_data",
    ] {
        let answer = request(PROD, guard.proxy, "GET", path, &[]).await;
        refused(&answer, "denied-by-rule");
    }
}

#[tokio::test]
async fn exoscale_seed_scenario() {
    let (_emulator, guard) = start(Cloud::Exoscale, &["/*/meta-data/**"], &["/*/user-data"]).await;
    let id = prod_allowed_test_refused(&guard, "/1.0/meta-data/instance-id", &[]).await;
    assert_eq!(&id.body[..], b"0d7a6d8e-3c1f-4b2a-9e5d-7f6a5b4c3d2e");
    for path in ["/1.0/user-data", "/latest/user-data"] {
        let answer = request(PROD, guard.proxy, "GET", path, &[]).await;
        refused(&answer, "denied-by-rule");
        assert!(!String::from_utf8_lossy(&answer.body).contains("NODE_BOOTSTRAP_SECRET"));
    }
}

#[tokio::test]
async fn linode_seed_scenario() {
    let (_emulator, guard) = start(
        Cloud::Linode,
        &["/v1/instance", "/v1/network"],
        &["/v1/user-data"],
    )
    .await;
    // The service's own token flow, through the guard.
    let put = request(
        PROD,
        guard.proxy,
        "PUT",
        "/v1/token",
        &[("metadata-token-expiry-seconds", "3600")],
    )
    .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    let token = String::from_utf8(put.body.to_vec()).unwrap();
    let with_token = [
        ("metadata-token", token.as_str()),
        ("accept", "application/json"),
    ];
    let instance = prod_allowed_test_refused(&guard, "/v1/instance", &with_token).await;
    let instance: serde_json::Value = serde_json::from_slice(&instance.body).unwrap();
    assert_eq!(instance["id"], 12345678);
    assert_eq!(instance["label"], "emu-node-0");
    // Without the token the service itself refuses.
    let tokenless = request(PROD, guard.proxy, "GET", "/v1/instance", &[]).await;
    assert_eq!(tokenless.status, 401);
    let user = request(PROD, guard.proxy, "GET", "/v1/user-data", &with_token).await;
    refused(&user, "denied-by-rule");
    // A pod without a rule gets no token.
    let put = request(
        TEST,
        guard.proxy,
        "PUT",
        "/v1/token",
        &[("metadata-token-expiry-seconds", "3600")],
    )
    .await;
    assert_eq!(put.status, 403);
}

#[tokio::test]
async fn aws_seed_scenario_is_unchanged() {
    let (_emulator, guard) = start(
        Cloud::Aws,
        &["/latest/meta-data/**"],
        &["/latest/meta-data/iam/**"],
    )
    .await;
    let token = token(&guard, "x-aws-ec2-metadata-token-ttl-seconds").await;
    let with = [("x-aws-ec2-metadata-token", token.as_str())];
    prod_allowed_test_refused(&guard, "/latest/meta-data/instance-id", &with).await;
    let iam = request(
        PROD,
        guard.proxy,
        "GET",
        "/latest/meta-data/iam/info",
        &with,
    )
    .await;
    refused(&iam, "denied-by-rule");
}
