//! The Helm chart in `deploy/helm/imds-guard`, rendered and read: the `helm` binary (built by
//! `tests/support/helm/build.sh`, never looked up on `PATH`), `helm lint` and `helm template`,
//! and the render validated and parsed as the kustomize renders are (`deploy/render.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::render::{run, Rendered};

/// The release every render uses: named as the kustomize base names its objects, in its namespace.
pub const RELEASE: &str = "imds-guard";
pub const NAMESPACE: &str = "imds-guard";

/// Labels the chart adds to every object (and the instance to its selectors) that the kustomize
/// base has not: left out when renders are compared.
pub const HELM_LABELS: [&str; 4] = [
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "helm.sh/chart",
];

pub fn chart_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/imds-guard")
}

/// The `helm` that `tests/support/helm/build.sh` built (or `$IMDS_GUARD_HELM`). Fails the test,
/// saying how to build it, when there is none.
pub fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| {
        if let Some(path) = std::env::var_os("IMDS_GUARD_HELM") {
            return PathBuf::from(path);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/helm/build.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("--where")
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} ({e}): install bash", script.display()));
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("helm");
        assert!(
            out.status.success() && bin.is_file(),
            "helm is not built: run `bash tests/support/helm/build.sh` (Go 1.26 and the Go module \
             proxy; a few minutes, once; tests/run.sh does it), or set IMDS_GUARD_HELM to a helm v4"
        );
        bin
    })
}

/// Runs helm with its own empty config, cache and data directories (no repositories, no
/// plugins, nothing of the machine's), and returns what it printed; fails unless it exits 0.
pub fn helm_run(args: &[&str]) -> String {
    helm_output(args)
        .map_err(|e| panic!("{e}"))
        .unwrap_or_default()
}

/// As [`helm_run`], but a failure is returned (with what helm said) instead of failing the test.
pub fn helm_output(args: &[&str]) -> Result<String, String> {
    let home = tempfile::tempdir().expect("tempdir");
    let out = Command::new(helm())
        .args(args)
        .env("HELM_CONFIG_HOME", home.path().join("config"))
        .env("HELM_CACHE_HOME", home.path().join("cache"))
        .env("HELM_DATA_HOME", home.path().join("data"))
        .env("KUBECONFIG", home.path().join("no-kubeconfig"))
        .stdin(Stdio::null())
        .output()
        .expect("run helm");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 output");
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!(
            "`helm {}` failed ({}):\n{stdout}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// `helm lint --strict` of `chart` with `args` (values), as the chart's users would run it.
pub fn lint(chart: &Path, args: &[&str]) -> String {
    let mut all = vec!["lint", "--strict", chart.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    helm_run(&all)
}

/// The `helm template` arguments for `chart` as release [`RELEASE`] in [`NAMESPACE`].
fn template_args<'a>(chart: &'a Path, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec![
        "template",
        RELEASE,
        chart.to_str().expect("utf-8 path"),
        "--namespace",
        NAMESPACE,
    ];
    all.extend_from_slice(args);
    all
}

/// `helm template` of `chart` with `args` (`--set`, `-f`, …), validated strictly with the
/// Kubernetes schemas (kinds without one, such as the Prometheus Operator's, are only warned
/// about) and parsed.
pub fn template_of(chart: &Path, args: &[&str]) -> Rendered {
    let yaml = helm_run(&template_args(chart, args));
    parse(yaml)
}

/// `helm template` of the chart in the repository.
pub fn template(args: &[&str]) -> Rendered {
    template_of(&chart_dir(), args)
}

/// `helm template` that must fail; what helm said.
pub fn template_fails(args: &[&str]) -> String {
    let chart = chart_dir();
    match helm_output(&template_args(&chart, args)) {
        Ok(yaml) => panic!("helm template {args:?} rendered:\n{yaml}"),
        Err(said) => said,
    }
}

fn parse(yaml: String) -> Rendered {
    run(
        "kubernetes-validate",
        &["--strict", "--quiet", "-"],
        Some(&yaml),
    );
    let json = run(
        "python3",
        &[
            "-c",
            "import sys,json,yaml; json.dump([d for d in yaml.safe_load_all(sys.stdin) if d], sys.stdout)",
        ],
        Some(&yaml),
    );
    let objects: Vec<Value> = serde_json::from_str(&json).expect("rendered objects as JSON");
    Rendered { yaml, objects }
}

/// The chart's default render.
pub fn default_render() -> &'static Rendered {
    static DEFAULT: OnceLock<Rendered> = OnceLock::new();
    DEFAULT.get_or_init(|| template(&[]))
}

/// `file` under `tests/helm/`.
pub fn values_file(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/helm")
        .join(file)
        .to_str()
        .expect("utf-8 path")
        .to_owned()
}
