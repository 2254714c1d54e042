//! Real client libraries of every cloud other than AWS, through the real guard binary, against
//! that cloud's emulator (`imds-guard emulate --cloud X`), each pointed at the guard by its own
//! documented override (`tests/clouds_sdk/*.py`, `*.js`):
//!
//! | cloud   | clients                                             | override                          |
//! |---------|-----------------------------------------------------|-----------------------------------|
//! | GCP     | google-auth (PyPI); gcp-metadata, google-auth-library (npm) | `GCE_METADATA_HOST`, `GCE_METADATA_IP` |
//! | Azure   | azure-identity (PyPI); @azure/identity (npm)        | `AZURE_POD_IDENTITY_AUTHORITY_HOST` |
//! | OCI     | oci (PyPI), the instance principal signer           | `OCI_METADATA_BASE_URL`           |
//! | Alibaba | alibabacloud-credentials (PyPI), ECS RAM role       | none: the guard is 100.100.100.200:80 |
//! | Tencent | tencentcloud-sdk-python-common (PyPI), CVM role credential | none: the guard is 169.254.0.23:80 (by name: see below) |
//! | Huawei  | huaweicloudsdkcore (PyPI), the metadata credential provider | none: the guard is 169.254.169.254:80 |
//! | Linode  | linode-metadata (PyPI), `MetadataClient` and its managed token | none: the guard is 169.254.169.254:80; and `base_url` |
//!
//! Everything — emulator, guard, client — runs in a network namespace of its own that holds only
//! loopback, so a client that ignores its override finds no route to a real metadata address,
//! and no test can send a packet to one. Pods are loopback addresses: with `127.0.0.2/32` and
//! `127.0.0.3/32` on `lo`, a connection to one of them leaves from it, so a client pointed at
//! `127.0.0.2:8181` is the pod `imds/prod-5c7b9` (allowed by the test's rule) and one pointed at
//! `127.0.0.3:8181` is `imds/test-6d8f` (selected by no rule): the seed scenario. The clients of
//! Alibaba, Tencent and Huawei connect to their cloud's fixed address (100.100.100.200,
//! 169.254.0.23, 169.254.169.254: on `lo` too, where the guard listens on port 80) and so speak
//! from it: that address is `prod` in one run of the guard and `test` in the next. Linode's client
//! is run both ways: at its default address (169.254.169.254), and told `base_url` (a pod's
//! address) in the other test. Tencent's client asks for `metadata.tencentyun.com` by name: the
//! namespace has a hosts file of its own (`/etc/netns/NAME/hosts`, which `ip netns exec` mounts
//! over `/etc/hosts` for its commands) naming 169.254.0.23.
//!
//! Each test shows: the allowed pod's client gets its token or data (checked against what the
//! emulator itself serves); the denied pod's fails cleanly and fast, with an error naming the 403
//! (or, for the Azure libraries, which read only the body of a token answer, its
//! `error_description`: the guard's reason and the pod; Tencent's credential swallows every
//! failed read and gives no keys, and its default chain raises past it; Linode's client raises
//! `ApiError` whose message carries the guard's reason and the pod, which the guard's refusal
//! gives in the Linode API's error form, `errors: [{reason}]`); the guard's audit lines show each request with its
//! decision and reason; the emulator is reached while the allowed client runs and never while the
//! denied one does (its debug log, one line per request, says what reached it).
//!
//! Clients run with an environment of their own: no cloud settings from outside, `HOME` an empty
//! directory, and `PATH` an empty directory (no `gcloud` or other CLI to answer in the metadata
//! server's place; google-auth-library runs `gcloud` to find a project when it can).
//!
//! Needs root (namespaces), `ip`, `curl`, python3 with google-auth, azure-identity, oci,
//! alibabacloud-credentials, tencentcloud-sdk-python-common, huaweicloudsdkcore and
//! linode-metadata, and node with `tests/clouds_sdk/node_modules` (`npm ci`): all installed by
//! `tests/run.sh`. A missing one fails the test, naming what to install.

#[path = "clouds_sdk/checks.rs"]
mod checks;
#[path = "clouds_sdk/lab.rs"]
mod lab;

