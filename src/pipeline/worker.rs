//! The core worker: one [`Engine`] per cluster, fed from the queue, its spans
//! handed to the export loop.
//!
//! Batches from the write-ahead log carry their entry's [`AckToken`]. The
//! worker hands each token back, on the span batch that completes it, once
//! [`Engine::emitted_through`] has passed all its records; the export loop
//! returns it to the log after those spans are exported.
//!
//! The worker is a plain thread because the core is synchronous CPU work; it
//! is the only place that reads the clock on the core's behalf (see [`EventClock`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use super::clock::EventClock;
use super::cluster_slots::ClusterSlots;
use super::health::ExportHealth;
use super::queue::{Batch, Message, QueueReceiver};
use crate::core::record::UnknownObject;
use crate::core::{CoreConfig, Engine, EngineStats, Span};
use crate::telemetry::{self as m, cluster_label};
use crate::wal::{AckToken, Wal};

/// Spans of one cluster, on their way to the exporter.
#[derive(Debug)]
pub struct SpanBatch {
    pub cluster: Arc<str>,
    pub spans: Vec<Span>,
    /// Write-ahead log entries that are complete once these spans (and every
    /// earlier batch's) are exported.
    pub completes: Vec<AckToken>,
}

/// A request to look up an object's metadata, for one cluster.
#[derive(Debug, Clone)]
pub struct LookupRequest {
    pub cluster: Arc<str>,
    pub object: UnknownObject,
}

pub struct WorkerConfig {
    pub core: CoreConfig,
    /// How often the settle horizon is moved forward when input is idle.
    pub tick: Duration,
    /// Where the worker says that it waits for the exporter.
    pub health: Arc<ExportHealth>,
    /// Clusters whose slot was given up have their graphs dropped.
    pub clusters: Arc<ClusterSlots>,
    /// The write-ahead log, if any: while it needs its entries back, Event
    /// spans are not held open for their linger (see below).
    pub wal: Option<Arc<Wal>>,
}

struct ClusterCore {
    engine: Engine,
    clock: EventClock,
    reported: EngineStats,
    /// Write-ahead log entries taken in whose spans are not all out yet.
    unfinished: Vec<AckToken>,
}

