//! Determinism (byte-identical OTLP/JSON across replays and input orders) and
//! robustness on the shared corpus of real audit logs and Events.

mod common;

use std::path::Path;
use std::process::Command;

use common::{fixture, inputs};
use kausal::core::CoreConfig;
use kausal::decode::{BadReason, DecodeOptions};
use kausal::replay::{self, OutputFormat};
use kausal::sources::files;

fn otlp_json(paths_in_order: Vec<files::Input>) -> Vec<u8> {
    let result = replay::run(&paths_in_order, DecodeOptions::default(), CoreConfig::default(), false);
    let mut out = Vec::new();
    replay::write_output(&mut out, &result.spans, OutputFormat::OtlpJson, false).unwrap();
    out
}

#[test]
fn replaying_twice_gives_byte_identical_otlp_json() {
    let paths = [fixture("rollout-basic/audit-batches"), fixture("rollout-basic/events")];
    let first = otlp_json(inputs(&paths));
    let second = otlp_json(inputs(&paths));
    assert!(!first.is_empty());
    assert_eq!(first, second);
}

#[test]
fn input_order_does_not_change_the_output() {
    let paths = [fixture("rollout-basic/audit-batches"), fixture("rollout-basic/events")];
    let forward = inputs(&paths);
    let mut reversed = forward.clone();
    reversed.reverse();
    assert_eq!(otlp_json(forward), otlp_json(reversed), "batches resent or reordered give the same traces");
}

#[test]
fn a_resent_batch_produces_no_duplicates() {
    let mut twice = inputs(&[fixture("rollout-basic/audit-batches")]);
    twice.extend(inputs(&[fixture("rollout-basic/audit-batches/batch-000004.json")]));
    let once = otlp_json(inputs(&[fixture("rollout-basic/audit-batches")]));
    assert_eq!(otlp_json(twice), once);
}

#[test]
fn otlp_json_lines_are_standard_otlp_json() {
    let out = otlp_json(inputs(&[fixture("rollout-basic/audit-batches")]));
    let text = String::from_utf8(out).unwrap();
    let mut spans = 0;
    for line in text.lines() {
        let request: serde_json::Value = serde_json::from_str(line).unwrap();
        for rs in request["resourceSpans"].as_array().unwrap() {
            let service = rs["resource"]["attributes"][0].clone();
            assert_eq!(service["key"], "service.name");
            for ss in rs["scopeSpans"].as_array().unwrap() {
                assert_eq!(ss["scope"]["name"], "kausal");
                for span in ss["spans"].as_array().unwrap() {
                    spans += 1;
                    assert_eq!(span["traceId"].as_str().unwrap().len(), 32, "hex trace IDs");
                    assert_eq!(span["spanId"].as_str().unwrap().len(), 16, "hex span IDs");
                    assert!(span["startTimeUnixNano"].is_string(), "64-bit integers as strings");
                    for attr in span["attributes"].as_array().unwrap() {
                        let v = &attr["value"];
                        assert!(
                            v.get("stringValue").is_some()
                                || v.get("intValue").is_some()
                                || v.get("boolValue").is_some()
                        );
                        if let Some(i) = v.get("intValue") {
                            assert!(i.is_string(), "intValue is a string in OTLP/JSON");
                        }
                    }
                }
            }
        }
    }
    assert_eq!(spans, 373);
}

/// Walks `../shared/corpus` (skipped when absent): every file replays without a
/// panic, and the known-malformed Falco record is reported, not dropped.
#[test]
fn every_corpus_file_replays_and_the_malformed_record_is_reported() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if !corpus.is_dir() {
        eprintln!("skipped: {} is absent", corpus.display());
        return;
    }
    let all = files::expand_paths(&[corpus.display().to_string()]).unwrap();
    assert!(all.len() > 300, "the corpus has about 360 files, found {}", all.len());
    let mut malformed_seen = false;
    for input in &all {
        let result = replay::run(std::slice::from_ref(input), DecodeOptions::default(), CoreConfig::default(), false);
        let name = input.display();
        if name.ends_with("falco-k8s_audit/fal_01_003.json") {
            assert_eq!(result.bad.len(), 1, "{name}");
            assert_eq!(result.bad[0].record.reason, BadReason::UnknownShape);
            assert_eq!(result.bad[0].record.line, 1);
            malformed_seen = true;
        }
        let mut out = Vec::new();
        replay::write_output(&mut out, &result.spans, OutputFormat::Tree, true).unwrap();
        replay::write_output(&mut out, &result.spans, OutputFormat::OtlpJson, true).unwrap();
    }
    assert!(malformed_seen, "fal_01_003.json is in the corpus");
}

#[test]
fn the_cli_prints_trees_and_a_summary_naming_bad_records() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("mixed.jsonl");
    let good = std::fs::read_to_string(fixture("rollout-basic/audit-batches/batch-000023.json")).unwrap();
    let compact: serde_json::Value = serde_json::from_str(&good).unwrap();
    std::fs::write(&bad, format!("{}\n{{\"kind\": 0}}\nnot json at all\n", compact)).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_kausal"))
        .args(["replay", "--all"])
        .arg(fixture("rollout-basic/audit-batches"))
        .arg(&bad)
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stdout.contains("intent by admin"));
    assert!(stdout.contains("└─ deployment-controller  create replicasets default/web-5d894c86f5"));
    assert!(stderr.contains("bad records: 2"), "{stderr}");
    assert!(stderr.contains("mixed.jsonl:2: unknown_shape"), "{stderr}");
    assert!(stderr.contains("mixed.jsonl:3: invalid_json"), "{stderr}");
}

/// Webhook bodies take a one-pass fast path; anything else (here the same
/// body inside a JSON array, or one bad item) takes the general path, which
/// isolates items. Both must produce the same records and counts.
#[test]
fn the_one_pass_webhook_path_decodes_exactly_like_the_general_path() {
    use kausal::decode::decode;
    let mut records = 0;
    for entry in std::fs::read_dir(fixture("rollout-basic/audit-batches")).unwrap() {
        let body = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let fast = decode(body.as_bytes(), &DecodeOptions::default());
        let general = decode(format!("[{body}]").as_bytes(), &DecodeOptions::default());
        assert_eq!(format!("{:?}", fast.records), format!("{:?}", general.records));
        assert_eq!(fast.stats, general.stats);
        assert!(fast.bad.is_empty() && general.bad.is_empty());
        records += fast.records.len();
    }
    assert!(records > 300, "{records} records from the capture");
    let body = std::fs::read_to_string(fixture("rollout-basic/audit-batches/batch-000023.json")).unwrap();
    let fast = decode(body.as_bytes(), &DecodeOptions::default());

    // One item with a malformed auditID: the rest of the batch is kept, the bad one reported.
    let mut list: serde_json::Value = serde_json::from_str(&body).unwrap();
    let items = list["items"].as_array_mut().unwrap();
    let total = items.len() as u64;
    let spoiled = (0..items.len())
        .find(|&i| decode(items[i].to_string().as_bytes(), &DecodeOptions::default()).records.len() == 1)
        .expect("an item that yields a record");
    items[spoiled]["auditID"] = serde_json::json!(5);
    let mixed = decode(list.to_string().as_bytes(), &DecodeOptions::default());
    assert_eq!(mixed.bad.len(), 1);
    assert_eq!(mixed.bad[0].reason, BadReason::InvalidAuditEvent);
    assert_eq!(mixed.stats.audit_events, total);
    assert_eq!(mixed.records.len(), fast.records.len() - 1, "only the spoiled item is lost");
}