use checks::{assert_allowed, assert_denied, briefs, from, split_refused, text, Report};
use lab::{
    allowed_then_denied, allowed_then_denied_at, config, listen_all, Lab, ALIBABA, HUAWEI, LINODE,
    PORT, PROD, SEED_PODS, TENCENT, TENCENT_HOST, TEST,
};
use serde_json::Value;

// ---- GCP ----

const GCP_ALLOW: &[&str] = &[
    "/",
    "/computeMetadata/v1/project/project-id",
    "/computeMetadata/v1/instance/id",
    "/computeMetadata/v1/universe/universe-domain",
    // Whole: the service account's info is read with recursive=true, which the guard allows only
    // when everything below it is allowed.
    "/computeMetadata/v1/instance/service-accounts/**",
    // Identity tokens are concealed unless an allow names them: for this audience only.
    "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://service.example",
];
const GOOGLE: &str = "Metadata-Flavor: Google";
const AUDIENCE: &str = "https://service.example";

fn gcp_env(pod: &str) -> Vec<(&'static str, String)> {
    let host = format!("{pod}:{PORT}");
    vec![
        ("GCE_METADATA_HOST", host.clone()),
        ("GCE_METADATA_IP", host),
        ("GCE_METADATA_MTLS_MODE", "none".to_owned()),
        ("METADATA_SERVER_DETECTION", "assume-present".to_owned()),
    ]
}

fn gcp_lab() -> Lab {
    let mut lab = Lab::new("gcp", &[], &[]);
    lab.start_guard(&config("gcp", &listen_all(), SEED_PODS, GCP_ALLOW));
    lab
}

/// An ID token's claims, unverified.
fn assert_id_token(got: &Value, audience: &str) {
    let claims = &got["claims"];
    assert_eq!(claims["aud"], audience, "{got}");
    assert!(
        claims["exp"].as_u64().unwrap_or(0) > now(),
        "an expired ID token: {got}"
    );
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[test]
fn gcp_google_auth_python_gets_tokens_for_the_allowed_pod_only() {
    let mut lab = gcp_lab();
    let project = lab.direct("/computeMetadata/v1/project/project-id", &[GOOGLE]);
    let email = lab.direct(
        "/computeMetadata/v1/instance/service-accounts/default/email",
        &[GOOGLE],
    );
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "google_auth.py", gcp_env);

    // google.auth.default(): the ping on GCE_METADATA_IP, then the project.
    let default = allowed.ok("default");
    assert_eq!(default["class"], "Credentials", "{default}");
    assert_eq!(default["project"], project.as_str());
    let token = allowed.ok("token");
    assert!(
        token["token"].as_str().unwrap().starts_with("ya29."),
        "{token}"
    );
    assert_eq!(token["valid"], true);
    assert_eq!(token["service_account"], email.as_str());
    // No universe-domain in the emulator's tree: 404, which google-auth reads as the default.
    assert_eq!(allowed.ok("universe"), "googleapis.com");
    assert_id_token(allowed.ok("id_token"), AUDIENCE);
    allowed.refused("id_token_other_audience", &["403", "concealed-path"]);

    // The denied pod: not on GCE as far as default() can tell (its ping is refused), and every
    // read fails on the 403.
    denied.refused("default", &["DefaultCredentialsError"]);
    denied.refused("token", &["RefreshError", "403"]);
    denied.refused("universe", &["403"]);
    denied.refused("id_token", &["403"]);
    denied.refused("id_token_other_audience", &["403"]);

    let v1 = "/computeMetadata/v1";
    let (prod, other_audience) = split_refused(&from(&audit, PROD));
    assert_denied(&other_audience, "imds/prod-5c7b9", "concealed-path");
    assert_allowed(
        &prod,
        &[
            "/",
            &format!("{v1}/project/project-id"),
            &format!("{v1}/instance/service-accounts/default/?recursive=true"),
            &format!("{v1}/instance/service-accounts/default/token"),
            &format!("{v1}/instance/service-accounts/default/identity"),
            &format!("{v1}/universe/universe-domain"),
        ],
    );
    assert_denied(&from(&audit, TEST), "imds/test-6d8f", "no-rule");
    eprintln!("clients: {}", allowed.versions());
}

