//! The audit parser on arbitrary bytes: webhook `EventList` bodies (the
//! one-pass typed decode and its item-isolating fallback), audit log lines,
//! gzip. Every byte string must decode without a panic, and every record it
//! yields must be counted as accepted.
#![no_main]

use kausal::decode::{DecodeOptions, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode(data, &DecodeOptions::default());
    let recognised = decoded.stats.audit_events + decoded.stats.kube_events;
    assert!(decoded.records.len() as u64 <= recognised, "more records than recognised events");
});
