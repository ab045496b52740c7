//! The audit webhook: `POST /audit[/{cluster}]` and `POST /events[/{cluster}]`.
//! (`/healthz`, `/readyz` and `/metrics` are the server's, in `serve::ops`.)
//!
//! The order of checks is the order of cost: authenticate (no body read),
//! refuse an oversize `Content-Length`, read the body (decompressed, bounded),
//! decode it, take room in the queue, write the body to the write-ahead log
//! (when there is one) and enqueue. A 200 means every good record is in the
//! queue and, with `--data-dir`, synced to disk; bad records in the same batch
//! are counted and logged, never a reason to fail the batch (the apiserver
//! would only resend it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Json, Router};
use serde_json::json;
use tower_http::decompression::RequestDecompressionLayer;
use tower_http::timeout::TimeoutLayer;

use super::auth::Auth;
use super::listener::ConnectionInfo;
use super::recorder::Recorder;
use crate::core::time::Micros;
use crate::decode::{self, DecodeOptions, Decoded};
use crate::pipeline::{Batch, ClusterSlots, EnqueueError, IngestQueue, wall_clock_micros};
use crate::telemetry::{self as m, cluster_label};
use crate::wal::{AppendError, Endpoint, Wal};

/// How far a record's time may be ahead of this machine's clock. The core
/// tolerates any skew (its clock is the records' own); this only keeps a
/// wildly wrong timestamp from moving that clock for everyone.
const MAX_AHEAD_OF_CLOCK: Duration = Duration::from_secs(3600);

/// Everything the handlers share.
pub struct WebhookState {
    pub queue: IngestQueue,
    pub auth: Auth,
    pub decode: DecodeOptions,
    /// The largest body accepted, after decompression.
    pub max_body_bytes: usize,
    /// Requests must be complete within this (a body trickled slower is cut off with 408).
    pub request_timeout: Duration,
    /// The graph (and `k8s.cluster.name`) for `/audit` and `/events` without a
    /// cluster in the path: `--cluster-name`, shared with the Event watcher so
    /// watched Events meet the audit writes of the same cluster.
    pub default_cluster: Arc<str>,
    /// Distinct cluster names accepted (`--max-clusters`); each one costs a graph.
    pub clusters: Arc<ClusterSlots>,
    /// How many bad records per batch are logged in full (the rest are counted).
    pub bad_records_logged_per_batch: usize,
    /// `--record-dir`: accepted bodies are kept as fixtures.
    pub recorder: Option<Arc<Recorder>>,
    /// `--data-dir`: accepted bodies are on disk before the 200.
    pub wal: Option<Arc<Wal>>,
    /// Bodies being received, in KiB permits of `--max-inflight-bytes`:
    /// memory is bounded by bytes in flight, not only by parsed records.
    pub inflight: Arc<tokio::sync::Semaphore>,
}

/// The semaphore behind [`WebhookState::inflight`] for a budget of `bytes`.
pub fn inflight_budget(bytes: usize) -> Arc<tokio::sync::Semaphore> {
    Arc::new(tokio::sync::Semaphore::new((bytes / 1024).clamp(1, tokio::sync::Semaphore::MAX_PERMITS)))
}

/// The webhook's routes, all authenticated.
pub fn router(state: Arc<WebhookState>) -> Router {
    let ingest = Router::new()
        .route("/audit", post(audit))
        .route("/audit/{cluster}", post(audit))
        .route("/events", post(events))
        .route("/events/{cluster}", post(events))
        .layer(RequestDecompressionLayer::new())
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, state.request_timeout))
        .layer(middleware::from_fn(observe));
    ingest.with_state(state)
}

/// Latency of every ingest request, and a count of every error answer.
async fn observe(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(m::REQUEST_DURATION).record(started.elapsed().as_secs_f64());
    let status = response.status();
    if !status.is_success() {
        metrics::counter!(m::REJECTED_REQUESTS, "status" => status.as_u16().to_string()).increment(1);
    }
    response
}

async fn authenticate(
    State(state): State<Arc<WebhookState>>,
    connection: Option<Extension<ConnectionInfo>>,
    request: Request,
    next: Next,
) -> Response {
    match state.auth.admit(connection.map(|Extension(c)| c), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(why) => {
            let mut response = error(StatusCode::UNAUTHORIZED, "unauthenticated", why);
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            response
        }
    }
}

/// `POST /audit` and `POST /audit/{cluster}`.
async fn audit(
    state: State<Arc<WebhookState>>,
    cluster: Option<Path<String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest(&state, cluster.as_deref().map_or("", String::as_str), Endpoint::Audit, &headers, body).await
}

/// `POST /events` and `POST /events/{cluster}`: the same decoder, counted apart.
async fn events(
    state: State<Arc<WebhookState>>,
    cluster: Option<Path<String>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    ingest(&state, cluster.as_deref().map_or("", String::as_str), Endpoint::Events, &headers, body).await
}

