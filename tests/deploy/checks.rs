//! What every rendering of `deploy/` must hold to: the RBAC rules and the DaemonSet.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use crate::render::{
    canary, config, config_map, guard, guard_daemonset, of_kind, port_of, strings, Rendered,
};

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

/// The config's `[interception] method` (netfilter when the section or the key is absent).
pub fn interception_method(r: &Rendered) -> String {
    config(r)
        .get("interception")
        .and_then(|i| i.get("method"))
        .map(|m| m.as_str().expect("method is a string").to_owned())
        .unwrap_or_else(|| "netfilter".to_owned())
}

/// Everything the guard's DaemonSet must be, in any rendering: with the netfilter method, no
/// capability but NET_ADMIN and NET_RAW and no host path but the xtables lock; with the cgroup
/// method, [`check_cgroup_method`].
pub fn check_daemonset(r: &Rendered) {
    let ds = guard_daemonset(r);
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
    let method = interception_method(r);
    match method.as_str() {
        // NET_ADMIN for netfilter, NET_RAW for iptables-legacy's raw socket; nothing else.
        "netfilter" => assert_eq!(
            strings(&sc["capabilities"]["add"]),
            ["NET_ADMIN", "NET_RAW"]
        ),
        "cgroup" => check_cgroup_method(r),
        other => panic!("[interception] method = {other:?}"),
    }
    assert_eq!(sc["seccompProfile"]["type"], "RuntimeDefault");
    assert!(
        sc.get("appArmorProfile").is_none()
            && pod["securityContext"].get("appArmorProfile").is_none(),
        "AppArmor stays the runtime's default"
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
    // The only host path is the xtables lock shared with kube-proxy and the CNI (netfilter), or
    // the cgroup root and the BPF filesystem (cgroup).
    let host_paths: Vec<&str> = volumes
        .iter()
        .filter(|v| v.get("hostPath").is_some())
        .map(|v| v["hostPath"]["path"].as_str().expect("hostPath.path"))
        .collect();
    let want: &[&str] = match method.as_str() {
        "netfilter" => &["/run/xtables.lock"],
        _ => &["/sys/fs/cgroup", "/sys/fs/bpf"],
    };
    assert_eq!(host_paths, want, "host paths");

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

/// The guard's container mount of the volume named `name`, and the volume.
fn mount_of<'a>(pod: &'a Value, c: &'a Value, name: &str) -> (&'a Value, &'a Value) {
    let mounts = c["volumeMounts"].as_array().expect("volumeMounts");
    let mount = mounts.iter().find(|m| m["name"] == name);
    let volumes = pod["volumes"].as_array().expect("volumes");
    let volume = volumes.iter().find(|v| v["name"] == name);
    (
        mount.unwrap_or_else(|| panic!("no mount of {name}")),
        volume.unwrap_or_else(|| panic!("no volume {name}")),
    )
}

/// The cgroup method (components/cgroup-interception): exactly BPF and NET_ADMIN (loading the
/// programs; not SYS_ADMIN, not NET_RAW); the host's cgroup v2 root at the same path, read-only,
/// as the config's `cgroup_root`; the host's BPF filesystem, read-write, holding the config's
/// `bpf_pin_dir`; POD_UID from the downward API; no xtables lock; hostNetwork pods left alone
/// and the backstop on; and the section on the pod template is the config's, so that changing it
/// rolls the guards.
pub fn check_cgroup_method(r: &Rendered) {
    let (pod, c) = guard(r);
    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["add"]), ["BPF", "NET_ADMIN"]);
    assert_eq!(sc["runAsUser"], 0, "capabilities are granted to uid 0 only");

    let config = config(r);
    let interception = &config["interception"];
    assert_eq!(interception["method"].as_str(), Some("cgroup"));
    assert_eq!(interception["host_network_pods"].as_bool(), Some(false));
    assert_eq!(interception["backstop"].as_bool(), Some(true));

    let (mount, volume) = mount_of(pod, c, "cgroup");
    assert_eq!(volume["hostPath"]["path"], "/sys/fs/cgroup");
    assert_eq!(volume["hostPath"]["type"], "Directory");
    assert_eq!(
        mount["mountPath"], "/sys/fs/cgroup",
        "over the container's own"
    );
    assert_eq!(mount["readOnly"], true);
    assert_eq!(
        interception["cgroup_root"].as_str(),
        mount["mountPath"].as_str()
    );

    let (mount, volume) = mount_of(pod, c, "bpffs");
    assert_eq!(volume["hostPath"]["path"], "/sys/fs/bpf");
    assert_eq!(
        volume["hostPath"]["type"], "Directory",
        "the node mounts bpffs; nothing can be created in sysfs"
    );
    assert_ne!(mount["readOnly"], true, "pins are written");
    assert_eq!(mount["mountPropagation"], "HostToContainer");
    let at = mount["mountPath"].as_str().expect("mountPath");
    assert!(
        !at.starts_with("/sys/fs/"),
        "AppArmor's default profile denies creating files under /sys/fs/: {at}"
    );
    let pins = interception["bpf_pin_dir"].as_str().expect("bpf_pin_dir");
    assert!(
        pins.starts_with(&format!("{at}/")),
        "bpf_pin_dir {pins} is not on the host's bpffs ({at})"
    );

    let env = c["env"].as_array().expect("env");
    let uid = env.iter().find(|e| e["name"] == "POD_UID");
    assert_eq!(
        uid.expect("POD_UID")["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.uid"
    );

    let annotation = guard_daemonset(r)["spec"]["template"]["metadata"]["annotations"]
        ["imds-guard/interception"]
        .as_str()
        .expect("the [interception] annotation on the pod template");
    let section: toml::Table = toml::from_str(annotation).expect("TOML");
    assert_eq!(
        toml::Value::Table(section)["interception"],
        *interception,
        "the pod template's section is the config's"
    );
}

