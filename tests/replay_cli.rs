//! `kausal replay` as a person runs it: the real binary, its exit status, its
//! tree and its summary.

mod common;

use std::process::{Command, Output};

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kausal")).arg("replay").args(args).output().expect("run kausal replay")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn an_input_with_nothing_readable_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\"items\": [ this is not JSON\n").unwrap();
    let out = replay(&[path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("nothing could be read"), "{}", text(&out.stderr));
}

#[test]
fn an_events_only_input_says_what_it_did_with_them() {
    let out = replay(&["tests/fixtures/e2e/watch/events/watch.jsonl"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("this input holds only Events, no audit records"), "{stderr}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Events with no known cause not shown; --all shows them"), "{stdout}");

    let all = text(&replay(&["--all", "tests/fixtures/e2e/watch/events/watch.jsonl"]).stdout);
    assert!(all.contains("event from"), "--all prints the lone Events: {all}");
}

#[test]
fn intents_come_first_and_event_lines_name_their_object() {
    let out = replay(&["tests/fixtures/rollout-basic"]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    let first = stdout.lines().next().unwrap_or_default();
    assert!(first.contains("intent by"), "the first trace is a person's: {first}");
    let headers =
        |out: &str| -> Vec<String> { out.lines().filter(|l| l.starts_with("trace ")).map(String::from).collect() };
    assert!(
        headers(&stdout).iter().all(|h| !h.contains("started by controller")),
        "background traces are hidden by default"
    );
    assert!(stdout.contains("traces started by controllers and"), "and counted");
    assert!(
        stdout
            .contains("event SuccessfulCreate ReplicaSet default/web-5d894c86f5 \"Created pod: web-5d894c86f5-2znrl\""),
        "{stdout}"
    );
    assert!(stdout.contains("event RegisteredNode Node fake-node-1 "), "a cluster-scoped object has no namespace");

    let all = text(&replay(&["--all", "tests/fixtures/rollout-basic"]).stdout);
    let background = all.find("-- started by controllers").expect("--all prints the background after a heading");
    assert!(headers(&all[..background]).iter().all(|h| h.contains("intent by")));
    assert!(headers(&all[background..]).iter().any(|h| h.contains("started by controller")));
}

/// `--format jaeger-json` writes Jaeger's trace JSON: the envelope, one
/// trace per intent or controller trace, parents as `CHILD_OF` references.
/// The capture's Deployment `web` owns ReplicaSet `web-5d894c86f5`, which
/// owns the pods: each create is the child of its owner's.
#[test]
fn jaeger_json_is_the_envelope_of_traces_with_child_of_parents() {
    let out = replay(&["--format", "jaeger-json", "-q", "tests/fixtures/rollout-basic"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    for key in ["data", "total", "limit", "offset", "errors"] {
        assert!(body.get(key).is_some(), "no `{key}` in the envelope");
    }
    let traces = body["data"].as_array().unwrap();
    assert_eq!(body["total"], traces.len());
    let spans: Vec<&serde_json::Value> = traces.iter().flat_map(|t| t["spans"].as_array().unwrap()).collect();
    let span = |name: &str| *spans.iter().find(|s| s["operationName"] == name).unwrap_or_else(|| panic!("{name}"));
    let parent = |s: &serde_json::Value| {
        s["references"].as_array().unwrap().iter().find(|r| r["refType"] == "CHILD_OF").map(|r| r["spanID"].clone())
    };
    let deployment = span("create deployments default/web");
    let rs = span("create replicasets default/web-5d894c86f5");
    assert_eq!(parent(deployment), None);
    assert_eq!(parent(rs), Some(deployment["spanID"].clone()));
    assert_eq!(rs["traceID"], deployment["traceID"]);
    let pod = span("create pods default/web-5d894c86f5-2znrl");
    assert_eq!(parent(pod), Some(rs["spanID"].clone()));
    // Every span's process is in its trace's processes.
    for t in traces {
        for s in t["spans"].as_array().unwrap() {
            assert!(t["processes"][s["processID"].as_str().unwrap()]["serviceName"].is_string());
        }
    }
}

/// The README's `kausal why` picture is what the command prints.
#[test]
fn the_readme_shows_what_kausal_why_prints() {
    let out = Command::new(env!("CARGO_BIN_EXE_kausal"))
        .args(["why", "pod/web-5d894c86f5-2znrl", "-n", "default", "tests/fixtures/rollout-basic"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let first = "\nPod default/web-5d894c86f5-2znrl  (uid";
    let start = readme.find(first).expect("the README shows kausal why") + 1;
    let shown = &readme[start..start + readme[start..].find("```").unwrap()];
    assert_eq!(shown.trim_end(), printed.trim_end());
    // The create's chain: the ReplicaSet that owns the pod, then the Deployment that owns it.
    let rs = printed.find("create replicasets default/web-5d894c86f5").unwrap();
    let deployment = printed.find("create deployments default/web").unwrap();
    assert!(rs < deployment);
}

/// The read+parse floor reads every audit event the decoder reads, and writes nothing.
#[test]
fn parse_only_reads_every_audit_event_and_writes_nothing() {
    let out = replay(&["--parse-only", "tests/fixtures/rollout-basic"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "--parse-only writes no output");
    let decoded = common::rollout_audit().decode.audit_events;
    let stderr = text(&out.stderr);
    assert!(stderr.contains(&format!(" {decoded} audit events")), "the decoder read {decoded}: {stderr}");
}

/// otlp-json is written as spans are linked (one audit stream is linked as it
/// is read, and a trace may take several lines); the lines still hold every
/// span of the replay once, with the parents the in-process replay gives
/// (whose parents the expected-parent files of the ground-truth tests check).
#[test]
fn streamed_otlp_json_holds_every_span_once_with_its_parent() {
    use common::otlp_receiver;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    for fixture in ["tests/fixtures/e2e/service", "tests/fixtures/rollout-basic"] {
        let out = replay(&["--format", "otlp-json", "-q", fixture]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let received: otlp_receiver::Received = Default::default();
        for line in text(&out.stdout).lines() {
            received.lock().unwrap().push(serde_json::from_str::<ExportTraceServiceRequest>(line).unwrap());
        }
        let kept = common::replay_paths(&[common::fixture(fixture.trim_start_matches("tests/fixtures/"))]);
        let want = otlp_receiver::shape_of(&kept.spans);
        let got = otlp_receiver::spans_by_id(&received);
        assert_eq!(otlp_receiver::span_count(&received), want.len(), "{fixture}: every span once");
        assert!(got == want, "{fixture}: {}", otlp_receiver::describe_difference(&want, &got));
    }
}

/// A recording with audit batches and an Event watch holds two streams over
/// the same time span: nothing is linked before both are read, so no Event
/// of the watch (read after the batches) comes too late for its place.
#[test]
fn audit_batches_and_an_event_watch_are_linked_together_not_streamed() {
    let out = replay(&["tests/fixtures/e2e/watch"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("; 0 late records"), "{stderr}");
    assert!(!stderr.contains(" 0 Event objects"), "the watch's Events were read: {stderr}");
}