#[test]
fn gcp_gcp_metadata_and_google_auth_library_node_get_data_and_tokens_for_the_allowed_pod_only() {
    let mut lab = gcp_lab();
    let project = lab.direct("/computeMetadata/v1/project/project-id", &[GOOGLE]);
    let id = lab.direct("/computeMetadata/v1/instance/id", &[GOOGLE]);
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "gcp_metadata.js", gcp_env);

    assert_eq!(allowed.ok("instance_id"), id.as_str());
    assert_eq!(allowed.ok("project_id"), project.as_str());
    let token = allowed.ok("metadata_token");
    assert!(
        token["token"].as_str().unwrap().starts_with("ya29."),
        "{token}"
    );
    assert!(token["expires_in"].as_u64().unwrap() > 60, "{token}");
    let client = allowed.ok("auth_client");
    assert_eq!(client["class"], "Compute", "{client}");
    assert_eq!(client["project"], project.as_str());
    assert!(allowed.ok("auth_token")["token"]
        .as_str()
        .unwrap()
        .starts_with("ya29."));
    assert_id_token(allowed.ok("auth_id_token"), AUDIENCE);

    for step in ["instance_id", "project_id", "metadata_token"] {
        denied.refused(step, &["403"]);
    }
    // google-auth-library takes the refused project lookup for "no project here".
    denied.refused("auth_client", &["Unable to detect a Project Id"]);
    denied.refused("auth_token", &["403"]);
    denied.refused("auth_id_token", &["403"]);

    let v1 = "/computeMetadata/v1";
    assert_allowed(
        &from(&audit, PROD),
        &[
            &format!("{v1}/instance/id"),
            &format!("{v1}/project/project-id"),
            &format!("{v1}/instance/service-accounts/default/token"),
            &format!("{v1}/instance/service-accounts/default/identity"),
        ],
    );
    assert_denied(&from(&audit, TEST), "imds/test-6d8f", "no-rule");
    eprintln!("clients: {}", allowed.versions());
}

// ---- Azure ----

/// Tokens for Key Vault only: any other resource is refused by the query constraint.
const AZURE_ALLOW: &[&str] = &["/metadata/identity/oauth2/token?resource=https://vault.azure.net"];

fn azure_env(pod: &str) -> Vec<(&'static str, String)> {
    vec![(
        "AZURE_POD_IDENTITY_AUTHORITY_HOST",
        format!("http://{pod}:{PORT}"),
    )]
}

fn azure_lab() -> Lab {
    let mut lab = Lab::new("azure", &[], &[]);
    lab.start_guard(&config("azure", &listen_all(), SEED_PODS, AZURE_ALLOW));
    lab
}

/// The allowed pod gets a Key Vault token, not a management one; the denied pod neither.
fn check_azure(allowed: &Report, denied: &Report, audit: &[Value]) {
    let vault = allowed.ok("vault");
    assert!(!vault["token"].as_str().unwrap().is_empty(), "{vault}");
    assert!(vault["expires_in"].as_i64().unwrap() > 60, "{vault}");
    // Both libraries read the refusal's JSON body as an OAuth error (`error`, and
    // `error_description`, which the guard writes in front of Azure) and never show its status:
    // the reason and the pod reach the user through the description.
    allowed.refused("management", &["path-not-allowed", "imds/prod-5c7b9"]);
    denied.refused("vault", &["no-rule", "imds/test-6d8f"]);
    denied.refused("management", &["no-rule"]);

    let token = "/metadata/identity/oauth2/token";
    let prod = from(audit, PROD);
    let (vault, management) = split_refused(&prod);
    assert!(
        !vault.is_empty()
            && vault
                .iter()
                .all(|e| e["status"] == 200 && text(e, "path").starts_with(token)),
        "no Key Vault token answered 200:\n{}",
        briefs(&prod)
    );
    assert_allowed(&vault, &[]);
    // The other resource: the path is allowed, its query is not.
    assert_denied(&management, "imds/prod-5c7b9", "path-not-allowed");
    assert_denied(&from(audit, TEST), "imds/test-6d8f", "no-rule");
}

