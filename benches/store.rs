//! The embedded trace store at scale: the capture's spans repeated with
//! fresh IDs into a real SQLite file, then what the query API asks of it.
//!
//!   cargo bench --bench store             (1M spans; `-- --test` for a smoke run)
//!
//! Reports insert throughput (batches of 4096, as the export loop hands
//! them over), bytes per stored span, trace-by-ID and tag-search latency
//! percentiles (a search is Jaeger's: find up to 20 traces over the last
//! day, then read each), and this process's RSS while the store fills to a
//! bound and keeps dropping its oldest spans.

mod support;

use std::time::Instant;

use kausal::core::{CoreConfig, Engine};
use kausal::store::{Store, StoreConfig, StoredSpan, StoredValue, TraceQuery};

/// The capture's span of time plus a gap, as benches/support's rounds.
const ROUND_US: i64 = 10 * 60 * 1_000_000;
const DAY_US: i64 = 24 * 3600 * 1_000_000;

fn base_spans() -> Vec<StoredSpan> {
    let mut engine = Engine::new(CoreConfig::default());
    support::capture_records().into_iter().for_each(|r| engine.ingest(r));
    engine.flush();
    engine.drain_spans().iter().map(|s| StoredSpan::from_span(s, "bench")).collect()
}

/// Round `r` of the capture: IDs, names, UIDs and namespace made new, times shifted.
fn round(base: &[StoredSpan], r: u32) -> Vec<StoredSpan> {
    let prefix = format!("{r:08x}");
    let fresh = |id: &str| format!("{prefix}{}", &id[8..]);
    base.iter()
        .map(|s| {
            let mut s = s.clone();
            s.trace_id = fresh(&s.trace_id);
            s.span_id = fresh(&s.span_id);
            s.parent_span_id = s.parent_span_id.as_deref().map(fresh);
            s.start_us += i64::from(r) * ROUND_US;
            s.end_us += i64::from(r) * ROUND_US;
            for key in ["k8s.object.name", "k8s.object.uid"] {
                if let Some(StoredValue::Str(v)) = s.attributes.get_mut(key) {
                    v.push_str(&format!("-r{r}"));
                }
            }
            if s.attributes.contains_key("k8s.namespace.name") {
                s.attributes.insert("k8s.namespace.name".into(), StoredValue::Str(format!("ns-{}", r % 100)));
            }
            s
        })
        .collect()
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(((values.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(f64::NAN)
}

/// Fills `store` with `rounds` rounds in batches of 4096; returns the
/// seconds taken, and RSS samples (spans stored, bytes).
fn fill(store: &Store, base: &[StoredSpan], rounds: u32) -> (f64, Vec<(u64, u64)>) {
    let mut pending = Vec::with_capacity(8192);
    let mut samples = Vec::new();
    let mut stored = 0u64;
    let mut insert_seconds = 0.0;
    for r in 0..rounds {
        pending.extend(round(base, r));
        while pending.len() >= 4096 {
            let batch: Vec<StoredSpan> = pending.drain(..4096).collect();
            let started = Instant::now();
            store.insert(&batch).unwrap();
            insert_seconds += started.elapsed().as_secs_f64();
            stored += batch.len() as u64;
            if stored.is_multiple_of(200 * 4096) {
                samples.push((stored, support::rss_bytes()));
            }
        }
    }
    let started = Instant::now();
    store.insert(&pending).unwrap();
    insert_seconds += started.elapsed().as_secs_f64();
    (insert_seconds, samples)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--test" || a == "--quick");
    let target_spans: u64 = if quick { 20_000 } else { 1_000_000 };
    let base = base_spans();
    let rounds = target_spans.div_ceil(base.len() as u64) as u32;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.sqlite");
    let store = Store::open(StoreConfig { path: Some(path.clone()), ..Default::default() }).unwrap();
    let (seconds, _) = fill(&store, &base, rounds);
    let (spans, used) = store.size().unwrap();
    let file = std::fs::metadata(&path).unwrap().len()
        + std::fs::metadata(path.with_extension("sqlite-wal")).map_or(0, |m| m.len());
    println!(
        "store: {spans} spans ({} rounds of the capture's {}) inserted at {:.0} spans/s; {:.0} bytes per span in use, {:.0} on disk with SQLite's log",
        rounds,
        base.len(),
        spans as f64 / seconds,
        used as f64 / spans as f64,
        file as f64 / spans as f64,
    );

    // Trace by ID, over traces spread through the whole store.
    let trace_ids: Vec<String> = {
        let mut ids: Vec<String> = base.iter().map(|s| s.trace_id.clone()).collect();
        ids.dedup();
        ids
    };
    let lookups = if quick { 100 } else { 2000 };
    let mut by_id = Vec::with_capacity(lookups);
    for n in 0..lookups {
        let r = (n as u32 * 7919) % rounds;
        let id = format!("{r:08x}{}", &trace_ids[n % trace_ids.len()][8..]);
        let started = Instant::now();
        let spans = store.trace(&id).unwrap();
        by_id.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(!spans.is_empty());
    }
    println!(
        "trace by ID: p50 {:.3} ms, p99 {:.3} ms over {lookups} lookups",
        percentile(&mut by_id, 0.5),
        percentile(&mut by_id, 0.99)
    );

    // Tag searches over the last day of the store, as /api/traces runs them.
    let end = i64::from(rounds) * ROUND_US + base.iter().map(|s| s.end_us).max().unwrap();
    let searches: Vec<(&str, Vec<(String, String)>)> = vec![
        ("namespace", vec![("k8s.namespace.name".into(), "ns-42".into())]),
        ("user", vec![("user.name".into(), "admin".into())]),
        ("error", vec![("error".into(), "true".into())]),
        ("verb+namespace", vec![("k8s.verb".into(), "delete".into()), ("k8s.namespace.name".into(), "ns-7".into())]),
        ("event reason (no column)", vec![("k8s.event.reason".into(), "Scheduled".into())]),
    ];
    for (what, tags) in searches {
        let mut times = Vec::new();
        let mut found = 0;
        for n in 0..if quick { 5 } else { 100 } {
            let query = TraceQuery {
                tags: tags.clone(),
                start_us: Some(end - DAY_US - n * 60_000_000),
                end_us: Some(end - n * 60_000_000),
                limit: 20,
                ..Default::default()
            };
            let started = Instant::now();
            let ids = store.find_traces(&query).unwrap();
            for id in &ids {
                store.trace(id).unwrap();
            }
            times.push(started.elapsed().as_secs_f64() * 1e3);
            found = ids.len();
        }
        println!(
            "tag search over a day, {what}: p50 {:.2} ms, p99 {:.2} ms ({found} traces each, read in full)",
            percentile(&mut times.clone(), 0.5),
            percentile(&mut times, 0.99)
        );
    }
    drop(store);

    // Memory while the store grows to a bound and then drops its oldest spans.
    let bounded_path = dir.path().join("bounded.sqlite");
    let bound = if quick { 4u64 << 20 } else { 128 << 20 };
    let bounded =
        Store::open(StoreConfig { path: Some(bounded_path), max_bytes: Some(bound), ..Default::default() }).unwrap();
    let (_, samples) = fill(&bounded, &base, rounds * if quick { 1 } else { 2 });
    let (kept, used) = bounded.size().unwrap();
    println!(
        "bounded store ({} MiB): {kept} spans kept, {:.1} MiB in use; RSS as it filled:",
        bound >> 20,
        used as f64 / 1048576.0
    );
    for (stored, rss) in samples {
        println!("  after {stored:>8} spans inserted: RSS {:.1} MiB", rss as f64 / 1048576.0);
    }
}
