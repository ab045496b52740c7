//! Deterministic trace and span IDs.
//!
//! Every ID is a pure function of the input: a write's IDs come from its
//! `auditID`, an Event's from its UID. Replaying the same input, or receiving a
//! batch the apiserver resent, therefore yields the same IDs and no duplicates.
//! The hash is XXH3, a fixed published algorithm, so IDs are stable across
//! builds and versions of kausal.

use xxhash_rust::xxh3::{xxh3_64_with_seed, xxh3_128_with_seed};

pub type TraceId = [u8; 16];
pub type SpanId = [u8; 8];

/// A 16-byte object identity. Kubernetes UIDs are UUIDs and map to their own
/// bytes; anything else (scrubbed samples, synthetic keys) is hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uid(pub [u8; 16]);

const SEED_UID: u64 = 0x6b61_7573_616c_0001;
const SEED_TRACE: u64 = 0x6b61_7573_616c_0002;
const SEED_WRITE_SPAN: u64 = 0x6b61_7573_616c_0003;
const SEED_EVENT_SPAN: u64 = 0x6b61_7573_616c_0004;
const SEED_NAME_KEY: u64 = 0x6b61_7573_616c_0005;
const SEED_FINGERPRINT: u64 = 0x6b61_7573_616c_0006;

/// Parses the canonical 8-4-4-4-12 UUID text form.
pub fn parse_uuid(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 36 || b[8] != b'-' || b[13] != b'-' || b[18] != b'-' || b[23] != b'-' {
        return None;
    }
    let mut out = [0u8; 16];
    let mut nibbles = b.iter().filter(|&&c| c != b'-');
    for byte in &mut out {
        let hi = hex_value(*nibbles.next()?)?;
        let lo = hex_value(*nibbles.next()?)?;
        *byte = hi << 4 | lo;
    }
    Some(out)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

impl Uid {
    pub fn from_text(text: &str) -> Uid {
        Uid(parse_uuid(text).unwrap_or_else(|| xxh3_128_with_seed(text.as_bytes(), SEED_UID).to_be_bytes()))
    }

    /// A stand-in identity for an object known only by name (e.g. a write logged
    /// at `Metadata` level before kausal saw the object's UID).
    pub fn from_name(resource: &str, namespace: &str, name: &str) -> Uid {
        let key = format!("{resource}\u{0}{namespace}\u{0}{name}");
        Uid(xxh3_128_with_seed(key.as_bytes(), SEED_NAME_KEY).to_be_bytes())
    }
}

/// The trace ID of a trace rooted at a write: the auditID's own UUID bytes, so a
/// person can paste an auditID (without dashes) into Jaeger's trace search.
/// A compact fingerprint of some state, to tell whether it changed.
pub fn fingerprint(state: &str) -> u64 {
    xxh3_64_with_seed(state.as_bytes(), SEED_FINGERPRINT)
}

/// The auditID as a trace ID: a UUID, or 32 hex digits (what a client that
/// sets the `Audit-ID` header to a trace ID sends) as they are; anything
/// else hashed.
pub fn trace_id_for_write(audit_id: &str) -> TraceId {
    non_zero_16(
        parse_uuid(audit_id)
            .or_else(|| parse_hex_128(audit_id))
            .unwrap_or_else(|| xxh3_128_with_seed(audit_id.as_bytes(), SEED_TRACE).to_be_bytes()),
    )
}

/// 32 hex digits, as 16 bytes.
fn parse_hex_128(text: &str) -> Option<[u8; 16]> {
    let b = text.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (byte, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *byte = hex_value(pair[0])? << 4 | hex_value(pair[1])?;
    }
    Some(out)
}

pub fn span_id_for_write(audit_id: &str) -> SpanId {
    non_zero_8(xxh3_64_with_seed(audit_id.as_bytes(), SEED_WRITE_SPAN).to_be_bytes())
}

/// An Event's span ID comes from its identity alone (UID, or namespace/name when
/// the UID is not known), so every report of the same Event maps to one span.
pub fn span_id_for_event(event_key: &str) -> SpanId {
    non_zero_8(xxh3_64_with_seed(event_key.as_bytes(), SEED_EVENT_SPAN).to_be_bytes())
}

/// A repeat of an Event that arrives after its span was emitted gets a span of
/// its own, keyed by the observation count, so nothing is lost or duplicated.
pub fn span_id_for_event_repeat(event_key: &str, count: i64) -> SpanId {
    span_id_for_event(&format!("{event_key}#{count}"))
}

/// The trace of an Event that has no causing write.
pub fn trace_id_for_orphan_event(event_key: &str) -> TraceId {
    non_zero_16(xxh3_128_with_seed(event_key.as_bytes(), SEED_EVENT_SPAN).to_be_bytes())
}

fn non_zero_16(mut id: TraceId) -> TraceId {
    if id == [0; 16] {
        id[15] = 1; // all-zero IDs are invalid in OpenTelemetry
    }
    id
}

fn non_zero_8(mut id: SpanId) -> SpanId {
    if id == [0; 8] {
        id[7] = 1;
    }
    id
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_uuid_is_the_trace_id() {
        let id = trace_id_for_write("4ca7c592-5ef6-4d6b-aaff-952f630775d3");
        assert_eq!(hex(&id), "4ca7c5925ef64d6baaff952f630775d3");
    }

    #[test]
    fn an_audit_id_of_32_hex_digits_is_the_trace_id_as_it_is() {
        let id = trace_id_for_write("4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(hex(&id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_ne!(hex(&trace_id_for_write("4bf92f3577b34da6a3ce929d0e0e473g")), "4bf92f3577b34da6a3ce929d0e0e473g");
    }

    #[test]
    fn non_uuid_audit_ids_are_hashed_stably() {
        let a = trace_id_for_write("abcde12345");
        assert_eq!(a, trace_id_for_write("abcde12345"));
        assert_ne!(a, trace_id_for_write("abcde12346"));
        assert_ne!(a, [0; 16]);
    }

    #[test]
    fn span_ids_differ_by_purpose() {
        let key = "4ca7c592-5ef6-4d6b-aaff-952f630775d3";
        assert_ne!(span_id_for_write(key), span_id_for_event(key));
        assert_ne!(span_id_for_event(key), span_id_for_event_repeat(key, 2));
    }

    #[test]
    fn uid_round_trips_uuid_bytes() {
        let uid = Uid::from_text("2fb028b3-cf59-4505-afd6-c66d1ac6964d");
        assert_eq!(hex(&uid.0), "2fb028b3cf594505afd6c66d1ac6964d");
        assert_eq!(Uid::from_text("12345678"), Uid::from_text("12345678"));
        assert_eq!(parse_uuid("2fb028b3-cf59-4505-afd6-c66d1ac6964"), None);
    }
}