#[test]
fn azure_identity_python_gets_a_token_for_the_allowed_pod_and_resource_only() {
    let mut lab = azure_lab();
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "azure_identity.py", azure_env);
    check_azure(&allowed, &denied, &audit);
    eprintln!("clients: {}", allowed.versions());
}

#[test]
fn azure_identity_node_gets_a_token_for_the_allowed_pod_and_resource_only() {
    let mut lab = azure_lab();
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "azure_identity.js", azure_env);
    check_azure(&allowed, &denied, &audit);
    eprintln!("clients: {}", allowed.versions());
}

// ---- OCI ----

#[test]
fn oci_instance_principal_reads_its_identity_for_the_allowed_pod_only() {
    let mut lab = Lab::new("oci", &[], &[]);
    lab.start_guard(&config(
        "oci",
        &listen_all(),
        SEED_PODS,
        &["/opc/v2/identity/**", "/opc/v2/instance/region"],
    ));
    let bearer = "Authorization: Bearer Oracle";
    let region = lab.direct("/opc/v2/instance/region", &[bearer]);
    let cert = lab.direct("/opc/v2/identity/cert.pem", &[bearer]);
    let env = |pod: &str| {
        vec![(
            "OCI_METADATA_BASE_URL",
            format!("http://{pod}:{PORT}/opc/v2"),
        )]
    };
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "oci_metadata.py", env);

    let signer = allowed.ok("signer");
    assert_eq!(
        signer["metadata_base_url"],
        format!("http://{PROD}:{PORT}/opc/v2")
    );
    // The region as the SDK maps the emulator's short name.
    assert!(
        signer["region"]
            .as_str()
            .unwrap()
            .contains(region.trim().to_lowercase().as_str())
            || region.trim() == "iad" && signer["region"] == "us-ashburn-1",
        "{signer}"
    );
    assert!(
        signer["tenancy_id"]
            .as_str()
            .unwrap()
            .starts_with("ocid1.tenancy."),
        "{signer}"
    );
    assert_eq!(signer["key_matches_certificate"], true, "{signer}");
    assert_eq!(signer["presented_leaf_is_served_leaf"], true, "{signer}");
    assert_eq!(signer["presented_intermediates"], 1, "{signer}");
    assert!(cert.contains("BEGIN CERTIFICATE"));
    assert!(!signer["security_token"].as_str().unwrap().is_empty());

    denied.refused("signer", &["403"]);

    assert_allowed(
        &from(&audit, PROD),
        &[
            "/opc/v2/identity/cert.pem",
            "/opc/v2/identity/key.pem",
            "/opc/v2/identity/intermediate.pem",
            "/opc/v2/instance/region",
        ],
    );
    assert_denied(&from(&audit, TEST), "imds/test-6d8f", "no-rule");
    eprintln!("clients: {}", allowed.versions());
}

// ---- Alibaba ----

