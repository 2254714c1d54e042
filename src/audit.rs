//! Audit: one JSON line per request, whatever the outcome.
//!
//! Lines go to stdout and nothing else does (logs go to stderr), so `imds-guard run | jq` works
//! and a log shipper can treat stdout as the audit stream. Token values and response bodies are
//! never part of an event: the event type has no field that could hold them.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Mutex;

use serde::Serialize;
use tracing_appender::non_blocking::{NonBlocking, NonBlockingBuilder, WorkerGuard};

/// One audited request.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    /// RFC 3339 UTC time, milliseconds.
    pub ts: String,
    /// The source address as seen by the guard (IPv4-mapped IPv6 shown as IPv4).
    pub src: IpAddr,
    /// `namespace/name`, or null when the source is not a known pod.
    pub pod: Option<&'a str>,
    pub pod_uid: Option<&'a str>,
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
    /// Body bytes sent to the client.
    pub bytes: usize,
    /// Whole time spent on the request in the guard.
    pub duration_ms: f64,
}

/// Where audit events go.
pub trait Sink: Send + Sync + 'static {
    fn record(&self, event: &Event<'_>);

    /// Lines that could not be written so far (reported as a metric).
    fn dropped(&self) -> u64 {
        0
    }
}

/// How many lines may wait for the writer thread: about 6 MiB of audit at most.
const QUEUE_LINES: usize = 16_384;

/// Writes events as JSON lines to stdout from a background thread, so the request path never
/// waits for stdout. Lines are batched into large writes (one system call for many lines). If the
/// reader of stdout falls so far behind that the queue fills, new lines are dropped rather than
/// stalling requests, and counted: [`Sink::dropped`] feeds `imds_guard_audit_dropped_lines`.
pub struct Stdout {
    writer: NonBlocking,
    /// Flushes what is queued when the sink is dropped at shutdown.
    _guard: WorkerGuard,
}

impl Stdout {
    /// A sink on the process's stdout.
    pub fn new() -> Self {
        let (writer, guard) = NonBlockingBuilder::default()
            .lossy(true)
            .buffered_lines_limit(QUEUE_LINES)
            .thread_name("imds-guard-audit")
            .finish(std::io::BufWriter::with_capacity(
                64 * 1024,
                std::io::stdout(),
            ));
        Self {
            writer,
            _guard: guard,
        }
    }
}

impl Default for Stdout {
    fn default() -> Self {
        Self::new()
    }
}

impl Sink for Stdout {
    fn record(&self, event: &Event<'_>) {
        match serde_json::to_vec(event) {
            Ok(mut line) => {
                line.push(b'\n');
                let mut writer = self.writer.clone();
                if let Err(e) = writer.write_all(&line) {
                    tracing::error!(error = %e, "audit line could not be written");
                }
            }
            Err(e) => tracing::error!(error = %e, "audit event could not be encoded"),
        }
    }

    fn dropped(&self) -> u64 {
        u64::try_from(self.writer.error_counter().dropped_lines()).unwrap_or(u64::MAX)
    }
}

/// Keeps events in memory as JSON values: for tests and embedding.
#[derive(Default)]
pub struct Memory {
    events: Mutex<Vec<serde_json::Value>>,
}

impl Memory {
    /// Everything recorded so far.
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Sink for Memory {
    fn record(&self, event: &Event<'_>) {
        if let Ok(value) = serde_json::to_value(event) {
            self.events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(value);
        }
    }
}

/// The current time in the audit format.
pub fn now() -> String {
    humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string()
}
