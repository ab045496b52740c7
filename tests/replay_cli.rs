//! `kausal replay` as a person runs it: the real binary, its exit status, its
//! tree and its summary.

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