#[test]
fn alibaba_ecs_ram_role_gets_credentials_at_the_fixed_address_for_the_allowed_pod_only() {
    // Hardened mode: a read without a token is refused by the service itself.
    let mut lab = Lab::new(
        "alibaba",
        &["100.100.100.200/32"],
        &["--tokens", "required"],
    );
    let listen = format!("{ALIBABA}:80");
    let allow = &["/latest/meta-data/ram/security-credentials/**"];
    let env = |fallback: bool| {
        let mut env = vec![];
        if !fallback {
            env.push(("ALIBABA_CLOUD_IMDSV1_DISABLED", "true".to_owned()));
        }
        env
    };

    // 100.100.100.200 is prod.
    lab.start_guard(&config(
        "alibaba",
        &listen,
        &[(ALIBABA, "prod-5c7b9", "prod")],
        allow,
    ));
    let before = lab.emulator_seen().len();
    let allowed = lab.client("alibaba_credentials.py", &env(false));
    let seen = lab.emulator_seen()[before..].to_vec();
    let audit = lab.stop_guard();
    eprintln!(
        "{}audit:\n{}emulator: {seen:?}",
        allowed.summary(),
        briefs(&audit.iter().collect::<Vec<_>>())
    );
    let got = allowed.ok("credentials");
    assert!(
        got["access_key_id"].as_str().unwrap().starts_with("STS."),
        "{got}"
    );
    assert_eq!(got["has_secret"], true);
    assert!(!got["security_token"].as_str().unwrap().is_empty());
    assert_eq!(got["provider"], "ecs_ram_role");
    let events: Vec<&Value> = audit.iter().collect();
    assert_allowed(
        &events,
        &[
            "/latest/api/token",
            "/latest/meta-data/ram/security-credentials/",
        ],
    );
    assert!(
        events.iter().all(|e| text(e, "imds_version") == "v2"),
        "a read without a token:\n{}",
        briefs(&events)
    );
    let forwarded = audit.iter().filter(|e| !e["upstream_ms"].is_null()).count();
    assert!(!seen.is_empty(), "nothing reached the emulator");
    assert_eq!(forwarded, seen.len(), "the emulator saw {seen:?}");

    // 100.100.100.200 is test: refused, with and without the tokenless fall-back.
    lab.start_guard(&config(
        "alibaba",
        &listen,
        &[(ALIBABA, "test-6d8f", "test")],
        allow,
    ));
    let before = lab.emulator_seen().len();
    let strict = lab.client("alibaba_credentials.py", &env(false));
    let lenient = lab.client("alibaba_credentials.py", &env(true));
    assert_eq!(
        lab.emulator_seen()[before..],
        [] as [String; 0],
        "the denied pod's requests reached the emulator"
    );
    let audit = lab.stop_guard();
    eprintln!(
        "{}{}audit:\n{}",
        strict.summary(),
        lenient.summary(),
        briefs(&audit.iter().collect::<Vec<_>>())
    );
    strict.refused("credentials", &["403"]);
    lenient.refused("credentials", &["403"]);
    let events: Vec<&Value> = audit.iter().collect();
    assert_denied(&events, "imds/test-6d8f", "no-rule");
    // Without IMDSV1_DISABLED the client falls back to tokenless reads: refused as well.
    assert!(
        events
            .iter()
            .any(|e| text(e, "method") == "GET" && text(e, "imds_version") == "v1"),
        "no tokenless fall-back was seen:\n{}",
        briefs(&events)
    );
    eprintln!("clients: {}", allowed.versions());
}

// ---- Tencent ----

const CAM: &str = "/latest/meta-data/cam/security-credentials/";

#[test]
fn tencent_cvm_role_gets_credentials_at_metadata_tencentyun_com_for_the_allowed_pod_only() {
    let mut lab = Lab::new("tencent", &["169.254.0.23/32"], &[]);
    // The client asks for metadata.tencentyun.com by name: the namespace's own hosts file says
    // where it is.
    lab.hosts(&[(TENCENT, TENCENT_HOST)]);
    let role = lab.direct(CAM, &[]);
    assert_eq!(role, "imds-guard-node-role");
    let served: Value = serde_json::from_str(&lab.direct(&format!("{CAM}{role}"), &[])).unwrap();
    let allow = &["/latest/meta-data/cam/security-credentials/**"];
    let (allowed, denied, prod, test) =
        allowed_then_denied_at(&mut lab, TENCENT, allow, "tencent_cvm_role.py", &[]);

    assert_eq!(allowed.ok("resolve"), TENCENT);
    assert_eq!(allowed.ok("role"), role.as_str());
    let got = allowed.ok("credentials");
    assert_eq!(got["role"], role.as_str(), "{got}");
    assert_eq!(got["secret_id"], served["TmpSecretId"], "{got}");
    assert_eq!(got["secret_key"], served["TmpSecretKey"], "{got}");
    assert_eq!(got["token"], served["Token"], "{got}");
    assert_eq!(got["expired_ts"], served["ExpiredTime"], "{got}");
    assert_eq!(got["get_credential"], true, "{got}");
    let chain = allowed.ok("default_chain");
    assert_eq!(chain["class"], "CVMRoleCredential", "{chain}");
    assert_eq!(chain["secret_id"], served["TmpSecretId"], "{chain}");
    assert_eq!(chain["token"], served["Token"], "{chain}");

    // The denied pod: the credential swallows the 403 (get_role_name() gives None,
    // update_credential() passes), so it has no keys, at once; the default chain then goes on
    // to TKE's OIDC provider, which raises for want of its environment.
    assert_eq!(denied.ok("resolve"), TENCENT);
    assert!(denied.quick("role").is_null(), "{}", denied.summary());
    let none = denied.quick("credentials");
    for key in ["role", "secret_id", "secret_key", "token"] {
        assert!(none[key].is_null(), "{none}");
    }
    assert_eq!(none["get_credential"], false, "{none}");
    denied.refused("default_chain", &["TKE_REGION not exist"]);

    assert_allowed(
        &prod.iter().collect::<Vec<_>>(),
        &[CAM, &format!("{CAM}{role}")],
    );
    assert_denied(
        &test.iter().collect::<Vec<_>>(),
        "imds/test-6d8f",
        "no-rule",
    );
    eprintln!("clients: {}", allowed.versions());
}

