//! What every rendering of `deploy/` must hold to: the RBAC rules and the DaemonSet.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::render::{config, config_map, guard, of_kind, one, port_of, strings, Rendered};

/// Every RBAC rule of every Role and ClusterRole, after checking that no `*` appears in any.
pub fn rbac_rules(r: &Rendered) -> Vec<&Value> {
    let mut rules = Vec::new();
    for role in of_kind(r, "ClusterRole").chain(of_kind(r, "Role")) {
        for rule in role["rules"].as_array().expect("rules") {
            for key in [
                "apiGroups",
                "resources",
                "verbs",
                "resourceNames",
                "nonResourceURLs",
            ] {
                let values = strings(&rule[key]);
                assert!(
                    !values.iter().any(|v| v.contains('*')),
                    "`*` in {key}: {rule}"
                );
            }
            rules.push(rule);
        }
    }
    assert!(!rules.is_empty(), "no RBAC rules rendered");
    rules
}

/// The verbs granted on `resource` (subresources included), over all rules.
pub fn verbs_on(rules: &[&Value], resource: &str) -> BTreeSet<String> {
    let prefix = format!("{resource}/");
    rules
        .iter()
        .filter(|rule| {
            strings(&rule["resources"])
                .iter()
                .any(|r| *r == resource || r.starts_with(&prefix))
        })
        .flat_map(|rule| strings(&rule["verbs"]))
        .map(str::to_owned)
        .collect()
}

pub fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What holds in every rendering: only read verbs on pods and namespaces, nothing on secrets,
/// only the core API group, and bindings only to roles rendered here.
pub fn check_rbac_common(r: &Rendered) {
    let rules = rbac_rules(r);
    for rule in &rules {
        assert_eq!(
            strings(&rule["apiGroups"]),
            [""],
            "a rule outside the core group: {rule}"
        );
        assert!(
            rule.get("nonResourceURLs").is_none(),
            "non-resource URLs granted: {rule}"
        );
    }
    let read = set(&["get", "list", "watch"]);
    for resource in ["pods", "namespaces"] {
        let verbs = verbs_on(&rules, resource);
        assert!(
            verbs.is_subset(&read),
            "{resource}: {verbs:?} goes beyond reading"
        );
    }
    assert_eq!(
        verbs_on(&rules, "pods"),
        read,
        "the pod watch needs get, list and watch"
    );
    assert!(
        verbs_on(&rules, "secrets").is_empty(),
        "secrets must not be granted"
    );
    let roles: BTreeSet<&str> = of_kind(r, "ClusterRole")
        .map(|role| role["metadata"]["name"].as_str().expect("name"))
        .collect();
    for binding in of_kind(r, "ClusterRoleBinding").chain(of_kind(r, "RoleBinding")) {
        let role = binding["roleRef"]["name"].as_str().expect("roleRef.name");
        assert!(
            roles.contains(role),
            "binding to a role not defined here: {binding}"
        );
        assert_eq!(
            binding["subjects"][0]["kind"], "ServiceAccount",
            "{binding}"
        );
        assert_eq!(binding["subjects"][0]["name"], "imds-guard", "{binding}");
    }
}

