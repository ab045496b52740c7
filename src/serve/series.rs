//! Every documented series at 0 from start-up: a dashboard or an alert on
//! `kausal_wal_refused_appends_total` or `kausal_linking_paused` then works
//! before the first incident, not only after it. (Histograms appear with
//! their first sample.)

use crate::decode::BadReason;
use crate::telemetry::{self as m, cluster_label};
use crate::wal::Endpoint;

/// Registers each series with the label values kausal writes, for the
/// default cluster; other clusters' series appear with their first batch.
pub(super) fn register_at_zero(default_cluster: &str, with_wal: bool) {
    let cluster = cluster_label(default_cluster);
    for endpoint in [Endpoint::Audit, Endpoint::Events] {
        metrics::counter!(m::BATCHES_RECEIVED, "cluster" => cluster.clone(), "endpoint" => endpoint.as_str())
            .absolute(0);
    }
    for reason in BadReason::ALL {
        metrics::counter!(m::BAD_RECORDS, "reason" => reason.as_str()).absolute(0);
    }
    for status in ["400", "401", "408", "413", "429", "503"] {
        metrics::counter!(m::REJECTED_REQUESTS, "status" => status).absolute(0);
    }
    for kind in ["intent", "automation", "controller_initiated", "orphan_event"] {
        metrics::counter!(m::ROOTS, "cluster" => cluster.clone(), "kind" => kind).absolute(0);
    }
    metrics::counter!(m::LATE_RECORDS, "cluster" => cluster.clone()).absolute(0);
    metrics::gauge!(m::GRAPH_OBJECTS, "cluster" => cluster.clone()).set(0.0);
    metrics::gauge!(m::PENDING_RECORDS, "cluster" => cluster).set(0.0);
    metrics::gauge!(m::QUEUE_DEPTH).set(0.0);
    metrics::gauge!(m::LINKING_PAUSED).set(0.0);
    for name in [m::SPANS_EXPORTED, m::EXPORT_RETRIES, m::WATCH_RESTARTS, m::RECORD_FAILURES] {
        metrics::counter!(name).absolute(0);
    }
    for reason in ["retries_exhausted", "rejected"] {
        metrics::counter!(m::SPANS_EXPORT_FAILED, "reason" => reason).absolute(0);
    }
    for result in ["found", "not_found", "cached", "error", "skipped_busy"] {
        metrics::counter!(m::LOOKUPS, "result" => result).absolute(0);
    }
    for kind in ["apply", "list", "list_too_old"] {
        metrics::counter!(m::WATCH_EVENTS, "type" => kind).absolute(0);
    }
    if with_wal {
        for name in [m::WAL_APPENDS, m::WAL_SYNCS, m::WAL_TORN_TAILS, m::WAL_CORRUPT_SEGMENTS, m::WAL_CONTEXT_EVICTED] {
            metrics::counter!(name).absolute(0);
        }
        for reason in ["full", "io_error"] {
            metrics::counter!(m::WAL_REFUSED, "reason" => reason).absolute(0);
        }
        for state in ["acknowledged", "unacknowledged"] {
            metrics::counter!(m::WAL_RECOVERED, "state" => state).absolute(0);
        }
        for name in [m::WAL_BYTES, m::WAL_SEGMENTS, m::WAL_UNACKNOWLEDGED, m::WAL_UNACKNOWLEDGED_BYTES] {
            metrics::gauge!(name).set(0.0);
        }
    }
}
