//! The export loop: drains the worker's span channel into the trace store
//! and OTLP (either may be absent), with retries and backoff, and reports
//! what it did.
//!
//! A batch goes out as one request (several only past
//! [`MAX_REQUEST_SPANS`](super::otlp_exporter::MAX_REQUEST_SPANS) spans), and
//! up to [`IN_FLIGHT`] batches are out at once. A retry sends only the
//! requests of a batch not yet accepted (see [`ExportProgress`]): a failure
//! halfway through a batch duplicates nothing.
//!
//! While an export is being retried the channel fills up, the worker waits, the
//! ingest queue fills and the webhook answers 429: the apiserver holds the data
//! instead of kausal dropping it. Only after `give_up_after` of failures are a
//! batch's spans abandoned, counted under `reason="retries_exhausted"` and logged.
//!
//! After a batch is exported (or given up and counted), the write-ahead log
//! entries it completes are acknowledged, so the log can let them go.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use tokio::sync::mpsc;

use super::clock::wall_clock_micros;
use super::health::ExportHealth;
use super::otlp_exporter::{ExportProgress, IN_FLIGHT, OtlpExporter};
use super::worker::SpanBatch;
use crate::sinks::otel::SharedResource;
use crate::store::{Store, StoredSpan};
use crate::telemetry::{self as m, cluster_label};
use crate::wal::Wal;

#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// How long one batch is retried before its spans are given up.
    pub give_up_after: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// How many spans waiting batches are merged into, at most, for one export.
const MAX_COALESCED_SPANS: usize = 4096;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Exports every batch the channel delivers until it closes and every
/// export in flight has ended.
///
/// Up to [`IN_FLIGHT`] batches are exported at once, each from its own clone
/// of the exporter (one connection, requests multiplexed), so a receiver that
/// is slow to answer does not hold every later batch. Their write-ahead log
/// entries are acknowledged in the order the batches came: a batch's entries
/// are complete only when every earlier batch is out too.
pub async fn run(
    mut batches: mpsc::Receiver<SpanBatch>,
    exporter: Option<OtlpExporter>,
    store: Option<Arc<Store>>,
    settings: ExportSettings,
    health: Arc<ExportHealth>,
    wal: Option<Arc<Wal>>,
) {
    let mut resources: HashMap<Arc<str>, SharedResource> = HashMap::new();
    let mut held: Option<SpanBatch> = None;
    let mut in_flight = FuturesOrdered::new();
    let mut open = true;
    let acknowledge = |batch: &SpanBatch| {
        if let Some(wal) = &wal {
            wal.acknowledge(&batch.completes);
        }
    };
    loop {
        if in_flight.len() >= IN_FLIGHT || (!open && held.is_none()) {
            match in_flight.next().await {
                Some(done) => acknowledge(&done),
                None => break,
            }
            continue;
        }
        let mut batch = match held.take() {
            Some(b) => b,
            None => tokio::select! {
                biased;
                Some(done) = in_flight.next(), if !in_flight.is_empty() => {
                    acknowledge(&done);
                    continue;
                }
                received = batches.recv() => match received {
                    Some(b) => b,
                    None => {
                        open = false;
                        continue;
                    }
                },
            },
        };
        // Under load the worker hands over many small batches as records
        // come due: merge what is already waiting for the same cluster into
        // one export.
        while batch.spans.len() < MAX_COALESCED_SPANS {
            match batches.try_recv() {
                Ok(next) if next.cluster == batch.cluster => {
                    batch.spans.extend(next.spans);
                    batch.completes.extend(next.completes);
                }
                Ok(next) => {
                    held = Some(next);
                    break;
                }
                Err(_) => break,
            }
        }
        if let Some(store) = &store {
            batch = store_batch(store, batch, &settings, exporter.is_none(), &health).await;
        }
        let Some(exporter) = &exporter else {
            record_lag(&batch);
            acknowledge(&batch);
            continue;
        };
        // The unnamed cluster (no --cluster-name, no /audit/{cluster}) gets no k8s.cluster.name.
        let resource = resources
            .entry(batch.cluster.clone())
            .or_insert_with(|| SharedResource::from_env(Some(&*batch.cluster).filter(|c| !c.is_empty())))
            .clone();
        in_flight.push_back(export_batch(exporter.clone(), resource, batch, settings.give_up_after, health.clone()));
    }
}

