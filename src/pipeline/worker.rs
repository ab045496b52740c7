//! The live pipeline behind `kausal serve`:
//! sources → [`IngestQueue`] → core worker (one [`Engine`] per cluster) → span channel → exporter.
//!
//! Batches from the write-ahead log carry their entry's sequence number. The
//! worker hands each one back, on the span batch that completes it, once
//! [`Engine::emitted_through`] has passed all its records; the export task
//! acknowledges it to the log after those spans are exported.
//!
//! The queue is bounded in *records*, not requests, so a full queue means a
//! known amount of memory; a source that cannot enqueue answers 429 and the
//! apiserver retries. The worker is a plain thread because the core is
//! synchronous CPU work; it is the only place that reads the clock on the
//! core's behalf (see [`EventClock`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::record::{ObservedObject, UnknownObject};
use crate::core::time::Micros;
use crate::core::{CoreConfig, Engine, EngineStats, Record, Span};
use crate::telemetry as m;

/// Records from one request or watch delivery, for one cluster.
#[derive(Debug, Default)]
pub struct Batch {
    pub cluster: Arc<str>,
    pub records: Vec<Record>,
    pub observed: Vec<ObservedObject>,
    /// The write-ahead log entry these records came from, to acknowledge once
    /// their spans are exported.
    pub wal_seq: Option<u64>,
    /// Recovered from the log as already exported: graph state only, no spans.
    pub replayed: bool,
}

impl Batch {
    fn weight(&self) -> usize {
        (self.records.len() + self.observed.len()).max(1)
    }
}

enum Message {
    Batch(Batch, OwnedSemaphorePermit),
    Shutdown,
}

/// Why a batch was not enqueued.
#[derive(Debug, PartialEq, Eq)]
pub enum EnqueueError {
    /// The queue is full now; retry later (429).
    Full,
    /// The batch alone is larger than the whole queue (413).
    TooLarge { records: usize, capacity: usize },
    /// The server is shutting down (503).
    Closed,
}

/// The bounded queue between sources and the core worker.
#[derive(Clone)]
pub struct IngestQueue {
    sender: mpsc::Sender<Message>,
    permits: Arc<Semaphore>,
    capacity: usize,
    closed: Arc<AtomicBool>,
}

/// The receiving end, owned by the worker.
pub struct QueueReceiver {
    receiver: mpsc::Receiver<Message>,
    permits: Arc<Semaphore>,
    capacity: usize,
}

impl QueueReceiver {
    /// Takes the next batch, waiting up to `timeout` (for sources' tests; the
    /// worker has its own loop).
    pub fn recv_batch_timeout(&self, timeout: Duration) -> Option<Batch> {
        loop {
            match self.receiver.recv_timeout(timeout) {
                Ok(Message::Batch(batch, _permit)) => return Some(batch),
                Ok(Message::Shutdown) => continue,
                Err(_) => return None,
            }
        }
    }
}

impl IngestQueue {
    pub fn new(capacity: usize) -> (IngestQueue, QueueReceiver) {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        let (sender, receiver) = mpsc::channel();
        metrics::gauge!(m::QUEUE_CAPACITY).set(capacity as f64);
        let permits = Arc::new(Semaphore::new(capacity));
        let queue =
            IngestQueue { sender, permits: permits.clone(), capacity, closed: Arc::new(AtomicBool::new(false)) };
        (queue, QueueReceiver { receiver, permits, capacity })
    }

    /// Enqueues without waiting.
    pub fn try_enqueue(&self, batch: Batch) -> Result<(), EnqueueError> {
        self.try_reserve(batch.weight())?.send(batch)
    }

