//! Kubernetes Events (core/v1, events.k8s.io/v1, lists, watch lines) on
//! arbitrary text, and whatever records come out driven through the causal
//! core: neither the parser nor the linker may panic on any input.
#![no_main]

use kausal::core::{CoreConfig, Engine};
use kausal::decode::{DecodeOptions, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let decoded = decode(text.as_bytes(), &DecodeOptions::default());
    let records = decoded.records.len() as u64;
    let mut engine = Engine::new(CoreConfig::default());
    for record in decoded.records {
        engine.ingest(record);
        engine.advance(None);
    }
    engine.flush();
    let spans = engine.drain_spans();
    let stats = engine.stats();
    assert_eq!(stats.records_in, records);
    assert_eq!(spans.len() as u64, stats.spans_out);
});