/// Runs the core over everything the queue delivers until shutdown, then
/// flushes every cluster's open spans. Blocks; run it on its own thread.
///
/// When the span channel is full (the exporter is behind) the worker waits,
/// the queue fills, and sources answer 429: backpressure, not loss.
pub fn run_worker(
    receiver: QueueReceiver,
    config: WorkerConfig,
    spans: tokio::sync::mpsc::Sender<SpanBatch>,
    lookups: Option<tokio::sync::mpsc::Sender<LookupRequest>>,
) {
    let mut clusters: BTreeMap<Arc<str>, ClusterCore> = BTreeMap::new();
    let mut last_tick = Instant::now();
    let mut under_pressure = false;
    loop {
        // Sleep until the next tick, or sooner when a buffered record comes
        // due: records are linked as soon as their settle delay is over.
        let next_tick = last_tick + config.tick;
        let wake = clusters
            .values()
            .filter_map(|c| c.engine.next_due().and_then(|due| c.clock.instant_of(due)))
            .fold(next_tick, Instant::min);
        match receiver.receiver.recv_timeout(wake.saturating_duration_since(Instant::now())) {
            Ok(Message::Batch(batch, permit)) => {
                take_batch(&mut clusters, &config.core, batch);
                drop(permit);
                metrics::gauge!(m::QUEUE_DEPTH).set(receiver.depth() as f64);
            }
            Ok(Message::Shutdown) | Err(RecvTimeoutError::Disconnected) => {
                // A source that checked `closed` just before it was set may
                // still have sent a batch after the shutdown message: take it.
                while let Ok(message) = receiver.receiver.try_recv() {
                    if let Message::Batch(batch, permit) = message {
                        take_batch(&mut clusters, &config.core, batch);
                        drop(permit);
                    }
                }
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() >= wake {
            last_tick = Instant::now();
            // A cluster idle past its context period gave its slot to a new
            // one: its open spans go out now, and its graph goes.
            for released in config.clusters.take_released() {
                if let Some(mut core) = clusters.remove(&released) {
                    core.engine.flush();
                    if !hand_over(&released, &mut core, &spans, lookups.as_ref(), &config.health) {
                        return;
                    }
                }
            }
            // An entry of the log is freed only once every span from it is
            // out, and an Event span waits --event-linger for repeats. When
            // the log is full (or the disk is), waiting would stall the
            // webhook for the whole linger: the spans go out now instead,
            // and later repeats get repeat spans of their own.
            let pressure = config.wal.as_ref().is_some_and(|w| w.under_pressure());
            if pressure != under_pressure {
                under_pressure = pressure;
                if pressure {
                    tracing::warn!(
                        "the write-ahead log needs room: Event spans are emitted without waiting for \
                         --event-linger until it has room again (later repeats get spans of their own)"
                    );
                }
            }
            for (cluster, core) in &mut clusters {
                let now = core.clock.now(last_tick);
                core.engine.advance(now);
                if under_pressure && !core.unfinished.is_empty() {
                    let closed = core.engine.close_lingering_events();
                    metrics::counter!(m::EVENTS_CLOSED_EARLY, "cluster" => cluster_label(cluster))
                        .increment(closed as u64);
                }
                if !hand_over(cluster, core, &spans, lookups.as_ref(), &config.health) {
                    return;
                }
            }
        }
    }
    for (cluster, core) in &mut clusters {
        core.engine.flush();
        hand_over(cluster, core, &spans, lookups.as_ref(), &config.health);
    }
}

/// Hands a batch to its cluster's engine (created on first use).
fn take_batch(clusters: &mut BTreeMap<Arc<str>, ClusterCore>, core_config: &CoreConfig, batch: Batch) {
    let core = clusters.entry(batch.cluster.clone()).or_insert_with(|| ClusterCore {
        engine: Engine::new(core_config.clone()),
        clock: EventClock::default(),
        reported: EngineStats::default(),
        unfinished: Vec::new(),
    });
    for object in batch.observed {
        core.engine.observe(object);
    }
    let now = Instant::now();
    for record in batch.records {
        core.clock.saw(record.order_time(), now);
        if batch.replayed {
            core.engine.ingest_replayed(record);
        } else {
            core.engine.ingest(record);
        }
    }
    if let Some(token) = batch.ack {
        core.unfinished.push(token);
    }
}

/// Sends a cluster's finished spans and lookup requests on, and reports its
/// stats. Returns false when the exporter is gone.
fn hand_over(
    cluster: &Arc<str>,
    core: &mut ClusterCore,
    spans: &tokio::sync::mpsc::Sender<SpanBatch>,
    lookups: Option<&tokio::sync::mpsc::Sender<LookupRequest>>,
    health: &ExportHealth,
) -> bool {
    let unknown = core.engine.drain_unknown_objects();
    if let Some(lookups) = lookups {
        for object in unknown {
            // Lookups are an optimisation: when their queue is full, skip.
            if lookups.try_send(LookupRequest { cluster: cluster.clone(), object }).is_err() {
                metrics::counter!(m::LOOKUPS, "result" => "skipped_busy").increment(1);
            }
        }
    }
    report_stats(cluster, core);
    let out = core.engine.drain_spans();
    let through = core.engine.emitted_through();
    let (completes, unfinished) =
        std::mem::take(&mut core.unfinished).into_iter().partition(|t| t.newest_record_time() <= through);
    core.unfinished = unfinished;
    if out.is_empty() && completes.is_empty() {
        return true;
    }
    let batch = SpanBatch { cluster: cluster.clone(), spans: out, completes };
    match spans.try_send(batch) {
        Ok(()) => true,
        Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => false,
        Err(tokio::sync::mpsc::error::TrySendError::Full(batch)) => {
            // Backpressure: say so, in the log, in a gauge and in /readyz,
            // instead of a pipeline that silently stops linking.
            health.set_linking_paused(true);
            metrics::gauge!(m::LINKING_PAUSED).set(1.0);
            tracing::warn!(
                "linking paused: the exporter is behind (every export slot is full); records wait in the \
                 ingest queue, and the webhook answers 429 once it is full"
            );
            let waited = Instant::now();
            let sent = spans.blocking_send(batch).is_ok();
            health.set_linking_paused(false);
            metrics::gauge!(m::LINKING_PAUSED).set(0.0);
            tracing::info!(after = ?waited.elapsed(), "linking resumed");
            sent
        }
    }
}

fn report_stats(cluster: &Arc<str>, core: &mut ClusterCore) {
    let stats = core.engine.stats();
    let label = cluster_label(cluster);
    metrics::gauge!(m::GRAPH_OBJECTS, "cluster" => label.clone()).set(stats.graph.objects as f64);
    metrics::gauge!(m::PENDING_RECORDS, "cluster" => label.clone()).set(stats.pending as f64);
    let before = &core.reported;
    for (kind, now, then) in [
        ("intent", stats.intent_roots, before.intent_roots),
        ("controller_initiated", stats.controller_roots, before.controller_roots),
        ("automation", stats.automation_roots, before.automation_roots),
        ("orphan_event", stats.orphan_events, before.orphan_events),
    ] {
        metrics::counter!(m::ROOTS, "cluster" => label.clone(), "kind" => kind).increment(now - then);
    }
    metrics::counter!(m::EVENTS_ONLY_LINKS, "cluster" => label.clone())
        .increment(stats.events_only_links - before.events_only_links);
    metrics::counter!(m::LATE_RECORDS, "cluster" => label).increment(stats.late_records - before.late_records);
    core.reported = stats;
}
