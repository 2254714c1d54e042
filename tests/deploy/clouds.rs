//! The cloud components (`deploy/components/cloud-*`): one per cloud but AWS (the base's); each
//! renders, with the NetworkPolicy recipe and without it; its config names its cloud and address,
//! passes the real binary's `check`, and keeps the base's other sections; the NetworkPolicies
//! cover its address; and its default policy decides as its comments say (`imds-guard explain`).

use std::process::{Command, Output};

use imds_guard_core::cloud::{Cloud, ALL};
use serde_json::Value;

use super::render::{
    base, cloud_components, config, config_text, everything, guard_daemonset, of_kind, one, overlay,
};

const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");
/// The seed recipe's label, and the one the GCP and OCI policies give identity credentials to.
const SEED: &str = "allow-node-metadata-lookup";
const IDENTITY: &str = "allow-node-metadata-identity";

fn cloud_of(component: &str) -> Cloud {
    let name = component.strip_prefix("cloud-").expect("cloud-NAME");
    name.parse()
        .unwrap_or_else(|e| panic!("component {component}: {e}"))
}

/// Runs the real binary on `config` (written to a file) as the DaemonSet would.
fn guard(args: &[&str], config: &str) -> Output {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config).expect("write config");
    Command::new(BIN)
        .args(args)
        .arg("--config")
        .arg(&file)
        .env("HOST_IP", "10.0.0.1")
        .env("NODE_NAME", "n")
        .output()
        .expect("run imds-guard")
}

#[test]
fn there_is_one_cloud_component_per_cloud_but_aws() {
    let mut have: Vec<&str> = cloud_components()
        .iter()
        .map(|n| cloud_of(n).as_str())
        .collect();
    let mut want: Vec<&str> = ALL
        .iter()
        .filter(|c| **c != Cloud::Aws)
        .map(|c| c.as_str())
        .collect();
    have.sort_unstable();
    want.sort_unstable();
    assert_eq!(have, want);
    // AWS is the base's.
    let upstream = &config(base())["upstream"];
    assert_eq!(upstream.get("cloud").and_then(|c| c.as_str()), Some("aws"));
}

#[test]
fn every_cloud_component_renders_its_cloud_s_config_and_covers_its_address() {
    let base_config = config(base());
    for name in cloud_components() {
        let cloud = cloud_of(&name);
        let r = overlay(&["networkpolicy", "startup-taint", &name]);
        let c = config(&r);
        assert_eq!(
            c["upstream"]["cloud"].as_str(),
            Some(cloud.as_str()),
            "{name}"
        );
        assert_eq!(
            c["upstream"]["url"].as_str(),
            Some(cloud.default_url().as_str()),
            "{name}"
        );
        let out = guard(&["check"], &config_text(&r));
        assert!(
            out.status.success(),
            "imds-guard check refused {name}'s config.toml:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Everything but the upstream, the token settings, the cache, the limits and the rules is
        // the base's. No cache: it needs guard tokens, which are AWS's only.
        for section in ["server", "inventory", "netfilter"] {
            assert_eq!(c[section], base_config[section], "{name}: [{section}]");
        }
        assert!(
            c.get("cache").is_none(),
            "{name}: [cache] without guard tokens"
        );
        for (key, value) in base_config["limits"].as_table().expect("[limits]") {
            let mine = &c["limits"][key.as_str()];
            if cloud == Cloud::Azure && key == "upstream_requests_per_second" {
                // Azure IMDS throttles at 5 requests/s per VM.
                assert!(mine.as_float().or(mine.as_integer().map(|i| i as f64)) <= Some(5.0));
            } else {
                assert_eq!(mine, value, "{name}: limits.{key}");
            }
        }
        // The NetworkPolicy recipe covers this cloud's address.
        let address = format!("{}/32", cloud.ipv4());
        let policy = |n: &str| {
            of_kind(&r, "NetworkPolicy")
                .find(|p| p["metadata"]["name"] == n)
                .unwrap_or_else(|| panic!("{name}: no NetworkPolicy {n}"))
                .clone()
        };
        let deny = policy("deny-node-metadata");
        let block = &deny["spec"]["egress"][0]["to"][0]["ipBlock"];
        assert_eq!(
            block["except"],
            Value::from(vec![address.clone()]),
            "{name}: {deny}"
        );
        let allow = policy("allow-node-metadata");
        let block = &allow["spec"]["egress"][0]["to"][0]["ipBlock"];
        assert_eq!(
            block["cidr"],
            Value::from(address.clone()),
            "{name}: {allow}"
        );
        // Nothing else changes: the guard's DaemonSet and the RBAC are those of the same overlay
        // without it (the canary's --cloud is tests/deploy.rs's).
        assert_eq!(
            guard_daemonset(&r),
            guard_daemonset(everything()),
            "{name}: DaemonSet"
        );
        assert_eq!(
            one(&r, "ClusterRole"),
            one(everything(), "ClusterRole"),
            "{name}: ClusterRole"
        );
        // Alone, it brings no NetworkPolicy, and the same config.
        let alone = overlay(&[&name]);
        assert_eq!(of_kind(&alone, "NetworkPolicy").count(), 0, "{name}");
        assert_eq!(config_text(&alone), config_text(&r), "{name}");
    }
}

/// `imds-guard explain` on a cloud component's config, with a static inventory of three pods in
/// place of the Kubernetes one: labelled with [`SEED`], with [`IDENTITY`], and with neither.
/// `path` may carry a query (GCP's and Azure's endpoints demand some). Returns "allow" or "deny",
/// and the reason.
fn decide(config_text: &str, label: &str, path: &str) -> (String, String) {
    let mut table: toml::Table = toml::from_str(config_text).expect("config.toml is TOML");
    let inventory: toml::Table = toml::from_str(&format!(
        "source = \"static\"\n\
         [[pods]]\nip = \"10.1.0.1\"\nnamespace = \"imds\"\nname = \"seed\"\nlabels = {{ \"{SEED}\" = \"true\" }}\n\
         [[pods]]\nip = \"10.1.0.2\"\nnamespace = \"imds\"\nname = \"identity\"\nlabels = {{ \"{IDENTITY}\" = \"true\" }}\n\
         [[pods]]\nip = \"10.1.0.3\"\nnamespace = \"imds\"\nname = \"other\"\n"
    ))
    .expect("inventory");
    table.insert("inventory".into(), toml::Value::Table(inventory));
    let source = match label {
        SEED => "10.1.0.1",
        IDENTITY => "10.1.0.2",
        _ => "10.1.0.3",
    };
    let text = toml::to_string(&table).expect("TOML");
    let out = guard(&["explain", "--source", source, "--path", path], &text);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |name: &str| {
        said.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|d| d.trim().to_owned())
            .unwrap_or_else(|| panic!("explain {path}: no {name} in {said}"))
    };
    (field("decision:"), field("reason:"))
}

