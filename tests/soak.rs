//! The soak: the real binary under mixed traffic from 50 pods while the pods churn through the
//! fake Kubernetes API server, with every audit line judged by an independent oracle — no wrong
//! decision, exactly one audit line per request, no memory growth.
//!
//! Pods have the loopback addresses 127.0.3.1 … 127.0.3.50, so the client can speak as each
//! (`soak/cluster.rs` plays the cluster, `soak/traffic.rs` the pods, `soak/oracle.rs` judges).
//! The guard runs as a child process, exactly as deployed: Kubernetes inventory through a
//! kubeconfig, upstream an emulator, audit lines on its stdout.
//!
//! It runs for `IMDS_GUARD_SOAK_SECONDS` (default 10, for CI). The long run:
//!
//! ```sh
//! IMDS_GUARD_SOAK_SECONDS=300 cargo test --release --test quick soak:: -- --nocapture
//! ```

use crate::support;

#[path = "soak/cluster.rs"]
mod cluster;
#[path = "soak/oracle.rs"]
mod oracle;
#[path = "soak/traffic.rs"]
mod traffic;

use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use imds_guard_emulator::EmulatorOptions;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use support::fake_api::FakeApi;
use tokio::net::TcpStream;

use cluster::{Cluster, History, NODE};
use oracle::{Line, Sent, World};
use traffic::Traffic;

/// Concurrent clients. Most requests take a millisecond; those from an address without a pod
/// wait out the unknown-source grace (1 s), so there are enough workers to keep traffic flowing.
const WORKERS: u64 = 32;

/// Allowed growth of the guard's resident memory from the warm-up sample (a fifth into the run)
/// to the end. The guard keeps no per-request state and only the 50 live pods, so once warm its
/// memory should stay flat; allocator noise is a few hundred KiB. A five-minute run makes
/// hundreds of thousands of requests and thousands of churn events, so a leak of 16 bytes per
/// request, or of a pod entry per churn event, breaks this bound.
const RSS_GROWTH_LIMIT_KIB: u64 = 4 * 1024;

/// The guard's config: the policy the oracle re-implements.
fn config(proxy: u16, admin: u16, upstream: SocketAddr, kubeconfig: &Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{proxy}"
admin_listen = "127.0.0.1:{admin}"

[upstream]
url = "http://{upstream}"

[inventory]
source = "kubernetes"
node_name = "{NODE}"
kubeconfig = "{}"
unknown_source_grace_ms = 1000

# The service's own tokens pass through: the judge knows the policy, not which pod a guard token
# was bound to (a pod replaced at the same address makes its predecessor's tokens invalid).
[imdsv2]
require_tokens = false
tokens = "passthrough"

# The soak judges decisions, not limits: 32 clients speak as 50 pods far faster than any pod's
# rate (the limits have their own tests in tests/front.rs).
[limits]
pod_requests_per_second = 0
upstream_requests_per_second = 0

[[rules]]
name = "node-metadata-lookup"
pod_labels = {{ "allow-node-metadata-lookup" = "true" }}
allow = ["/latest/**"]

[[rules]]
name = "shop-web"
namespaces = ["shop"]
pod_labels = {{ app = "web" }}
allow = ["/latest/meta-data/**"]
deny = ["/latest/meta-data/iam/**"]

[[rules]]
name = "batch-dynamic"
namespaces = ["batch"]
allow = ["/latest/dynamic/**"]
require_tokens = true
max_token_ttl_seconds = 60
"#,
        kubeconfig.display()
    )
}

fn soak_seconds() -> u64 {
    match std::env::var("IMDS_GUARD_SOAK_SECONDS") {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("IMDS_GUARD_SOAK_SECONDS={text:?} is not whole seconds")),
        Err(_) => 10,
    }
}

/// The guard as a child process, with its audit lines read as they come (so its audit queue
/// never backs up) and its log in a file. Killed if the test ends before it is stopped.
struct Guarded {
    child: Child,
    proxy: SocketAddr,
    admin: SocketAddr,
    lines: Arc<Mutex<Vec<Result<Line, String>>>>,
    reader: Option<std::thread::JoinHandle<()>>,
    log: std::path::PathBuf,
}

