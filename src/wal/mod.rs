//! The write-ahead log: every webhook body kausal answers 200 for is on disk
//! first, and stays there until every span derived from it is exported.
//!
//! Between the sources and the pipeline. The layout is a directory of
//! append-only segments (`00000000000000000001.wal`, ...), each a magic header
//! followed by checksummed records:
//!
//! ```text
//! record  = len:u32le  crc32c(payload):u32le  payload[len]
//! payload = 1 seq:u64 accepted_at:i64 max_record_time:i64 endpoint:u8 cluster_len:u16 cluster body   (an entry)
//!         | 2 count:u32 seq:u64*count                                                            (acknowledgements)
//! ```
//!
//! * **Group commit.** One writer thread takes every append waiting, writes
//!   them, calls `fdatasync` once and only then answers them all, so
//!   concurrent webhook requests share a sync.
//! * **Acknowledgements** are records in the log as well (without a sync of
//!   their own: losing one costs a duplicate span, never data). Recovery
//!   replays acknowledged entries as context only (graph state, no spans) and
//!   the others as new.
//! * **Retention.** Segments are removed oldest first, once every entry in
//!   them is acknowledged and their newest record is older than the context
//!   period (so that recovery can rebuild the graph the next records link
//!   to). Disk use is bounded by `max_bytes`: acknowledged segments are
//!   removed early when room is needed, and an append that still does not
//!   fit is refused (the webhook answers 429 and the apiserver retries).
//! * **Torn writes.** Recovery reads each segment up to the first record whose
//!   length or checksum is wrong; in the newest segment that is a torn tail
//!   from a crash mid-write and is cut off; in an older one it is corruption,
//!   counted and logged.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

use crate::core::time::Micros;
use crate::telemetry as m;

const MAGIC: &[u8; 8] = b"KSLWAL01";
const RECORD_HEADER: usize = 8;
const KIND_ENTRY: u8 = 1;
const KIND_ACKS: u8 = 2;
/// Appends taken into one group commit, at most (bytes of payload).
const MAX_GROUP_BYTES: usize = 32 << 20;

/// Which webhook route accepted a body (only metrics tell them apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Audit,
    Events,
}

impl Endpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Audit => "audit",
            Endpoint::Events => "events",
        }
    }
    fn code(self) -> u8 {
        match self {
            Endpoint::Audit => 0,
            Endpoint::Events => 1,
        }
    }
    fn from_code(code: u8) -> Option<Endpoint> {
        match code {
            0 => Some(Endpoint::Audit),
            1 => Some(Endpoint::Events),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct WalConfig {
    pub dir: PathBuf,
    /// Disk use of all segments together, at most.
    pub max_bytes: u64,
    /// Acknowledged entries are kept this long (in record time) as context for recovery.
    pub context: Micros,
}

impl WalConfig {
    /// Segments are an eighth of the budget (64 KiB to 64 MiB), so the one
    /// being written never holds much of it.
    fn segment_bytes(&self) -> u64 {
        (self.max_bytes / 8).clamp(64 << 10, 64 << 20)
    }
}

/// An accepted body, as kept on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub seq: u64,
    /// When kausal accepted it (Unix microseconds): recovery checks record
    /// times against this, not against the time of the restart.
    pub accepted_at: Micros,
    /// The newest record time in the body, for retention.
    pub max_record_time: Micros,
    pub endpoint: Endpoint,
    pub cluster: String,
    /// Shared with the request that brought it: the log never copies a body.
    pub body: Bytes,
}

/// An entry found at start-up.
#[derive(Debug)]
pub struct Recovered {
    pub entry: Entry,
    /// Every span derived from it was exported before the restart: replay it
    /// for graph state only.
    pub acknowledged: bool,
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

#[derive(Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The log holds `max_bytes` of unacknowledged data: retry later (429).
    Full { max_bytes: u64 },
    /// The body alone is larger than the whole log (413).
    TooLarge { bytes: u64, max_bytes: u64 },
    /// Writing or syncing failed (disk full, I/O error): nothing was
    /// acknowledged; retry later.
    Io(String),
    /// The log is closed (shutting down).
    Closed,
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Full { max_bytes } => {
                write!(f, "the write-ahead log holds {max_bytes} bytes not yet exported (--max-wal-bytes)")
            }
            AppendError::TooLarge { bytes, max_bytes } => {
                write!(
                    f,
                    "the body ({bytes} bytes) is larger than the write-ahead log ({max_bytes} bytes, --max-wal-bytes)"
                )
            }
            AppendError::Io(e) => write!(f, "writing the write-ahead log failed: {e}"),
            AppendError::Closed => f.write_str("the write-ahead log is closed"),
        }
    }
}

