//! The one thread that writes: group commit and segment rolling.
//!
//! It takes every append waiting, writes them, calls `fdatasync` once and
//! only then answers them all, so concurrent webhook requests share a sync.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::AppendError;
use super::format::{Entry, MAGIC, encode_acks, encode_entry_head, segment_path};
use super::index::{Index, Segment, publish};
use crate::core::time::Micros;
use crate::telemetry as m;

/// Appends taken into one group commit, at most (bytes of payload).
const MAX_GROUP_BYTES: usize = 32 << 20;

pub(super) enum Request {
    Append { entry: Entry, reply: tokio::sync::oneshot::Sender<Result<(), AppendError>> },
    Acknowledge(Vec<u64>),
    Shutdown,
}

/// Creates a segment file with its header, synced (and its directory entry too).
pub(super) fn create_segment(dir: &Path, number: u64) -> io::Result<(File, Segment)> {
    let path = segment_path(dir, number);
    let mut file = OpenOptions::new().create_new(true).append(true).open(&path)?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    // The new name must survive a crash too.
    File::open(dir)?.sync_all()?;
    let segment =
        Segment { path, bytes: MAGIC.len() as u64, unacknowledged: BTreeMap::new(), newest_arrival: Micros::MIN };
    Ok((file, segment))
}

/// The one thread that writes: group commit and segment rolling.
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) segment_bytes: u64,
    pub(super) context: Micros,
    pub(super) max_bytes: u64,
    pub(super) index: Arc<Mutex<Index>>,
    pub(super) file: File,
    pub(super) number: u64,
}

impl Writer {
    pub(super) fn run(mut self, requests: mpsc::Receiver<Request>) {
        while let Ok(first) = requests.recv() {
            let mut group = vec![first];
            let mut group_bytes = 0;
            while group_bytes < MAX_GROUP_BYTES {
                match requests.try_recv() {
                    Ok(next) => {
                        if let Request::Append { entry, .. } = &next {
                            group_bytes += entry.body.len();
                        }
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            let mut replies = Vec::new();
            let mut appended = 0;
            let mut acks = Vec::new();
            let mut shutdown = false;
            let mut needs_sync = false;
            // Small headers and the bodies themselves, written in turn.
            let mut chunks: Vec<Bytes> = Vec::new();
            for request in group {
                match request {
                    Request::Append { entry, reply } => {
                        let mut head = Vec::new();
                        encode_entry_head(&entry, &mut head);
                        let size = (head.len() + entry.body.len()) as u64;
                        chunks.push(head.into());
                        chunks.push(entry.body);
                        replies.push((entry.seq, entry.accepted_at, size, reply));
                        appended += 1;
                        needs_sync = true;
                    }
                    Request::Acknowledge(seqs) => acks.extend(seqs),
                    Request::Shutdown => shutdown = true,
                }
            }
            if !acks.is_empty() {
                let mut record = Vec::new();
                encode_acks(&acks, &mut record);
                chunks.push(record.into());
            }
            let written: u64 = chunks.iter().map(|c| c.len() as u64).sum();
            // A full segment is closed when the next appends come, so an
            // acknowledged segment can be removed while the log is idle.
            if needs_sync && let Err(e) = self.roll_if_full() {
                tracing::error!(error = %e, "could not start a new write-ahead log segment; appending to the current one");
            }
            let outcome = self.write_group(&chunks, needs_sync).map_err(Arc::new);
            let mut index = self.index.lock().expect("wal index");
            for (seq, arrival, size, reply) in replies {
                index.reserved = index.reserved.saturating_sub(size);
                let answer = match &outcome {
                    Ok(()) => {
                        let segment = index.segments.get_mut(&self.number).expect("current segment");
                        segment.unacknowledged.insert(seq, size);
                        segment.newest_arrival = segment.newest_arrival.max(arrival);
                        index.entry_segment.insert(seq, self.number);
                        index.unacknowledged_bytes += size;
                        Ok(())
                    }
                    Err(e) => Err(AppendError::Io(e.clone())),
                };
                let _ = reply.send(answer);
            }
            if outcome.is_ok()
                && let Some(segment) = index.segments.get_mut(&self.number)
            {
                segment.bytes += written;
            }
            publish(&index);
            drop(index);
            if outcome.is_ok() {
                metrics::counter!(m::WAL_SYNCS).increment(u64::from(needs_sync));
                metrics::counter!(m::WAL_APPENDS).increment(appended);
            }
            if shutdown {
                break;
            }
        }
        let _ = self.file.sync_all();
    }

    /// Writes a group and syncs it. On failure (disk full) the segment is cut
    /// back to where the group began, so no partial record stays behind;
    /// then space is reclaimed from acknowledged data and the group is tried
    /// once more.
    fn write_group(&mut self, chunks: &[Bytes], sync: bool) -> io::Result<()> {
        if chunks.is_empty() {
            return Ok(());
        }
        match self.try_write(chunks, sync) {
            Ok(()) => Ok(()),
            Err(first) => {
                if self.reclaim_space() {
                    tracing::warn!(error = %first, "write-ahead log write failed; retrying after freeing acknowledged segments");
                    self.try_write(chunks, sync)
                } else {
                    Err(first)
                }
            }
        }
    }

    fn try_write(&mut self, chunks: &[Bytes], sync: bool) -> io::Result<()> {
        let before = self.index.lock().expect("wal index").segments.get(&self.number).map_or(0, |s| s.bytes);
        let result = chunks
            .iter()
            .try_for_each(|c| self.file.write_all(c))
            .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(e) = &result {
            tracing::error!(error = %e, "write-ahead log write failed");
            if let Err(cut) = self.file.set_len(before).and_then(|()| self.file.sync_data()) {
                tracing::error!(error = %cut, "could not cut the failed write off the segment; starting a new one");
                let _ = self.roll();
            }
        }
        result
    }

    /// Frees disk after a failed write: acknowledged segments at the head go,
    /// and a segment being written that holds only acknowledged entries is
    /// cut back to its header (a segment larger than the disk would otherwise
    /// never roll, and never be freed).
    fn reclaim_space(&mut self) -> bool {
        let mut index = self.index.lock().expect("wal index");
        // The disk is full: every acknowledged segment goes, whatever the
        // context period (recovery then has less context; no data is lost).
        let (context, max_bytes) = (self.context, self.max_bytes);
        let mut freed = index.retire(context, max_bytes, u64::MAX);
        let only_current = index.segments.len() == 1;
        if let Some(current) = index.segments.get_mut(&self.number)
            && only_current
            && current.unacknowledged.is_empty()
            && current.bytes > MAGIC.len() as u64
            && self.file.set_len(MAGIC.len() as u64).and_then(|()| self.file.sync_data()).is_ok()
        {
            current.bytes = MAGIC.len() as u64;
            current.newest_arrival = Micros::MIN;
            freed = true;
        }
        publish(&index);
        freed
    }

    fn roll_if_full(&mut self) -> io::Result<()> {
        let full = self
            .index
            .lock()
            .expect("wal index")
            .segments
            .get(&self.number)
            .is_some_and(|s| s.bytes >= self.segment_bytes);
        if full { self.roll() } else { Ok(()) }
    }

    fn roll(&mut self) -> io::Result<()> {
        self.file.sync_all()?;
        let number = self.number + 1;
        let (file, segment) = create_segment(&self.dir, number)?;
        self.index.lock().expect("wal index").segments.insert(number, segment);
        self.file = file;
        self.number = number;
        Ok(())
    }
}
