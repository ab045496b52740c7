//! The bounded queue between sources and the core worker.
//!
//! It is bounded in *records*, not requests, so a full queue means a known
//! amount of memory; a source that cannot enqueue answers 429 and the
//! apiserver retries.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::core::Record;
use crate::core::record::ObservedObject;
use crate::telemetry as m;
use crate::wal::AckToken;

/// Records from one request or watch delivery, for one cluster.
#[derive(Debug, Default)]
pub struct Batch {
    pub cluster: Arc<str>,
    pub records: Vec<Record>,
    pub observed: Vec<ObservedObject>,
    /// The write-ahead log entry these records came from, to hand back to the
    /// log once their spans are exported.
    pub ack: Option<AckToken>,
    /// Recovered from the log as already exported: graph state only, no spans.
    pub replayed: bool,
}

impl Batch {
    fn weight(&self) -> usize {
        (self.records.len() + self.observed.len()).max(1)
    }
}

pub(super) enum Message {
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
    pub(super) receiver: mpsc::Receiver<Message>,
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

impl QueueReceiver {
    /// Records queued, as the worker sees them.
    pub(super) fn depth(&self) -> usize {
        depth(&self.permits, self.capacity)
    }
}

/// Records queued: the permits taken out of the capacity.
fn depth(permits: &Semaphore, capacity: usize) -> usize {
    capacity - permits.available_permits()
}

#[cfg(test)]
mod tests {
    use super::*;

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
