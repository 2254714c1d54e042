//! The Kubernetes manifests in `deploy/`, checked as a cluster would see them.
//!
//! The base, an overlay of the base with every component under `deploy/components/` but the
//! cloud ones and the cgroup interception (and, in `deploy/clouds.rs`, one overlay per cloud
//! component), and overlays with the cgroup interception, alone and with each cloud, are rendered with
//! `kubectl kustomize` and validated with `kubernetes-validate --strict` (offline
//! schemas; unknown fields are errors). The rendered objects are then read as JSON and held to what
//! the guard promises: read-only RBAC with nothing on secrets and, in the base, nothing on nodes;
//! a hostNetwork DaemonSet with no capability but NET_ADMIN (and NET_RAW, which iptables-legacy
//! needs) — or, with the cgroup interception, BPF and NET_ADMIN, the host's cgroup root and BPF
//! filesystem and its pod's UID; arguments the real binary accepts; probes on the admin port the
//! config really listens on; a ConfigMap that the real binary's `check` accepts; and a canary
//! on the pod network with no capability, no host path and no service-account token.
//!
//! `kubectl`, `kubernetes-validate` and `python3` with PyYAML are required: when one is missing the
//! tests fail and say what to install; they never skip.

use crate::checks;
#[path = "deploy/clouds.rs"]
mod clouds;
use crate::render;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use checks::{check_canary, check_daemonset, check_rbac_common, rbac_rules, set, verbs_on};
use render::{
    base, canary, cloud_components, components, config, config_text, copy_of_deploy, everything,
    guard, guard_daemonset, of_kind, one, overlay, port_of, render, strings,
    INTERCEPTION_COMPONENTS,
};

/// The taint the startup-taint component has the guard remove, and the argument that says so.
const TAINT_ARG: &str = "--remove-startup-taint=imds-guard/not-ready";

#[test]
fn base_renders_and_validates_strictly() {
    let r = base();
    let kinds: BTreeSet<&str> = r
        .objects
        .iter()
        .map(|o| o["kind"].as_str().expect("kind"))
        .collect();
    let expected = [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "DaemonSet",
        "Namespace",
        "ServiceAccount",
    ];
    assert_eq!(kinds, expected.into_iter().collect(), "{}", r.yaml);
}

#[test]
fn every_component_renders_and_validates_strictly() {
    let names = components();
    for known in [
        "networkpolicy",
        "startup-taint",
        "canary",
        "monitoring",
        "cgroup-interception",
    ] {
        assert!(
            names.iter().any(|n| n == known),
            "component {known} missing: {names:?}"
        );
    }
    let r = everything();
    assert_eq!(of_kind(r, "NetworkPolicy").count(), 2, "{}", r.yaml);
    // Behind the DNAT, the labelled pods' requests go to the guard's port on the node.
    let listen = config(r)["server"]["listen"]
        .as_str()
        .expect("listen")
        .to_owned();
    let allow = of_kind(r, "NetworkPolicy")
        .find(|p| p["metadata"]["name"] == "allow-node-metadata")
        .expect("allow-node-metadata");
    let egress = allow["spec"]["egress"].as_array().expect("egress");
    assert!(
        egress
            .iter()
            .any(|rule| rule["ports"].as_array().is_some_and(|ports| ports
                .iter()
                .any(|p| p["port"].as_u64() == Some(port_of(&listen))))),
        "allow-node-metadata does not let the labelled pods reach {listen}: {allow}"
    );
}

#[test]
fn base_rbac_reads_pods_and_namespaces_and_nothing_else() {
    let r = base();
    check_rbac_common(r);
    let rules = rbac_rules(r);
    assert!(
        verbs_on(&rules, "nodes").is_empty(),
        "the base needs no access to nodes"
    );
    let resources: BTreeSet<&str> = rules
        .iter()
        .flat_map(|rule| strings(&rule["resources"]))
        .collect();
    assert_eq!(resources, ["namespaces", "pods"].into_iter().collect());
}

#[test]
fn startup_taint_adds_get_and_patch_on_nodes_only() {
    let r = everything();
    check_rbac_common(r);
    let rules = rbac_rules(r);
    assert_eq!(verbs_on(&rules, "nodes"), set(&["get", "patch"]));
    for rule in &rules {
        for resource in strings(&rule["resources"]) {
            assert!(
                !resource.starts_with("nodes/"),
                "node subresources granted: {rule}"
            );
        }
    }
    let (_, c) = guard(r);
    let args = strings(&c["args"]);
    assert_eq!(
        args.iter().filter(|a| **a == TAINT_ARG).count(),
        1,
        "{args:?}"
    );
    let (_, c) = guard(base());
    assert!(
        !strings(&c["args"]).contains(&TAINT_ARG),
        "the base must not remove taints"
    );
}

