//! The write-ahead log: every webhook body kausal answers 200 for is on disk
//! first, and stays there until every span derived from it is exported.
//!
//! Between the sources and the pipeline. The layout is a directory of
//! append-only segments (`00000000000000000001.wal`, ...), each a magic header
//! followed by checksummed records ([`format`]). [`index`] keeps their sizes
//! and what is unacknowledged, [`writer`] is the one thread that writes, and
//! [`recovery`] reads what a previous run left.
//!
//! * **Group commit.** One writer thread takes every append waiting, writes
//!   them, calls `fdatasync` once and only then answers them all, so
//!   concurrent webhook requests share a sync.
//! * **Acknowledgements** are records in the log as well (without a sync of
//!   their own: losing one costs a duplicate span, never data). Recovery
//!   replays acknowledged entries as context only (graph state, no spans) and
//!   the others as new.
//! * **Retention.** Segments are removed oldest first, once every entry in
//!   them is acknowledged and their newest entry arrived longer than the
//!   context period before the newest acknowledged one (so that recovery can
//!   rebuild the graph the next records link to). Arrival time, stamped by
//!   kausal's one clock, rather than record time: clusters' clocks disagree,
//!   and one running ahead must not retire another's context. Disk use is bounded by `max_bytes`: acknowledged segments are
//!   removed early when room is needed, and an append that still does not
//!   fit is refused (the webhook answers 429 and the apiserver retries).
//! * **Torn writes.** Recovery reads each segment up to the first record whose
//!   length or checksum is wrong; in the newest segment that is a torn tail
//!   from a crash mid-write and is cut off; in an older one it is corruption,
//!   counted and logged.

mod format;
mod index;
mod recovery;
mod writer;

use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use format::entry_size;
pub use format::{Endpoint, Entry};
use index::{Index, publish};
pub use recovery::RecoveredEntries;
use writer::{Request, Writer, create_segment};

use crate::core::time::Micros;
use crate::telemetry as m;

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// Disk use of all segments together, at most.
    pub max_bytes: u64,
    /// Acknowledged entries are kept this long (in arrival time) as context for recovery.
    pub context: Micros,
}

impl WalConfig {
    /// Segments are an eighth of the budget (64 KiB to 64 MiB), so the one
    /// being written never holds much of it.
    fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 8).clamp(64 << 10, 64 << 20)
    }
}

/// A claim on one log entry, handed out by [`Wal::append`] (or recovery) and
/// handed back to [`Wal::acknowledge`] once every span derived from the entry
/// is exported. The pipeline carries it with the entry's records and learns
/// only when it is due (its newest record time); the sequence number stays
/// the log's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "an entry whose token is dropped is never acknowledged and stays in the log"]
pub struct AckToken {
    seq: u64,
    newest_record_time: Micros,
    accepted_at: Micros,
}

impl AckToken {
    /// The newest record time in the entry: once the core has emitted every
    /// span up to it, the entry is complete.
    pub fn newest_record_time(&self) -> Micros {
        self.newest_record_time
    }
}

impl Entry {
    fn token(&self) -> AckToken {
        AckToken { seq: self.seq, newest_record_time: self.max_record_time, accepted_at: self.accepted_at }
    }
}

/// An entry found at start-up.
#[derive(Debug)]
pub struct Recovered {
    pub entry: Entry,
    /// Every span derived from it was exported before the restart: replay it
    /// for graph state only.
    pub acknowledged: bool,
}

impl Recovered {
    /// The token to acknowledge the entry with, when it still needs it.
    pub fn ack_token(&self) -> Option<AckToken> {
        (!self.acknowledged).then(|| self.entry.token())
    }
}

/// What start-up found on disk.
#[derive(Debug, Default)]
pub struct RecoveryReport {
    pub segments: usize,
    pub bytes: u64,
    pub acknowledged: usize,
    pub unacknowledged: usize,
    /// A partly written record at the end of the newest segment, cut off.
    pub torn_tail_bytes: u64,
    /// Unreadable records inside older segments (the rest of such a segment is skipped).
    pub corrupt_segments: Vec<String>,
}

