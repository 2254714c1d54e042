//! A network namespace holding only loopback, for running real clients, the emulator and the
//! guard where nothing can reach a real address: a client that ignores its override and goes for
//! the real metadata server gets "network unreachable", never a packet on the wire.
//!
//! Everything runs with `ip netns exec`; the namespace is deleted and every process started in it
//! is killed when the [`Netns`] is dropped, panics included.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// Fails (never skips) unless this process is root and `ip` is there: network namespaces need
/// both.
pub fn require_root_and_ip() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next().map(str::to_owned));
    assert_eq!(
        uid.as_deref(),
        Some("0"),
        "these tests create network namespaces: run them as root (tests/run.sh and CI do)"
    );
    assert!(
        Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success()),
        "`ip` is missing: apt-get install iproute2 (tests/run.sh does)"
    );
}

/// One network namespace, `imdsg-<tag>-<pid>-<n>`, with loopback up and nothing else.
pub struct Netns {
    pub name: String,
    /// Processes started in it, killed before it is deleted.
    children: Mutex<Vec<Arc<Mutex<Child>>>>,
    /// Where their output goes.
    dir: tempfile::TempDir,
}

/// A long-running process in a namespace: its stdout and stderr in files.
pub struct Daemon {
    child: Arc<Mutex<Child>>,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
}

/// What a process that ran to its end (or was killed at its deadline) left.
#[derive(Debug)]
pub struct Finished {
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    /// Killed at the deadline.
    pub timed_out: bool,
}

impl Netns {
    /// A new namespace with `lo` up and the `addresses` (CIDR, e.g. `127.0.0.2/32`) on it.
    pub fn new(tag: &str, addresses: &[&str]) -> Netns {
        require_root_and_ip();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("imdsg-{tag}-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns {
            name,
            children: Mutex::new(Vec::new()),
            dir: tempfile::tempdir().unwrap(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        for address in addresses {
            ns.ip(&["addr", "add", address, "dev", "lo"]);
        }
        ns
    }

    /// `ip ARGS` inside the namespace; panics unless it succeeds.
    pub fn ip(&self, args: &[&str]) -> String {
        run_ok(Command::new("ip").args(["-n", &self.name]).args(args))
    }

    /// A command that runs `program` inside the namespace. `ip` is named by its full path, so
    /// the command's own `PATH` (which may be cleared) decides only where `program` is found.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new(ip_path());
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// A directory that lives as long as the namespace.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Starts `command` (from [`Netns::command`]) and keeps it running until the namespace is
    /// dropped or [`Daemon::terminate`] is called; `tag` names its output files.
    pub fn spawn(&self, tag: &str, mut command: Command) -> Daemon {
        let stdout = self.dir.path().join(format!("{tag}.stdout"));
        let stderr = self.dir.path().join(format!("{tag}.stderr"));
        let child = command
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let child = Arc::new(Mutex::new(child));
        self.children.lock().unwrap().push(Arc::clone(&child));
        Daemon {
            child,
            stdout,
            stderr,
        }
    }

    /// Runs `command` to its end, killing it after `deadline`.
    pub fn run(&self, tag: &str, command: Command, deadline: Duration) -> Finished {
        let started = Instant::now();
        let daemon = self.spawn(tag, command);
        let mut timed_out = false;
        let status = loop {
            if let Some(status) = daemon.child.lock().unwrap().try_wait().unwrap() {
                break Some(status);
            }
            if started.elapsed() > deadline {
                timed_out = true;
                daemon.kill();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Finished {
            status,
            stdout: daemon.read_stdout(),
            stderr: daemon.read_stderr(),
            elapsed: started.elapsed(),
            timed_out,
        }
    }

    /// Polls `url` inside the namespace with curl until it answers with any HTTP status (at most
    /// `limit`); the status, or `None`.
    pub fn wait_http(&self, url: &str, limit: Duration) -> Option<u16> {
        let deadline = Instant::now() + limit;
        loop {
            let out = self
                .command("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-m",
                    "1",
                    "-w",
                    "%{http_code}",
                    url,
                ])
                .stdin(Stdio::null())
                .output()
                .expect("curl (apt-get install curl; tests/run.sh does)");
            let code: u16 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .unwrap_or(0);
            if code != 0 {
                return Some(code);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for child in self
            .children
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            let mut child = child.lock().unwrap_or_else(|e| e.into_inner());
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

impl Daemon {
    /// Its process id (`ip netns exec` execs the command, so this is the command's own).
    pub fn id(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// Whether it is still running.
    pub fn running(&self) -> bool {
        matches!(self.child.lock().unwrap().try_wait(), Ok(None))
    }

    /// SIGTERM, then waits (at most `limit`) for it to exit; whether it did.
    pub fn terminate(&self, limit: Duration) -> bool {
        let _ = Command::new("kill")
            .args(["-TERM", &self.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !self.running() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// SIGKILL, and waits for it.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap();
        let _ = child.kill();
        let _ = child.wait();
    }

    pub fn read_stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    pub fn read_stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

/// Where `ip` is, on this process's `PATH`.
fn ip_path() -> &'static Path {
    static IP: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    IP.get_or_init(|| {
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .map(|dir| dir.join("ip"))
            .find(|p| p.is_file())
            .expect("`ip` is missing: apt-get install iproute2 (tests/run.sh does)")
    })
}

fn run_ok(command: &mut Command) -> String {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
