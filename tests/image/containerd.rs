//! containerd's `RuntimeDefault` seccomp profile, as containerd itself makes it for a container's
//! capabilities: a containerd of the test's own (Debian's, its state in a temporary directory,
//! stopped and removed when done) creates the container with its default profile, and the
//! profile is read back from the container's runtime spec — for podman to apply.
//!
//! Why: CRI's `RuntimeDefault` is the runtime's own profile, and the two differ where the cgroup
//! method lives. containerd's allows `bpf()` to a container granted `CAP_BPF`; podman's and
//! CRI-O's (containers/common) allow it only with `CAP_SYS_ADMIN`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::netfilter_netns::{wait_until, Proc};
use super::podman::{archive, path_str, IMAGE};

/// Writes into `dir` the profile containerd gives a container granted `caps` (names without
/// `CAP_`), and returns its path.
pub fn runtime_default(caps: &[&str], dir: &Path) -> PathBuf {
    assert!(
        imds_guard::netfilter::tools::find("containerd").is_some(),
        "containerd is missing (apt-get install containerd; tests/run.sh installs it)"
    );
    let state = tempfile::Builder::new()
        .prefix("imds-guard-containerd")
        .tempdir()
        .expect("tempdir");
    let root = state.path();
    let socket = root.join("sock");
    let config = root.join("config.toml");
    std::fs::write(
        &config,
        format!(
            "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{0}/sock\"\n[ttrpc]\n  address = \"{0}/sock.ttrpc\"\n",
            root.display()
        ),
    )
    .expect("containerd config");
    let mut daemon = Proc::start({
        let mut c = Command::new("containerd");
        c.arg("--config").arg(&config);
        c
    });
    let ctr = |args: &[&str]| {
        let out = Command::new("ctr")
            .arg("--address")
            .arg(&socket)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctr");
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(
        wait_until(Duration::from_secs(10), || socket.exists()),
        "containerd did not start:\n{}",
        daemon.output()
    );
    ctr(&[
        "images",
        "import",
        "--snapshotter",
        "native",
        path_str(&archive()),
    ]);
    let mut args = vec![
        "containers",
        "create",
        "--snapshotter",
        "native",
        "--seccomp",
        "--cap-drop",
        "CAP_ALL",
    ];
    let caps: Vec<String> = caps.iter().map(|c| format!("CAP_{c}")).collect();
    for cap in &caps {
        args.extend(["--cap-add", cap]);
    }
    args.extend([IMAGE, "profile"]);
    ctr(&args);
    let info: serde_json::Value =
        serde_json::from_str(&ctr(&["containers", "info", "profile"])).expect("container info");
    let profile = &info["Spec"]["linux"]["seccomp"];
    assert!(
        profile["syscalls"].is_array(),
        "no seccomp profile in {info}"
    );
    let path = dir.join("containerd-runtime-default.json");
    std::fs::write(&path, profile.to_string()).expect("write profile");
    ctr(&["containers", "delete", "profile"]);
    daemon.terminate(Duration::from_secs(5));
    daemon.kill();
    path
}