/// Why an append was refused. Nothing was written for it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// The log holds `max_bytes` of unacknowledged data: retry later (429).
    #[error("the write-ahead log holds {max_bytes} bytes not yet exported (--max-wal-bytes)")]
    Full { max_bytes: u64 },
    /// The body alone is larger than the whole log (413).
    #[error("the body ({bytes} bytes) is larger than the write-ahead log ({max_bytes} bytes, --max-wal-bytes)")]
    TooLarge { bytes: u64, max_bytes: u64 },
    /// Writing or syncing failed (disk full, I/O error): nothing was
    /// acknowledged; retry later. One failed group commit answers every
    /// append in it, so they share the error.
    #[error("writing the write-ahead log failed: {0}")]
    Io(Arc<io::Error>),
    /// The log is closed (shutting down).
    #[error("the write-ahead log is closed")]
    Closed,
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{} is in use by another kausal process: two writers would corrupt the log", dir.display())]
    Locked { dir: PathBuf },
    #[error("{what} {}: {source}", path.display())]
    Io { what: &'static str, path: PathBuf, source: io::Error },
}

/// Sizes for `/metrics` and `/readyz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    pub bytes: u64,
    pub segments: usize,
    pub unacknowledged_entries: usize,
    pub unacknowledged_bytes: u64,
}

/// The handle sources and the export task share.
pub struct Wal {
    /// Held (an advisory lock on `LOCK`) while this process owns the
    /// directory; the OS releases it when the process dies, however it dies.
    _lock: File,
    config: WalConfig,
    index: Arc<Mutex<Index>>,
    requests: mpsc::Sender<Request>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Why the latest append was refused (`REFUSED_*`), until one succeeds:
    /// `/readyz` is 503 while appends are refused.
    refusing: std::sync::atomic::AtomicU8,
}

const REFUSED_NONE: u8 = 0;
const REFUSED_FULL: u8 = 1;
const REFUSED_IO: u8 = 2;

impl Wal {
    /// Opens (or creates) the log, reads what a previous run left, and starts
    /// the writer on a fresh segment. The recovered entries are read as they
    /// are taken, one segment at a time (see [`RecoveredEntries`]).
    pub fn open(config: WalConfig) -> Result<(Wal, RecoveredEntries, RecoveryReport), OpenError> {
        fs::create_dir_all(&config.dir).map_err(recovery::io_error("creating", &config.dir))?;
        let lock = recovery::lock(&config.dir)?;
        let found = recovery::read(&config.dir)?;
        let mut segments = found.segments;
        let number = found.next_segment;
        let (file, segment) =
            create_segment(&config.dir, number).map_err(recovery::io_error("creating a segment in", &config.dir))?;
        segments.insert(number, segment);
        let unacknowledged_bytes = segments.values().flat_map(|s| s.unacknowledged.values()).sum();
        let index = Arc::new(Mutex::new(Index {
            segments,
            entry_segment: found.entry_segment,
            reserved: 0,
            unacknowledged_bytes,
            acknowledged_horizon: found.acknowledged_horizon,
            next_seq: found.next_seq,
            closed: false,
        }));
        let (requests, receiver) = mpsc::channel();
        let writer = Writer {
            dir: config.dir.clone(),
            segment_bytes: config.segment_bytes(),
            context: config.context,
            max_bytes: config.max_bytes,
            index: index.clone(),
            file,
            number,
        };
        let handle = std::thread::Builder::new()
            .name("kausal-wal".into())
            .spawn(move || writer.run(receiver))
            .map_err(recovery::io_error("starting the writer for", &config.dir))?;
        publish(&index.lock().expect("wal index"));
        let wal = Wal {
            _lock: lock,
            config,
            index,
            requests,
            writer: Mutex::new(Some(handle)),
            refusing: std::sync::atomic::AtomicU8::new(REFUSED_NONE),
        };
        Ok((wal, found.recovered, found.report))
    }

