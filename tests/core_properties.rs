//! Properties of the causal core, checked with proptest on real recorded input
//! (every audit-stream recording of the e2e scenarios against a real
//! kube-apiserver 1.20: Deployments, StatefulSets, DaemonSets and nodes, Jobs
//! and CronJobs, Services with Endpoints and EndpointSlices, rollout undo; and
//! the captured Deployment rollout):
//!
//! - any arrival order within the settle delay gives the same spans;
//! - re-delivering any batches, as the apiserver does after an error, changes nothing;
//! - no span is ever its own ancestor, and every parent chain stays in its trace;
//! - recovery: batches replayed as already exported rebuild the graph without
//!   emitting their spans again, and later batches link exactly as before;
//! - `emitted_through` never claims a record whose spans are not out yet;
//! - closing lingering Event spans early loses no span.

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

use proptest::prelude::*;

use common::fixture;
use std::collections::HashSet;

use kausal::core::ids;
use kausal::core::span::Span;
use kausal::core::{CoreConfig, Engine, Record};
use kausal::decode::{DecodeOptions, decode};

/// The recorded batches, each decoded into records, in the order the apiserver sent them.
fn batches() -> &'static Vec<Vec<Record>> {
    static BATCHES: OnceLock<Vec<Vec<Record>>> = OnceLock::new();
    BATCHES.get_or_init(|| {
        let mut batches = Vec::new();
        let e2e = ["deployment", "statefulset", "daemonset", "batch", "service", "rollout-undo"];
        let recordings =
            e2e.iter().map(|s| format!("e2e/{s}/audit-batches")).chain(["rollout-basic/audit-batches".to_owned()]);
        for scenario in recordings {
            let mut files: Vec<_> = std::fs::read_dir(fixture(&scenario)).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            for file in files {
                let decoded = decode(std::fs::read_to_string(file).unwrap().as_bytes(), &DecodeOptions::default());
                assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
                batches.push(decoded.records);
            }
        }
        // The recordings were made on different days: put them in time order.
        batches.retain(|b| !b.is_empty());
        batches.sort_by_key(|b| b.iter().map(Record::order_time).min());
        let records: usize = batches.iter().map(Vec::len).sum();
        assert!(records > 1000, "only {records} records in the recordings");
        batches
    })
}

/// Feeds records one by one, moving the engine on after each as a live server
/// would, then flushes. Spans are sorted by ID so only their content counts.
fn run(records: impl IntoIterator<Item = Record>) -> Vec<Span> {
    let mut engine = Engine::new(CoreConfig::default());
    for record in records {
        engine.ingest(record);
        engine.advance(None);
    }
    engine.flush();
    let mut spans = engine.drain_spans();
    spans.sort_by_key(|s| (s.trace_id, s.span_id));
    spans
}

