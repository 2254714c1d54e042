//! What the cgroup interception costs, on the real kernel: ordinary connects from a pod's cgroup
//! with and without the guard's programs attached (the hooks run on every connect, metadata or
//! not), in alternating rounds; and, per accepted connection, the guard's lookup of the cgroup
//! that opened it (the records map read and deleted, the cgroup mapped to its pod).
//!
//! ```text
//! cargo bench --bench interception              # as root, with cgroup v2 and bpffs support
//! BENCH_ROUNDS=10 BENCH_CONNECTS=20000 cargo bench --bench interception
//! ```
//! The bench moves itself into a network namespace of its own (where 169.254.169.254 has no
//! route, so a connect the hooks failed to redirect goes nowhere) and into a pod cgroup it makes
//! under the cgroup v2 mount, attaches the programs to that cgroup only (pinned in a bpffs it
//! mounts), connects to listeners of its own on 127.0.0.1, and removes all of it at the end. Medians of the rounds are printed; the machine is
//! shared and noisy, so read the ratio, not the absolute rates.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use imds_guard::cgroup::{self, Target};
use imds_guard::cloud::Cloud;
use imds_guard::interception::kernel::{self, Settings};
use imds_guard::interception::Identifier;

const UID: &str = "5f1f3a4e-8c1d-4c2b-9b0e-0123456789ab";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `n` connects to `to`, a closed port (refused at once: no connection is left in TIME_WAIT to
/// slow the next rounds down); connects per second.
fn connects(to: SocketAddr, n: usize) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        assert!(TcpStream::connect(to).is_err(), "{to} is not closed");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

struct Setup {
    bpffs: tempfile::TempDir,
    test_root: PathBuf,
    pods: PathBuf,
    home: String,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = imds_guard::interception::remove(&self.bpffs.path().join("imds-guard"));
        // Back to where the bench started, then the cgroups go.
        let _ = std::fs::write(
            Path::new(&self.home).join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let pod = self.pods.join(format!("pod{UID}"));
        for dir in [pod.as_path(), self.pods.as_path(), self.test_root.as_path()] {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = Command::new("umount").arg(self.bpffs.path()).status();
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // Before any thread starts, so that every thread is in the new namespace.
    // SAFETY: no pointer arguments; affects this (so far only) thread.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "unshare: {}", std::io::Error::last_os_error());
    assert!(Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip (iproute2)")
        .success());
    let rounds = env("BENCH_ROUNDS", 8);
    let n = env("BENCH_CONNECTS", 10_000);
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let (v2, _) = imds_guard::interception::cgroups::cgroup2_mount(&mountinfo)
        .expect("a cgroup v2 hierarchy is needed");
    let own = imds_guard::interception::cgroups::own_cgroup(
        &std::fs::read_to_string("/proc/self/cgroup").unwrap(),
    )
    .map_or(v2.clone(), |rel| v2.join(rel));
    let bpffs = tempfile::tempdir().unwrap();
    assert!(Command::new("mount")
        .args(["-t", "bpf", "bpf"])
        .arg(bpffs.path())
        .status()
        .unwrap()
        .success());
    let test_root = v2.join(format!("igbench-{}", std::process::id()));
    let pods = test_root.join("kubepods");
    let pod = pods.join(format!("pod{UID}"));
    std::fs::create_dir_all(&pod).unwrap();
    let setup = Setup {
        bpffs,
        test_root,
        pods: pods.clone(),
        home: own.to_string_lossy().into_owned(),
    };
    let pin_dir = setup.bpffs.path().join("imds-guard");
    std::fs::write(pod.join("cgroup.procs"), std::process::id().to_string()).unwrap();

    let settings = Settings {
        guard: "127.0.0.1:9".parse().unwrap(),
        host_netns: None,
        // The bench runs in the node's network namespace: its sockets are those of a hostNetwork
        // pod, redirected only with this on.
        host_network_pods: true,
        exempt: None,
    };

    // Ordinary connects: the hooks attached and detached in turn, which first alternating too.
    let closed = {
        let spare = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        spare.local_addr().unwrap()
    };
    let pods_id = imds_guard::interception::cgroups::cgroup_id(&pods).unwrap();
    let (mut without, mut with) = (Vec::new(), Vec::new());
    connects(closed, n / 10); // warm-up
    for round in 0..rounds {
        if round % 2 == 0 {
            without.push(connects(closed, n));
        }
        let mut ebpf = kernel::load(&pin_dir).unwrap();
        kernel::configure(&mut ebpf, &settings, &cgroup::targets(Cloud::Aws), &[]).unwrap();
        kernel::attach(&mut ebpf, &pin_dir, &pods, &kernel::generation(pods_id)).unwrap();
        drop(ebpf);
        with.push(connects(closed, n));
        imds_guard::interception::remove(&pin_dir).unwrap();
        if round % 2 == 1 {
            without.push(connects(closed, n));
        }
    }
    let (a, b) = (median(without), median(with));
    println!(
        "ordinary (refused) connects from a pod cgroup ({rounds} alternating rounds of {n}): \
         {a:.0}/s without the hooks, {b:.0}/s with them: {:.3}x ({:+.1} %)",
        b / a,
        (b / a - 1.0) * 100.0
    );

    // Redirected connects and the guard's identity lookup on each accepted one.
    // Redirected to a second listener, which this thread accepts on itself.
    let listener2 = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let settings2 = Settings {
        guard: listener2.local_addr().unwrap(),
        ..settings
    };
    let targets: Vec<Target> = cgroup::targets(Cloud::Aws);
    let mut ebpf = kernel::load(&pin_dir).unwrap();
    kernel::configure(&mut ebpf, &settings2, &targets, &[]).unwrap();
    kernel::attach(&mut ebpf, &pin_dir, &pods, &kernel::generation(pods_id)).unwrap();
    drop(ebpf);
    let identifier = Identifier::open(&pin_dir, pods.clone()).unwrap();
    let imds: SocketAddr = "169.254.169.254:80".parse().unwrap();
    let mut per_round = Vec::new();
    let mut found = 0;
    let m = n / 10;
    for _ in 0..rounds {
        let mut spent = Duration::ZERO;
        for _ in 0..m {
            let client = TcpStream::connect(imds).expect("redirected connect");
            let (accepted, peer) = listener2.accept().unwrap();
            let local = accepted.local_addr().unwrap();
            let started = Instant::now();
            let pod = identifier.pod_of(peer, local);
            spent += started.elapsed();
            found += usize::from(pod.as_deref() == Some(UID));
            drop((client, accepted));
        }
        per_round.push(spent.as_secs_f64() * 1e6 / m as f64);
    }
    assert_eq!(
        found,
        m * rounds,
        "not every accepted connection was known by its cgroup"
    );
    println!(
        "cgroup identity per accepted connection ({rounds} rounds of {m}): {:.2} µs median",
        median(per_round)
    );
    drop(setup);
}
