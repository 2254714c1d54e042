//! The real binary, `imds-guard run`, as a child process on loopback ports: its stdout (the audit
//! lines) and stderr (the log) kept in files, ended when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, get, wait_listening, TEST};

/// One running guard.
pub struct Binary {
    child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    log: PathBuf,
    audit: PathBuf,
    _dir: tempfile::TempDir,
}

impl Binary {
    /// Runs `config` (with `{upstream}` replaced by `upstream`, and listen addresses of its own
    /// set in `[server]` ahead of its `[upstream]`) with the extra `args`.
    pub fn start(config: &str, upstream: SocketAddr, args: &[&str]) -> Binary {
        let dir = tempfile::tempdir().unwrap();
        let proxy = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let admin = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = config
            .replace("{upstream}", &format!("http://{upstream}"))
            .replacen(
                "[upstream]",
                &format!(
                    "[server]\nlisten = \"{proxy}\"\nadmin_listen = \"{admin}\"\n\n[upstream]"
                ),
                1,
            );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, config).unwrap();
        Self::run(&path, proxy, admin, args, dir)
    }

    /// Runs the config file at `config`, which listens at `proxy` and `admin` (so a test can
    /// start the guard again on the same ports).
    pub fn start_file(config: &Path, proxy: SocketAddr, admin: SocketAddr) -> Binary {
        Self::run(config, proxy, admin, &[], tempfile::tempdir().unwrap())
    }

    fn run(
        config: &Path,
        proxy: SocketAddr,
        admin: SocketAddr,
        args: &[&str],
        dir: tempfile::TempDir,
    ) -> Binary {
        let log = dir.path().join("stderr.log");
        let audit = dir.path().join("stdout.log");
        let child = Command::new(env!("CARGO_BIN_EXE_imds-guard"))
            .args(["run", "--config"])
            .arg(config)
            .args(args)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&audit).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Binary {
            child,
            proxy,
            admin,
            log,
            audit,
            _dir: dir,
        }
    }

    /// Its audit lines so far (they are written out every 20 ms, and all of them on stop).
    pub fn audit(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.audit)
            .unwrap_or_default()
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not an audit line ({e}): {line}"))
            })
            .collect()
    }

    /// The file its stdout (the audit lines) goes to.
    pub fn audit_file(&self) -> &Path {
        &self.audit
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `/readyz` now (0 when it does not answer within 2 s).
    pub async fn readyz(&self) -> u16 {
        match tokio::time::timeout(Duration::from_secs(2), get(TEST, self.admin, "/readyz")).await {
            Ok(answer) => answer.status.as_u16(),
            Err(_) => 0,
        }
    }

    /// Waits (20 s at most) until it is ready; fails with its log when it is not, or exited.
    pub async fn wait_ready(&mut self) {
        wait_listening(self.admin).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.readyz().await != 200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the guard exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "the guard never became ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `VmRSS` and `VmHWM` in KiB.
    pub fn memory_kib(&self) -> (u64, u64) {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// Stops it as Kubernetes would (SIGTERM), waits (20 s at most), and gives what it logged.
    pub fn stop(&mut self) -> String {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let started = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the guard did not stop on SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.log()
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
