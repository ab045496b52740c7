//! Every parent right: kausal scored against the expected parents of every
//! mutating record of a recording, written down from the records' content
//! and ../shared/CAUSALITY.md (never from kausal's output).
//!
//! Each recording under `tests/fixtures/` may hold an `expected-parents.tsv`:
//!
//! ```text
//! # comment
//! <auditID><TAB><expected><TAB><reason from the content>[<TAB>known-gap: <what kausal does instead>]
//! ```
//!
//! `<expected>` is `root` (the record starts a trace of its own), the auditID
//! of the parent record, or several auditIDs joined by `|` where the cause is
//! genuinely ambiguous (any of them is right). Events are listed by the
//! auditID of their `create events` record. A line marked `known-gap` is a
//! record kausal is known to get wrong: it is counted and shown in the table,
//! and the test fails when it turns right (so the mark is removed) as well as
//! when any unmarked record is wrong.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::{fixture, replay_paths};
use kausal::core::Span;
use kausal::core::ids::{self, SpanId, TraceId};
use kausal::core::span::SpanKind;

/// One acceptable parent: the record starts its own trace, or hangs under another.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Parent {
    Root,
    Record(String),
}

#[derive(Debug)]
struct Expected(Vec<Parent>);

impl std::fmt::Display for Expected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<&str> = self
            .0
            .iter()
            .map(|p| match p {
                Parent::Root => "root",
                Parent::Record(r) => r.as_str(),
            })
            .collect();
        f.write_str(&parts.join("|"))
    }
}

#[derive(Debug)]
struct Expectation {
    record: String,
    expected: Expected,
    reason: String,
    known_gap: Option<String>,
    line: usize,
}

fn parse(path: &Path) -> Vec<Expectation> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        assert!(fields.len() >= 3, "{}:{}: want `record<TAB>expected<TAB>reason`", path.display(), i + 1);
        let expected = Expected(
            fields[1]
                .split('|')
                .map(|p| match p.trim() {
                    "root" => Parent::Root,
                    record => Parent::Record(record.to_owned()),
                })
                .collect(),
        );
        let known_gap = fields.get(3).map(|g| {
            g.strip_prefix("known-gap:")
                .unwrap_or_else(|| panic!("{}:{}: a fourth field is `known-gap: ...`", path.display(), i + 1))
                .trim()
                .to_owned()
        });
        assert!(!fields[2].trim().is_empty(), "{}:{}: every expectation has a reason", path.display(), i + 1);
        out.push(Expectation {
            record: fields[0].trim().to_owned(),
            expected,
            reason: fields[2].trim().to_owned(),
            known_gap,
            line: i + 1,
        });
    }
    out
}

/// What a replay produced, indexed by the audit record each span came from.
struct Replayed<'a> {
    by_record: HashMap<&'a str, &'a Span>,
    record_of: HashMap<SpanId, &'a str>,
}

