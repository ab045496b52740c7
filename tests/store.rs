//! The embedded trace store on a real SQLite file: what goes in comes out,
//! searches find exactly what matches, and the bounds drop the oldest first.

use std::collections::BTreeMap;

use kausal::store::stored_span::StoredLink;
use kausal::store::{Store, StoreConfig, StoredSpan, StoredValue, TraceQuery};

const HOUR: i64 = 3_600_000_000;

fn span(
    trace: u8,
    id: u8,
    parent: Option<u8>,
    start_us: i64,
    service: &str,
    attrs: &[(&str, StoredValue)],
) -> StoredSpan {
    StoredSpan {
        trace_id: format!("{trace:032x}"),
        span_id: format!("{id:016x}"),
        parent_span_id: parent.map(|p| format!("{p:016x}")),
        name: format!("op-{id}"),
        service: service.into(),
        cluster: "prod".into(),
        start_us,
        end_us: start_us + 1_000 * id as i64,
        attributes: attrs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect::<BTreeMap<_, _>>(),
        links: Vec::new(),
        events: Vec::new(),
        error: None,
    }
}

fn s(v: &str) -> StoredValue {
    StoredValue::Str(v.into())
}

fn file_store(dir: &tempfile::TempDir) -> Store {
    Store::open(StoreConfig { path: Some(dir.path().join("traces.sqlite")), ..Default::default() }).unwrap()
}

#[test]
fn a_span_read_back_from_the_file_is_the_span_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut written = span(1, 1, None, HOUR, "admin", &[("k8s.verb", s("create")), ("kausal.root", s("intent"))]);
    written.links.push(StoredLink {
        trace_id: format!("{:032x}", 9),
        span_id: format!("{:016x}", 9),
        reason: "runner-up".into(),
    });
    written.error = Some("Conflict".into());
    let child =
        span(1, 2, Some(1), HOUR + 5, "deployment-controller", &[("k8s.object.generation", StoredValue::Int(3))]);
    {
        let store = file_store(&dir);
        store.insert(&[written.clone(), child.clone()]).unwrap();
    }
    // A second process opening the same file sees both.
    let store = file_store(&dir);
    assert_eq!(store.trace(&written.trace_id).unwrap(), vec![written.clone(), child.clone()]);
    assert_eq!(store.span(&child.trace_id, &child.span_id).unwrap(), Some(child));
    assert!(store.trace(&format!("{:032x}", 7)).unwrap().is_empty());
}

#[test]
fn a_span_stored_twice_is_one_span_with_the_later_content() {
    let store = Store::open(StoreConfig::default()).unwrap();
    let first = span(1, 1, None, HOUR, "admin", &[]);
    let mut again = first.clone();
    again.name = "renamed".into();
    store.insert(&[first]).unwrap();
    store.insert(&[again.clone()]).unwrap();
    assert_eq!(store.trace(&again.trace_id).unwrap(), vec![again]);
    assert_eq!(store.size().unwrap().0, 1);
}

