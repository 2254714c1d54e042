//! The programs the monitoring tests run: promtool (built by tests/support/promtool/build.sh and
//! cached), the dashboard schema checker (tests/monitoring/dashboard-check, built with `go`), and
//! YAML read through python3's PyYAML, as tests/deploy reads it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

use super::render;

/// The repository's root.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The component's directory.
pub fn component() -> PathBuf {
    root().join("deploy/components/monitoring")
}

/// A YAML file's documents as JSON (PyYAML, as the kustomize renders are read).
pub fn yaml_file(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    yaml(&text)
}

pub fn yaml(text: &str) -> Vec<Value> {
    const YAML_TO_JSON: &str =
        "import sys,json,yaml; json.dump(list(yaml.safe_load_all(sys.stdin)), sys.stdout)";
    let json = render::run("python3", &["-c", YAML_TO_JSON], Some(text));
    serde_json::from_str(&json).expect("YAML read as JSON")
}

/// promtool, as `bash tests/support/promtool/build.sh` left it in its cache. A missing promtool
/// fails the test and says how to build it.
pub fn promtool() -> &'static Path {
    static PROMTOOL: OnceLock<PathBuf> = OnceLock::new();
    PROMTOOL.get_or_init(|| {
        let script = root().join("tests/support/promtool/build.sh");
        let out = Command::new("bash")
            .arg(&script)
            .arg("--check")
            .output()
            .expect("run tests/support/promtool/build.sh --check");
        assert!(
            out.status.success(),
            "promtool is not built: run `bash tests/support/promtool/build.sh` (builds it from the \
             Go module proxy into ~/.cache/imds-guard/promtool, a few minutes once; \
             tests/run.sh does it)\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        PathBuf::from(String::from_utf8(out.stdout).expect("utf-8").trim())
    })
}

/// Runs promtool with `args`; its output, and whether it succeeded.
pub fn run_promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool())
        .args(args)
        .output()
        .expect("run promtool");
    (out.status.success(), both(&out))
}

/// The dashboard checker, built from tests/monitoring/dashboard-check with `go build` (Go's build
/// cache makes later builds quick).
pub fn dashboard_check() -> &'static Path {
    static CHECK: OnceLock<PathBuf> = OnceLock::new();
    CHECK.get_or_init(|| {
        let bin = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-check");
        let out = Command::new("go")
            .args(["build", "-o"])
            .arg(&bin)
            .arg(".")
            .current_dir(root().join("tests/monitoring/dashboard-check"))
            .env("GOFLAGS", "-mod=mod")
            .env("GOTOOLCHAIN", "local")
            .output()
            .unwrap_or_else(|e| {
                panic!("cannot run `go` ({e}): install Go 1.26 to build the dashboard checker")
            });
        assert!(
            out.status.success(),
            "building tests/monitoring/dashboard-check failed:\n{}",
            both(&out)
        );
        bin
    })
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
