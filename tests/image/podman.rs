//! A real container runtime for the image tests: podman with runc (Debian's), each test with a
//! store of its own in a temporary directory (vfs storage, no daemon, nothing shared with the
//! host's containers), removed with every container in it when the test ends, panics included.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::netfilter_netns::wait_until;

/// What to install when the runtime is missing.
const INSTALL: &str = "apt-get install podman runc";

/// The image archive that `deploy/image/build.sh` writes (tests/run.sh builds it first).
pub fn archive() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/image")
        .join(format!("imds-guard-{}.oci.tar", env!("CARGO_PKG_VERSION")));
    assert!(
        path.is_file(),
        "{} is missing: build it with `bash deploy/image/build.sh` (tests/run.sh does)",
        path.display()
    );
    path
}

/// The name the image is loaded under (the archive's containerd name, which podman takes too).
pub const IMAGE: &str = concat!("docker.io/library/imds-guard:", env!("CARGO_PKG_VERSION"));

/// Limits for every container: this machine gives root no CAP_SYS_RESOURCE, so no container may
/// raise a limit to the hard one, and the runtime's defaults (its maximum) are lowered to values
/// it can set.
pub const LIMITS: [&str; 2] = ["--ulimit=nofile=16384:16384", "--ulimit=nproc=16384:16384"];

/// One podman store with the image loaded.
pub struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    /// A new store, with the image archive loaded into it.
    pub fn with_image() -> Podman {
        for program in ["podman", "runc"] {
            assert!(
                imds_guard::netfilter::tools::find(program).is_some(),
                "{program} is missing ({INSTALL}; tests/run.sh installs it)"
            );
        }
        let podman = Podman {
            dir: tempfile::Builder::new()
                .prefix("imds-guard-podman")
                .tempdir()
                .expect("tempdir"),
        };
        let loaded = podman.ok(&["load", "--quiet", "--input", path_str(&archive())]);
        assert!(loaded.contains(IMAGE), "podman load said: {loaded}");
        podman
    }

    /// `podman` with this store's options.
    pub fn command(&self, args: &[&str]) -> Command {
        let dir = self.dir.path();
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(dir.join("root"))
            .arg("--runroot")
            .arg(dir.join("run"))
            .arg("--tmpdir")
            .arg(dir.join("tmp"))
            .args([
                "--storage-driver",
                "vfs",
                // runc: crun refuses a host with cgroup v1 and v2 hierarchies side by side.
                "--runtime",
                "runc",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
            ])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    pub fn exec(&self, args: &[&str]) -> Output {
        self.command(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run podman ({e}): {INSTALL}"))
    }

    /// Runs `podman args`; panics with what it said unless it succeeds; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "podman {} failed ({}):\n{}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The image run once, to its end, with no network: `podman run --rm` with `options`, then the
    /// image and its `args`.
    pub fn run_once(&self, options: &[&str], args: &[&str]) -> Output {
        let mut all = vec![
            "run",
            "--rm",
            "--pull=never",
            "--network=none",
            LIMITS[0],
            LIMITS[1],
        ];
        all.extend_from_slice(options);
        all.push(IMAGE);
        all.extend_from_slice(args);
        self.exec(&all)
    }

    /// `podman run --detach` with `args` (options, the image, its arguments); the container.
    pub fn start(&self, name: &str, args: &[String]) -> Container<'_> {
        let mut all = vec!["run", "--detach", "--name", name];
        all.extend(args.iter().map(String::as_str));
        self.ok(&all);
        Container {
            podman: self,
            name: name.to_owned(),
        }
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self
            .command(&["rm", "--all", "--force", "--time", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        // Whatever podman left mounted under the store (a container's /dev/shm, say) goes before
        // the directory does.
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut under: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|p| p.starts_with(&dir))
            .collect();
        under.sort_by_key(|p| std::cmp::Reverse(p.len()));
        for path in under {
            let _ = Command::new("umount").args(["--lazy", path]).status();
        }
    }
}

/// A container of a [`Podman`] store.
pub struct Container<'a> {
    podman: &'a Podman,
    pub name: String,
}

impl Container<'_> {
    fn inspect(&self, format: &str) -> String {
        self.podman
            .ok(&[
                "inspect",
                "--type",
                "container",
                "--format",
                format,
                &self.name,
            ])
            .trim()
            .to_owned()
    }

    /// Whether it is running.
    pub fn running(&self) -> bool {
        self.inspect("{{.State.Running}}") == "true"
    }

    /// Its exit code, once it has exited.
    pub fn exit_code(&self) -> Option<i32> {
        if self.running() {
            return None;
        }
        self.inspect("{{.State.ExitCode}}").parse().ok()
    }

    /// Waits up to `limit` for it to exit; its exit code.
    pub fn wait(&self, limit: Duration) -> Option<i32> {
        wait_until(limit, || !self.running());
        self.exit_code()
    }

    /// The process id of its first process, on the host.
    pub fn pid(&self) -> u32 {
        self.inspect("{{.State.Pid}}")
            .parse()
            .expect("a running container's pid")
    }

    /// What it wrote to stdout, and to stderr, so far.
    pub fn logs(&self) -> (String, String) {
        let out = self.podman.exec(&["logs", &self.name]);
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Both streams, for failure messages.
    pub fn output(&self) -> String {
        let (out, err) = self.logs();
        format!("--- stdout of {}:\n{out}--- stderr:\n{err}", self.name)
    }

    /// `podman stop` with a grace period of `seconds` (SIGTERM, then SIGKILL).
    pub fn stop(&self, seconds: u64) {
        self.podman
            .ok(&["stop", "--time", &seconds.to_string(), &self.name]);
    }
}

pub fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}