#[test]
fn searches_match_service_tags_time_and_duration_and_return_newest_first() {
    let store = Store::open(StoreConfig::default()).unwrap();
    store
        .insert(&[
            span(
                1,
                1,
                None,
                HOUR,
                "admin",
                &[("k8s.namespace.name", s("default")), ("k8s.event.reason", s("Scheduled"))],
            ),
            span(2, 2, None, 2 * HOUR, "admin", &[("k8s.namespace.name", s("kube-system"))]),
            span(
                3,
                3,
                None,
                3 * HOUR,
                "ci",
                &[("k8s.namespace.name", s("default")), ("kausal.trigger", StoredValue::Bool(true))],
            ),
        ])
        .unwrap();
    assert_eq!(store.services().unwrap(), ["admin", "ci"], "each actor once, in name order");
    let find = |q: TraceQuery| store.find_traces(&TraceQuery { limit: 10, ..q }).unwrap();
    let id = |t: u8| format!("{t:032x}");
    assert_eq!(find(TraceQuery::default()), [id(3), id(2), id(1)]);
    assert_eq!(find(TraceQuery { service: Some("admin".into()), ..Default::default() }), [id(2), id(1)]);
    let tag = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
    assert_eq!(find(TraceQuery { tags: tag("k8s.namespace.name", "default"), ..Default::default() }), [id(3), id(1)]);
    // A key without a column of its own is read from the span's JSON.
    assert_eq!(find(TraceQuery { tags: tag("k8s.event.reason", "Scheduled"), ..Default::default() }), [id(1)]);
    assert_eq!(find(TraceQuery { tags: tag("kausal.trigger", "true"), ..Default::default() }), [id(3)]);
    assert_eq!(
        find(TraceQuery { start_us: Some(HOUR + 1), end_us: Some(3 * HOUR - 1), ..Default::default() }),
        [id(2)]
    );
    // Durations are 1 ms × the span number.
    assert_eq!(
        find(TraceQuery { min_duration_us: Some(2_000), max_duration_us: Some(2_000), ..Default::default() }),
        [id(2)]
    );
    assert_eq!(store.find_traces(&TraceQuery { limit: 1, ..Default::default() }).unwrap(), [id(3)]);
    let bad = store.find_traces(&TraceQuery { tags: tag("a'b", "x"), limit: 1, ..Default::default() });
    assert!(bad.is_err(), "a tag key with a quote is refused, not spliced into SQL");
}

#[test]
fn retention_drops_spans_older_than_it_and_keeps_the_rest() {
    let store = Store::open(StoreConfig { retention_us: Some(24 * HOUR), ..Default::default() }).unwrap();
    store.insert(&[span(1, 1, None, HOUR, "a", &[]), span(2, 2, None, 30 * HOUR, "a", &[])]).unwrap();
    let pruned = store.prune(26 * HOUR).unwrap();
    assert_eq!(pruned.expired, 1);
    assert!(store.trace(&format!("{:032x}", 1)).unwrap().is_empty());
    assert_eq!(store.trace(&format!("{:032x}", 2)).unwrap().len(), 1);
}

#[test]
fn the_size_bound_drops_the_oldest_spans_until_the_file_fits() {
    let dir = tempfile::tempdir().unwrap();
    let max = 512 * 1024;
    let store = Store::open(StoreConfig {
        path: Some(dir.path().join("traces.sqlite")),
        max_bytes: Some(max),
        ..Default::default()
    })
    .unwrap();
    let padding = s(&"x".repeat(400));
    let mut n = 0u32;
    for batch in 0..20 {
        let spans: Vec<StoredSpan> = (0..200)
            .map(|i| {
                n += 1;
                let mut sp = span(1, 1, None, (batch * 200 + i) as i64, "a", &[("pad", padding.clone())]);
                sp.trace_id = format!("{n:032x}");
                sp
            })
            .collect();
        store.insert(&spans).unwrap();
    }
    // Each insert that went over the bound dropped the oldest spans itself.
    let (after, bytes) = store.size().unwrap();
    assert!(after < u64::from(n), "nothing dropped: {after} of {n} spans kept");
    assert_eq!(store.prune(0).unwrap().over_size, 0, "the inserts left nothing over the bound");
    assert!(bytes <= max, "{bytes} bytes over the bound of {max}");
    let file = std::fs::metadata(dir.path().join("traces.sqlite")).unwrap().len();
    assert!(file <= max + 64 * 1024, "the file keeps {file} bytes after pruning to {max}");
    // The newest span survived; the oldest did not.
    assert_eq!(store.trace(&format!("{n:032x}")).unwrap().len(), 1);
    assert!(store.trace(&format!("{:032x}", 1)).unwrap().is_empty());
}

#[test]
fn a_store_of_another_layout_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("traces.sqlite");
    drop(file_store(&dir));
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE meta SET value = 999 WHERE key = 'version'", []).unwrap();
    drop(conn);
    let err = Store::open(StoreConfig { path: Some(path.clone()), ..Default::default() }).err().expect("refused");
    let text = err.to_string();
    assert!(text.contains("999") && text.contains(&path.display().to_string()), "{text}");
}