/// Everything the canary (components/canary) must be: a pod like the ones the guard protects, on
/// the pod network, with no privilege, no capability, no host path and no service-account token
/// (it gets no RBAC); on every node; ready only while its probe reaches the guard (and only
/// restarted when it stops serving); never
/// preempting a workload; outside the guard's selector, and its guard's image.
pub fn check_canary(r: &Rendered) {
    let ds = canary(r);
    let guard_ds = guard_daemonset(r);
    assert_eq!(
        ds["metadata"]["namespace"],
        guard_ds["metadata"]["namespace"]
    );
    assert_eq!(
        ds["spec"]["updateStrategy"]["type"],
        Value::Null,
        "the default rolling update"
    );
    let pod = &ds["spec"]["template"]["spec"];
    assert_ne!(pod["hostNetwork"], true, "the canary is an ordinary pod");
    for hazard in [
        "hostPID",
        "hostIPC",
        "hostUsers",
        "initContainers",
        "volumes",
    ] {
        assert!(
            pod.get(hazard).is_none(),
            "{hazard} in the canary's pod: {pod}"
        );
    }
    assert!(
        pod.get("priorityClassName").is_none(),
        "a probe must not preempt workloads"
    );
    assert_eq!(pod["automountServiceAccountToken"], false);
    let sa_name = pod["serviceAccountName"]
        .as_str()
        .expect("serviceAccountName");
    let ns = ds["metadata"]["namespace"].as_str().expect("namespace");
    let sa = of_kind(r, "ServiceAccount")
        .find(|s| s["metadata"]["name"] == sa_name && s["metadata"]["namespace"] == ns)
        .unwrap_or_else(|| panic!("no ServiceAccount {sa_name} rendered"));
    assert_eq!(sa["automountServiceAccountToken"], false);
    assert_ne!(
        sa_name,
        guard_ds["spec"]["template"]["spec"]["serviceAccountName"]
            .as_str()
            .unwrap(),
        "its own ServiceAccount, not the guard's"
    );
    for binding in of_kind(r, "ClusterRoleBinding").chain(of_kind(r, "RoleBinding")) {
        for subject in binding["subjects"].as_array().into_iter().flatten() {
            assert_ne!(subject["name"], sa_name, "the canary has RBAC: {binding}");
        }
    }
    assert!(
        pod["tolerations"]
            .as_array()
            .expect("tolerations")
            .iter()
            .any(|t| t["operator"] == "Exists" && t.get("key").is_none()),
        "the canary must run on every node: {}",
        pod["tolerations"]
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert!(pod["securityContext"]["runAsUser"].as_i64() > Some(0));
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );

    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1);
    let c = &containers[0];
    let sc = &c["securityContext"];
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"]);
    assert!(
        sc["capabilities"].get("add").is_none(),
        "no capability: {sc}"
    );
    assert_ne!(sc["privileged"], true);
    assert_eq!(sc["allowPrivilegeEscalation"], false);
    assert_eq!(sc["readOnlyRootFilesystem"], true);
    assert!(sc.get("runAsUser").is_none_or(|u| u.as_i64() > Some(0)));
    assert_eq!(c["image"], guard(r).1["image"], "the guard's image");
    assert!(c.get("volumeMounts").is_none());

    let args = strings(&c["args"]);
    assert_eq!(args[0], "canary");
    assert!(
        args.iter().any(|a| a.starts_with("--interval-seconds=")),
        "{args:?}"
    );
    let env = c["env"].as_array().expect("env");
    let node = env
        .iter()
        .find(|e| e["name"] == "NODE_NAME")
        .expect("NODE_NAME");
    assert_eq!(node["valueFrom"]["fieldRef"]["fieldPath"], "spec.nodeName");

    // Ready while its probe reaches the guard: /readyz on the metrics port (8183).
    let probe = &c["readinessProbe"]["httpGet"];
    assert_eq!(probe["path"], "/readyz");
    let port = c["ports"]
        .as_array()
        .expect("ports")
        .iter()
        .find(|p| p["name"] == probe["port"])
        .expect("the probe's port by name");
    assert_eq!(port["containerPort"], 8183);
    // Alive while it serves (/healthz); an unprotected node is no reason to restart it.
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["livenessProbe"]["httpGet"]["port"], probe["port"]);
    assert!(c["resources"]["requests"]["cpu"].is_string());
    assert!(c["resources"]["requests"]["memory"].is_string());
    assert!(c["resources"]["limits"]["memory"].is_string());

    // Neither DaemonSet's selector takes the other's pods.
    let selects = |selector: &Value, labels: &Value| {
        selector["matchLabels"]
            .as_object()
            .expect("matchLabels")
            .iter()
            .all(|(k, v)| labels[k] == *v)
    };
    let canary_labels = &ds["spec"]["template"]["metadata"]["labels"];
    let guard_labels = &guard_ds["spec"]["template"]["metadata"]["labels"];
    assert!(selects(&ds["spec"]["selector"], canary_labels));
    assert!(
        !selects(&guard_ds["spec"]["selector"], canary_labels),
        "the guard's selector takes the canary's pods"
    );
    assert!(
        !selects(&ds["spec"]["selector"], guard_labels),
        "the canary's selector takes the guard's pods"
    );

    // No NetworkPolicy keeps it from the metadata address: none in its namespace.
    for p in of_kind(r, "NetworkPolicy") {
        assert_ne!(
            p["metadata"]["namespace"], ns,
            "a NetworkPolicy in the canary's namespace: {p}"
        );
    }
}