/// Sizes for `/metrics` and `/readyz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WalStats {
    pub bytes: u64,
    pub segments: usize,
    pub unacknowledged_entries: usize,
    pub unacknowledged_bytes: u64,
}

struct Segment {
    path: PathBuf,
    bytes: u64,
    /// Entries not yet acknowledged, with their sizes.
    unacknowledged: BTreeMap<u64, u64>,
    max_record_time: Micros,
}

struct Index {
    /// By segment number, oldest first; the last one is being written.
    segments: BTreeMap<u64, Segment>,
    /// Which segment each unacknowledged entry is in.
    entry_segment: BTreeMap<u64, u64>,
    /// Bytes promised to appends in flight.
    reserved: u64,
    /// The sizes in every segment's `unacknowledged`, summed: kept as entries
    /// come and go, because metrics read it on every append and acknowledgement.
    unacknowledged_bytes: u64,
    /// Newest record time acknowledged so far: retention is measured from it.
    acknowledged_horizon: Micros,
    next_seq: u64,
    closed: bool,
}

impl Index {
    fn bytes(&self) -> u64 {
        self.segments.values().map(|s| s.bytes).sum::<u64>() + self.reserved
    }

    fn stats(&self) -> WalStats {
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
    fn retire(&mut self, context: Micros, max_bytes: u64, need: u64) -> bool {
        let mut freed = false;
        let cutoff = self.acknowledged_horizon.saturating_sub(context);
        while self.segments.len() > 1 {
            let (&number, head) = self.segments.first_key_value().expect("len > 1");
            if !head.unacknowledged.is_empty() {
                break;
            }
            let expired = head.max_record_time < cutoff;
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

enum Request {
    Append { entry: Entry, reply: tokio::sync::oneshot::Sender<Result<(), AppendError>> },
    Acknowledge(Vec<u64>),
    Shutdown,
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
}

impl Wal {
    /// Opens (or creates) the log, reads what a previous run left, and starts
    /// the writer on a fresh segment. The recovered entries come back in
    /// sequence order.
    pub fn open(config: WalConfig) -> anyhow::Result<(Wal, Vec<Recovered>, RecoveryReport)> {
        use anyhow::Context as _;
        fs::create_dir_all(&config.dir).with_context(|| format!("creating {}", config.dir.display()))?;
        let lock_path = config.dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("opening {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
                "{} is in use by another kausal process: two writers would corrupt the log",
                config.dir.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(anyhow::Error::new(e).context(format!("locking {}", lock_path.display())));
            }
        }
        let mut numbers: Vec<u64> = Vec::new();
        for item in fs::read_dir(&config.dir).with_context(|| format!("reading {}", config.dir.display()))? {
            let name = item?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name.strip_suffix(".wal").and_then(|n| n.parse::<u64>().ok()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();

        let mut report = RecoveryReport::default();
        let mut segments: BTreeMap<u64, Segment> = BTreeMap::new();
        let mut entries: Vec<(u64, Entry)> = Vec::new();
        let mut acknowledged: HashSet<u64> = HashSet::new();
        for (i, &number) in numbers.iter().enumerate() {
            let path = segment_path(&config.dir, number);
            let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let scan = scan_segment(&data);
            let newest = i + 1 == numbers.len();
            if let Some(problem) = &scan.problem {
                if newest {
                    report.torn_tail_bytes = (data.len() - scan.good_len) as u64;
                    tracing::warn!(path = %path.display(), cut = report.torn_tail_bytes, problem, "cutting a torn tail off the write-ahead log");
                    let file = OpenOptions::new().write(true).open(&path)?;
                    file.set_len(scan.good_len as u64)?;
                    file.sync_all()?;
                    metrics::counter!(m::WAL_TORN_TAILS).increment(1);
                } else {
                    tracing::error!(path = %path.display(), offset = scan.good_len, problem, "corrupt write-ahead log segment: the rest of it is skipped");
                    report.corrupt_segments.push(format!("{}: {problem} at byte {}", path.display(), scan.good_len));
                    metrics::counter!(m::WAL_CORRUPT_SEGMENTS).increment(1);
                }
            }
            let mut segment = Segment {
                path,
                bytes: scan.good_len as u64,
                unacknowledged: BTreeMap::new(),
                max_record_time: Micros::MIN,
            };
            for record in scan.records {
                match record {
                    Scanned::Entry(entry, size) => {
                        segment.max_record_time = segment.max_record_time.max(entry.max_record_time);
                        segment.unacknowledged.insert(entry.seq, size);
                        entries.push((number, entry));
                    }
                    Scanned::Acks(seqs) => acknowledged.extend(seqs),
                }
            }
            report.segments += 1;
            report.bytes += segment.bytes;
            segments.insert(number, segment);
        }

        let mut entry_segment = BTreeMap::new();
        let mut recovered = Vec::with_capacity(entries.len());
        let mut next_seq = 1;
        entries.sort_by_key(|(_, e)| e.seq);
        for (number, entry) in entries {
            next_seq = next_seq.max(entry.seq + 1);
            let is_acknowledged = acknowledged.contains(&entry.seq);
            if is_acknowledged {
                segments.get_mut(&number).expect("scanned").unacknowledged.remove(&entry.seq);
                report.acknowledged += 1;
            } else {
                entry_segment.insert(entry.seq, number);
                report.unacknowledged += 1;
            }
            recovered.push(Recovered { entry, acknowledged: is_acknowledged });
        }

        // Never append to a segment a previous run wrote: start a new one.
        let number = numbers.last().map_or(1, |n| n + 1);
        let (file, segment) = create_segment(&config.dir, number)?;
        segments.insert(number, segment);
        let unacknowledged_bytes = segments.values().flat_map(|s| s.unacknowledged.values()).sum();
        let index = Arc::new(Mutex::new(Index {
            segments,
            entry_segment,
            reserved: 0,
            unacknowledged_bytes,
            acknowledged_horizon: Micros::MIN,
            next_seq,
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
        let handle = std::thread::Builder::new().name("kausal-wal".into()).spawn(move || writer.run(receiver))?;
        publish(&index.lock().expect("wal index"));
        Ok((Wal { _lock: lock, config, index, requests, writer: Mutex::new(Some(handle)) }, recovered, report))
    }

    /// Appends a body and returns its sequence number once it is on disk
    /// (synced). Refuses, without writing, when it would not fit the budget.
    pub async fn append(
        &self,
        cluster: &str,
        endpoint: Endpoint,
        body: impl Into<Bytes>,
        accepted_at: Micros,
        max_record_time: Micros,
    ) -> Result<u64, AppendError> {
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
                return Err(AppendError::Full { max_bytes: self.config.max_bytes });
            }
            index.reserved += size;
            let seq = index.next_seq;
            index.next_seq += 1;
            seq
        };
        let entry = Entry { seq, accepted_at, max_record_time, endpoint, cluster: cluster.to_owned(), body };
        let (reply, answer) = tokio::sync::oneshot::channel();
        let outcome = match self.requests.send(Request::Append { entry, reply }) {
            Ok(()) => answer.await.unwrap_or(Err(AppendError::Closed)),
            Err(_) => Err(AppendError::Closed),
        };
        if let Err(AppendError::Io(_)) = &outcome {
            metrics::counter!(m::WAL_REFUSED, "reason" => "io_error").increment(1);
        }
        outcome.map(|()| seq)
    }

    /// Every span derived from these entries has been exported (or given up
    /// and counted). `horizon` is the newest record time they cover.
    pub fn acknowledge(&self, seqs: &[u64], horizon: Micros) {
        if seqs.is_empty() {
            return;
        }
        let mut index = self.index.lock().expect("wal index");
        let mut written = Vec::with_capacity(seqs.len());
        for &seq in seqs {
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

fn publish(index: &Index) {
    let stats = index.stats();
    metrics::gauge!(m::WAL_BYTES).set(stats.bytes as f64);
    metrics::gauge!(m::WAL_SEGMENTS).set(stats.segments as f64);
    metrics::gauge!(m::WAL_UNACKNOWLEDGED).set(stats.unacknowledged_entries as f64);
    metrics::gauge!(m::WAL_UNACKNOWLEDGED_BYTES).set(stats.unacknowledged_bytes as f64);
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.wal"))
}

fn create_segment(dir: &Path, number: u64) -> io::Result<(File, Segment)> {
    let path = segment_path(dir, number);
    let mut file = OpenOptions::new().create_new(true).append(true).open(&path)?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    // The new name must survive a crash too.
    File::open(dir)?.sync_all()?;
    let segment =
        Segment { path, bytes: MAGIC.len() as u64, unacknowledged: BTreeMap::new(), max_record_time: Micros::MIN };
    Ok((file, segment))
}

/// Bytes an entry takes on disk.
fn entry_size(cluster: &str, body: &[u8]) -> u64 {
    (RECORD_HEADER + 1 + 8 + 8 + 8 + 1 + 2 + cluster.len() + body.len()) as u64
}

/// An entry's frame header and fields, and its checksum, computed over the
/// fields and then the body without joining them: the body is written from
/// the request's own buffer.
fn encode_entry_head(entry: &Entry, out: &mut Vec<u8>) {
    let cluster = &entry.cluster.as_bytes()[..entry.cluster.len().min(u16::MAX as usize)];
    let mut fields = Vec::with_capacity(28 + cluster.len());
    fields.push(KIND_ENTRY);
    fields.extend_from_slice(&entry.seq.to_le_bytes());
    fields.extend_from_slice(&entry.accepted_at.to_le_bytes());
    fields.extend_from_slice(&entry.max_record_time.to_le_bytes());
    fields.push(entry.endpoint.code());
    fields.extend_from_slice(&(cluster.len() as u16).to_le_bytes());
    fields.extend_from_slice(cluster);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&fields), &entry.body);
    out.extend_from_slice(&((fields.len() + entry.body.len()) as u32).to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&fields);
}

fn encode_acks(seqs: &[u64], out: &mut Vec<u8>) {
    let mut payload = Vec::with_capacity(5 + 8 * seqs.len());
    payload.push(KIND_ACKS);
    payload.extend_from_slice(&(seqs.len() as u32).to_le_bytes());
    for seq in seqs {
        payload.extend_from_slice(&seq.to_le_bytes());
    }
    frame(&payload, out);
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

enum Scanned {
    /// An entry and the bytes it takes on disk.
    Entry(Entry, u64),
    Acks(Vec<u64>),
}

struct Scan {
    records: Vec<Scanned>,
    /// Bytes up to the end of the last good record.
    good_len: usize,
    /// Why reading stopped before the end, if it did.
    problem: Option<&'static str>,
}

/// Reads a segment's records up to the first that is incomplete or fails its checksum.
fn scan_segment(data: &[u8]) -> Scan {
    let mut scan = Scan { records: Vec::new(), good_len: 0, problem: None };
    if data.len() < MAGIC.len() || &data[..MAGIC.len()] != MAGIC {
        scan.problem = Some("missing segment header");
        return scan;
    }
    let mut at = MAGIC.len();
    scan.good_len = at;
    while at < data.len() {
        let Some(header) = data.get(at..at + RECORD_HEADER) else {
            scan.problem = Some("incomplete record header");
            break;
        };
        let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
        let Some(payload) = data.get(at + RECORD_HEADER..at + RECORD_HEADER + len) else {
            scan.problem = Some("incomplete record");
            break;
        };
        if crc32c::crc32c(payload) != crc {
            scan.problem = Some("checksum mismatch");
            break;
        }
        let Some(record) = decode_payload(payload, (RECORD_HEADER + len) as u64) else {
            scan.problem = Some("malformed record");
            break;
        };
        scan.records.push(record);
        at += RECORD_HEADER + len;
        scan.good_len = at;
    }
    scan
}

fn decode_payload(payload: &[u8], size: u64) -> Option<Scanned> {
    let (&kind, rest) = payload.split_first()?;
    let u64_at = |b: &[u8], i: usize| b.get(i..i + 8).map(|s| u64::from_le_bytes(s.try_into().expect("8 bytes")));
    match kind {
        KIND_ENTRY => {
            let seq = u64_at(rest, 0)?;
            let accepted_at = u64_at(rest, 8)? as i64;
            let max_record_time = u64_at(rest, 16)? as i64;
            let endpoint = Endpoint::from_code(*rest.get(24)?)?;
            let cluster_len = u16::from_le_bytes(rest.get(25..27)?.try_into().ok()?) as usize;
            let cluster = std::str::from_utf8(rest.get(27..27 + cluster_len)?).ok()?.to_owned();
            let body = Bytes::copy_from_slice(rest.get(27 + cluster_len..)?);
            Some(Scanned::Entry(Entry { seq, accepted_at, max_record_time, endpoint, cluster, body }, size))
        }
        KIND_ACKS => {
            let count = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
            let seqs = rest.get(4..)?;
            if seqs.len() != count.checked_mul(8)? {
                return None;
            }
            Some(Scanned::Acks(
                seqs.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect(),
            ))
        }
        _ => None,
    }
}

/// The one thread that writes: group commit and segment rolling.
struct Writer {
    dir: PathBuf,
    segment_bytes: u64,
    context: Micros,
    max_bytes: u64,
    index: Arc<Mutex<Index>>,
    file: File,
    number: u64,
}

impl Writer {
    fn run(mut self, requests: mpsc::Receiver<Request>) {
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
                        replies.push((entry.seq, entry.max_record_time, size, reply));
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
            let outcome = self.write_group(&chunks, needs_sync);
            let mut index = self.index.lock().expect("wal index");
            for (seq, max_time, size, reply) in replies {
                index.reserved = index.reserved.saturating_sub(size);
                let answer = match &outcome {
                    Ok(()) => {
                        let segment = index.segments.get_mut(&self.number).expect("current segment");
                        segment.unacknowledged.insert(seq, size);
                        segment.max_record_time = segment.max_record_time.max(max_time);
                        index.entry_segment.insert(seq, self.number);
                        index.unacknowledged_bytes += size;
                        Ok(())
                    }
                    Err(e) => Err(AppendError::Io(e.to_string())),
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
            current.max_record_time = Micros::MIN;
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

#[cfg(test)]
mod tests {
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
        assert!(recovered.is_empty());
        let a = rt.block_on(wal.append("prod", Endpoint::Audit, &b"{\"a\":1}"[..], 10, 100)).unwrap();
        let b = rt.block_on(wal.append("", Endpoint::Events, &b"{\"b\":2}"[..], 11, 200)).unwrap();
        assert_eq!((a, b), (1, 2));
        assert_eq!(wal.stats().unacknowledged_bytes, entry_size("prod", b"{\"a\":1}") + entry_size("", b"{\"b\":2}"));
        wal.acknowledge(&[a], 100);
        assert_eq!(wal.stats().unacknowledged_bytes, entry_size("", b"{\"b\":2}"));
        wal.close();
        drop(wal);

        let (wal, recovered, report) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
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
        assert_eq!(rt.block_on(wal.append("", Endpoint::Audit, &b"c"[..], 12, 300)).unwrap(), 3);
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
            rt.block_on(wal.append("", Endpoint::Audit, vec![b'x'; 50 + i as usize], 0, 0)).unwrap();
        }
        wal.close();
        drop(wal);
        // A crash in the middle of the third record: its last bytes never made it.
        let path = segment_path(dir.path(), 1);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new().write(true).open(&path).unwrap().set_len(len - 7).unwrap();

        let (wal, recovered, report) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        assert_eq!(recovered.iter().map(|r| r.entry.seq).collect::<Vec<_>>(), [1, 2]);
        assert!(report.torn_tail_bytes > 0 && report.corrupt_segments.is_empty());
        wal.close();
        drop(wal);
        // The cut is permanent: a second start finds a clean log.
        let (wal, recovered, report) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        assert_eq!((recovered.len(), report.torn_tail_bytes), (2, 0));
        wal.close();
    }

    #[test]
    fn a_flipped_bit_inside_an_older_segment_is_reported_not_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let rt = runtime();
        let (wal, _, _) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        rt.block_on(wal.append("", Endpoint::Audit, &b"first body"[..], 0, 0)).unwrap();
        rt.block_on(wal.append("", Endpoint::Audit, &b"second body"[..], 0, 0)).unwrap();
        wal.close();
        drop(wal);
        // A second run writes segment 2, so segment 1 is no longer the newest.
        let (wal, _, _) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
        rt.block_on(wal.append("", Endpoint::Audit, &b"third body"[..], 0, 0)).unwrap();
        wal.close();
        drop(wal);
        let path = segment_path(dir.path(), 1);
        let mut data = fs::read(&path).unwrap();
        let at = data.len() - 3;
        data[at] ^= 0x10;
        fs::write(&path, data).unwrap();

        let (wal, recovered, report) = Wal::open(config(dir.path(), 1 << 20)).unwrap();
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
        assert_eq!(full, AppendError::Full { max_bytes: 256 << 10 });
        assert!(wal.stats().bytes <= 256 << 10, "{:?}", wal.stats());
        assert_eq!(
            rt.block_on(wal.append("", Endpoint::Audit, vec![0; 300 << 10], 0, 0)),
            Err(AppendError::TooLarge { bytes: entry_size("", &vec![0; 300 << 10]), max_bytes: 256 << 10 })
        );
        // Once exported, the head segments are removed and appends fit again.
        wal.acknowledge(&seqs, 0);
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
        let first = rt.block_on(wal.append("", Endpoint::Audit, body.clone(), 0, 500)).unwrap();
        let second = rt.block_on(wal.append("", Endpoint::Audit, body.clone(), 0, 1_200)).unwrap();
        wal.acknowledge(&[first, second], 1_200);
        assert_eq!(wal.stats().segments, 2, "record time 500 is within 1,000 of 1,200: kept");
        let third = rt.block_on(wal.append("", Endpoint::Audit, body.clone(), 0, 1_600)).unwrap();
        wal.acknowledge(&[third], 1_600);
        assert_eq!(wal.stats().segments, 2, "record time 500 is past the context: segment 1 removed");
        assert!(!segment_path(dir.path(), 1).exists() && segment_path(dir.path(), 2).exists());
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
                    tokio::spawn(async move { wal.append("", Endpoint::Audit, vec![b'y'; 2000], 0, 0).await.unwrap() })
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
        assert_eq!(recovered.len(), 64);
    }
}
