//! The DaemonSet form of the canary: a probe every interval until stopped, and a port for
//! Prometheus and the kubelet.
//!
//! `/readyz` follows the last probe (503 with the reason while unprotected), so a node whose
//! interception is bypassed shows as a not-ready canary pod without any monitoring in place;
//! `/metrics` carries the same for alerts; `/healthz` says only that the process answers. Each
//! change of state is logged once: at warn when the node turns unprotected, at info when it is
//! protected again.

use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::time::MissedTickBehavior;

use super::{probe, Outcome, Target};
use crate::listen;
use crate::metrics::ResultLabels;

/// What the DaemonSet form probes, and how often.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: Target,
    /// Time between the starts of two probes.
    pub interval: Duration,
    /// How long one probe may take before it counts as `timeout`.
    pub timeout: Duration,
    /// The node the canary runs on, for the log (from the downward API).
    pub node: Option<String>,
}

/// The canary's own metrics. Their names are a contract with the alerts and dashboards.
struct Metrics {
    registry: Registry,
    /// 1 when the last probe was answered by the guard, 0 otherwise (and before the first).
    protected: Gauge,
    /// Probes by result: `protected`, `unprotected`.
    probes: Family<ResultLabels, Counter>,
    /// When the last probe ended, in Unix seconds: a stuck canary shows as a stale timestamp.
    last_probe: Gauge<f64, AtomicU64>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("imds_guard_canary");
        let protected = Gauge::default();
        registry.register(
            "protected",
            "1 when the last probe of the metadata address was answered by the node's guard",
            protected.clone(),
        );
        let probes = Family::<ResultLabels, Counter>::default();
        registry.register(
            "probes",
            "Probes of the metadata address by result (protected, unprotected)",
            probes.clone(),
        );
        // Both series exist from the start, so a rate over them is defined before a first failure.
        for result in ["protected", "unprotected"] {
            let _ = probes.get_or_create(&ResultLabels { result });
        }
        let last_probe = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_probe_timestamp_seconds",
            "When the last probe ended, in Unix seconds",
            last_probe.clone(),
        );
        Self {
            registry,
            protected,
            probes,
            last_probe,
        }
    }

    fn record(&self, outcome: Outcome) {
        let result = if outcome.is_ok() {
            "protected"
        } else {
            "unprotected"
        };
        self.protected.set(i64::from(outcome.is_ok()));
        self.probes.get_or_create(&ResultLabels { result }).inc();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_probe.set(now);
    }

    fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        text
    }
}

/// What the port reports: the metrics and the last outcome (`None` before the first probe).
struct State {
    metrics: Metrics,
    last: Mutex<Option<Outcome>>,
}

impl State {
    fn handle(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n".into());
        }
        match request.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".into()),
            "/readyz" => match *self.last.lock() {
                Some(Ok(())) => text(StatusCode::OK, "protected\n".into()),
                Some(Err(why)) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not protected: {why}\n"),
                ),
                None => text(StatusCode::SERVICE_UNAVAILABLE, "no probe yet\n".into()),
            },
            "/metrics" => {
                let mut response = text(StatusCode::OK, self.metrics.encode());
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Probes every `settings.interval` and serves the port on `listener`, until `shutdown`.
pub async fn run(settings: Settings, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let state = Arc::new(State {
        metrics: Metrics::new(),
        last: Mutex::new(None),
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = Arc::clone(&state);
    let port = tokio::spawn(listen::serve(
        listener,
        async {
            let _ = stopped.await;
        },
        Duration::from_secs(1),
        move |_peer| {
            let state = Arc::clone(&served);
            move |request: Request<Incoming>| {
                let response = state.handle(&request);
                async move { response }
            }
        },
    ));
    tracing::info!(url = %settings.target, interval = ?settings.interval, "canary probing");
    tokio::select! {
        () = probe_forever(&settings, &state) => {}
        () = shutdown => tracing::info!("canary stopping"),
    }
    let _ = stop.send(());
    let _ = port.await;
}

async fn probe_forever(settings: &Settings, state: &State) {
    let node = settings.node.as_deref().unwrap_or("-");
    let mut ticks = tokio::time::interval(settings.interval);
    // A probe that takes long delays the next one; probes never pile up.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let outcome = probe(&settings.target, settings.timeout).await;
        state.metrics.record(outcome);
        let before = state.last.lock().replace(outcome);
        if before == Some(outcome) {
            continue;
        }
        match outcome {
            Err(why) => tracing::warn!(
                node,
                reason = %why,
                url = %settings.target,
                "NOT protected: pods' metadata requests do not reach the node's guard"
            ),
            Ok(()) => tracing::info!(node, "protected: the node's guard answered the canary"),
        }
    }
}
