//! The settle buffer: records wait here until the watermark has moved a
//! settle delay past them, then leave in timestamp order.
//!
//! Audit batches and Event streams arrive out of order by up to the
//! apiserver's batch wait; holding each record briefly lets every cause be
//! linked before its effects. The order is total (time, then a deterministic
//! key), so any arrival order gives the same processing order.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::event_chain::announcement_rank;
use super::record::Record;
use super::time::Micros;

/// A record waiting in the buffer.
struct Pending {
    time: Micros,
    class: u8,
    key: Box<str>,
    record: Record,
    /// Already exported before a restart: processed for graph state only.
    replayed: bool,
}

impl Pending {
    fn sort_key(&self) -> (Micros, u8, &str) {
        (self.time, self.class, &self.key)
    }
}
impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.sort_key() == other.sort_key()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

/// A record leaving the buffer.
pub(super) struct Due {
    pub(super) time: Micros,
    pub(super) record: Record,
    pub(super) replayed: bool,
}

pub(super) struct SettleBuffer {
    pending: BinaryHeap<Reverse<Pending>>,
    /// The newest order time seen in input or passed in by the caller.
    watermark: Micros,
    /// The newest order time already taken out.
    processed_until: Micros,
}

impl SettleBuffer {
    pub(super) fn new() -> SettleBuffer {
        SettleBuffer { pending: BinaryHeap::new(), watermark: Micros::MIN, processed_until: Micros::MIN }
    }

    /// Buffers a record; returns whether it is late (older than records
    /// already taken out).
    pub(super) fn push(&mut self, record: Record, replayed: bool) -> bool {
        let time = record.order_time();
        self.watermark = self.watermark.max(time);
        let (class, key) = match &record {
            Record::Write(w) => (0, w.audit_id.clone()),
            // Owners' Events before their children's within one time: Events
            // with whole-second times tie, and an announcement ("Created pod:
            // X") must be seen before the Events it announces.
            Record::Event(e) => {
                let rank = announcement_rank(e.regarding.kind.as_deref());
                (1, format!("{rank}{}/{}#{:020}", e.namespace, e.name, e.count).into_boxed_str())
            }
        };
        self.pending.push(Reverse(Pending { time, class, key, record, replayed }));
        time < self.processed_until
    }

    /// Moves the watermark forward (a live server's clock while input is idle).
    pub(super) fn raise_watermark(&mut self, now: Micros) {
        self.watermark = self.watermark.max(now);
    }

    pub(super) fn watermark(&self) -> Micros {
        self.watermark
    }

    /// The newest order time taken out so far.
    pub(super) fn processed_until(&self) -> Micros {
        self.processed_until
    }

    /// The oldest buffered record's time.
    pub(super) fn oldest(&self) -> Option<Micros> {
        self.pending.peek().map(|Reverse(p)| p.time)
    }

    pub(super) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Takes the oldest record if it is at or before `horizon`.
    pub(super) fn pop_due(&mut self, horizon: Micros) -> Option<Due> {
        if self.oldest()? > horizon {
            return None;
        }
        let Reverse(p) = self.pending.pop()?;
        self.processed_until = self.processed_until.max(p.time);
        Some(Due { time: p.time, record: p.record, replayed: p.replayed })
    }
}
