//! The audit parser on arbitrary bytes: webhook `EventList` bodies (the
//! one-pass typed decode and its item-isolating fallback), audit log lines,
//! gzip. Every byte string must decode without a panic, and every record it
//! yields must be counted as accepted.
#![no_main]

use kausal::sources::decode::{DecodeOptions, Decoded};
use kausal::sources::files;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut decoded = Decoded::default();
    files::decode_bytes(data, DecodeOptions::default(), &mut decoded);
    let recognised = decoded.stats.audit_events + decoded.stats.kube_events;
    assert!(decoded.records.len() as u64 <= recognised, "more records than recognised events");
});
