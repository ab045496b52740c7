//! In-process throughput: parse, the whole pipeline, OTLP encoding, and how
//! the pipeline's cost per event behaves as the graph grows.
//!
//!   cargo bench --bench pipeline
//!
//! "Events" are audit events as the apiserver sends them, reads included: the
//! real capture's mix (3,415 events, 363 of them writes).

mod support;

/// The same allocator as the `kausal` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kausal::core::{CoreConfig, Engine, Record};
use kausal::decode::{DecodeOptions, decode};
use kausal::sinks::otel::SharedResource;
use kausal::sinks::otel::export_request;
use prost::Message as _;

/// Decode every batch into records: the parse limit.
fn parse(batches: &[String]) -> usize {
    batches.iter().map(|b| decode(b.as_bytes(), &DecodeOptions::default()).records.len()).sum()
}

/// Decode, link and build spans, batch by batch as a server would, into a null sink.
fn pipeline(batches: &[String]) -> usize {
    let mut engine = Engine::new(CoreConfig::default());
    let mut spans = 0;
    for batch in batches {
        for record in decode(batch.as_bytes(), &DecodeOptions::default()).records {
            engine.ingest(record);
        }
        engine.advance(None);
        spans += black_box(engine.drain_spans()).len();
    }
    engine.flush();
    spans + engine.drain_spans().len()
}

fn capture(c: &mut Criterion) {
    let batches = support::capture_batches();
    let bytes: u64 = batches.iter().map(|b| b.len() as u64).sum();
    let events = support::audit_event_count(&batches);

    let mut by_events = c.benchmark_group("capture_events");
    by_events.throughput(Throughput::Elements(events));
    by_events.bench_function("parse", |b| b.iter(|| parse(black_box(&batches))));
    by_events.bench_function("pipeline", |b| b.iter(|| pipeline(black_box(&batches))));
    by_events.finish();

    let mut by_bytes = c.benchmark_group("capture_bytes");
    by_bytes.throughput(Throughput::Bytes(bytes));
    by_bytes.bench_function("parse", |b| b.iter(|| parse(black_box(&batches))));
    by_bytes.finish();
}

/// The same on the real kubelet's recordings: what reading the kubelet's
/// container and condition reports costs (tests/fixtures/e2e/kubelet-*).
fn kubelet(c: &mut Criterion) {
    let batches = support::kubelet_batches();
    let mut group = c.benchmark_group("kubelet_events");
    group.throughput(Throughput::Elements(support::audit_event_count(&batches)));
    group.bench_function("parse", |b| b.iter(|| parse(black_box(&batches))));
    group.bench_function("pipeline", |b| b.iter(|| pipeline(black_box(&batches))));
    group.finish();
}

fn export_encoding(c: &mut Criterion) {
    let records = support::capture_records();
    let mut engine = Engine::new(CoreConfig::default());
    records.into_iter().for_each(|r| engine.ingest(r));
    engine.flush();
    let spans = engine.drain_spans();
    let resource = SharedResource::new(Some("bench"), []);
    let mut group = c.benchmark_group("export");
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.bench_function("otlp_protobuf_encode", |b| {
        b.iter(|| export_request(black_box(&spans), &resource).encode_to_vec().len())
    });
    group.finish();
}

fn scaling(c: &mut Criterion) {
    let template = support::capture_records();
    let mut group = c.benchmark_group("scaling");
    group.sample_size(10);
    group.throughput(Throughput::Elements(template.len() as u64));
    // `cargo bench -- --test` (CI's smoke run) only checks that it runs.
    let smoke = std::env::args().any(|a| a == "--test");
    let sizes: &[usize] = if smoke { &[10_000] } else { &[10_000, 100_000, 1_000_000] };
    for &objects in sizes {
        let (mut engine, mut next_round) = support::engine_with_objects(&template, objects);
        group.bench_with_input(BenchmarkId::new("records_at_graph_size", objects), &objects, |b, _| {
            b.iter_custom(|iterations| {
                // Rounds are made before the clock starts: only the core is timed.
                let rounds: Vec<Vec<Record>> =
                    (0..iterations).map(|i| support::round(&template, next_round + i as u32)).collect();
                next_round += iterations as u32;
                let start = std::time::Instant::now();
                for records in rounds {
                    support::feed(&mut engine, records);
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, capture, kubelet, export_encoding, scaling);
criterion_main!(benches);