#[test]
fn daemonset_is_hostnetwork_with_netfilter_capabilities_only() {
    check_daemonset(base());
    check_daemonset(everything());
}

/// The policies protect the namespaces they name, whether the component is enabled in an overlay
/// or in the base's own kustomization.yaml (as its comments suggest).
#[test]
fn networkpolicies_stay_in_their_own_namespace() {
    let dir = copy_of_deploy();
    let kustomization = dir.path().join("deploy/kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization).expect("read kustomization");
    let enabled = text
        .replace("# components:", "components:")
        .replace("#   - components/", "  - components/");
    assert_ne!(enabled, text, "the base lists its components in a comment");
    std::fs::write(&kustomization, enabled).expect("write kustomization");
    let in_base = render(&dir.path().join("deploy"));
    assert_eq!(
        of_kind(&in_base, "DaemonSet").count(),
        2,
        "the guard and the canary"
    );
    check_canary(&in_base);
    for r in [&in_base, everything()] {
        let policies: Vec<&Value> = of_kind(r, "NetworkPolicy").collect();
        assert_eq!(policies.len(), 2, "{}", r.yaml);
        for p in policies {
            assert_eq!(p["metadata"]["namespace"], "default", "{p}");
        }
        let (_, c) = guard(r);
        assert!(strings(&c["args"]).contains(&TAINT_ARG));
    }
}

/// Runs `imds-guard check` on a rendered config as the DaemonSet would; panics unless it passes.
fn assert_check_passes(r: &render::Rendered, what: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("config.toml");
    std::fs::write(&file, config_text(r)).expect("write config");
    let out = Command::new(env!("CARGO_BIN_EXE_imds-guard"))
        .arg("check")
        .arg("--config")
        .arg(&file)
        .env("HOST_IP", "10.0.0.1")
        .env("NODE_NAME", "n")
        .env("POD_UID", "6f1c9a4e-0000-4000-8000-000000000001")
        .output()
        .expect("run imds-guard check");
    assert!(
        out.status.success(),
        "imds-guard check refused {what}'s config.toml:\n{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        config_text(r)
    );
}

/// components/cgroup-interception, alone, with every other component, and after each cloud
/// component: the guard's DaemonSet as the cgroup method needs it (checks::check_cgroup_method)
/// and nothing else changed; the config is the one before with the section appended.
#[test]
fn cgroup_interception_holds_its_promises_alone_and_with_every_cloud() {
    assert_eq!(INTERCEPTION_COMPONENTS, ["cgroup-interception"]);
    let alone = overlay(&["cgroup-interception"]);
    check_daemonset(&alone);
    check_rbac_common(&alone);
    assert_check_passes(&alone, "cgroup-interception");
    assert_eq!(checks::interception_method(&alone), "cgroup");
    assert_eq!(checks::interception_method(base()), "netfilter");
    // The base's config, with the section after it.
    let before = config_text(base());
    let after = config_text(&alone);
    let appended = after
        .strip_prefix(before.as_str())
        .expect("the base's config.toml comes first, unchanged");
    assert!(
        appended.trim_start().starts_with("[interception]"),
        "{appended}"
    );
    // The rest of the render is the base's.
    for kind in [
        "ClusterRole",
        "ClusterRoleBinding",
        "ServiceAccount",
        "Namespace",
    ] {
        assert_eq!(one(&alone, kind), one(base(), kind), "{kind}");
    }
    assert_eq!(alone.objects.len(), base().objects.len());

    // With every other component: the canary and the startup taint as they were.
    let mut names: Vec<String> = components()
        .into_iter()
        .filter(|n| !n.starts_with("cloud-"))
        .collect();
    names.retain(|n| n != "cgroup-interception");
    names.push("cgroup-interception".into());
    let all = overlay(&names.iter().map(String::as_str).collect::<Vec<_>>());
    check_daemonset(&all);
    check_canary(&all);
    assert_check_passes(&all, "every component, cgroup-interception");
    assert_eq!(canary(&all), canary(everything()));
    let (_, c) = guard(&all);
    assert!(strings(&c["args"]).contains(&TAINT_ARG));

    // After a cloud component (which replaces config.toml whole), the cloud's config with the
    // section.
    for cloud in cloud_components() {
        let r = overlay(&[&cloud, "cgroup-interception"]);
        check_daemonset(&r);
        assert_check_passes(&r, &format!("{cloud}, cgroup-interception"));
        let name = cloud.strip_prefix("cloud-").unwrap();
        assert_eq!(
            config(&r)["upstream"]["cloud"].as_str(),
            Some(name),
            "{cloud}"
        );
        let cloud_alone = overlay(&[&cloud]);
        assert!(
            config_text(&r).starts_with(&config_text(&cloud_alone)),
            "{cloud}: its config.toml comes first"
        );
    }
}

/// The real binary accepts the canary's arguments (clap refuses an unknown flag or value before
/// it reaches `--help`).
fn assert_canary_args_parse(r: &render::Rendered) {
    let args = strings(&canary(r)["spec"]["template"]["spec"]["containers"][0]["args"]);
    let out = Command::new(env!("CARGO_BIN_EXE_imds-guard"))
        .args(&args)
        .arg("--help")
        .output()
        .expect("run imds-guard");
    assert!(
        out.status.success(),
        "imds-guard refuses the canary's args {args:?}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// components/canary, alone and with everything: see checks::check_canary. The guard's
/// DaemonSet is left as it was, and each cloud component (listed after it) sets its --cloud.
#[test]
fn canary_is_an_unprivileged_pod_on_every_node() {
    let alone = overlay(&["canary"]);
    check_canary(&alone);
    assert_canary_args_parse(&alone);
    check_canary(everything());
    check_daemonset(&alone);
    assert_eq!(guard_daemonset(&alone), guard_daemonset(base()));
    assert_eq!(
        strings(&canary(&alone)["spec"]["template"]["spec"]["containers"][0]["args"])[1],
        "--cloud=aws",
        "the base's cloud"
    );
    for cloud in cloud_components() {
        let r = overlay(&["canary", &cloud]);
        check_canary(&r);
        assert_canary_args_parse(&r);
        let args = strings(&canary(&r)["spec"]["template"]["spec"]["containers"][0]["args"]);
        let want = format!("--cloud={}", cloud.strip_prefix("cloud-").unwrap());
        assert_eq!(
            args.iter()
                .filter(|a| a.starts_with("--cloud"))
                .collect::<Vec<_>>(),
            [&want.as_str()],
            "{cloud}"
        );
        assert_eq!(
            config(&r)["upstream"]["cloud"].as_str(),
            want.strip_prefix("--cloud="),
            "the canary probes the guard's cloud"
        );
    }
}

#[test]
fn configmap_passes_imds_guard_check() {
    for (r, what) in [(base(), "the base"), (everything(), "every component")] {
        assert_check_passes(r, what);
        let config = config(r);
        assert_eq!(config["inventory"]["source"].as_str(), Some("kubernetes"));
        assert_eq!(config["netfilter"]["manage"].as_bool(), Some(true));
    }
}

/// The sidecar example: it renders and validates; the sidecar runs as exactly the UID the rules
/// exempt, with no capability; only the init container that installs the rules has any (and only
/// the netfilter ones); and its policy passes the real binary's `check`.
#[test]
fn sidecar_example_renders_and_holds_its_promises() {
    let r = render(&render::deploy_dir().join("sidecar/example"));
    let deployment = of_kind(&r, "Deployment").next().expect("a Deployment");
    let spec = &deployment["spec"]["template"]["spec"];
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|k| spec[k].as_array().into_iter().flatten())
        .collect();
    let with_caps: Vec<&str> = containers
        .iter()
        .filter(|c| c["securityContext"]["capabilities"]["add"].is_array())
        .map(|c| c["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        with_caps,
        ["imds-guard-iptables"],
        "only the rule installer has capabilities"
    );
    let installer = containers
        .iter()
        .find(|c| c["name"] == "imds-guard-iptables")
        .unwrap();
    assert_eq!(
        strings(&installer["securityContext"]["capabilities"]["add"]),
        ["NET_ADMIN", "NET_RAW"]
    );
    assert!(strings(&installer["args"]).contains(&"--sidecar"));

    let sidecar = containers
        .iter()
        .find(|c| c["name"] == "imds-guard")
        .expect("the sidecar");
    assert_eq!(
        sidecar["restartPolicy"], "Always",
        "a native sidecar, started before the app"
    );
    assert_eq!(sidecar["securityContext"]["runAsNonRoot"], true);
    let uid = sidecar["securityContext"]["runAsUser"]
        .as_i64()
        .expect("runAsUser");

    let configmap = of_kind(&r, "ConfigMap")
        .next()
        .expect("the policy ConfigMap");
    let text = configmap["data"]["config.toml"]
        .as_str()
        .expect("config.toml");
    let policy: toml::Table = toml::from_str(text).expect("TOML");
    assert_eq!(
        policy["netfilter"]["sidecar_uid"].as_integer(),
        Some(uid),
        "the exempted UID is the sidecar's runAsUser"
    );
    assert_eq!(policy["inventory"]["source"].as_str(), Some("self"));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_imds-guard"))
        .args(["check", "--config"])
        .arg(&path)
        .env("POD_NAME", "inventory-api-0")
        .env("POD_NAMESPACE", "shop")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