// ---- Huawei ----

const SECURITYKEY: &str = "/openstack/latest/securitykey";

/// huaweicloudsdkcore's token probe (`PUT /meta-data/latest/api/token`) in `events`: each must
/// be of `pod`, refused with 405 `method-not-allowed` and not forwarded. Gives how many there were
/// and the other lines.
fn token_probes<'a>(events: &'a [Value], pod: &str) -> (usize, Vec<&'a Value>) {
    let (probes, others): (Vec<&Value>, Vec<&Value>) =
        events.iter().partition(|e| text(e, "method") == "PUT");
    for e in &probes {
        assert!(
            text(e, "path") == "/meta-data/latest/api/token"
                && e["status"] == 405
                && text(e, "decision") == "deny"
                && text(e, "reason") == "method-not-allowed"
                && text(e, "pod") == pod
                && e["upstream_ms"].is_null(),
            "a token probe was not refused with 405:\n{}",
            briefs(&probes)
        );
    }
    (probes.len(), others)
}

#[test]
fn huawei_metadata_provider_gets_the_agency_keys_for_the_allowed_pod_only() {
    let mut lab = Lab::new("huawei", &["169.254.169.254/32"], &[]);
    let served: Value = serde_json::from_str(&lab.direct(SECURITYKEY, &[])).unwrap();
    let served = &served["credential"];
    // The deploy component denies securitykey to every pod: this rule is the one it says a pod
    // that needs the agency's rights gets.
    let (allowed, denied, prod, test) =
        allowed_then_denied_at(&mut lab, HUAWEI, &[SECURITYKEY], "huawei_metadata.py", &[]);

    for (step, class) in [
        ("basic", "BasicCredentials"),
        ("global", "GlobalCredentials"),
    ] {
        let got = allowed.ok(step);
        assert_eq!(got["class"], class, "{got}");
        assert_eq!(got["ak"], served["access"], "{got}");
        assert_eq!(got["sk"], served["secret"], "{got}");
        assert_eq!(got["security_token"], served["securitytoken"], "{got}");
        assert!(
            got["expires_at"].as_f64().unwrap() > now() as f64 + 60.0,
            "{got}"
        );
    }
    // The guard's refusal reaches the user whole: the SDK shows the body with the status.
    for step in ["basic", "global"] {
        denied.refused(
            step,
            &["ClientRequestException", "403", "no-rule", "imds/test-6d8f"],
        );
    }

    // Each read begins with the token probe, which the guard answers 405 as the service does
    // (Huawei has no token flow): the SDK's cue to read without one. Nothing of it is forwarded.
    let (probes, reads) = token_probes(&prod, "imds/prod-5c7b9");
    assert_eq!(probes, 2, "one probe per provider");
    assert_allowed(&reads, &[SECURITYKEY]);
    let (probes, reads) = token_probes(&test, "imds/test-6d8f");
    assert_eq!(probes, 2, "one probe per provider");
    assert_denied(&reads, "imds/test-6d8f", "no-rule");
    eprintln!("clients: {}", allowed.versions());
}