    /// Appends a body and returns its token once it is on disk (synced). Refuses, without writing, when it would not fit the budget.
    pub async fn append(
        &self,
        cluster: &str,
        endpoint: Endpoint,
        body: impl Into<Bytes>,
        accepted_at: Micros,
        max_record_time: Micros,
    ) -> Result<AckToken, AppendError> {
        let body = body.into();
        let size = entry_size(cluster, &body);
        let seq = {
            let mut index = self.index.lock().expect("wal index");
            if index.closed {
                return Err(AppendError::Closed);
            }
            if size > self.config.max_bytes {
                return Err(AppendError::TooLarge { bytes: size, max_bytes: self.config.max_bytes });
            }
            if index.bytes() + size > self.config.max_bytes {
                index.retire(self.config.context, self.config.max_bytes, size);
            }
            if index.bytes() + size > self.config.max_bytes {
                metrics::counter!(m::WAL_REFUSED, "reason" => "full").increment(1);
                self.refusing.store(REFUSED_FULL, std::sync::atomic::Ordering::Relaxed);
                return Err(AppendError::Full { max_bytes: self.config.max_bytes });
            }
            index.reserved += size;
            let seq = index.next_seq;
            index.next_seq += 1;
            seq
        };
        let entry = Entry { seq, accepted_at, max_record_time, endpoint, cluster: cluster.to_owned(), body };
        let token = entry.token();
        let (reply, answer) = tokio::sync::oneshot::channel();
        let outcome = match self.requests.send(Request::Append { entry, reply }) {
            Ok(()) => answer.await.unwrap_or(Err(AppendError::Closed)),
            Err(_) => Err(AppendError::Closed),
        };
        match &outcome {
            Err(AppendError::Io(_)) => {
                metrics::counter!(m::WAL_REFUSED, "reason" => "io_error").increment(1);
                self.refusing.store(REFUSED_IO, std::sync::atomic::Ordering::Relaxed);
            }
            Ok(()) => self.refusing.store(REFUSED_NONE, std::sync::atomic::Ordering::Relaxed),
            Err(_) => {}
        }
        outcome.map(|()| token)
    }

    /// Every span derived from these entries has been exported (or given up
    /// and counted).
    pub fn acknowledge(&self, tokens: &[AckToken]) {
        let Some(horizon) = tokens.iter().map(|t| t.accepted_at).max() else {
            return;
        };
        let mut index = self.index.lock().expect("wal index");
        let mut written = Vec::with_capacity(tokens.len());
        for &AckToken { seq, .. } in tokens {
            if let Some(number) = index.entry_segment.remove(&seq) {
                let size = index.segments.get_mut(&number).and_then(|segment| segment.unacknowledged.remove(&seq));
                index.unacknowledged_bytes -= size.unwrap_or(0);
                written.push(seq);
            }
        }
        index.acknowledged_horizon = index.acknowledged_horizon.max(horizon);
        index.retire(self.config.context, self.config.max_bytes, 0);
        publish(&index);
        drop(index);
        if !written.is_empty() {
            let _ = self.requests.send(Request::Acknowledge(written));
        }
    }

    pub fn stats(&self) -> WalStats {
        self.index.lock().expect("wal index").stats()
    }