    /// Takes room for `records` records without waiting: the webhook's path.
    /// It reserves before writing the body to the write-ahead log, so a full
    /// queue is answered before anything is on disk.
    pub fn try_reserve(&self, records: usize) -> Result<Reservation, EnqueueError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EnqueueError::Closed);
        }
        let weight = records.max(1);
        if weight > self.capacity {
            return Err(EnqueueError::TooLarge { records: weight, capacity: self.capacity });
        }
        let permit = self.permits.clone().try_acquire_many_owned(weight as u32).map_err(|_| EnqueueError::Full)?;
        Ok(Reservation { queue: self.clone(), permit })
    }

    /// Enqueues, waiting for room: the watcher's path (a watch can simply
    /// pause; the apiserver keeps its place).
    pub async fn enqueue(&self, batch: Batch) -> Result<(), EnqueueError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(EnqueueError::Closed);
        }
        let weight = batch.weight().min(self.capacity);
        let permit = self.permits.clone().acquire_many_owned(weight as u32).await.map_err(|_| EnqueueError::Closed)?;
        self.send(batch, permit)
    }

    fn send(&self, batch: Batch, permit: OwnedSemaphorePermit) -> Result<(), EnqueueError> {
        self.sender.send(Message::Batch(batch, permit)).map_err(|_| EnqueueError::Closed)?;
        metrics::gauge!(m::QUEUE_DEPTH).set(self.depth() as f64);
        Ok(())
    }

    /// Records accepted and not yet taken by the worker.
    pub fn depth(&self) -> usize {
        depth(&self.permits, self.capacity)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// At least 90% full: the readiness probe fails so that load balancers
    /// send elsewhere before requests start getting 429.
    pub fn saturated(&self) -> bool {
        self.depth() * 10 >= self.capacity * 9
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stops accepting; the worker processes what is queued, flushes and exits.
    pub fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            let _ = self.sender.send(Message::Shutdown);
        }
    }
}

/// Room taken in the queue for one batch; dropping it gives the room back.
pub struct Reservation {
    queue: IngestQueue,
    permit: OwnedSemaphorePermit,
}

impl Reservation {
    pub fn send(self, batch: Batch) -> Result<(), EnqueueError> {
        self.queue.send(batch, self.permit)
    }
}

/// Records queued: the permits taken out of the capacity.
fn depth(permits: &Semaphore, capacity: usize) -> usize {
    capacity - permits.available_permits()
}

/// Spans of one cluster, on their way to the exporter.
#[derive(Debug)]
pub struct SpanBatch {
    pub cluster: Arc<str>,
    pub spans: Vec<Span>,
    /// Write-ahead log entries that are complete once these spans (and every
    /// earlier batch's) are exported.
    pub completes: Vec<u64>,
    /// The newest record time of those entries.
    pub completes_through: Micros,
}

/// The core's notion of "now" for a live stream, in record time.
///
/// The apiserver's clock, not ours, stamps the records, and a recorded stream
/// may be POSTed long after it happened. So "now" is the newest record time
/// plus the wall time elapsed since that record arrived: idle input still
/// flushes after the settle delay, and clock skew does not matter.
#[derive(Debug, Default)]
pub struct EventClock {
    newest: Option<(Micros, Instant)>,
}

impl EventClock {
    pub fn saw(&mut self, record_time: Micros, at: Instant) {
        match self.newest {
            Some((t, _)) if t >= record_time => {}
            _ => self.newest = Some((record_time, at)),
        }
    }

    /// The wall-clock instant at which this clock reaches record time `due`
    /// (`None` before any record was seen, or beyond what an `Instant` holds).
    pub fn instant_of(&self, due: Micros) -> Option<Instant> {
        let (t, seen) = self.newest?;
        let ahead = u64::try_from(due.saturating_sub(t)).unwrap_or(0);
        seen.checked_add(Duration::from_micros(ahead))
    }

    pub fn now(&self, at: Instant) -> Option<Micros> {
        self.newest.map(|(t, seen)| {
            let elapsed = at.saturating_duration_since(seen).as_micros();
            t.saturating_add(Micros::try_from(elapsed).unwrap_or(Micros::MAX))
        })
    }
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
}

