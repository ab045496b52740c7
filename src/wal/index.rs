//! What the log knows about its segments without reading them: sizes,
//! unacknowledged entries, and which segments may be removed.

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use super::WalStats;
use crate::core::time::Micros;
use crate::telemetry as m;

pub(super) struct Segment {
    pub(super) path: PathBuf,
    pub(super) bytes: u64,
    /// Entries not yet acknowledged, with their sizes.
    pub(super) unacknowledged: BTreeMap<u64, u64>,
    /// When the newest entry in it arrived (kausal's clock).
    pub(super) newest_arrival: Micros,
}

pub(super) struct Index {
    /// By segment number, oldest first; the last one is being written.
    pub(super) segments: BTreeMap<u64, Segment>,
    /// Which segment each unacknowledged entry is in.
    pub(super) entry_segment: BTreeMap<u64, u64>,
    /// Bytes promised to appends in flight.
    pub(super) reserved: u64,
    /// The sizes in every segment's `unacknowledged`, summed: kept as entries
    /// come and go, because metrics read it on every append and acknowledgement.
    pub(super) unacknowledged_bytes: u64,
    /// Arrival time of the newest entry acknowledged so far: retention is
    /// measured from it. Arrival, not record time: every cluster's entries
    /// are stamped by the same clock, so a cluster whose records run ahead
    /// cannot retire another cluster's context.
    pub(super) acknowledged_horizon: Micros,
    pub(super) next_seq: u64,
    pub(super) closed: bool,
}

impl Index {
    pub(super) fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum::<u64>() + self.reserved
    }

    pub(super) fn stats(&self) -> WalStats {
        WalStats {
            bytes: self.bytes(),
            segments: self.segments.len(),
            unacknowledged_entries: self.entry_segment.len(),
            unacknowledged_bytes: self.unacknowledged_bytes,
        }
    }

    /// Removes segments from the head while they are fully acknowledged and
    /// either past the context period or, with `need` bytes wanted, in the
    /// way of the budget (`u64::MAX`: every acknowledged segment, as when the
    /// disk is full). The segment being written is never removed. Returns
    /// whether a file was removed.
    pub(super) fn retire(&mut self, context: Micros, max_bytes: u64, need: u64) -> bool {
        let mut freed = false;
        let cutoff = self.acknowledged_horizon.saturating_sub(context);
        while self.segments.len() > 1 {
            let (&number, head) = self.segments.first_key_value().expect("len > 1");
            if !head.unacknowledged.is_empty() {
                break;
            }
            let expired = head.newest_arrival < cutoff;
            let over_budget = self.bytes().saturating_add(need) > max_bytes;
            if !expired && !over_budget {
                break;
            }
            let head = self.segments.remove(&number).expect("present");
            match fs::remove_file(&head.path) {
                Ok(()) => freed = true,
                Err(e) => {
                    tracing::warn!(path = %head.path.display(), error = %e, "could not remove a write-ahead log segment")
                }
            }
            if !expired {
                metrics::counter!(m::WAL_CONTEXT_EVICTED).increment(1);
            }
        }
        freed
    }
}

/// Publishes the log's sizes as gauges.
pub(super) fn publish(index: &Index) {
    let stats = index.stats();
    metrics::gauge!(m::WAL_BYTES).set(stats.bytes as f64);
    metrics::gauge!(m::WAL_SEGMENTS).set(stats.segments as f64);
    metrics::gauge!(m::WAL_UNACKNOWLEDGED).set(stats.unacknowledged_entries as f64);
    metrics::gauge!(m::WAL_UNACKNOWLEDGED_BYTES).set(stats.unacknowledged_bytes as f64);
}
