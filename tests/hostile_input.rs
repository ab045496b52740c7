//! Pathological input: each case gets a clear error and a counter, or is
//! linked sanely, and never panics, loops or takes the rest of its batch down.
//! Built from a real captured audit event, altered one way at a time.

mod common;

use serde_json::{Value, json};

use common::fixture;
use kausal::core::record::Record;
use kausal::core::span::Span;
use kausal::core::{CoreConfig, Engine};
use kausal::decode::{BadReason, DecodeOptions, Decoded, decode};

/// The real `create deployments` audit event of the capture.
fn template() -> Value {
    let body = std::fs::read_to_string(fixture("rollout-basic/audit-batches/batch-000024.json")).unwrap();
    let list: Value = serde_json::from_str(&body).unwrap();
    let items = list["items"].as_array().unwrap();
    let create = items.iter().find(|i| {
        i["verb"] == "create" && i["objectRef"]["resource"] == "deployments" && i["stage"] == "ResponseComplete"
    });
    create.expect("the Deployment create").clone()
}

/// Where a bad item's raw text goes in a batch built with [`batch`].
const PLACEHOLDER: &str = "\"__bad_item__\"";

fn event(n: usize) -> Value {
    let mut e = template();
    e["auditID"] = json!(format!("00000000-0000-0000-0000-{n:012}"));
    e
}

fn batch(items: Vec<Value>) -> String {
    json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "metadata": {}, "items": items}).to_string()
}

/// A batch of three good events around one bad one, decoded.
fn decode_with_bad(bad: Value) -> Decoded {
    decode(batch(vec![event(1), bad, event(2), event(3)]).as_bytes(), &DecodeOptions::default())
}

fn link(records: Vec<Record>) -> Vec<Span> {
    let mut engine = Engine::new(CoreConfig::default());
    records.into_iter().for_each(|r| engine.ingest(r));
    engine.advance(None);
    engine.flush();
    engine.drain_spans()
}

#[test]
fn deep_nesting_neither_overflows_the_stack_nor_costs_the_neighbours() {
    let depth = 100_000;
    let nested: String = "[".repeat(depth) + &"]".repeat(depth);
    // Legal, if absurd, JSON inside an object kausal never reads: skipped
    // without recursion, the write kept.
    let text =
        event(9).to_string().replacen("\"requestObject\":", &format!("\"requestObject\":{nested},\"ignored\":"), 1);
    let body = batch(vec![event(1), json!("__bad_item__"), event(2), event(3)]).replacen(PLACEHOLDER, &text, 1);
    let decoded = decode(body.as_bytes(), &DecodeOptions::default());
    assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
    assert_eq!(decoded.records.len(), 4);

    // The same nesting where a record's shape is expected: one bad record.
    let mut in_user = event(9).to_string();
    in_user = in_user.replacen("\"user\":", &format!("\"user\":{nested},\"ignored\":"), 1);
    let body = batch(vec![event(1), json!("__bad_item__"), event(2)]).replacen(PLACEHOLDER, &in_user, 1);
    let decoded = decode(body.as_bytes(), &DecodeOptions::default());
    assert_eq!(decoded.records.len(), 2, "the neighbours are kept");
    assert_eq!(decoded.bad.len(), 1);
    assert_eq!(decoded.bad[0].reason, BadReason::InvalidAuditEvent);

    // Wrappers (lists of lists) nested past any real format's depth.
    let decoded = decode(nested.as_bytes(), &DecodeOptions::default());
    assert!(decoded.records.is_empty());
    assert_eq!(decoded.bad.len(), 1);
    assert_eq!(decoded.bad[0].reason, BadReason::UnknownShape);
    assert!(decoded.bad[0].detail.contains("nested deeper"), "{}", decoded.bad[0].detail);
}

#[test]
fn a_fifty_megabyte_object_is_skipped_not_copied() {
    let mut big = event(9);
    big["responseObject"]["metadata"]["annotations"] = json!({"blob": "x".repeat(50 << 20)});
    let decoded = decode_with_bad(big);
    assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
    assert_eq!(decoded.records.len(), 4, "a large object is legal: its write is kept");
    assert_eq!(link(decoded.records).len(), 4);
}

#[test]
fn duplicate_keys_are_one_bad_record() {
    let text = event(9).to_string().replacen("{", "{\"auditID\":\"00000000-0000-0000-0000-000000000099\",", 1);
    let body = batch(vec![event(1), json!("__bad_item__"), event(2)]).replacen(PLACEHOLDER, &text, 1);
    let decoded = decode(body.as_bytes(), &DecodeOptions::default());
    assert_eq!(decoded.records.len(), 2);
    assert_eq!(decoded.bad.len(), 1);
    assert!(decoded.bad[0].detail.contains("duplicate field"), "{}", decoded.bad[0].detail);
}

