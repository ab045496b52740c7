//! kausal's own telemetry: structured logs and Prometheus metrics.
//!
//! Metric names live here, in one place, so the README's table, the `/metrics`
//! output and the code cannot drift apart. Every metric is described at start
//! so `/metrics` lists it (with `# HELP`) even before it has a value.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const BATCHES_RECEIVED: &str = "kausal_webhook_batches_total";
pub const AUDIT_EVENTS_RECEIVED: &str = "kausal_audit_events_received_total";
pub const KUBE_EVENTS_RECEIVED: &str = "kausal_kube_events_received_total";
pub const BAD_RECORDS: &str = "kausal_bad_records_total";
pub const SKIPPED_RECORDS: &str = "kausal_skipped_records_total";
pub const REJECTED_REQUESTS: &str = "kausal_rejected_requests_total";
pub const CONNECTIONS_REFUSED: &str = "kausal_connections_closed_early_total";
pub const EVENTS_CLOSED_EARLY: &str = "kausal_event_spans_closed_early_total";
pub const EVENTS_ONLY_LINKS: &str = "kausal_events_only_links_total";
pub const TRACE_CONTEXTS_INVALID: &str = "kausal_trace_contexts_invalid_total";
pub const REQUEST_DURATION: &str = "kausal_webhook_request_duration_seconds";
pub const QUEUE_DEPTH: &str = "kausal_queue_depth_records";
pub const QUEUE_CAPACITY: &str = "kausal_queue_capacity_records";
pub const SPANS_EXPORTED: &str = "kausal_spans_exported_total";
pub const SPANS_EXPORT_FAILED: &str = "kausal_spans_export_failed_total";
pub const EXPORT_RETRIES: &str = "kausal_export_retries_total";
pub const SPANS_STORED: &str = "kausal_spans_stored_total";
pub const SPANS_STORE_FAILED: &str = "kausal_spans_store_failed_total";
pub const STORE_SPANS: &str = "kausal_store_spans";
pub const STORE_BYTES: &str = "kausal_store_bytes";
pub const STORE_PRUNED: &str = "kausal_store_pruned_spans_total";
pub const EXPORT_LAG: &str = "kausal_export_lag_seconds";
pub const GRAPH_OBJECTS: &str = "kausal_graph_objects";
pub const PENDING_RECORDS: &str = "kausal_pending_records";
pub const ROOTS: &str = "kausal_trace_roots_total";
pub const LATE_RECORDS: &str = "kausal_late_records_total";
pub const WATCH_EVENTS: &str = "kausal_watch_events_total";
pub const WATCH_RESTARTS: &str = "kausal_watch_restarts_total";
pub const OWNERS_WATCHED: &str = "kausal_owners_watched_total";
pub const LOOKUPS: &str = "kausal_object_lookups_total";
pub const RECORD_FAILURES: &str = "kausal_record_failures_total";
pub const WAL_BYTES: &str = "kausal_wal_bytes";
pub const WAL_SEGMENTS: &str = "kausal_wal_segments";
pub const WAL_UNACKNOWLEDGED: &str = "kausal_wal_unacknowledged_entries";
pub const WAL_UNACKNOWLEDGED_BYTES: &str = "kausal_wal_unacknowledged_bytes";
pub const WAL_APPENDS: &str = "kausal_wal_appends_total";
pub const WAL_SYNCS: &str = "kausal_wal_syncs_total";
pub const WAL_REFUSED: &str = "kausal_wal_refused_appends_total";
pub const WAL_TORN_TAILS: &str = "kausal_wal_torn_tails_total";
pub const WAL_CORRUPT_SEGMENTS: &str = "kausal_wal_corrupt_segments_total";
pub const WAL_CONTEXT_EVICTED: &str = "kausal_wal_context_evicted_segments_total";
pub const WAL_RECOVERED: &str = "kausal_wal_recovered_entries_total";
pub const LINKING_PAUSED: &str = "kausal_linking_paused";

/// The label (metrics, `--record-dir` directory) of the unnamed cluster: the
/// underscore is not allowed in a cluster name, so no named cluster can take it.
pub const UNNAMED_CLUSTER_LABEL: &str = "_default";

/// The metrics label for a cluster (see [`UNNAMED_CLUSTER_LABEL`]).
pub fn cluster_label(cluster: &str) -> String {
    if cluster.is_empty() { UNNAMED_CLUSTER_LABEL.to_owned() } else { cluster.to_owned() }
}