// ---- Linode ----

/// The test's rule: the instance and its network; not the user data (nor the SSH keys).
const LINODE_ALLOW: &[&str] = &["/v1/instance", "/v1/network"];
const LINODE_TTL: &str = "Metadata-Token-Expiry-Seconds";

/// What the Linode emulator serves itself, with a token it was asked for directly: the instance
/// and the network documents.
fn linode_served(lab: &Lab) -> (Value, Value) {
    let token = lab.direct_method("PUT", "/v1/token", &[&format!("{LINODE_TTL}: 60")]);
    assert!(!token.is_empty() && !token.contains('\n'), "{token:?}");
    let headers = [
        format!("Metadata-Token: {token}"),
        "Accept: application/json".to_owned(),
    ];
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let read = |path| -> Value { serde_json::from_str(&lab.direct(path, &headers)).unwrap() };
    let instance = read("/v1/instance");
    // docs/emulator.md's fixed values.
    assert_eq!(instance["id"], 12_345_678, "{instance}");
    assert_eq!(instance["label"], "emu-node-0", "{instance}");
    assert_eq!(instance["region"], "us-ord", "{instance}");
    (instance, read("/v1/network"))
}

/// The answers a client got (method, path, status: `answers` of the report), in short.
fn answers(report: &Report) -> Vec<String> {
    report.value["answers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {} {}", text(a, "method"), text(a, "path"), a["status"]))
        .collect()
}

/// The client's ApiError for a refused step: 403 with the guard's reason and the pod in its
/// message, and the guard's JSON body (`reason`, `pod`) on its `.json`.
fn api_refusal(report: &Report, step: &str, pod: &str, reason: &str) {
    let error = report.refused(step, &["ApiError", "403", reason, pod]);
    let got = report.step(step);
    assert_eq!(got["status"], 403, "{step}: {got}");
    assert_eq!(
        got["body"]["reason"], reason,
        "{step}: {error} {}",
        got["body"]
    );
    assert_eq!(got["body"]["pod"], pod, "{step}: {error} {}", got["body"]);
}