struct ClusterCore {
    engine: Engine,
    clock: EventClock,
    reported: EngineStats,
    /// Write-ahead log entries taken in whose spans are not all out yet, with
    /// their newest record time.
    unfinished: Vec<(u64, Micros)>,
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
                metrics::gauge!(m::QUEUE_DEPTH).set(depth(&receiver.permits, receiver.capacity) as f64);
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
            for (cluster, core) in &mut clusters {
                let now = core.clock.now(last_tick);
                core.engine.advance(now);
                if !hand_over(cluster, core, &spans, lookups.as_ref()) {
                    return;
                }
            }
        }
    }
    for (cluster, core) in &mut clusters {
        core.engine.flush();
        hand_over(cluster, core, &spans, lookups.as_ref());
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
    let mut newest = Micros::MIN;
    for record in batch.records {
        let time = record.order_time();
        newest = newest.max(time);
        core.clock.saw(time, now);
        if batch.replayed {
            core.engine.ingest_replayed(record);
        } else {
            core.engine.ingest(record);
        }
    }
    if let Some(seq) = batch.wal_seq {
        core.unfinished.push((seq, newest));
    }
}

/// Sends a cluster's finished spans and lookup requests on, and reports its
/// stats. Returns false when the exporter is gone.
fn hand_over(
    cluster: &Arc<str>,
    core: &mut ClusterCore,
    spans: &tokio::sync::mpsc::Sender<SpanBatch>,
    lookups: Option<&tokio::sync::mpsc::Sender<LookupRequest>>,
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
    let mut completes = Vec::new();
    let mut completes_through = Micros::MIN;
    core.unfinished.retain(|&(seq, newest)| {
        let done = newest <= through;
        if done {
            completes.push(seq);
            completes_through = completes_through.max(newest);
        }
        !done
    });
    if out.is_empty() && completes.is_empty() {
        return true;
    }
    spans.blocking_send(SpanBatch { cluster: cluster.clone(), spans: out, completes, completes_through }).is_ok()
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
        ("orphan_event", stats.orphan_events, before.orphan_events),
    ] {
        metrics::counter!(m::ROOTS, "cluster" => label.clone(), "kind" => kind).increment(now - then);
    }
    metrics::counter!(m::LATE_RECORDS, "cluster" => label).increment(stats.late_records - before.late_records);
    core.reported = stats;
}

/// The metrics label for a cluster; the unnamed default cluster is `default`.
pub fn cluster_label(cluster: &str) -> String {
    if cluster.is_empty() { "default".to_owned() } else { cluster.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_clock_moves_with_wall_time_from_the_newest_record() {
        let start = Instant::now();
        let mut clock = EventClock::default();
        assert_eq!(clock.now(start), None);
        clock.saw(1_000_000, start);
        clock.saw(500_000, start + Duration::from_secs(5)); // older record: no effect
        assert_eq!(clock.now(start + Duration::from_millis(1500)), Some(2_500_000));
    }

    #[test]
    fn queue_is_bounded_in_records_and_frees_room_when_taken() {
        let (queue, receiver) = IngestQueue::new(10);
        let batch = |n: usize| Batch {
            cluster: "".into(),
            observed: (0..n)
                .map(|i| ObservedObject {
                    uid: format!("u{i}").into(),
                    resource: "pods".into(),
                    kind: None,
                    namespace: "".into(),
                    name: "".into(),
                    controller_owner: None,
                })
                .collect(),
            ..Batch::default()
        };
        assert_eq!(queue.try_enqueue(batch(11)), Err(EnqueueError::TooLarge { records: 11, capacity: 10 }));
        queue.try_enqueue(batch(6)).unwrap();
        assert!(!queue.saturated());
        assert_eq!(queue.try_enqueue(batch(5)), Err(EnqueueError::Full));
        queue.try_enqueue(batch(3)).unwrap();
        assert!(queue.saturated());
        assert_eq!(queue.depth(), 9);
        drop(receiver.receiver.recv().unwrap()); // the worker takes a batch: its permits return
        assert_eq!(queue.depth(), 3);
        queue.close();
        assert_eq!(queue.try_enqueue(batch(1)), Err(EnqueueError::Closed));
    }
}