    /// Why appends are being refused, if the latest one was.
    pub fn refusing(&self) -> Option<&'static str> {
        match self.refusing.load(std::sync::atomic::Ordering::Relaxed) {
            REFUSED_FULL => Some("it is full of data not yet exported"),
            REFUSED_IO => Some("the disk refused the write"),
            _ => None,
        }
    }

    /// The log needs its entries back: appends are being refused, or at
    /// least 90% of the budget holds data not yet exported.
    pub fn under_pressure(&self) -> bool {
        self.refusing().is_some() || self.saturated()
    }

    /// At least 90% of the budget holds data not yet exported.
    pub fn saturated(&self) -> bool {
        let stats = self.stats();
        stats.unacknowledged_bytes.saturating_mul(10) >= self.config.max_bytes.saturating_mul(9)
    }

    pub fn max_bytes(&self) -> u64 {
        self.config.max_bytes
    }

    /// Refuses new appends, lets the writer finish what it holds, and waits for it.
    pub fn close(&self) {
        self.index.lock().expect("wal index").closed = true;
        let _ = self.requests.send(Request::Shutdown);
        if let Some(handle) = self.writer.lock().expect("wal writer").take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::fs::OpenOptions;
    use std::path::Path;

    use super::format::segment_path;
    use super::*;

    fn config(dir: &Path, max_bytes: u64) -> WalConfig {
        WalConfig { dir: dir.to_owned(), max_bytes, context: 0 }
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().build().unwrap()
    }

    #[test]
    fn entries_survive_a_restart_and_acknowledged_ones_are_marked() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let (wal, recovered, _) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        let recovered: Vec<Recovered> = recovered.collect();
        assert!(recovered.is_empty());
        let a = rt.block_on(wal.append("prod", Endpoint::Audit, &b"{\"a\":1}"[..], 10, 100)).unwrap();
        let b = rt.block_on(wal.append("", Endpoint::Events, &b"{\"b\":2}"[..], 11, 200)).unwrap();
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(wal.stats().unacknowledged_bytes, entry_size("prod", b"{\"a\":1}") + entry_size("", b"{\"b\":2}"));
        wal.acknowledge(&[a]);
        assert_eq!(wal.stats().unacknowledged_bytes, entry_size("", b"{\"b\":2}"));
        wal.close();
        drop(wal);

        let (wal, recovered, report) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        let recovered: Vec<Recovered> = recovered.collect();
        assert_eq!((report.acknowledged, report.unacknowledged, report.torn_tail_bytes), (1, 1, 0));
        assert_eq!(recovered.len(), 2);
        assert!(recovered[0].acknowledged && !recovered[1].acknowledged);
        assert_eq!(
            recovered[1].entry,
            Entry {
                seq: 2,
                accepted_at: 11,
                max_record_time: 200,
                endpoint: Endpoint::Events,
                cluster: String::new(),
                body: Bytes::from_static(b"{\"b\":2}")
            }
        );
        assert_eq!(wal.stats().unacknowledged_entries, 1);
        assert_eq!(wal.stats().unacknowledged_bytes, entry_size("", b"{\"b\":2}"), "the running total after recovery");
        // Numbering goes on after the recovered entries.
        assert_eq!(rt.block_on(wal.append("", Endpoint::Audit, &b"c"[..], 12, 300)).unwrap().seq, 3);
        wal.close();
    }

    #[test]
    fn a_second_process_cannot_open_the_same_log() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        let Err(second) = Wal::open(config(dir.path(), 1 << 20)) else { panic!("opened twice") };
        assert!(second.to_string().contains("in use by another kausal process"), "{second}");
        wal.close();
        drop(wal);
        assert!(Wal::open(config(dir.path(), 1 << 20)).is_ok(), "the lock outlived its owner");
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_everything_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let (wal, _, _) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        for i in 0..3u8 {
            let _ = rt.block_on(wal.append("", Endpoint::Audit, vec![b'x'; 50 + i as usize], 0, 0)).unwrap();
        }
        wal.close();
        drop(wal);
        // A crash in the middle of the third record: its last bytes never made it.
        let path = segment_path(dir.path(), 1);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 7).unwrap();

        let (wal, recovered, report) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        let recovered: Vec<Recovered> = recovered.collect();
        assert_eq!(recovered.iter().map(|r| r.entry.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(report.torn_tail_bytes > 0 && report.corrupt_segments.is_empty());
        wal.close();
        drop(wal);
        // The cut is permanent: a second start finds a clean log.
        let (wal, recovered, report) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        let recovered: Vec<Recovered> = recovered.collect();
        assert_eq!((recovered.len(), report.torn_tail_bytes), (2, 0));
        wal.close();
    }

    #[test]
    fn a_flipped_bit_inside_an_older_segment_is_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let (wal, _, _) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        let _ = rt.block_on(wal.append("", Endpoint::Audit, &b"first body"[..], 0, 0)).unwrap();
        let _ = rt.block_on(wal.append("", Endpoint::Audit, &b"second body"[..], 0, 0)).unwrap();
        wal.close();
        drop(wal);
        // A second run writes segment 2, so segment 1 is no longer the newest.
        let (wal, _, _) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        let _ = rt.block_on(wal.append("", Endpoint::Audit, &b"third body"[..], 0, 0)).unwrap();
        wal.close();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let mut data = fs::read(&path).unwrap();
        let at = data.len() - 3;
        data[at] ^= 0x10;
        fs::write(&path, data).unwrap();

        let (wal, recovered, report) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        let recovered: Vec<Recovered> = recovered.collect();
        let bodies: Vec<&[u8]> = recovered.iter().map(|r| r.entry.body.as_ref()).collect();
        assert_eq!(bodies, [&b"first body"[..], &b"third body"[..]]);
        assert_eq!(report.corrupt_segments.len(), 1, "{report:?}");
        assert!(report.corrupt_segments[0].contains("checksum mismatch"), "{report:?}");
        assert_eq!(report.torn_tail_bytes, 0);
        wal.close();
    }

    #[test]
    fn the_budget_refuses_appends_until_acknowledged_segments_can_go() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        // 64 KiB segments; room for about six 40 KiB bodies.
        let (wal, _, _) = Wal::open(config(dir.path(), 256 << 10)).unwrap();
        let body = vec![b'x'; 40 << 10];
        let mut seqs = Vec::new();
        let full = loop {
            match rt.block_on(wal.append("", Endpoint::Audit, body.clone(), 0, 0)) {
                Ok(seq) => seqs.push(seq),
                Err(e) => break e,
            }
            assert!(seqs.len() < 100, "the budget never refused an append");
        };
        assert!(matches!(full, AppendError::Full { max_bytes } if max_bytes == 256 << 10), "{full:?}");
        assert!(wal.stats().bytes <= 256 << 10, "{:?}", wal.stats());
        let too_large = rt.block_on(wal.append("", Endpoint::Audit, vec![0; 300 << 10], 0, 0));
        let expected_bytes = entry_size("", &vec![0; 300 << 10]);
        assert!(
            matches!(too_large, Err(AppendError::TooLarge { bytes, max_bytes }) if bytes == expected_bytes && max_bytes == 256 << 10),
            "{too_large:?}"
        );
        // Once exported, the head segments are removed and appends fit again.
        wal.acknowledge(&seqs);
        assert!(rt.block_on(wal.append("", Endpoint::Audit, body.clone(), 0, 0)).is_ok());
        assert!(wal.stats().segments <= 3, "{:?}", wal.stats());
        wal.close();
    }

    #[test]
    fn acknowledged_segments_stay_for_the_context_period() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        // A 512 KiB budget gives 64 KiB segments.
        let wal_config = WalConfig { context: 1_000, ..config(dir.path(), 512 << 10) };
        let (wal, _, _) = Wal::open(wal_config).unwrap();
        let body = vec![b'x'; 70 << 10]; // each append fills a 64 KiB segment
        let first = rt.block_on(wal.append("", Endpoint::Audit, body.clone(), 500, 0)).unwrap();
        let second = rt.block_on(wal.append("", Endpoint::Audit, body.clone(), 1_200, 0)).unwrap();
        wal.acknowledge(&[first, second]);
        assert_eq!(wal.stats().segments, 2, "arrival 500 is within 1,000 of 1,200: kept");
        let third = rt.block_on(wal.append("", Endpoint::Audit, body.clone(), 1_600, 0)).unwrap();
        wal.acknowledge(&[third]);
        assert_eq!(wal.stats().segments, 2, "arrival 500 is past the context: segment 1 removed");
        assert!(!segment_path(dir.path(), 1).exists() && segment_path(dir.path(), 2).exists());
        wal.close();
    }

    #[test]
    fn a_cluster_whose_records_run_ahead_does_not_retire_another_clusters_context() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let hour = 3_600_000_000;
        let wal_config = WalConfig { context: 600_000_000, ..config(dir.path(), 512 << 10) };
        let (wal, _, _) = Wal::open(wal_config).unwrap();
        let body = vec![b'x'; 70 << 10];
        // Both arrive within a second; "ahead"'s records claim an hour later.
        let behind = rt.block_on(wal.append("behind", Endpoint::Audit, body.clone(), 1_000_000, 1_000_000)).unwrap();
        let ahead =
            rt.block_on(wal.append("ahead", Endpoint::Audit, body.clone(), 1_500_000, 1_000_000 + hour)).unwrap();
        let _later = rt.block_on(wal.append("behind", Endpoint::Audit, body.clone(), 2_000_000, 2_000_000)).unwrap();
        wal.acknowledge(&[behind, ahead]);
        assert!(
            segment_path(dir.path(), 1).exists(),
            "the context of \"behind\" was retired by another cluster's clock"
        );
        wal.close();
    }

    #[test]
    fn concurrent_appends_all_land_with_distinct_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let (wal, _, _) = Wal::open(config(dir.path(), 1 << 30)).unwrap();
        let wal = Arc::new(wal);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().unwrap();
        let seqs: Vec<u64> = rt.block_on(async {
            let tasks: Vec<_> = (0..64)
                .map(|_| {
                    let wal = wal.clone();
                    tokio::spawn(
                        async move { wal.append("", Endpoint::Audit, vec![b'y'; 2000], 0, 0).await.unwrap().seq },
                    )
                })
                .collect();
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        });
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted, (1..=64).collect::<Vec<_>>());
        wal.close();
        drop(wal);
        let (_, recovered, _) = Wal::open(config(dir.path(), 1 << 30)).unwrap();
        assert_eq!(recovered.count(), 64);
    }
}
