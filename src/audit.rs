//! Audit: one JSON line per request, whatever the outcome.
//!
//! Lines go to stdout and nothing else does (logs go to stderr), so `imds-guard run | jq` works
//! and a log shipper can treat stdout as the audit stream. Token values and response bodies are
//! never part of an event: the event type has no field that could hold them.

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use serde::Serialize;

mod pod;
pub use pod::{bounded, OwnerOf, WorkloadLabels, MAX_LABEL_VALUE, MAX_OWNER_NAME};

/// One audited request.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    /// RFC 3339 UTC time, milliseconds.
    pub ts: Timestamp,
    /// The source address as seen by the guard (IPv4-mapped IPv6 shown as IPv4).
    pub src: IpAddr,
    /// `namespace/name`, or null when the source is not a known pod.
    pub pod: Option<&'a str>,
    pub pod_uid: Option<&'a str>,
    /// The pod's labels named by `[audit] workload_labels`, those of them it has; null when the
    /// source is not a known pod. What `policy suggest` groups workloads by.
    pub labels: Option<WorkloadLabels<'a>>,
    /// What controls the pod (`{"kind":"Deployment","name":"web"}`), when the source knows it.
    pub owner: Option<OwnerOf<'a>>,
    pub method: &'a str,
    /// The canonical path; for a refused target, the target as received (shortened).
    pub path: &'a str,
    /// `allow`, `deny` or `would-deny` (audit mode).
    pub decision: &'static str,
    pub reason: &'static str,
    pub rule: Option<&'a str>,
    pub status: u16,
    /// `v2` when the request carries a token or asks for one, else `v1`.
    pub imds_version: &'static str,
    /// Upstream time, null when nothing was forwarded.
    pub upstream_ms: Option<f64>,
    /// Set when forwarding failed: `upstream-unreachable`, `upstream-timeout`, …
    pub error: Option<&'static str>,
    /// `hit`, `miss` (this request asked the service) or `shared` (it waited for another's
    /// identical miss) when the cache took part; null otherwise.
    pub cache: Option<&'static str>,
    /// With guard tokens: `issued` for a token request, else what the pod's token was (`valid`,
    /// `invalid`, `expired`); null when it sent none, and with passthrough tokens. Never the token.
    pub token: Option<&'static str>,
    /// How the pod was identified: `address` (the source address) or `cgroup` (the cgroup the
    /// kernel recorded for the connection, cross-checked with the address).
    pub identity: &'static str,
    /// Body bytes sent to the client.
    pub bytes: usize,
    /// Whole time spent on the request in the guard.
    pub duration_ms: f64,
}

impl Event<'_> {
    /// Appends the event as one JSON line, newline included: the same text `serde_json` makes of
    /// it (a test holds the two together), without its byte-at-a-time escaping for the strings
    /// that need none, which is nearly all of them.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        // Writing to a Vec cannot fail.
        let _ = write!(
            out,
            "{{\"ts\":\"{}\",\"src\":\"{}\",\"pod\":",
            humantime::format_rfc3339_millis(self.ts.0),
            self.src
        );
        json_opt_str(out, self.pod);
        out.extend_from_slice(b",\"pod_uid\":");
        json_opt_str(out, self.pod_uid);
        out.extend_from_slice(b",\"labels\":");
        match &self.labels {
            None => out.extend_from_slice(b"null"),
            Some(labels) => {
                out.push(b'{');
                for (i, (key, value)) in labels.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    json_str(out, key);
                    out.push(b':');
                    json_str(out, &value);
                }
                out.push(b'}');
            }
        }
        out.extend_from_slice(b",\"owner\":");
        match &self.owner {
            None => out.extend_from_slice(b"null"),
            Some(owner) => {
                out.extend_from_slice(b"{\"kind\":");
                json_str(out, &owner.kind());
                out.extend_from_slice(b",\"name\":");
                json_str(out, &owner.name());
                out.push(b'}');
            }
        }
        out.extend_from_slice(b",\"method\":");
        json_str(out, self.method);
        out.extend_from_slice(b",\"path\":");
        json_str(out, self.path);
        out.extend_from_slice(b",\"decision\":");
        json_str(out, self.decision);
        out.extend_from_slice(b",\"reason\":");
        json_str(out, self.reason);
        out.extend_from_slice(b",\"rule\":");
        json_opt_str(out, self.rule);
        let _ = write!(out, ",\"status\":{},\"imds_version\":", self.status);
        json_str(out, self.imds_version);
        out.extend_from_slice(b",\"upstream_ms\":");
        json_value(out, &self.upstream_ms);
        out.extend_from_slice(b",\"error\":");
        json_opt_str(out, self.error);
        out.extend_from_slice(b",\"cache\":");
        json_opt_str(out, self.cache);
        out.extend_from_slice(b",\"token\":");
        json_opt_str(out, self.token);
        out.extend_from_slice(b",\"identity\":");
        json_str(out, self.identity);
        let _ = write!(out, ",\"bytes\":{},\"duration_ms\":", self.bytes);
        json_value(out, &self.duration_ms);
        out.extend_from_slice(b"}\n");
    }
}