#[test]
fn every_cloud_s_default_policy_decides_as_its_comments_say() {
    let allow = true;
    let deny = false;
    // (component, the pod's label, path with its query, allowed)
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, bool)] = &[
        ("cloud-gcp", SEED, "/", allow),
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/zone", allow),
        ("cloud-gcp", SEED, "/computeMetadata/v1/project/project-id", allow),
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/attributes/cluster-name", allow),
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/service-accounts/default/token", allow),
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/service-accounts/default/email", allow),
        // google-auth's recursive read of the account; not the instance's (kube-env is below).
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/service-accounts/default/?recursive=true", allow),
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/?recursive=true", deny),
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/attributes/kube-env", deny),
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/attributes/startup-script", deny),
        ("cloud-gcp", SEED, "/computeMetadata/v1/project/attributes/user-data", deny),
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/credentials/certs", deny),
        ("cloud-gcp", SEED, "/0.1/meta-data/attributes/kube-env", deny),
        ("cloud-gcp", SEED, "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://x.example", deny),
        ("cloud-gcp", IDENTITY, "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://x.example", allow),
        ("cloud-gcp", IDENTITY, "/computeMetadata/v1/instance/zone", deny),
        ("cloud-gcp", "", "/computeMetadata/v1/instance/zone", deny),
        ("cloud-azure", SEED, "/metadata/instance/compute/location?api-version=2021-02-01&format=text", allow),
        ("cloud-azure", SEED, "/metadata/instance/network/interface?api-version=2021-02-01", allow),
        ("cloud-azure", SEED, "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net", allow),
        ("cloud-azure", SEED, "/metadata/scheduledevents?api-version=2020-07-01", allow),
        ("cloud-azure", SEED, "/metadata/versions", allow),
        ("cloud-azure", SEED, "/metadata/instance/compute/userData?api-version=2021-01-01&format=text", deny),
        ("cloud-azure", SEED, "/metadata/instance/compute/osProfile/adminUsername?api-version=2021-02-01&format=text", deny),
        ("cloud-azure", SEED, "/metadata/instance/compute/publicKeys/0/keyData?api-version=2021-02-01&format=text", deny),
        ("cloud-azure", SEED, "/metadata/instance?api-version=2021-02-01", deny),
        ("cloud-azure", SEED, "/metadata/instance/compute?api-version=2021-02-01", deny),
        ("cloud-azure", SEED, "/metadata/attested/document?api-version=2020-09-01", deny),
        ("cloud-azure", "", "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://vault.azure.net", deny),
        ("cloud-alibaba", SEED, "/latest/meta-data/instance-id", allow),
        ("cloud-alibaba", SEED, "/latest/meta-data/ram/security-credentials/role", allow),
        ("cloud-alibaba", "", "/latest/meta-data/instance-id", deny),
        ("cloud-oci", SEED, "/opc/v2/instance/region", allow),
        ("cloud-oci", SEED, "/opc/v2/instance/metadata/ssh_authorized_keys", allow),
        ("cloud-oci", SEED, "/opc/v2/instance/metadata/user_data", deny),
        ("cloud-oci", SEED, "/opc/v2/instance/", deny),
        ("cloud-oci", SEED, "/opc/v2/identity/key.pem", deny),
        ("cloud-oci", SEED, "/opc/v1/instance/region", deny),
        ("cloud-oci", IDENTITY, "/opc/v2/identity/key.pem", allow),
        ("cloud-oci", IDENTITY, "/opc/v2/instance/region", allow),
        ("cloud-oci", "", "/opc/v2/instance/region", deny),
        ("cloud-openstack", SEED, "/openstack/latest/meta_data.json", allow),
        ("cloud-openstack", SEED, "/openstack/2018-08-27/network_data.json", allow),
        ("cloud-openstack", SEED, "/latest/meta-data/instance-id", allow),
        ("cloud-openstack", SEED, "/2009-04-04/meta-data/hostname", allow),
        ("cloud-openstack", SEED, "/openstack/latest/user_data", deny),
        ("cloud-openstack", SEED, "/openstack/latest/vendor_data2.json", deny),
        ("cloud-openstack", SEED, "/openstack/latest/password", deny),
        ("cloud-openstack", SEED, "/latest/user-data", deny),
        ("cloud-openstack", "", "/openstack/latest/meta_data.json", deny),
        ("cloud-digitalocean", SEED, "/metadata/v1/", allow),
        ("cloud-digitalocean", SEED, "/metadata/v1/id", allow),
        ("cloud-digitalocean", SEED, "/metadata/v1/interfaces/public/0/ipv4/address", allow),
        ("cloud-digitalocean", SEED, "/metadata/v1/user-data", deny),
        ("cloud-digitalocean", SEED, "/metadata/v1/vendor-data", deny),
        ("cloud-digitalocean", SEED, "/metadata/v1/auth-token", deny),
        ("cloud-digitalocean", SEED, "/metadata/v1.json", deny),
        ("cloud-digitalocean", "", "/metadata/v1/id", deny),
        ("cloud-hetzner", SEED, "/hetzner/v1/metadata", allow),
        ("cloud-hetzner", SEED, "/hetzner/v1/metadata/instance-id", allow),
        ("cloud-hetzner", SEED, "/hetzner/v1/metadata/private-networks", allow),
        ("cloud-hetzner", SEED, "/hetzner/v1/userdata", deny),
        ("cloud-hetzner", "", "/hetzner/v1/metadata/instance-id", deny),
        ("cloud-tencent", SEED, "/latest/meta-data/instance-id", allow),
        ("cloud-tencent", SEED, "/latest/meta-data/cam/security-credentials/role", allow),
        ("cloud-tencent", SEED, "/latest/user-data", deny),
        ("cloud-tencent", "", "/latest/meta-data/instance-id", deny),
        ("cloud-huawei", SEED, "/openstack/latest/meta_data.json", allow),
        ("cloud-huawei", SEED, "/latest/meta-data/instance-id", allow),
        ("cloud-huawei", SEED, "/openstack/latest/securitykey", deny),
        ("cloud-huawei", SEED, "/openstack/2018-08-27/securitykey", deny),
        ("cloud-huawei", SEED, "/openstack/latest/user_data", deny),
        ("cloud-huawei", SEED, "/openstack/latest/password", deny),
        ("cloud-huawei", "", "/openstack/latest/meta_data.json", deny),
        ("cloud-exoscale", SEED, "/1.0/meta-data/instance-id", allow),
        ("cloud-exoscale", SEED, "/latest/meta-data/public-ipv4", allow),
        ("cloud-exoscale", SEED, "/1.0/user-data", deny),
        ("cloud-exoscale", SEED, "/latest/user-data", deny),
        ("cloud-exoscale", "", "/latest/meta-data/instance-id", deny),
        ("cloud-linode", SEED, "/v1/instance", allow),
        ("cloud-linode", SEED, "/v1/ssh-keys", allow),
        ("cloud-linode", SEED, "/v1/user-data", deny),
        ("cloud-linode", "", "/v1/instance", deny),
    ];
    for name in cloud_components() {
        assert!(
            cases.iter().any(|c| c.0 == name),
            "no policy cases for {name}"
        );
    }
    let mut wrong = Vec::new();
    for name in cloud_components() {
        let text = config_text(&overlay(&[&name]));
        for &(_, label, path, allowed) in cases.iter().filter(|c| c.0 == name) {
            let want = if allowed { "allow" } else { "deny" };
            let (got, reason) = decide(&text, label, path);
            // A deny must be the policy's, not a malformed request's.
            let policy_reasons = [
                "denied-by-rule",
                "path-not-allowed",
                "no-rule",
                "aggregate-denied",
                "concealed-path",
                "legacy-endpoint",
            ];
            if got != want || (got == "deny" && !policy_reasons.contains(&reason.as_str())) {
                wrong.push(format!(
                    "{name}: pod labelled {label:?}, {path}: {got} ({reason}), not {want}"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
