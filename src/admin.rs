//! The admin port: `/healthz`, `/readyz`, `/metrics`. Read-only: nothing here changes state.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use tokio::net::TcpListener;

use crate::inventory::Index;
use crate::listen;
use crate::metrics::Metrics;
use crate::netfilter::keeper::RulesState;

/// State the admin endpoints report on.
pub struct Admin {
    pub inventory: Arc<Index>,
    pub metrics: Arc<Metrics>,
    /// Whether the interception rules are in place (always, when netfilter is not managed).
    pub rules: RulesState,
    /// The audit sink, for its count of dropped lines.
    pub audit: Arc<dyn crate::audit::Sink>,
}

impl Admin {
    /// Serves the admin port on `listener` until `stop`, then lets requests finish within `grace`.
    pub async fn serve(
        self,
        listener: TcpListener,
        stop: impl Future<Output = ()>,
        grace: Duration,
    ) {
        let admin = Arc::new(self);
        listen::serve(listener, stop, grace, move |_peer| {
            let admin = Arc::clone(&admin);
            move |request: Request<Incoming>| {
                let response = admin.handle(&request);
                async move { response }
            }
        })
        .await;
    }

    /// Answers one admin request.
    pub fn handle<B>(&self, request: &Request<B>) -> Response<Full<Bytes>> {
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD only\n");
        }
        match request.uri().path() {
            // The process is up and answering.
            "/healthz" => text(StatusCode::OK, "ok\n"),
            // Pods are protected and can be served: the inventory has its first complete view
            // and, when managed, the interception rules are in place.
            "/readyz" if !self.inventory.is_ready() => {
                text(StatusCode::SERVICE_UNAVAILABLE, "inventory not synced\n")
            }
            "/readyz" if !self.rules.in_place() => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "netfilter rules not in place\n",
            ),
            // Ready all the same: the rules are in place, and whether a BPF program on a pod
            // interface does send packets past them cannot be told from here; the text says it.
            "/readyz" => {
                let suspected = self.rules.bypass_suspected();
                if suspected.is_empty() {
                    return text(StatusCode::OK, "ready\n");
                }
                let mut response = text(StatusCode::OK, "");
                *response.body_mut() = Full::new(Bytes::from(format!(
                    "ready\nnetfilter may be bypassed: BPF programs on the ingress of {} \
                     (see docs/interception.md, \"When netfilter is bypassed\")\n",
                    suspected.join(", ")
                )));
                response
            }
            "/metrics" => {
                let dropped = i64::try_from(self.audit.dropped()).unwrap_or(i64::MAX);
                self.metrics.audit_dropped_lines.set(dropped);
                let ready = self.inventory.is_ready();
                self.metrics.inventory_ready.set(i64::from(ready));
                self.metrics
                    .inventory_pods
                    .set(i64::try_from(self.inventory.len()).unwrap_or(i64::MAX));
                let mut response = text(StatusCode::OK, "");
                *response.body_mut() = Full::new(Bytes::from(self.metrics.encode()));
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static(
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    ),
                );
                response
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}