/// Exports one batch, retrying with backoff, and hands the batch back for
/// its acknowledgement once it is out or given up (and counted).
async fn export_batch(
    exporter: OtlpExporter,
    resource: SharedResource,
    batch: SpanBatch,
    give_up_after: Duration,
    health: Arc<ExportHealth>,
) -> SpanBatch {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    // Requests of this batch already accepted are not sent again on a retry.
    let mut progress = ExportProgress::default();
    while !batch.spans.is_empty() {
        let before = progress.spans;
        let result = exporter.export_with(&resource, &batch.spans, &mut progress).await;
        metrics::counter!(m::SPANS_EXPORTED).increment((progress.spans - before) as u64);
        match result {
            Ok(()) => {
                health.set(true);
                record_lag(&batch);
                break;
            }
            // An answer retrying cannot change (INVALID_ARGUMENT, HTTP
            // 400...) gives the spans up at once; others after the limit.
            Err(e) if !e.retryable() || started.elapsed() >= give_up_after => {
                let (reason, why) = if e.retryable() {
                    ("retries_exhausted", format!("after {give_up_after:?} of retries"))
                } else {
                    ("rejected", "the endpoint's answer is final: retrying cannot change it".to_owned())
                };
                health.set(false);
                let given_up = batch.spans.len() - progress.spans;
                metrics::counter!(m::SPANS_EXPORT_FAILED, "reason" => reason).increment(given_up as u64);
                tracing::error!(
                    endpoint = %exporter.endpoint,
                    cluster = %cluster_label(&batch.cluster),
                    spans = given_up,
                    error = %e,
                    "giving up on exporting spans: {why}"
                );
                break;
            }
            Err(e) => {
                health.set(false);
                metrics::counter!(m::EXPORT_RETRIES).increment(1);
                tracing::warn!(
                    endpoint = %exporter.endpoint,
                    spans = batch.spans.len() - progress.spans,
                    error = %e,
                    retry_in = ?backoff,
                    "OTLP export failed; will retry"
                );
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    batch
}

/// Stores a batch's spans before they are exported (the store is local and
/// quick; the viewer should not wait on a slow backend).
///
/// When the store is the only sink, a failure is retried like an export
/// (the queue fills and the webhook answers 429 meanwhile), then given up
/// and counted. Beside an OTLP backend, which holds the spans, one failed
/// attempt is counted and the export goes on: a full disk must not stop the
/// export whose acknowledgements would free the write-ahead log's space.
async fn store_batch(
    store: &Arc<Store>,
    batch: SpanBatch,
    settings: &ExportSettings,
    only_sink: bool,
    health: &ExportHealth,
) -> SpanBatch {
    let started = Instant::now();
    let mut backoff = FIRST_BACKOFF;
    let mut batch = batch;
    loop {
        let store = store.clone();
        // The batch moves to the blocking thread and back: no copy of it.
        let (result, back) = match tokio::task::spawn_blocking(move || {
            let stored: Vec<StoredSpan> =
                batch.spans.iter().map(|s| StoredSpan::from_span(s, &batch.cluster)).collect();
            (store.insert(&stored), batch)
        })
        .await
        {
            Ok(done) => done,
            Err(e) => {
                tracing::error!(error = %e, "the store's task failed; the batch's spans are not stored");
                return SpanBatch { cluster: "".into(), spans: Vec::new(), completes: Vec::new() };
            }
        };
        batch = back;
        match result {
            Ok(()) => {
                metrics::counter!(m::SPANS_STORED).increment(batch.spans.len() as u64);
                if only_sink {
                    health.set(true);
                }
                return batch;
            }
            Err(e) if !only_sink || started.elapsed() >= settings.give_up_after => {
                metrics::counter!(m::SPANS_STORE_FAILED).increment(batch.spans.len() as u64);
                let why = if only_sink { "after every retry" } else { "they go on to the OTLP export only" };
                tracing::error!(spans = batch.spans.len(), error = %e, "the trace store refused spans: {why}");
                return batch;
            }
            Err(e) => {
                // The store is where the spans go: /readyz says it fails.
                health.set(false);
                tracing::warn!(spans = batch.spans.len(), error = %e, retry_in = ?backoff, "storing spans failed; will retry");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Wall time from each span's end (the write's `stageTimestamp`, or the
/// Event's time) to its export.
fn record_lag(batch: &SpanBatch) {
    let now = wall_clock_micros();
    let histogram = metrics::histogram!(m::EXPORT_LAG);
    for span in &batch.spans {
        histogram.record((now - span.end).max(0) as f64 / 1e6);
    }
}
