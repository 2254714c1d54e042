//! Network namespaces for tests that need real netfilter: created with unique names, deleted when
//! dropped (panics included), and every command run inside one with `ip netns exec`, so the
//! host's own rules and interfaces are never touched.
#![allow(dead_code)]

pub mod guard;
pub mod http;
pub mod scripts;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Fails (never skips) when something the namespace tests need is missing, naming what to
/// install.
pub fn preflight(commands: &[(&str, &str)]) {
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_owned))
        });
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "these tests create network namespaces and iptables rules: run them as root (CI does)"
    );
    let missing: Vec<String> = commands
        .iter()
        .filter(|(cmd, _)| imds_guard::netfilter::tools::find(cmd).is_none())
        .map(|(cmd, package)| format!("{cmd} (apt-get install {package})"))
        .collect();
    assert!(
        missing.is_empty(),
        "missing: {}; .ci/run installs them",
        missing.join(", ")
    );
}

/// One network namespace, deleted on drop.
pub struct Ns {
    pub name: String,
}

static NEXT: AtomicUsize = AtomicUsize::new(0);

impl Ns {
    /// A new namespace `ig<pid>-<n>-<tag>`, with loopback up.
    pub fn new(tag: &str) -> Ns {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("ig{}-{n}-{tag}", std::process::id());
        host(&["ip", "netns", "add", &name]);
        let ns = Ns { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// The command, to run inside the namespace.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(args);
        cmd
    }

    /// Runs `args` inside the namespace.
    pub fn exec(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
    }

    /// Runs `args` inside the namespace; panics with its output unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.exec(args);
        assert!(
            out.status.success(),
            "in {}: {} failed ({}):\n{}{}",
            self.name,
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// [`Ns::ok`] for a command line of plain words (split at spaces; no quoting).
    pub fn sh(&self, line: &str) -> String {
        self.ok(&line.split(' ').collect::<Vec<_>>())
    }

    /// Starts a long-running `args` inside the namespace; stdout and stderr are collected.
    pub fn spawn(&self, args: &[&str]) -> Proc {
        Proc::start(self.command(args))
    }

    /// `iptables-save` and `ip6tables-save` output without the comment lines (which carry the
    /// time), for comparing rule sets.
    pub fn rules(&self) -> String {
        let mut text = self.ok(&["iptables-save"]);
        text.push_str(&self.ok(&["ip6tables-save"]));
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A process started in a namespace, killed on drop.
pub struct Proc {
    child: Child,
    output: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `command`; stdout and stderr are collected.
    pub fn start(mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let output = Arc::new(Mutex::new(String::new()));
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut out = output.lock().unwrap_or_else(|e| e.into_inner());
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        Proc { child, output }
    }

    /// What it printed so far (stdout and stderr, interleaved by line).
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Its process id (`ip netns exec` execs the command, so this is the command's own).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills it at once (SIGKILL: a crash) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGTERM and waits up to `limit` for it to exit.
    pub fn terminate(&mut self, limit: Duration) -> bool {
        // The shell's own `kill`: no other package needed.
        let _ = Command::new("sh")
            .args(["-c", &format!("kill -TERM {}", self.child.id())])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.exited() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A veth pair between `a` and `b`, each end given as "NAME ADDRESS/PREFIX", created inside `a`
/// so that the host's interfaces are never involved.
pub fn link(a: &Ns, a_end: &str, b: &Ns, b_end: &str) {
    let (a_if, a_addr) = a_end.split_once(' ').expect("NAME ADDRESS");
    let (b_if, b_addr) = b_end.split_once(' ').expect("NAME ADDRESS");
    a.sh(&format!(
        "ip link add {a_if} type veth peer name {b_if} netns {}",
        b.name
    ));
    for (ns, name, addr) in [(a, a_if, a_addr), (b, b_if, b_addr)] {
        ns.sh(&format!("ip addr add {addr} dev {name}"));
        ns.sh(&format!("ip link set {name} up"));
    }
}

/// Runs `args` in the host namespace: only `ip netns add` goes through here.
fn host(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Polls `probe` every 50 ms until it returns true or `limit` passes.
pub fn wait_until(limit: Duration, mut probe: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if probe() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