/// A JSON string: copied as is when nothing in it needs escaping, else written by `serde_json`.
fn json_str(out: &mut Vec<u8>, text: &str) {
    // Branch-free over the bytes: the strings are short, and this compiles to a vector loop.
    let escape = text.bytes().fold(false, |any, b| {
        any | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if escape {
        json_value(out, text);
    } else {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

fn json_opt_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => json_str(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// Numbers and the rare string that needs escaping: `serde_json`'s own text.
fn json_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Serialising a number or a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

/// Where audit events go.
pub trait Sink: Send + Sync + 'static {
    fn record(&self, event: &Event<'_>);

    /// Lines that could not be written so far (reported as a metric).
    fn dropped(&self) -> u64 {
        0
    }
}

/// The most audit text that may wait for the writer (about 20,000 lines): beyond, lines are
/// dropped and counted rather than held in memory without bound.
const MAX_PENDING: usize = 8 * 1024 * 1024;
/// How often the writer thread hands what is pending to stdout.
const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// Pending text that wakes the writer before its time: under load, lines leave in blocks of this
/// size instead of piling up for 20 ms, which keeps the buffers (and the memory they hold) small.
const FLUSH_AT: usize = 64 * 1024;

/// Writes events as JSON lines to stdout from a background thread, so the request path never
/// waits for stdout. Requests append their line to a shared buffer (no wake-up, no system call);
/// the writer hands the whole buffer to stdout every 20 ms in one write, or as soon as 64 KiB are
/// waiting. If the reader of stdout
/// falls so far behind that 8 MiB are waiting, new lines are dropped rather than stalling
/// requests, and counted: [`Sink::dropped`] feeds `imds_guard_audit_dropped_lines`. Dropping the
/// sink writes out everything still pending.
///
/// Kept rather than a crate's non-blocking writer (tracing-appender's, which it replaced): that
/// one hands each line to its thread through a channel, a wake-up per request; this one wakes its
/// thread at most every 20 ms, whatever the load.
pub struct Stdout {
    shared: Arc<Pending>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// The writer, to wake it early when [`FLUSH_AT`] is reached.
    wake: Option<std::thread::Thread>,
    /// Most text that may wait (see [`MAX_PENDING`]).
    max_pending: usize,
}

#[derive(Default)]
struct Pending {
    text: Mutex<Vec<u8>>,
    dropped: AtomicU64,
    stop: AtomicBool,
}

impl Stdout {
    /// A sink on the process's stdout.
    pub fn new() -> Self {
        Self::to_writer(std::io::stdout(), MAX_PENDING)
    }

    /// The same sink on any writer, with its own bound on pending text.
    pub fn to_writer(out: impl Write + Send + 'static, max_pending: usize) -> Self {
        Self::flushing_every(out, max_pending, FLUSH_EVERY)
    }

    /// [`Stdout::to_writer`] with the writer's period chosen.
    fn flushing_every(
        out: impl Write + Send + 'static,
        max_pending: usize,
        every: Duration,
    ) -> Self {
        let shared = Arc::new(Pending::default());
        let for_writer = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("imds-guard-audit".into())
            .spawn(move || write_out(&for_writer, out, every))
            .map_err(|e| tracing::error!(error = %e, "cannot start the audit writer; audit lines go nowhere"))
            .ok();
        Self {
            shared,
            wake: writer.as_ref().map(|w| w.thread().clone()),
            writer,
            max_pending,
        }
    }
}

/// The writer thread: every `every` (or when woken), swaps the pending text out and writes it.
fn write_out(shared: &Pending, mut out: impl Write, every: Duration) {
    let mut spare = Vec::with_capacity(64 * 1024);
    let mut failing = false;
    loop {
        let stopping = shared.stop.load(Ordering::Acquire);
        if !stopping {
            std::thread::park_timeout(every);
        }
        std::mem::swap(&mut *shared.text.lock(), &mut spare);
        if !spare.is_empty() {
            let written = out.write_all(&spare).and_then(|()| out.flush());
            match (written, failing) {
                (Err(e), false) => {
                    failing = true;
                    tracing::error!(error = %e, "audit lines could not be written to stdout");
                }
                (Ok(()), true) => failing = false,
                _ => {}
            }
            if failing {
                let lines = spare.iter().filter(|b| **b == b'\n').count();
                shared.dropped.fetch_add(lines as u64, Ordering::Relaxed);
            }
            spare.clear();
            // A burst (a slow reader) may have grown it; keep only what steady load needs.
            if spare.capacity() > 4 * FLUSH_AT {
                spare.shrink_to(2 * FLUSH_AT);
            }
        }
        if stopping {
            return;
        }
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Stdout {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(writer) = self.writer.take() {
            writer.thread().unpark();
            let _ = writer.join();
        }
    }
}

thread_local! {
    /// Each thread's scratch space for encoding a line outside the shared lock.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Sink for Stdout {
    fn record(&self, event: &Event<'_>) {
        SCRATCH.with_borrow_mut(|line| {
            line.clear();
            event.write_line(line);
            let mut text = self.shared.text.lock();
            let before = text.len();
            if before + line.len() > self.max_pending {
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            text.extend_from_slice(line);
            let crossed = before < FLUSH_AT && text.len() >= FLUSH_AT;
            drop(text);
            if let (true, Some(writer)) = (crossed, &self.wake) {
                writer.unpark();
            }
        });
    }

    fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests;

/// Keeps events in memory as JSON values: for tests and embedding.
#[derive(Default)]
pub struct Memory {
    events: Mutex<Vec<serde_json::Value>>,
}

impl Memory {
    /// Everything recorded so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.events.lock().clone()
    }
}

impl Sink for Memory {
    fn record(&self, event: &Event<'_>) {
        if let Ok(value) = serde_json::to_value(event) {
            self.events.lock().push(value);
        }
    }
}

/// When an event happened. Written straight into the line as RFC 3339 UTC with milliseconds,
/// without a string of its own.
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(std::time::SystemTime);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_rfc3339_millis(self.0))
    }
}

/// The current time, for an event.
pub fn now() -> Timestamp {
    Timestamp(std::time::SystemTime::now())
}
