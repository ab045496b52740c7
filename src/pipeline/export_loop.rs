//! The export loop: drains the worker's span channel into the trace store
//! and OTLP (either may be absent), with retries and backoff, and reports
//! what it did.
//!
//! A retry sends only the requests of a batch not yet accepted (see
//! [`ExportProgress`]): a failure halfway through a batch duplicates nothing.
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

use tokio::sync::mpsc;

use super::clock::wall_clock_micros;
use super::health::ExportHealth;
use super::otlp_exporter::{ExportProgress, OtlpExporter};
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

/// Exports every batch the channel delivers until it closes, then shuts the
/// exporter down (which flushes its connection).
pub async fn run(
    mut batches: mpsc::Receiver<SpanBatch>,
    mut exporter: Option<OtlpExporter>,
    store: Option<Arc<Store>>,
    settings: ExportSettings,
    health: Arc<ExportHealth>,
    wal: Option<Arc<Wal>>,
) {
    let mut resources: HashMap<Arc<str>, SharedResource> = HashMap::new();
    let mut held: Option<SpanBatch> = None;
    loop {
        let mut batch = match held.take() {
            Some(b) => b,
            None => match batches.recv().await {
                Some(b) => b,
                None => break,
            },
        };
        // Under load the worker hands over many small batches as records come
        // due, and every export is a request per actor: merge what is already
        // waiting for the same cluster into one export.
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
        let Some(exporter) = exporter.as_mut() else {
            record_lag(&batch);
            if let Some(wal) = &wal {
                wal.acknowledge(&batch.completes);
            }
            continue;
        };
        // The unnamed cluster (no --cluster-name, no /audit/{cluster}) gets no k8s.cluster.name.
        let resource = resources
            .entry(batch.cluster.clone())
            .or_insert_with(|| SharedResource::from_env(Some(&*batch.cluster).filter(|c| !c.is_empty())));
        let started = Instant::now();
        let mut backoff = FIRST_BACKOFF;
        // Requests of this batch already accepted are not sent again on a retry.
        let mut progress = ExportProgress::default();
        while !batch.spans.is_empty() {
            let before = progress.spans;
            let result = exporter.export_with(resource, &batch.spans, &mut progress).await;
            metrics::counter!(m::SPANS_EXPORTED).increment((progress.spans - before) as u64);
            match result {
                Ok(()) => {
                    health.set(true);
                    record_lag(&batch);
                    break;
                }
                // An answer retrying cannot change (INVALID_ARGUMENT, HTTP
                // 400...) gives the spans up at once; others after the limit.
                Err(e) if !e.retryable() || started.elapsed() >= settings.give_up_after => {
                    let (reason, why) = if e.retryable() {
                        ("retries_exhausted", format!("after {:?} of retries", settings.give_up_after))
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
        if let Some(wal) = &wal {
            wal.acknowledge(&batch.completes);
        }
    }
    if let Some(mut exporter) = exporter {
        exporter.shutdown();
    }
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