fn error(status: StatusCode, reason: &str, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into(), "reason": reason }))).into_response()
}

/// Bodies from this size on are decoded with `block_in_place`.
const LARGE_BODY: usize = 1 << 20;

/// The options a body accepted at `accepted_at` (Unix microseconds) is
/// decoded with: the webhook's, also used to replay the write-ahead log, so
/// that a recovered body yields exactly the records it did when it was accepted.
pub fn body_decode_options(options: DecodeOptions, accepted_at: Micros) -> DecodeOptions {
    options.bounded_by(accepted_at, MAX_AHEAD_OF_CLOCK)
}

/// A cluster name is a path segment and a metrics label: keep it short and plain.
/// A DNS-1123 label: 1-63 lowercase letters, digits and '-', starting and
/// ending with a letter or digit. No dot, so no name (`..`, `.`, also sent as
/// `%2e%2e`) can leave `--record-dir`; no underscore, so none can take the
/// unnamed cluster's label.
pub fn valid_cluster_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let alphanumeric = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    (1..=63).contains(&bytes.len())
        && bytes.iter().all(|b| alphanumeric(b) || *b == b'-')
        && bytes.first().is_some_and(alphanumeric)
        && bytes.last().is_some_and(alphanumeric)
}

/// 429 with `Retry-After`: the apiserver keeps the batch and sends it again.
fn retry_later(reason: &str, message: String) -> Response {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, reason, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn ingest(state: &WebhookState, cluster: &str, route: Endpoint, headers: &HeaderMap, body: Body) -> Response {
    let endpoint = route.as_str();
    if !cluster.is_empty() && !valid_cluster_name(cluster) {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid_cluster_name",
            "cluster names are DNS-1123 labels: 1-63 lowercase letters, digits and '-', starting and ending \
             with a letter or digit",
        );
    }
    let cluster_name = if cluster.is_empty() { &*state.default_cluster } else { cluster };
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > state.max_body_bytes as u64) {
        return too_large(state.max_body_bytes);
    }
    // Reserve the body's size before reading it (its declared length, or the
    // largest allowed when unknown or compressed): many slow bodies at once
    // get 429 instead of the process's memory.
    let compressed = headers.contains_key(header::CONTENT_ENCODING);
    let reserve = declared.filter(|_| !compressed).unwrap_or(state.max_body_bytes as u64);
    let kib = u32::try_from(reserve.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
    let Ok(_inflight) = state.inflight.clone().try_acquire_many_owned(kib) else {
        return retry_later(
            "inflight_bytes_full",
            "too many request bodies are being received at once (--max-inflight-bytes); retry".to_owned(),
        );
    };
    let bytes = match axum::body::to_bytes(body, state.max_body_bytes).await {
        Ok(b) => b,
        Err(e) if is_length_limit(&e) => return too_large(state.max_body_bytes),
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "unreadable_body",
                format!("could not read the request body: {}", crate::telemetry::error_chain(&e)),
            );
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return error(StatusCode::BAD_REQUEST, "empty_body", "the request body is empty");
    }

    let now = wall_clock_micros();
    let options = body_decode_options(state.decode, now);
    let decoded = if bytes.len() >= LARGE_BODY {
        // Parsing megabytes takes milliseconds: let the runtime move other
        // connections off this thread meanwhile.
        tokio::task::block_in_place(|| decode::decode(&bytes, &options))
    } else {
        decode::decode(&bytes, &options)
    };
    let recognised =
        decoded.stats.audit_events + decoded.stats.kube_events + decoded.stats.skipped.values().sum::<u64>();
    if recognised == 0 && decoded.records.is_empty() {
        let first = decoded.bad.first();
        let reason = first.map_or("unknown_shape", |b| b.reason.as_str());
        let detail =
            first.map_or_else(|| "no audit events or Kubernetes Events found".to_owned(), |b| b.detail.clone());
        return error(
            StatusCode::BAD_REQUEST,
            reason,
            format!("the body is not an audit EventList, an Event, or a list or stream of them: {detail}"),
        );
    }

    let label = cluster_label(cluster_name);
    count_decoded(&decoded, &label, endpoint);
    log_bad_records(&decoded, &label, endpoint, state.bad_records_logged_per_batch);

    let accepted = decoded.records.len();
    let bad = decoded.stats.bad_total();
    if accepted == 0 && bad > 0 {
        // Nothing to keep, and sending it again cannot help.
        let first = decoded.bad.first().map(|b| format!(": {}", b.detail)).unwrap_or_default();
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({
                "error": "no_good_records",
                "message": format!("none of the body's {bad} records could be read{first}"),
                "accepted": 0,
                "bad": bad,
            })),
        )
            .into_response();
    }
    // A cluster slot goes only to a batch that is kept: rejected requests
    // to new names cannot use up --max-clusters.
    let cluster = match state.clusters.admit(cluster_name, Instant::now()) {
        Some(c) => c,
        None => {
            return error(
                StatusCode::BAD_REQUEST,
                "too_many_clusters",
                format!(
                    "already receiving from {} clusters (--max-clusters), none idle long enough (--wal-context) \
                     to give its slot up",
                    state.clusters.max()
                ),
            );
        }
    };
    let reservation = match state.queue.try_reserve(accepted) {
        Ok(r) => r,
        Err(EnqueueError::Full) => {
            return retry_later(
                "queue_full",
                format!("the ingest queue is full ({} records); retry", state.queue.capacity()),
            );
        }
        Err(EnqueueError::TooLarge { records, capacity }) => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "batch_too_large",
                format!("the batch has {records} records; the queue holds {capacity} (--queue-capacity)"),
            );
        }
        Err(EnqueueError::Closed) => return shutting_down(),
    };
    // A body with no good record has nothing to keep: it is not logged.
    let ack = match state.wal.as_ref().filter(|_| accepted > 0) {
        Some(wal) => {
            let newest = decoded.records.iter().map(|r| r.order_time()).max().unwrap_or_default();
            match wal.append(&cluster, route, bytes.clone(), now, newest).await {
                Ok(token) => Some(token),
                Err(e @ AppendError::Full { .. }) => return retry_later("wal_full", format!("{e}; retry")),
                Err(e @ AppendError::Io(_)) => return retry_later("wal_write_failed", format!("{e}; retry")),
                Err(e @ AppendError::TooLarge { .. }) => {
                    return error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", e.to_string());
                }
                Err(AppendError::Closed) => return shutting_down(),
            }
        }
        None => None,
    };
    let batch = Batch { cluster: cluster.clone(), records: decoded.records, ack, ..Batch::default() };
    match reservation.send(batch) {
        Ok(()) => {
            if let Some(recorder) = &state.recorder {
                recorder.body(&cluster, endpoint, &bytes);
            }
            metrics::counter!(m::BATCHES_RECEIVED, "cluster" => label, "endpoint" => endpoint).increment(1);
            (StatusCode::OK, Json(json!({ "accepted": accepted, "bad": bad }))).into_response()
        }
        // The worker is gone (shutdown): an entry already logged is replayed at the next start.
        Err(_) => shutting_down(),
    }
}