/// Everything the DaemonSet must be, in any rendering.
pub fn check_daemonset(r: &Rendered) {
    let ds = one(r, "DaemonSet");
    assert_eq!(ds["spec"]["updateStrategy"]["type"], "RollingUpdate");
    let (pod, c) = guard(r);
    assert_eq!(
        pod["hostNetwork"], true,
        "the guard listens on the node's address"
    );
    assert_eq!(pod["priorityClassName"], "system-node-critical");
    assert!(
        pod["tolerations"]
            .as_array()
            .expect("tolerations")
            .iter()
            .any(|t| {
                t["operator"] == "Exists" && t.get("key").is_none() && t.get("effect").is_none()
            }),
        "the guard must tolerate every taint: {}",
        pod["tolerations"]
    );
    for hazard in ["hostPID", "hostIPC"] {
        assert_ne!(pod[hazard], true, "{hazard} is not needed");
    }
    assert!(
        pod.get("initContainers").is_none(),
        "no init containers expected"
    );

    // The downward API gives the node's name (the pod watch) and address (the listeners).
    let env = c["env"].as_array().expect("env");
    for (name, field) in [("NODE_NAME", "spec.nodeName"), ("HOST_IP", "status.hostIP")] {
        let var = env.iter().find(|e| e["name"] == name);
        let var = var.unwrap_or_else(|| panic!("{name} not set"));
        assert_eq!(var["valueFrom"]["fieldRef"]["fieldPath"], field, "{name}");
    }

    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    // NET_ADMIN for netfilter, NET_RAW for iptables-legacy's raw socket; nothing else.
    assert_eq!(
        strings(&sc["capabilities"]["add"]),
        ["NET_ADMIN", "NET_RAW"]
    );
    assert_ne!(sc["privileged"], true, "must not be privileged");
    assert_ne!(pod["securityContext"]["privileged"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);

    for kind in ["requests", "limits"] {
        let amounts = c["resources"][kind].as_object();
        assert!(
            amounts.is_some_and(|a| !a.is_empty()),
            "resources.{kind} missing"
        );
    }
    assert!(c["resources"]["requests"]["cpu"].is_string(), "cpu request");
    assert!(
        c["resources"]["requests"]["memory"].is_string(),
        "memory request"
    );
    assert!(
        c["resources"]["limits"]["memory"].is_string(),
        "memory limit"
    );

    // The probes reach the admin listener: the port the config listens on, on the node's address
    // (the kubelet probes the pod's IP, which for a hostNetwork pod is the node's).
    let config = config(r);
    let admin_listen = config["server"]["admin_listen"]
        .as_str()
        .expect("admin_listen");
    assert!(
        admin_listen.starts_with("${HOST_IP}:"),
        "admin_listen = {admin_listen}"
    );
    let listen = config["server"]["listen"].as_str().expect("listen");
    assert!(listen.starts_with("${HOST_IP}:"), "listen = {listen}");
    let ports = c["ports"].as_array().expect("ports");
    let resolve = |port: &Value| -> u64 {
        port.as_u64().unwrap_or_else(|| {
            let named = ports.iter().find(|p| p["name"] == *port);
            let named = named.unwrap_or_else(|| panic!("no container port named {port}"));
            named["containerPort"].as_u64().expect("containerPort")
        })
    };
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(get["path"], path, "{probe}");
        assert_eq!(resolve(&get["port"]), port_of(admin_listen), "{probe} port");
        assert!(
            get.get("host").is_none(),
            "{probe} must probe the pod's (node's) address"
        );
        assert_ne!(
            get["scheme"], "HTTPS",
            "{probe}: the admin port is plain HTTP"
        );
    }

    // The image's entrypoint is the binary, and the real binary accepts these arguments (clap
    // refuses an unknown flag before it reaches `--help`).
    assert!(
        c.get("command").is_none(),
        "the image's entrypoint runs imds-guard"
    );
    let args = strings(&c["args"]);
    let parsed = Command::new(env!("CARGO_BIN_EXE_imds-guard"))
        .args(&args)
        .arg("--help")
        .output()
        .expect("run imds-guard");
    assert!(
        parsed.status.success(),
        "imds-guard refuses the DaemonSet's args {args:?}:\n{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    // The config file `run` reads is the ConfigMap's config.toml.
    assert_eq!(
        args[..3],
        ["run", "--config", "/etc/imds-guard/config.toml"]
    );
    let mount = c["volumeMounts"].as_array().expect("volumeMounts");
    let mount = mount.iter().find(|m| m["mountPath"] == "/etc/imds-guard");
    let volume_name = &mount.expect("/etc/imds-guard mounted")["name"];
    let volumes = pod["volumes"].as_array().expect("volumes");
    let volume = volumes.iter().find(|v| v["name"] == *volume_name);
    let volume = volume.expect("the config volume");
    assert_eq!(
        volume["configMap"]["name"],
        config_map(r)["metadata"]["name"]
    );
    // The only host path is the xtables lock shared with kube-proxy and the CNI.
    for v in volumes.iter().filter(|v| v.get("hostPath").is_some()) {
        assert_eq!(
            v["hostPath"]["path"], "/run/xtables.lock",
            "unexpected host path: {v}"
        );
    }

    // hostNetwork and NET_ADMIN need the namespace's Pod Security level to be privileged.
    let ns = ds["metadata"]["namespace"]
        .as_str()
        .expect("DaemonSet namespace");
    let namespace = of_kind(r, "Namespace").find(|n| n["metadata"]["name"] == ns);
    let labels = &namespace.expect("the guard's Namespace rendered")["metadata"]["labels"];
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "privileged");
    let sa = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    assert!(of_kind(r, "ServiceAccount")
        .any(|s| s["metadata"]["name"] == sa && s["metadata"]["namespace"] == ns));
}