/// Installs the global Prometheus recorder and describes every metric.
pub fn install_metrics() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(REQUEST_DURATION.to_owned()),
            &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full(EXPORT_LAG.to_owned()),
            &[0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0],
        )?
        .install_recorder()?;
    describe_counter!(BATCHES_RECEIVED, "Accepted webhook POSTs, by cluster and endpoint.");
    describe_counter!(AUDIT_EVENTS_RECEIVED, "Well-formed audit events received, by cluster, verb and stage.");
    describe_counter!(KUBE_EVENTS_RECEIVED, "Kubernetes Event objects received, by cluster and source.");
    describe_counter!(BAD_RECORDS, "Malformed records rejected (the rest of their batch is kept), by reason.");
    describe_counter!(
        SKIPPED_RECORDS,
        "Well-formed records that are not turned into spans (reads, leases...), by reason."
    );
    describe_counter!(REJECTED_REQUESTS, "Webhook requests answered with an error, by status code.");
    describe_counter!(
        TRACE_CONTEXTS_INVALID,
        "Trace-context annotations that parsed in no format (ignored; the record is kept)."
    );
    describe_counter!(
        EVENTS_ONLY_LINKS,
        "Events linked by what other Events announce, on a cluster that sent no audit record (the Events-only linker)."
    );
    describe_counter!(
        EVENTS_CLOSED_EARLY,
        "Event spans emitted before --event-linger ended because the write-ahead log needed its entries back."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed by the listener's limits: over --max-connections or --max-unauthenticated-connections, or not authenticated in time."
    );
    describe_histogram!(REQUEST_DURATION, Unit::Seconds, "Webhook request latency, from headers to answer.");
    describe_gauge!(QUEUE_DEPTH, "Records accepted but not yet handed to the causal core.");
    describe_gauge!(QUEUE_CAPACITY, "Records the ingest queue holds before answering 429.");
    describe_counter!(SPANS_EXPORTED, "Spans acknowledged by the OTLP endpoint.");
    describe_counter!(SPANS_EXPORT_FAILED, "Spans given up after every export retry failed, by reason.");
    describe_counter!(EXPORT_RETRIES, "OTLP export attempts that failed and were retried.");
    describe_counter!(SPANS_STORED, "Spans committed to the embedded trace store.");
    describe_counter!(SPANS_STORE_FAILED, "Spans the trace store could not commit after every retry.");
    describe_gauge!(STORE_SPANS, "Spans in the embedded trace store.");
    describe_gauge!(STORE_BYTES, "Bytes the embedded trace store's pages use.");
    describe_counter!(STORE_PRUNED, "Spans dropped from the trace store, by reason (retention, size).");
    describe_histogram!(
        EXPORT_LAG,
        Unit::Seconds,
        "Time from a record's stageTimestamp (or Event time) to the export of its span."
    );
    describe_gauge!(
        LINKING_PAUSED,
        "1 while linking waits for the exporter (every export slot full): records queue up towards 429."
    );
    describe_gauge!(GRAPH_OBJECTS, "Objects tracked in the relation graph, by cluster.");
    describe_gauge!(PENDING_RECORDS, "Records in the settle buffer, waiting to be put in timestamp order, by cluster.");
    describe_counter!(
        ROOTS,
        "Trace roots, by cluster and kind (intent, automation, controller_initiated, orphan_event)."
    );
    describe_counter!(LATE_RECORDS, "Records that arrived after newer ones had been linked, by cluster.");
    describe_counter!(WATCH_EVENTS, "Events received from the Kubernetes watch, by type.");
    describe_counter!(WATCH_RESTARTS, "Event watch errors after which the watch restarted or relisted.");
    describe_counter!(
        OWNERS_WATCHED,
        "Objects whose metadata the owner watches (--watch-owners) handed to the core, by kind."
    );
    describe_counter!(RECORD_FAILURES, "Inputs that --record-dir could not write.");
    describe_counter!(LOOKUPS, "Metadata lookups of objects the graph had not seen, by result.");
    describe_gauge!(
        WAL_BYTES,
        Unit::Bytes,
        "Disk used by the write-ahead log's segments (bounded by --max-wal-bytes)."
    );
    describe_gauge!(WAL_SEGMENTS, "Write-ahead log segment files.");
    describe_gauge!(WAL_UNACKNOWLEDGED, "Accepted bodies whose spans are not all exported yet.");
    describe_gauge!(
        WAL_UNACKNOWLEDGED_BYTES,
        Unit::Bytes,
        "Bytes of accepted bodies whose spans are not all exported yet."
    );
    describe_counter!(WAL_APPENDS, "Bodies written to the write-ahead log.");
    describe_counter!(
        WAL_SYNCS,
        "fdatasync calls of the write-ahead log (group commit: fewer than appends under load)."
    );
    describe_counter!(WAL_REFUSED, "Appends refused (the webhook answered 429), by reason: full, io_error.");
    describe_counter!(WAL_TORN_TAILS, "Partly written records cut off the newest segment at start-up.");
    describe_counter!(
        WAL_CORRUPT_SEGMENTS,
        "Older segments with an unreadable record at start-up (the rest of the segment is lost)."
    );
    describe_counter!(
        WAL_CONTEXT_EVICTED,
        "Acknowledged segments removed before their context period ended, to make room."
    );
    describe_counter!(
        WAL_RECOVERED,
        "Entries found at start-up, by state: acknowledged (replayed as context), unacknowledged (replayed as new)."
    );
    Ok(handle)
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global log subscriber. `RUST_LOG` overrides `level`.
pub fn init_logging(format: LogFormat, level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// An error and its causes, for a message: many errors (reqwest's, hyper's)
/// leave the reason to their sources.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
