//! Start-up: take the directory's lock, then read what a previous run left.
//!
//! Each segment is read up to the first record whose length or checksum is
//! wrong; in the newest segment that is a torn tail from a crash mid-write
//! and is cut off; in an older one it is corruption, counted and logged.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::format::{Entry, Scanned, scan_segment, segment_path};
use super::index::Segment;
use super::{OpenError, Recovered, RecoveryReport};
use crate::core::time::Micros;
use crate::telemetry as m;

/// What a previous run left on disk, read and checked.
pub(super) struct Found {
    pub(super) segments: BTreeMap<u64, Segment>,
    /// Which segment each unacknowledged entry is in.
    pub(super) entry_segment: BTreeMap<u64, u64>,
    /// Read lazily, a segment at a time.
    pub(super) recovered: RecoveredEntries,
    pub(super) report: RecoveryReport,
    pub(super) next_seq: u64,
    /// When the newest acknowledged entry arrived: a restart goes on
    /// measuring the context period from there (even if the clock went back).
    pub(super) acknowledged_horizon: Micros,
    /// A new run never appends to a segment a previous run wrote.
    pub(super) next_segment: u64,
}

pub(super) fn io_error(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> OpenError {
    let path = path.to_owned();
    move |source| OpenError::Io { what, path, source }
}

/// Takes an advisory lock on `DIR/LOCK`, held while the returned file is
/// open; the OS releases it when the process dies, however it dies.
pub(super) fn lock(dir: &Path) -> Result<File, OpenError> {
    let lock_path = dir.join("LOCK");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_error("opening", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(fs::TryLockError::WouldBlock) => Err(OpenError::Locked { dir: dir.to_owned() }),
        Err(fs::TryLockError::Error(e)) => Err(io_error("locking", &lock_path)(e)),
    }
}

/// Reads every segment in `dir`, cutting a torn tail off the newest. Only
/// what the index needs is kept: the bodies are read again, one segment at a
/// time, by [`RecoveredEntries`], so start-up memory does not grow with the
/// log.
pub(super) fn read(dir: &Path) -> Result<Found, OpenError> {
    let numbers = segment_numbers(dir)?;
    let mut report = RecoveryReport::default();
    let mut segments: BTreeMap<u64, Segment> = BTreeMap::new();
    // (seq, segment, arrival) of every entry.
    let mut entries: Vec<(u64, u64, Micros)> = Vec::new();
    let mut acknowledged: HashSet<u64> = HashSet::new();
    let mut files = VecDeque::with_capacity(numbers.len());
    for (i, &number) in numbers.iter().enumerate() {
        let path = segment_path(dir, number);
        // Opened now and read again later through this handle: a segment
        // retired meanwhile (its name removed) can still be read.
        let mut file = File::open(&path).map_err(io_error("opening", &path))?;
        let data = read_all(&mut file).map_err(io_error("reading", &path))?;
        let scan = scan_segment(&data);
        if let Some(problem) = &scan.problem {
            let newest = i + 1 == numbers.len();
            handle_damage(&path, data.len(), scan.good_len, problem, newest, &mut report)?;
        }
        let mut segment = Segment {
            path: path.clone(),
            bytes: scan.good_len as u64,
            unacknowledged: BTreeMap::new(),
            newest_arrival: Micros::MIN,
        };
        for record in scan.records {
            match record {
                Scanned::Entry(entry, size) => {
                    segment.newest_arrival = segment.newest_arrival.max(entry.accepted_at);
                    segment.unacknowledged.insert(entry.seq, size);
                    entries.push((entry.seq, number, entry.accepted_at));
                }
                Scanned::Acks(seqs) => acknowledged.extend(seqs),
            }
        }
        report.segments += 1;
        report.bytes += segment.bytes;
        segments.insert(number, segment);
        files.push_back((path, file));
    }

    let mut entry_segment = BTreeMap::new();
    let mut next_seq = 1;
    let mut acknowledged_horizon = Micros::MIN;
    for &(seq, number, accepted_at) in &entries {
        next_seq = next_seq.max(seq + 1);
        if acknowledged.contains(&seq) {
            segments.get_mut(&number).expect("scanned").unacknowledged.remove(&seq);
            report.acknowledged += 1;
            acknowledged_horizon = acknowledged_horizon.max(accepted_at);
        } else {
            entry_segment.insert(seq, number);
            report.unacknowledged += 1;
        }
    }
    let recovered = RecoveredEntries { files, acknowledged, remaining: entries.len(), buffered: VecDeque::new() };
    let next_segment = numbers.last().map_or(1, |n| n + 1);
    Ok(Found { segments, entry_segment, recovered, report, next_seq, acknowledged_horizon, next_segment })
}

fn read_all(file: &mut File) -> std::io::Result<Bytes> {
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(Bytes::from(data))
}

/// The entries a previous run left, read one segment at a time as they are
/// taken: at most one segment's bodies are in memory (plus what the caller
/// keeps). In sequence order within each segment, segments oldest first.
pub struct RecoveredEntries {
    files: VecDeque<(PathBuf, File)>,
    acknowledged: HashSet<u64>,
    remaining: usize,
    buffered: VecDeque<Recovered>,
}

impl RecoveredEntries {
    /// Entries not taken yet.
    pub fn len(&self) -> usize {
        self.remaining
    }

    pub fn is_empty(&self) -> bool {
        self.remaining == 0
    }
}

impl Iterator for RecoveredEntries {
    type Item = Recovered;

    fn next(&mut self) -> Option<Recovered> {
        while self.buffered.is_empty() {
            let (path, mut file) = self.files.pop_front()?;
            // The first read checked this segment; a failure now loses its
            // entries for this run only (they stay on disk), and says so.
            let data = match file.seek(SeekFrom::Start(0)).and_then(|_| read_all(&mut file)) {
                Ok(data) => data,
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "could not read a write-ahead log segment again; its entries are skipped");
                    continue;
                }
            };
            let mut entries: Vec<Entry> = scan_segment(&data)
                .records
                .into_iter()
                .filter_map(|r| match r {
                    Scanned::Entry(entry, _) => Some(entry),
                    Scanned::Acks(_) => None,
                })
                .collect();
            entries.sort_by_key(|e| e.seq);
            self.buffered.extend(entries.into_iter().map(|entry| {
                let acknowledged = self.acknowledged.contains(&entry.seq);
                Recovered { entry, acknowledged }
            }));
        }
        self.remaining = self.remaining.saturating_sub(1);
        self.buffered.pop_front()
    }
}