impl Guarded {
    fn start(dir: &Path, config: impl Fn(u16, u16) -> String) -> Guarded {
        let (proxy, admin) = (support::free_port(), support::free_port());
        let path = dir.join("config.toml");
        std::fs::write(&path, config(proxy, admin)).unwrap();
        let log = dir.join("stderr.log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_imds-guard"))
            .args(["run", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<Result<Line, String>>>> = Arc::default();
        let stdout = child.stdout.take().unwrap();
        let reader = {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for text in std::io::BufReader::new(stdout).lines() {
                    let text = text.unwrap();
                    let line = serde_json::from_str::<Line>(&text).map_err(|_| text);
                    lines.lock().unwrap().push(line);
                }
            })
        };
        Guarded {
            child,
            proxy: SocketAddr::from(([127, 0, 0, 1], proxy)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            lines,
            reader: Some(reader),
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    async fn wait_ready(&mut self) {
        let started = Instant::now();
        while admin_get(self.admin, "/readyz").await.map(|(s, _)| s) != Ok(200) {
            assert!(self.alive(), "the guard exited:\n{}", self.log());
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the guard never became ready:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn rss_kib(&self) -> u64 {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"))
    }

    /// Waits until at least `n` lines are in (10 s at most), then a moment for any extra one.
    async fn lines(&self, n: usize) -> Vec<Result<Line, String>> {
        let started = Instant::now();
        while self.lines.lock().unwrap().len() < n && started.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.lines.lock().unwrap().clone()
    }

    /// SIGTERM, and the exit status.
    async fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the guard did not stop on SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        status
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if self.alive() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// GET `path` on the admin port: status and body.
async fn admin_get(admin: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let stream = TcpStream::connect(admin).await.map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header("host", "localhost")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The value of metric `name`, summed over its label sets.
fn metric(text: &str, name: &str) -> u64 {
    let sum: f64 = text
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    sum as u64
}

/// The outcome of matching lines to requests and judging them.
#[derive(Default)]
struct Verdicts {
    mismatches: Vec<String>,
    /// Judged lines by (decision, reason).
    reasons: BTreeMap<(String, String), u64>,
    /// The longest a pod was still named after its deletion (watch delay).
    max_staleness: Duration,
}

/// Matches every line to its request by (source, method, path) — unique per request except for
/// the shared paths, whose lines come in the order their requests were sent — and judges it.
fn judge_all(sent: &[Sent], lines: &[Result<Line, String>], history: &History) -> Verdicts {
    type Key = (String, String, String);
    let world = World {
        pods: &history.pods,
        gaps: &history.gaps,
    };
    let mut verdicts = Verdicts::default();
    let mut lines_by_key: HashMap<Key, Vec<&Line>> = HashMap::new();
    for line in lines {
        match line {
            Ok(l) => lines_by_key
                .entry((l.src.clone(), l.method.clone(), l.path.clone()))
                .or_default()
                .push(l),
            Err(text) => verdicts
                .mismatches
                .push(format!("stdout line that is not an audit line: {text}")),
        }
    }
    let mut sent_by_key: HashMap<Key, Vec<&Sent>> = HashMap::new();
    for s in sent {
        let key = (
            s.src.to_string(),
            s.request.method.clone(),
            s.request.path.clone(),
        );
        sent_by_key.entry(key).or_default().push(s);
    }
    for (key, mut requests) in sent_by_key {
        requests.sort_by_key(|s| s.seq);
        let found = lines_by_key.remove(&key).unwrap_or_default();
        if found.len() != requests.len() {
            let what: Vec<String> = requests
                .iter()
                .map(|s| format!("#{} {:?} {:?}", s.seq, s.end - s.start, s.got))
                .collect();
            let seen: Vec<String> = found
                .iter()
                .map(|l| format!("{:?} {} {} {}", l.pod, l.decision, l.reason, l.status))
                .collect();
            verdicts.mismatches.push(format!(
                "{key:?}: {} request(s) {what:?}, {} audit line(s) {seen:?}",
                requests.len(),
                found.len()
            ));
            continue;
        }
        for (s, line) in requests.into_iter().zip(found) {
            *verdicts
                .reasons
                .entry((line.decision.clone(), line.reason.clone()))
                .or_default() += 1;
            if let Err(why) = oracle::judge(s, line, &world) {
                let r = &s.request;
                let m = format!("{} {} {}: {why}", s.src, r.method, r.path);
                verdicts.mismatches.push(m);
            }
            let deleted = line
                .pod_uid
                .as_ref()
                .and_then(|uid| history.pods.get(uid)?.deleted);
            if let Some(deleted) = deleted {
                let staleness = s.start.saturating_duration_since(deleted);
                verdicts.max_staleness = verdicts.max_staleness.max(staleness);
            }
        }
    }
    for (key, found) in lines_by_key {
        let m = format!("{key:?}: {} audit line(s) for no request", found.len());
        verdicts.mismatches.push(m);
    }
    verdicts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak() {
    let seconds = soak_seconds();
    let seed: u64 = rand::rng().random();
    println!("soak: {seconds} s, seed {seed}");

    let api = FakeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.write_kubeconfig(dir.path());
    let emu = support::emulator(EmulatorOptions::default()).await;
    let mut rng = StdRng::seed_from_u64(seed);
    let cluster = Arc::new(Cluster::start(api.clone(), &mut rng));
    let mut guard = Guarded::start(dir.path(), |proxy, admin| {
        config(proxy, admin, emu.addr, &kubeconfig)
    });
    guard.wait_ready().await;

    // A live token straight from the metadata service, for the reads that carry one.
    let token = support::request(
        "127.0.0.1",
        emu.addr,
        "PUT",
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
    )
    .await
    .text();

    let run = Duration::from_secs(seconds);
    let started = Instant::now();
    let deadline = started + run;
    let traffic = Arc::new(Traffic::new(guard.proxy, token, deadline));
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| tokio::spawn(traffic.clone().work(seed.wrapping_add(w + 1))))
        .collect();
    let churn = {
        let cluster = cluster.clone();
        let mut rng = StdRng::seed_from_u64(seed.wrapping_sub(1));
        tokio::spawn(async move {
            let mut events = 0u64;
            while Instant::now() < deadline {
                let pause = rng.random_range(50..150);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                cluster.churn(&mut rng);
                events += 1;
            }
            events
        })
    };
    // Memory every second; the warm-up sample is the first a fifth into the run.
    let mut rss_samples: Vec<(Duration, u64)> = Vec::new();
    while Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(Duration::from_secs(1).min(left)).await;
        rss_samples.push((started.elapsed(), guard.rss_kib()));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let churn_steps = churn.await.unwrap();
    let elapsed = started.elapsed();

    let sent = traffic.take_sent();
    let lines = guard.lines(sent.len()).await;
    let end_rss = guard.rss_kib();
    let warm_rss = rss_samples
        .iter()
        .find(|(at, _)| *at >= run / 5)
        .map(|(_, rss)| *rss)
        .expect("no warm-up sample");
    let max_rss = rss_samples.iter().map(|(_, rss)| *rss).max().unwrap_or(0);
    let step = rss_samples.len().div_ceil(10).max(1);
    let trend: Vec<String> = rss_samples
        .iter()
        .step_by(step)
        .map(|(at, rss)| format!("{}s {rss}", at.as_secs()))
        .collect();

    // Once the watch has caught up, the index holds exactly the live pods: churn left nothing.
    let live = cluster.live() as u64;
    let mut metrics = String::new();
    for _ in 0..40 {
        metrics = admin_get(guard.admin, "/metrics").await.unwrap().1;
        if metric(&metrics, "imds_guard_inventory_pods") == live {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let indexed = metric(&metrics, "imds_guard_inventory_pods");
    let counted = metric(&metrics, "imds_guard_requests_total");
    let dropped = metric(&metrics, "imds_guard_audit_dropped_lines");

    let history = Arc::into_inner(cluster).unwrap().into_history();
    let verdicts = judge_all(&sent, &lines, &history);
    let requests = sent.len() as u64;
    let decided = |decision: &str| -> u64 {
        let of = verdicts.reasons.iter().filter(|((d, _), _)| d == decision);
        of.map(|(_, n)| n).sum()
    };
    println!(
        "soak: {requests} requests in {:.1} s ({:.0}/s), {} audit lines, {} mismatches",
        elapsed.as_secs_f64(),
        requests as f64 / elapsed.as_secs_f64(),
        lines.len(),
        verdicts.mismatches.len()
    );
    println!(
        "soak: allowed {}, denied {}",
        decided("allow"),
        decided("deny")
    );
    for ((decision, reason), n) in &verdicts.reasons {
        println!("soak:   {decision:<5} {reason:<20} {n}");
    }
    println!(
        "soak: churn: {churn_steps} steps, {} pods created, {} replaced, {} deleted for a while; \
         {live} live at the end, {indexed} indexed; a deleted pod named at most {:?} after",
        history.created, history.replaced, history.deleted_for_a_while, verdicts.max_staleness
    );
    println!(
        "soak: VmRSS {warm_rss} KiB after warm-up, {end_rss} KiB at the end \
         (at most {max_rss} KiB during the run; KiB by time: {})",
        trend.join(", ")
    );
    for m in verdicts.mismatches.iter().take(20) {
        println!("soak: MISMATCH {m}");
    }

    assert!(requests > 0, "no traffic");
    assert_eq!(traffic.connect_errors(), 0, "connections not made");
    assert!(
        verdicts.mismatches.is_empty(),
        "{} mismatches; first: {:#?}",
        verdicts.mismatches.len(),
        &verdicts.mismatches[..verdicts.mismatches.len().min(20)]
    );
    assert_eq!(dropped, 0, "audit lines dropped by the guard");
    assert_eq!(
        counted, requests,
        "imds_guard_requests_total, against requests sent"
    );
    assert_eq!(indexed, live, "pods indexed, against pods live on the node");
    assert!(
        end_rss <= warm_rss + RSS_GROWTH_LIMIT_KIB,
        "VmRSS grew from {warm_rss} KiB to {end_rss} KiB"
    );

    assert!(guard.alive(), "the guard died:\n{}", guard.log());
    let health = admin_get(guard.admin, "/healthz").await;
    assert_eq!(health.map(|(s, _)| s), Ok(200));
    let status = guard.terminate().await;
    assert!(status.success(), "{status} after SIGTERM:\n{}", guard.log());
}