#[test]
fn timestamps_far_in_the_future_or_past_neither_panic_nor_stall_the_rest() {
    let at = |n: usize, time: &str, uid: &str| {
        let mut e = event(n);
        e["stageTimestamp"] = json!(time);
        e["requestReceivedTimestamp"] = json!(time);
        e["objectRef"]["name"] = json!(format!("at-{n}"));
        e["responseObject"]["metadata"]["uid"] = json!(uid);
        e
    };
    let body = batch(vec![
        event(1),
        at(7, "9000-01-01T00:00:00Z", "00000000-0000-0000-0000-0000000000f1"),
        at(8, "0001-01-01T00:00:00Z", "00000000-0000-0000-0000-0000000000f2"),
        // Beyond what a timestamp can be: a clear error, not a guess.
        at(9, "99999-01-01T00:00:00Z", "00000000-0000-0000-0000-0000000000f3"),
    ]);
    let decoded = decode(body.as_bytes(), &DecodeOptions::default());
    assert_eq!(decoded.records.len(), 3, "{:?}", decoded.bad);
    assert_eq!(decoded.bad.len(), 1);
    assert_eq!(decoded.bad[0].reason, BadReason::InvalidTimestamp);
    assert!(decoded.bad[0].detail.contains("000000000009"), "the record is named: {}", decoded.bad[0].detail);
    let mut live = decoded.clone();
    let spans = link(decoded.records);
    assert_eq!(spans.len(), 3, "each write is a span, whatever its time");

    // A live source also refuses what is far ahead of its clock, so that one
    // record cannot move its cluster's event-time clock into the year 9000.
    let now = kausal::core::time::parse_rfc3339_micros("2026-11-30T00:00:00Z").unwrap();
    live.reject_records_after(now, std::time::Duration::from_secs(3600));
    assert_eq!(live.records.len(), 2);
    assert_eq!(live.bad.len(), 2);
    assert!(
        live.bad[1].detail.contains("9000-01-01") && live.bad[1].detail.contains("ahead of kausal's clock"),
        "{}",
        live.bad[1].detail
    );
    assert_eq!(live.stats.bad_total(), 2);
}

#[test]
fn a_uid_reused_across_kinds_and_an_owner_cycle_link_without_loops() {
    let uid_a = "00000000-0000-0000-0000-0000000000a1";
    let uid_b = "00000000-0000-0000-0000-0000000000b1";
    let controller = "system:serviceaccount:kube-system:replicaset-controller";
    let write = |n: usize, user: &str, resource: &str, name: &str, uid: &str, owner: Option<(&str, &str)>| {
        let mut e = event(n);
        e["user"]["username"] = json!(user);
        e["objectRef"]["resource"] = json!(resource);
        e["objectRef"]["name"] = json!(name);
        e["responseObject"]["metadata"]["name"] = json!(name);
        e["responseObject"]["metadata"]["uid"] = json!(uid);
        e["responseObject"]["metadata"]["ownerReferences"] = match owner {
            Some((owner_name, owner_uid)) => {
                json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": owner_name, "uid": owner_uid, "controller": true}])
            }
            None => json!(null),
        };
        e["stageTimestamp"] = json!(format!("2026-11-30T00:00:{n:02}.000000Z"));
        e
    };
    let body = batch(vec![
        // A person creates A; a controller writes B owned by A and A owned by B (a cycle).
        write(1, "alice", "replicasets", "a", uid_a, None),
        write(2, controller, "replicasets", "b", uid_b, Some(("a", uid_a))),
        write(3, controller, "replicasets", "a", uid_a, Some(("b", uid_b))),
        write(4, controller, "replicasets", "b", uid_b, Some(("a", uid_a))),
        // The same UID reused by an object of another kind.
        write(5, controller, "services", "a", uid_a, None),
        write(6, "bob", "configmaps", "b", uid_b, None),
    ]);
    let decoded = decode(body.as_bytes(), &DecodeOptions::default());
    assert_eq!(decoded.records.len(), 6, "{:?}", decoded.bad);
    let spans = link(decoded.records);
    assert_eq!(spans.len(), 6);
    let by_id: std::collections::HashMap<_, _> = spans.iter().map(|s| (s.span_id, s)).collect();
    for span in &spans {
        let (mut at, mut hops) = (span, 0);
        while let Some(parent) = at.parent_span_id {
            at = by_id[&parent];
            hops += 1;
            assert!(hops <= spans.len(), "a parent cycle through `{}`", span.name);
        }
        assert!(at.root.is_some());
    }
}

#[test]
fn invalid_utf8_costs_only_the_record_that_holds_it() {
    // A webhook body is one line: the bad bytes must not take the batch down.
    let mut bad = event(9);
    bad["user"]["username"] = json!("mallory-__bytes__");
    let body = batch(vec![event(1), bad, event(2)]);
    let body = body.replacen("__bytes__", "\u{1}", 1).into_bytes();
    let at = body.iter().position(|&b| b == 1).unwrap();
    let mut body = body;
    body.splice(at..at + 1, [0xff, 0xfe]);
    let decoded = decode(&body, &DecodeOptions::default());
    assert_eq!(decoded.records.len(), 2, "{:?}", decoded.bad);
    assert_eq!(decoded.bad.len(), 1);
    assert_eq!(decoded.bad[0].reason, BadReason::InvalidUtf8);
    assert!(
        decoded.records.iter().all(|r| matches!(r, Record::Write(w) if !w.user.contains('\u{FFFD}'))),
        "nothing replaced silently"
    );

    // A log file: the bad line is rejected with its line number, the others kept.
    let mut file = Vec::new();
    file.extend(event(1).to_string().into_bytes());
    file.extend(b"\n{\"auditID\": \"x\xff\"}\n");
    file.extend(event(2).to_string().into_bytes());
    file.push(b'\n');
    let decoded = decode(&file, &DecodeOptions::default());
    assert_eq!(decoded.records.len(), 2, "{:?}", decoded.bad);
    assert_eq!(decoded.bad.len(), 1);
    assert_eq!((decoded.bad[0].reason, decoded.bad[0].line), (BadReason::InvalidUtf8, 2));
}
