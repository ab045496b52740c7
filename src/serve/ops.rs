//! The operations endpoints: `/healthz`, `/readyz` and `/metrics`.
//!
//! Served on the webhook's listener and alone on the plain-HTTP ops port,
//! where kubelet probes and Prometheus can reach them without a client
//! certificate. Readiness reads the pipeline's state; it owns none of it.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::pipeline::{ExportHealth, IngestQueue};
use crate::wal::Wal;

/// What the ops endpoints look at.
pub(super) struct OpsState {
    pub queue: IngestQueue,
    pub export_health: Arc<ExportHealth>,
    /// Where spans are exported, as `/readyz` names it; `None`: stored only.
    pub otlp_endpoint: Option<String>,
    pub wal: Option<Arc<Wal>>,
    pub metrics: Option<PrometheusHandle>,
}

pub(super) fn router(state: Arc<OpsState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Not ready while shutting down, while the queue or the log is nearly full,
/// or while exports fail: load balancers then send elsewhere before requests
/// start getting 429.
async fn readyz(State(state): State<Arc<OpsState>>) -> Response {
    let mut problems = Vec::new();
    if state.queue.is_closed() {
        problems.push("shutting down".to_owned());
    }
    if state.queue.saturated() {
        problems.push(format!("ingest queue {}/{} records", state.queue.depth(), state.queue.capacity()));
    }
    if !state.export_health.healthy() {
        problems.push(match &state.otlp_endpoint {
            Some(endpoint) => format!("OTLP exports to {endpoint} are failing"),
            None => "storing spans in the trace store fails (the only sink: no OTLP endpoint)".to_owned(),
        });
    }
    if state.export_health.linking_paused() {
        problems.push("linking is paused behind the exporter: records wait in the ingest queue".to_owned());
    }
    if let Some(why) = state.wal.as_ref().and_then(|w| w.refusing()) {
        problems.push(format!("the write-ahead log refuses appends: {why}"));
    }
    if let Some(wal) = state.wal.as_ref().filter(|w| w.saturated()) {
        let stats = wal.stats();
        problems.push(format!(
            "write-ahead log {}/{} bytes not yet exported",
            stats.unacknowledged_bytes,
            wal.max_bytes()
        ));
    }
    if problems.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}\n", problems.join("; "))).into_response()
    }
}

async fn metrics_text(State(state): State<Arc<OpsState>>) -> Response {
    match &state.metrics {
        Some(handle) => {
            ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], handle.render()).into_response()
        }
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}
