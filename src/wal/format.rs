//! The on-disk format: segments of checksummed records.
//!
//! ```text
//! segment = magic "KSLWAL01", record*
//! record  = len:u32le  crc32c(payload):u32le  payload[len]
//! payload = 1 seq:u64 accepted_at:i64 max_record_time:i64 endpoint:u8 cluster_len:u16 cluster body   (an entry)
//!         | 2 count:u32 seq:u64*count                                                            (acknowledgements)
//! ```

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::core::time::Micros;

pub(super) const MAGIC: &[u8; 8] = b"KSLWAL01";
const RECORD_HEADER: usize = 8;
const KIND_ENTRY: u8 = 1;
const KIND_ACKS: u8 = 2;

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

/// Bytes an entry takes on disk.
pub(super) fn entry_size(cluster: &str, body: &[u8]) -> u64 {
    (RECORD_HEADER + 1 + 8 + 8 + 8 + 1 + 2 + cluster.len() + body.len()) as u64
}

/// An entry's frame header and fields, and its checksum, computed over the
/// fields and then the body without joining them: the body is written from
/// the request's own buffer.
pub(super) fn encode_entry_head(entry: &Entry, out: &mut Vec<u8>) {
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

pub(super) fn encode_acks(seqs: &[u64], out: &mut Vec<u8>) {
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

pub(super) enum Scanned {
    /// An entry and the bytes it takes on disk.
    Entry(Entry, u64),
    Acks(Vec<u64>),
}

pub(super) struct Scan {
    pub(super) records: Vec<Scanned>,
    /// Bytes up to the end of the last good record.
    pub(super) good_len: usize,
    /// Why reading stopped before the end, if it did.
    pub(super) problem: Option<&'static str>,
}

/// Reads a segment's records up to the first that is incomplete or fails its
/// checksum. Bodies are slices of `data`, not copies: a segment's entries
/// share its one buffer.
pub(super) fn scan_segment(data: &Bytes) -> Scan {
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
        let body_at = at + RECORD_HEADER;
        let Some(record) = decode_payload(data, body_at, payload, (RECORD_HEADER + len) as u64) else {
            scan.problem = Some("malformed record");
            break;
        };
        scan.records.push(record);
        at += RECORD_HEADER + len;
        scan.good_len = at;
    }
    scan
}

/// Decodes the record whose payload starts at `payload_at` in `data`.
fn decode_payload(data: &Bytes, payload_at: usize, payload: &[u8], size: u64) -> Option<Scanned> {
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
            rest.get(27 + cluster_len..)?;
            let body = data.slice(payload_at + 1 + 27 + cluster_len..payload_at + payload.len());
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

pub(super) fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.wal"))
}
