//! What the cgroup interception tests add to network namespaces: a bpffs of their own, a cgroup
//! v2 subtree of their own with pods named as kubelet names them (both drivers), and processes
//! started in a namespace *and* a cgroup.
//!
//! `ip netns exec` remounts `/sys`, which hides the cgroup v2 mount, so processes here enter the
//! namespace with `nsenter --net` instead (it changes nothing else). Every cgroup, mount and
//! process made here is removed on drop, panics included; programs are attached only to the
//! test's own cgroups, never to the machine's.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::netfilter_netns::http::Got;
use super::netfilter_netns::{wait_until, Ns, Proc};

/// The guard binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_imds-guard");

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The machine's cgroup v2 mount (`/sys/fs/cgroup` on a pure v2 host, `/sys/fs/cgroup/unified`
/// on a hybrid one); fails naming what is missing.
pub fn v2_mount() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let (root, _) = imds_guard::interception::cgroups::cgroup2_mount(&mountinfo)
        .expect("these tests need a cgroup v2 hierarchy mounted (cgroup2 in /proc/self/mountinfo)");
    root
}

/// A bpffs mounted on a temporary directory, unmounted on drop: every pin the guard makes in it
/// goes with it.
pub struct Bpffs {
    dir: tempfile::TempDir,
}

impl Bpffs {
    pub fn mount() -> Bpffs {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args(["-t", "bpf", "bpf"])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(
            status.success(),
            "cannot mount a bpffs (root and CONFIG_BPF_SYSCALL needed)"
        );
        Bpffs { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Every file below the mount (the pins left), but the kernel's own `maps.debug` and
    /// `progs.debug`, which every bpffs mount shows.
    pub fn files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(self.dir.path(), &mut out);
        out.retain(|p| {
            p.parent() != Some(self.dir.path()) || p.extension().is_none_or(|e| e != "debug")
        });
        out
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A cgroup subtree of the test's own under the v2 mount (`ig<pid>-<n>`), removed on drop with
/// every process in it killed first.
pub struct Cgroups {
    pub root: PathBuf,
}

impl Cgroups {
    pub fn new() -> Cgroups {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let root = v2_mount().join(format!("ig{}-{n}", std::process::id()));
        std::fs::create_dir(&root)
            .unwrap_or_else(|e| panic!("cannot create the test cgroup {}: {e}", root.display()));
        Cgroups { root }
    }

    /// The test root relative to the v2 mount (what `pods_cgroup` is written relative to).
    pub fn rel(&self, below: &str) -> String {
        let name = self.root.file_name().unwrap().to_string_lossy();
        format!("{name}/{below}")
    }

    /// Makes `rel` (and its parents) below the test root.
    pub fn make(&self, rel: &str) -> PathBuf {
        let dir = self.root.join(rel);
        std::fs::create_dir_all(&dir).expect("mkdir cgroup");
        dir
    }
}

impl Default for Cgroups {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Cgroups {
    fn drop(&mut self) {
        // `cgroup.kill` (5.14) kills the whole subtree at once.
        let _ = std::fs::write(self.root.join("cgroup.kill"), "1");
        let mut dirs = Vec::new();
        fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    collect(&e.path(), out);
                    out.push(e.path());
                }
            }
        }
        collect(&self.root, &mut dirs);
        dirs.push(self.root.clone());
        for dir in dirs {
            // A killed process leaves its cgroup a moment later.
            wait_until(Duration::from_secs(3), || {
                std::fs::remove_dir(&dir).is_ok() || !dir.exists()
            });
        }
    }
}

/// A pod's cgroup names, in kubelet's two layouts, for pod `uid` (with a container below).
pub fn cgroupfs_pod(qos: &str, uid: &str) -> String {
    match qos {
        "guaranteed" => format!("kubepods/pod{uid}/c0ffee"),
        qos => format!("kubepods/{qos}/pod{uid}/c0ffee"),
    }
}

pub fn systemd_pod(qos: &str, uid: &str) -> String {
    let u = uid.replace('-', "_");
    match qos {
        "guaranteed" => format!("kubepods.slice/kubepods-pod{u}.slice/cri-containerd-c0ffee.scope"),
        qos => format!(
            "kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{u}.slice/cri-containerd-c0ffee.scope"
        ),
    }
}

/// `args` run in namespace `ns` (`None`: this test's own) and in cgroup `cgroup` (`None`: this
/// test's own): the shell moves itself into the cgroup, then becomes the command.
pub fn command(ns: Option<&Ns>, cgroup: Option<&Path>, args: &[&str]) -> Command {
    let mut cmd = Command::new("nsenter");
    match ns {
        Some(ns) => cmd.arg(format!("--net=/run/netns/{}", ns.name)),
        None => cmd.arg("--net=/proc/self/ns/net"),
    };
    cmd.arg("--");
    match cgroup {
        Some(dir) => {
            cmd.args(["sh", "-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
                .arg(dir);
        }
        None => {
            cmd.args(["sh", "-c", "exec \"$@\"", "sh"]);
        }
    }
    cmd.args(args);
    cmd
}

/// Runs `args` to completion: (exit code, stdout, stderr).
pub fn run(ns: Option<&Ns>, cgroup: Option<&Path>, args: &[&str]) -> (Option<i32>, String, String) {
    let out = command(ns, cgroup, args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `args` (long-running); killed on drop.
pub fn spawn(ns: Option<&Ns>, cgroup: Option<&Path>, args: &[&str]) -> Proc {
    Proc::start(command(ns, cgroup, args))
}

/// `curl` in `ns` and `cgroup`, bounded by 3 s.
pub fn curl(ns: &Ns, cgroup: Option<&Path>, args: &[&str]) -> Got {
    let mut all = vec!["curl", "-sS", "--max-time", "3", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let (exit, stdout, _) = run(Some(ns), cgroup, &all);
    let (body, code) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    Got {
        exit,
        status: code.trim().parse().unwrap_or(0),
        body: body.to_owned(),
    }
}