/// The numbers of the segment files in `dir`, in order.
fn segment_numbers(dir: &Path) -> Result<Vec<u64>, OpenError> {
    let mut numbers: Vec<u64> = Vec::new();
    for item in fs::read_dir(dir).map_err(io_error("reading", dir))? {
        let name = item.map_err(io_error("reading", dir))?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name.strip_suffix(".wal").and_then(|n| n.parse::<u64>().ok()) {
            numbers.push(n);
        }
    }
    numbers.sort_unstable();
    Ok(numbers)
}

/// A segment that stops before its end: a torn tail (newest segment) is cut
/// off; anything else is corruption, reported and counted.
fn handle_damage(
    path: &PathBuf,
    len: usize,
    good_len: usize,
    problem: &str,
    newest: bool,
    report: &mut RecoveryReport,
) -> Result<(), OpenError> {
    if newest {
        report.torn_tail_bytes = (len - good_len) as u64;
        tracing::warn!(path = %path.display(), cut = report.torn_tail_bytes, problem, "cutting a torn tail off the write-ahead log");
        let file = OpenOptions::new().write(true).open(path).map_err(io_error("opening", path))?;
        file.set_len(good_len as u64)
            .and_then(|()| file.sync_all())
            .map_err(io_error("cutting the torn tail of", path))?;
        metrics::counter!(m::WAL_TORN_TAILS).increment(1);
    } else {
        tracing::error!(path = %path.display(), offset = good_len, problem, "corrupt write-ahead log segment: the rest of it is skipped");
        report.corrupt_segments.push(format!("{}: {problem} at byte {good_len}", path.display()));
        metrics::counter!(m::WAL_CORRUPT_SEGMENTS).increment(1);
    }
    Ok(())
}