impl<'a> Replayed<'a> {
    fn new(spans: &'a [Span]) -> Replayed<'a> {
        let mut by_record = HashMap::new();
        let mut record_of = HashMap::new();
        for span in spans {
            if let Some(id) = span.attr_str("k8s.audit.id") {
                // A repeat span carries its own record's ID; the first span of a record wins.
                by_record.entry(id).or_insert(span);
                record_of.entry(span.span_id).or_insert(id);
            }
        }
        Replayed { by_record, record_of }
    }
}

#[derive(Default)]
struct Score {
    records: usize,
    right: usize,
    wrong_trace: usize,
    missing: usize,
    known_gaps: usize,
    /// Records after the file's first one that it does not list.
    unlisted: usize,
    failures: Vec<String>,
}

fn score(recording: &str) -> Option<Score> {
    score_dir(recording, &fixture(recording))
}

/// Scores the recording in `dir` against its `expected-parents.tsv`.
fn score_dir(recording: &str, dir: &Path) -> Option<Score> {
    let file = dir.join("expected-parents.tsv");
    if !file.exists() {
        return None;
    }
    let expectations = parse(&file);
    let result = replay_paths(&[dir.to_path_buf()]);
    let replayed = Replayed::new(&result.spans);
    // The first alternative decides the trace of the records below a record.
    let first_parent: HashMap<&str, &Parent> =
        expectations.iter().map(|e| (e.record.as_str(), &e.expected.0[0])).collect();
    // The trace a record belongs in when its parent is `parent`: the root's
    // at the top of the expected chain. A chain that leaves the file (a cause
    // recorded before the first intent) ends at that record's own trace, as
    // kausal emitted it.
    // A root write's trace is named by its audit record; an Event that
    // nothing caused starts a trace named by the Event itself.
    let root_trace = |record: &str| -> Option<TraceId> {
        match replayed.by_record.get(record) {
            Some(span) if span.kind == SpanKind::Event && span.parent_span_id.is_none() => Some(span.trace_id),
            _ => Some(ids::trace_id_for_write(record)),
        }
    };
    let expected_trace = |record: &str, parent: &Parent| -> Option<TraceId> {
        let mut at = match parent {
            Parent::Root => return root_trace(record),
            Parent::Record(p) => p.as_str(),
        };
        for _ in 0..first_parent.len() + 1 {
            match first_parent.get(at) {
                Some(Parent::Record(p)) => at = p,
                Some(Parent::Root) => return root_trace(at),
                None => return replayed.by_record.get(at).map(|s| s.trace_id),
            }
        }
        panic!("{recording}: the expected parents of {record} form a cycle");
    };
    let mut s = Score::default();
    // The file must list every record from its first one on: a record left
    // out would be a parent nobody checked.
    let listed: std::collections::HashSet<&str> = expectations.iter().map(|e| e.record.as_str()).collect();
    let first_start =
        expectations.iter().filter_map(|e| replayed.by_record.get(e.record.as_str())).map(|s| s.start).min();
    let mut unlisted: Vec<(&&Span, &&str)> = replayed
        .by_record
        .iter()
        .filter(|(record, span)| !listed.contains(**record) && first_start.is_some_and(|t| span.start > t))
        .map(|(record, span)| (span, record))
        .collect();
    unlisted.sort_by_key(|(span, _)| span.start);
    for (span, record) in unlisted {
        s.unlisted += 1;
        s.failures.push(format!("{recording}: `{}` ({record}) is not in expected-parents.tsv", span.name));
    }
    for e in &expectations {
        s.records += 1;
        let at = format!("{recording}/expected-parents.tsv:{}", e.line);
        let Some(span) = replayed.by_record.get(e.record.as_str()) else {
            s.missing += 1;
            s.failures.push(format!("{at}: {} has no span ({})", e.record, e.reason));
            continue;
        };
        let actual =
            span.parent_span_id.map(|p| replayed.record_of.get(&p).copied().unwrap_or("<a span of no record>"));
        let actual_parent = actual.map_or(Parent::Root, |a| Parent::Record(a.to_owned()));
        let matched = e.expected.0.iter().find(|p| **p == actual_parent);
        // The trace is judged against the alternative kausal chose, or the first one.
        let trace_right = expected_trace(&e.record, matched.unwrap_or(&e.expected.0[0])) == Some(span.trace_id);
        let right = matched.is_some() && trace_right;
        if right {
            s.right += 1;
        } else if !trace_right {
            s.wrong_trace += 1;
        }
        let described = || {
            format!(
                "{at}: `{}` ({}): expected {} ({}), got {}{}",
                span.name,
                e.record,
                e.expected,
                e.reason,
                actual.unwrap_or("root"),
                if trace_right { "" } else { ", in the wrong trace" }
            )
        };
        match (&e.known_gap, right) {
            (Some(_), false) => s.known_gaps += 1,
            (Some(gap), true) => {
                s.failures.push(format!("{at}: {} is right now: remove its known-gap mark ({gap})", e.record))
            }
            (None, false) => s.failures.push(described()),
            (None, true) => {}
        }
    }
    Some(s)
}

/// The recordings that have ground truth, in the order of the table.
const RECORDINGS: &[&str] = &[
    "rollout-basic",
    "e2e/deployment",
    "e2e/statefulset",
    "e2e/daemonset",
    "e2e/batch",
    "e2e/service",
    "e2e/rollout-undo",
    "e2e/fresh-cluster",
    "e2e/node-registering",
    "e2e/service-no-ip",
    "e2e/two-writers",
    "e2e/kubelet-ready",
    "e2e/kubelet-scale-down",
    "e2e/kubelet-node",
    "e2e/kubelet-readiness-flip",
    "e2e/kubelet-crash-loop",
    "e2e/kubelet-liveness",
    "e2e/kubelet-oom",
    "e2e/kubelet-missing-image",
];

#[test]
fn every_parent_is_right_on_the_recordings_with_ground_truth() {
    let mut table = String::from(
        "| recording | records | parents right | wrong trace | missing | known gaps | not listed |\n|---|---|---|---|---|---|---|\n",
    );
    let mut failures = Vec::new();
    let mut scored = 0;
    for recording in RECORDINGS {
        let Some(s) = score(recording) else {
            table.push_str(&format!("| {recording} | no ground truth yet | | | | | |\n"));
            continue;
        };
        scored += 1;
        let pct = 100.0 * s.right as f64 / s.records.max(1) as f64;
        table.push_str(&format!(
            "| {recording} | {} | {} ({pct:.0} %) | {} | {} | {} | {} |\n",
            s.records, s.right, s.wrong_trace, s.missing, s.known_gaps, s.unlisted
        ));
        failures.extend(s.failures);
    }
    println!("{table}");
    assert!(scored > 0, "no recording has an expected-parents.tsv");
    assert!(failures.is_empty(), "{table}\n{}", failures.join("\n"));
}

/// The audit policy question for the kubelet's `pods/status` writes, the
/// largest share of a real cluster's audit volume: what kausal loses when
/// they are logged at `Request` (the kubelet's patch: the status it reports)
/// instead of `RequestResponse` (also the whole pod it returns). Every real
/// kubelet recording (start-up, readiness flips, a scale-down's termination,
/// a crash loop's restarts, a liveness restart, an OOM kill, a missing
/// image), with each of those records cut down to what `Request` logs, must
/// score as well as the full one. The shipped policy
/// (audit-policy/policy.yaml) logs them at `Request` on this figure.
#[test]
fn the_kubelets_status_writes_at_request_level_lose_no_parent() {
    let recordings: Vec<&str> = RECORDINGS.iter().copied().filter(|r| r.starts_with("e2e/kubelet-")).collect();
    let (mut cut_total, mut right_full, mut right_cut, mut records) = (0, 0, 0, 0);
    for recording in &recordings {
        let full = score(recording).expect("the kubelet recordings have ground truth");
        let dir = tempfile::tempdir().unwrap();
        let batches = dir.path().join("audit-batches");
        std::fs::create_dir(&batches).unwrap();
        let mut cut = 0;
        for entry in std::fs::read_dir(fixture(recording).join("audit-batches")).unwrap() {
            let path = entry.unwrap().path();
            let mut list: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            for item in list["items"].as_array_mut().unwrap() {
                let by_kubelet = item["user"]["username"].as_str().is_some_and(|u| u.starts_with("system:node:"));
                let pod_status =
                    item["objectRef"]["resource"] == "pods" && item["objectRef"]["subresource"] == "status";
                if by_kubelet && pod_status && item["level"] == "RequestResponse" {
                    item.as_object_mut().unwrap().remove("responseObject");
                    item["level"] = "Request".into();
                    cut += 1;
                }
            }
            std::fs::write(batches.join(path.file_name().unwrap()), serde_json::to_vec(&list).unwrap()).unwrap();
        }
        std::fs::copy(fixture(recording).join("expected-parents.tsv"), dir.path().join("expected-parents.tsv"))
            .unwrap();
        let at_request = score_dir(recording, dir.path()).unwrap();
        if cut == 0 {
            // Recorded with the shipped policy: its kubelet status writes are at
            // Request already, and its ground truth scores them as they are.
            println!(
                "policy figure: {recording}: recorded at Request (the shipped policy): {} of {} parents right",
                full.right, full.records
            );
        } else {
            println!(
                "policy figure: {recording}: kubelet pods/status at Request ({cut} records cut): {} of {} parents right, against {} at RequestResponse",
                at_request.right, at_request.records, full.right
            );
        }
        assert_eq!(
            (at_request.right, at_request.wrong_trace),
            (full.right, full.wrong_trace),
            "{recording}:\n{}",
            at_request.failures.join("\n")
        );
        cut_total += cut;
        right_full += full.right;
        right_cut += at_request.right;
        records += full.records;
    }
    println!(
        "policy figure, all {} kubelet recordings: {cut_total} status writes cut to Request: {right_cut} of {records} parents right, against {right_full} as recorded",
        recordings.len()
    );
    assert!(cut_total > 0, "no kubelet status write at RequestResponse left to cut: the comparison proves nothing");
}