/// What the allowed and the denied client got, and the guard's audit lines of each.
fn check_linode(
    (instance, network): (&Value, &Value),
    allowed: &Report,
    denied: &Report,
    prod: &[&Value],
    test: &[&Value],
) {
    // The allowed pod: a token (managed by the client), then its instance and network, equal to
    // what the emulator serves.
    let got = allowed.ok("instance");
    for key in ["id", "label", "region", "type"] {
        assert_eq!(got[key], instance[key], "{key}: {got}");
    }
    assert_eq!(got["vcpus"], instance["specs"]["vcpus"], "{got}");
    assert!(!got["token"].as_str().unwrap().is_empty(), "{got}");
    let got = allowed.ok("network");
    assert_eq!(got["ipv4_public"], network["ipv4"]["public"], "{got}");
    assert_eq!(got["ipv4_private"], network["ipv4"]["private"], "{got}");
    assert_eq!(got["ipv6_slaac"], network["ipv6"]["slaac"], "{got}");
    assert_eq!(
        got["ipv6_link_local"], network["ipv6"]["link_local"],
        "{got}"
    );
    let purposes: Vec<&Value> = network["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["purpose"])
        .collect();
    assert_eq!(got["purposes"], serde_json::json!(purposes), "{got}");
    // The user data: its token is granted (any pod with a rule gets one), the read refused.
    api_refusal(allowed, "user_data", "imds/prod-5c7b9", "path-not-allowed");
    // A managed token past its age is asked for anew before the next read, which carries it.
    let got = allowed.ok("refresh");
    assert_eq!(
        got["ids"],
        serde_json::json!([instance["id"], instance["id"]])
    );
    let tokens = got["tokens"].as_array().unwrap();
    assert_ne!(tokens[0], tokens[1], "the token was not renewed: {got}");
    // A day asked for: granted, capped at the guard's 21600 s, which the guard states in the
    // answer's Metadata-Token-Expiry-Seconds (the service sends no such header; the client reads
    // none and keeps its own count of a day).
    let got = allowed.ok("long_token");
    assert_eq!(got["id"], instance["id"], "{got}");
    assert_eq!(got["expiry_seconds"], 86_400, "{got}");
    let long: Vec<&Value> = allowed.value["answers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["sent_ttl"] == "86400")
        .collect();
    assert_eq!(long.len(), 1, "{:?}", answers(allowed));
    assert_eq!(long[0]["status"], 200, "{}", long[0]);
    assert_eq!(long[0]["ttl"], "21600", "{}", long[0]);
    // Six token requests (one per client, two for the refresh), every one answered; every read
    // carried a token.
    let puts = allowed.value["answers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["method"] == "PUT")
        .collect::<Vec<_>>();
    assert!(
        puts.len() == 6
            && puts
                .iter()
                .all(|a| a["path"] == "/v1/token" && a["status"] == 200),
        "{:?}",
        answers(allowed)
    );
    assert!(
        allowed.value["answers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["method"] == "PUT" || a["sent_token"] == true),
        "a read without a token: {:?}",
        answers(allowed)
    );

    // The denied pod: every step ends at its first token request, refused at once; no read is
    // even tried.
    for step in ["instance", "network", "user_data", "refresh", "long_token"] {
        api_refusal(denied, step, "imds/test-6d8f", "no-rule");
    }
    assert_eq!(
        answers(denied),
        vec!["PUT /v1/token 403"; 5],
        "the denied client got further than its token request"
    );

    // The audit: the allowed pod's token requests and reads, its user data refused; the denied
    // pod's token requests refused.
    let (reads, refused) = split_refused(prod);
    assert_allowed(&reads, &["/v1/token", "/v1/instance", "/v1/network"]);
    assert_eq!(
        reads.iter().filter(|e| text(e, "method") == "PUT").count(),
        6,
        "{}",
        briefs(&reads)
    );
    assert_denied(&refused, "imds/prod-5c7b9", "path-not-allowed");
    assert!(
        refused.iter().all(|e| text(e, "path") == "/v1/user-data"),
        "{}",
        briefs(&refused)
    );
    assert_denied(test, "imds/test-6d8f", "no-rule");
    assert!(
        test.len() == 5
            && test
                .iter()
                .all(|e| text(e, "method") == "PUT" && text(e, "path") == "/v1/token"),
        "{}",
        briefs(test)
    );
}

#[test]
fn linode_metadata_client_reads_its_instance_at_the_fixed_address_for_the_allowed_pod_only() {
    let mut lab = Lab::new("linode", &["169.254.169.254/32"], &[]);
    let (instance, network) = linode_served(&lab);
    // The client's own default address, http://169.254.169.254/v1: no override.
    let (allowed, denied, prod, test) = allowed_then_denied_at(
        &mut lab,
        LINODE,
        LINODE_ALLOW,
        "linode_metadata_client.py",
        &[],
    );
    check_linode(
        (&instance, &network),
        &allowed,
        &denied,
        &prod.iter().collect::<Vec<_>>(),
        &test.iter().collect::<Vec<_>>(),
    );
    eprintln!("clients: {}", allowed.versions());
}

#[test]
fn linode_metadata_client_reads_its_instance_at_its_base_url_for_the_allowed_pod_only() {
    let mut lab = Lab::new("linode", &[], &[]);
    let (instance, network) = linode_served(&lab);
    lab.start_guard(&config("linode", &listen_all(), SEED_PODS, LINODE_ALLOW));
    // MetadataClient(base_url=...), its documented argument.
    let env = |pod: &str| vec![("LINODE_BASE_URL", format!("http://{pod}:{PORT}/v1"))];
    let (allowed, denied, audit) = allowed_then_denied(&mut lab, "linode_metadata_client.py", env);
    check_linode(
        (&instance, &network),
        &allowed,
        &denied,
        &from(&audit, PROD),
        &from(&audit, TEST),
    );
    eprintln!("clients: {}", allowed.versions());
}