fn shutting_down() -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "kausal is shutting down; retry");
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn too_large(limit: usize) -> Response {
    error(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the body is larger than {limit} bytes (--max-body-bytes)"),
    )
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = source {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = err.source();
    }
    false
}

fn count_decoded(decoded: &Decoded, cluster: &str, endpoint: &'static str) {
    for ((verb, stage), n) in &decoded.stats.audit_by_verb_stage {
        metrics::counter!(m::AUDIT_EVENTS_RECEIVED, "cluster" => cluster.to_owned(), "verb" => *verb, "stage" => *stage)
            .increment(*n);
    }
    if decoded.stats.kube_events > 0 {
        metrics::counter!(m::KUBE_EVENTS_RECEIVED, "cluster" => cluster.to_owned(), "source" => endpoint)
            .increment(decoded.stats.kube_events);
    }
    for (reason, n) in &decoded.stats.bad {
        metrics::counter!(m::BAD_RECORDS, "reason" => reason.as_str()).increment(*n);
    }
    for (reason, n) in &decoded.stats.skipped {
        metrics::counter!(m::SKIPPED_RECORDS, "reason" => *reason).increment(*n);
    }
    if decoded.stats.trace_contexts_invalid > 0 {
        metrics::counter!(m::TRACE_CONTEXTS_INVALID).increment(decoded.stats.trace_contexts_invalid);
    }
}

fn log_bad_records(decoded: &Decoded, cluster: &str, endpoint: &str, shown: usize) {
    for bad in decoded.bad.iter().take(shown) {
        tracing::warn!(cluster, endpoint, reason = bad.reason.as_str(), line = bad.line, detail = %bad.detail, "bad record skipped");
    }
    if decoded.bad.len() > shown {
        tracing::warn!(cluster, endpoint, more = decoded.bad.len() - shown, "more bad records skipped in this batch");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_plain() {
        assert!(valid_cluster_name("prod-eu-1"));
        for name in ["..", ".", "a.b", "a_b", "-a", "a-", "Prod", "_default", "default."] {
            assert!(!valid_cluster_name(name), "{name}");
        }
        assert!(!valid_cluster_name(""));
        assert!(!valid_cluster_name("a/b"));
        assert!(!valid_cluster_name("späť"));
        assert!(!valid_cluster_name(&"x".repeat(64)));
    }
}