fn in_order() -> &'static Vec<Span> {
    static SPANS: OnceLock<Vec<Span>> = OnceLock::new();
    SPANS.get_or_init(|| {
        let mut records: Vec<Record> = batches().iter().flatten().cloned().collect();
        records.sort_by_key(|r| r.order_time());
        run(records)
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Each record is delayed by a random amount below half the settle delay:
    /// arrival order changes, but no record arrives after its settle delay.
    #[test]
    fn arrival_order_within_the_settle_delay_changes_nothing(seed in any::<u64>()) {
        let settle = CoreConfig::default().settle;
        let mut rng = seed | 1;
        let mut delayed: Vec<(i64, usize, Record)> = batches()
            .iter()
            .flatten()
            .cloned()
            .enumerate()
            .map(|(i, r)| {
                // xorshift: a cheap deterministic jitter per record.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let jitter = (rng % (settle as u64 / 2)) as i64;
                (r.order_time() + jitter, i, r)
            })
            .collect();
        delayed.sort_by_key(|(arrival, i, _)| (*arrival, *i));
        let inversions = delayed.windows(2).filter(|w| w[0].2.order_time() > w[1].2.order_time()).count();
        prop_assert!(inversions > 0, "the jitter reordered nothing");
        let spans = run(delayed.into_iter().map(|(_, _, r)| r));
        prop_assert_eq!(&spans, in_order());
    }

    /// Some batches are delivered twice, the copy right after the original or
    /// a few batches later (as the apiserver retries: seconds later, well
    /// within the de-duplication TTL): the spans are those of a single delivery.
    #[test]
    fn redelivered_batches_change_nothing(resent in proptest::collection::vec((any::<proptest::sample::Index>(), 0usize..4), 1..8)) {
        let batches = batches();
        let dedup_ttl = CoreConfig::default().dedup_ttl;
        let span_of = |b: &[Record]| b.iter().map(Record::order_time).max().unwrap_or_default();
        let mut copies: Vec<(usize, usize)> = resent
            .into_iter()
            .map(|(which, later)| {
                let i = which.index(batches.len());
                (i, (i + later).min(batches.len() - 1))
            })
            .filter(|&(i, after)| span_of(&batches[after]) - span_of(&batches[i]) < dedup_ttl / 2)
            .collect();
        copies.sort_by_key(|&(_, after)| std::cmp::Reverse(after));
        let mut deliveries: Vec<Vec<Record>> = batches.clone();
        for (i, after) in copies {
            deliveries.insert(after + 1, batches[i].clone());
        }
        let spans = run(deliveries.into_iter().flatten());
        let once = run(batches.iter().flatten().cloned());
        prop_assert_eq!(spans, once);
    }

    /// Whatever the order and the repeats, parent chains end at a root of
    /// their own trace and never loop.
    #[test]
    fn no_span_is_its_own_ancestor(order in Just(()).prop_perturb(|_, mut rng| {
        let mut records: Vec<Record> = batches().iter().flatten().cloned().collect();
        // A full shuffle: records may now arrive long after their settle delay.
        for i in (1..records.len()).rev() {
            records.swap(i, rng.random_range(0..=i));
        }
        records
    })) {
        let spans = run(order);
        let by_id: HashMap<_, _> = spans.iter().map(|s| ((s.trace_id, s.span_id), s)).collect();
        for span in &spans {
            let mut at = span;
            let mut hops = 0;
            while let Some(parent) = at.parent_span_id {
                let Some(next) = by_id.get(&(span.trace_id, parent)) else {
                    return Err(TestCaseError::fail(format!("`{}` has a parent outside its trace", at.name)));
                };
                prop_assert!(next.span_id != span.span_id, "`{}` is its own ancestor", span.name);
                at = next;
                hops += 1;
                prop_assert!(hops <= spans.len(), "a parent cycle through `{}`", span.name);
            }
            prop_assert!(at.root.is_some(), "`{}` chains to a span that is not a root", span.name);
        }
    }
}

/// The span IDs a record's first report gets (an Event may be keyed by its UID
/// or, when an earlier copy had none, by namespace/name).
fn possible_span_ids(record: &Record) -> Vec<ids::SpanId> {
    match record {
        Record::Write(w) => vec![ids::span_id_for_write(&w.audit_id)],
        Record::Event(e) => {
            let mut out = vec![ids::span_id_for_event(&e.key_by_name())];
            out.extend(e.uid.as_deref().map(ids::span_id_for_event));
            out
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// The first `k` batches are replayed as already exported (what recovery
    /// does with acknowledged write-ahead-log entries), the rest delivered
    /// as new: every span that comes out is identical to the uninterrupted
    /// run's (same IDs, same parents, same trace), and every write of the new
    /// batches is there.
    #[test]
    fn replayed_batches_rebuild_state_without_emitting_again(k in any::<proptest::sample::Index>()) {
        let batches = batches();
        let k = k.index(batches.len());
        let mut engine = Engine::new(CoreConfig::default());
        for (i, batch) in batches.iter().enumerate() {
            for record in batch.iter().cloned() {
                if i < k { engine.ingest_replayed(record) } else { engine.ingest(record) }
            }
            engine.advance(None);
        }
        engine.flush();
        let recovered = engine.drain_spans();
        let uninterrupted: HashMap<_, _> = in_order().iter().map(|s| ((s.trace_id, s.span_id), s)).collect();
        for span in &recovered {
            prop_assert_eq!(Some(&span), uninterrupted.get(&(span.trace_id, span.span_id)), "`{}` differs", &span.name);
        }
        let out: HashSet<_> = recovered.iter().map(|s| s.span_id).collect();
        let old_writes: HashSet<_> = batches[..k].iter().flatten().filter_map(|r| match r {
            Record::Write(w) => Some(ids::span_id_for_write(&w.audit_id)),
            Record::Event(_) => None,
        }).collect();
        for record in batches[k..].iter().flatten() {
            if let Record::Write(w) = record {
                let id = ids::span_id_for_write(&w.audit_id);
                prop_assert!(out.contains(&id) || old_writes.contains(&id), "write {} of a new batch is missing", w.audit_id);
            }
        }
        for id in &old_writes {
            prop_assert!(!out.contains(id), "a replayed write was emitted again");
        }
        prop_assert_eq!(engine.stats().replayed_spans_suppressed as usize + recovered.len(), in_order().len());
    }
}

/// After every advance, each record at or before `emitted_through` has its
/// span out; and the bound does move: once time passes the last record by the
/// settle delay and the Event linger, every record is covered without a flush.
#[test]
fn emitted_through_never_runs_ahead_of_the_spans() {
    let mut engine = Engine::new(CoreConfig::default());
    let mut emitted: HashSet<ids::SpanId> = HashSet::new();
    let mut ingested: Vec<Record> = Vec::new();
    let mut covered = 0;
    for batch in batches() {
        for record in batch {
            engine.ingest(record.clone());
            ingested.push(record.clone());
        }
        engine.advance(None);
        emitted.extend(engine.drain_spans().iter().map(|s| s.span_id));
        let through = engine.emitted_through();
        covered = 0;
        for record in &ingested {
            if record.order_time() <= through {
                covered += 1;
                assert!(
                    possible_span_ids(record).iter().any(|id| emitted.contains(id)),
                    "a record at or before emitted_through has no span yet: {record:?}"
                );
            }
        }
    }
    assert!(covered * 2 >= ingested.len(), "only {covered} of {} records covered while streaming", ingested.len());
    let config = CoreConfig::default();
    let last = ingested.iter().map(Record::order_time).max().unwrap();
    engine.advance(Some(last + config.settle + config.event_linger + 1));
    emitted.extend(engine.drain_spans().iter().map(|s| s.span_id));
    assert!(engine.emitted_through() >= last, "time passed every record, yet not all are covered");
    for record in &ingested {
        assert!(possible_span_ids(record).iter().any(|id| emitted.contains(id)), "no span for {record:?}");
    }
    engine.flush();
    assert_eq!(engine.emitted_through(), i64::MAX);
}

/// Closing the lingering Event spans early (what the server does when the
/// write-ahead log needs its entries back) loses nothing: every span of the
/// normal run is still emitted, with the same parent, and the only new spans
/// are repeat spans linked to an original. Right after the close, nothing
/// already processed is held back by an open Event span.
#[test]
fn closing_lingering_events_early_loses_no_span() {
    let mut engine = Engine::new(CoreConfig::default());
    let mut early: Vec<Span> = Vec::new();
    let mut closed = 0;
    for batch in batches() {
        for record in batch {
            engine.ingest(record.clone());
        }
        engine.advance(None);
        let before = engine.emitted_through();
        closed += engine.close_lingering_events();
        assert!(engine.emitted_through() >= before);
        early.extend(engine.drain_spans());
    }
    // Time passes the last record by the settle delay only, not the linger:
    // once the open spans are closed, every record is covered.
    let last = batches().iter().flatten().map(Record::order_time).max().unwrap();
    engine.advance(Some(last + CoreConfig::default().settle + 1));
    engine.close_lingering_events();
    assert!(engine.emitted_through() >= last, "an open Event span still holds back processed records");
    early.extend(engine.drain_spans());
    engine.flush();
    early.extend(engine.drain_spans());
    assert!(closed > 0, "no Event span was open to close: the test proves nothing");
    let normal: HashMap<ids::SpanId, &Span> = in_order().iter().map(|s| (s.span_id, s)).collect();
    let early_by_id: HashMap<ids::SpanId, &Span> = early.iter().map(|s| (s.span_id, s)).collect();
    assert_eq!(early_by_id.len(), early.len(), "a span was emitted twice");
    for (id, span) in &normal {
        let got = early_by_id.get(id).unwrap_or_else(|| panic!("lost: {}", span.name));
        assert_eq!((got.trace_id, got.parent_span_id), (span.trace_id, span.parent_span_id), "{}", span.name);
    }
    // (These recordings hold few repeats; `core_rules` has one that arrives
    // after an early close.)
    let extra = early_by_id.iter().filter(|(id, _)| !normal.contains_key(*id)).map(|(_, s)| s);
    for span in extra {
        assert!(span.name.ends_with("(repeat)"), "a new span that is not a repeat: {}", span.name);
        assert!(span.links.iter().any(|l| normal.contains_key(&l.span_id)), "{} links to no original", span.name);
    }
}
