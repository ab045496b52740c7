//! The Events-only linker, on the real capture's Events alone (as a cluster
//! without an audit webhook gives them): the Deployment's scale Events, the
//! ReplicaSet's pod creations, the scheduler's bindings. Each expected parent
//! is read off the Events' own messages: "Scaled up replica set
//! web-5d894c86f5 to 2" announces that ReplicaSet, "Created pod: X" that pod,
//! and "Successfully assigned default/X to fake-node-1" is about pod X.

mod common;

use common::{Spans, assert_parent, fixture, replay_paths};

#[test]
fn the_capture_s_events_alone_nest_by_what_they_announce() {
    // Both API versions together (copies of one another), and core/v1 alone.
    for input in ["rollout-basic/events", "rollout-basic/events/events-core-v1.json"] {
        check_capture_events(input);
    }
}

fn check_capture_events(input: &str) {
    let result = replay_paths(&[fixture(input)]);
    assert_eq!(result.spans.len(), 10, "{input}: one span per Event");
    assert_eq!(result.engine.writes, 0, "Events only");
    let spans = Spans(&result.spans);
    let to_2 = spans.event("ScalingReplicaSet", "to 2");
    let to_3 = spans.event("ScalingReplicaSet", "to 3");
    assert!(to_2.parent_span_id.is_none(), "the Deployment's first Event is the root");
    // The scale to 3 came in the same second: the same run of the
    // Deployment's Events, so the same trace, under its first.
    assert_parent(&spans, to_3, to_2);
    // The scale to 2 accounts for two pods, the scale to 3 for one: the
    // Events carry whole seconds only, so counting tells them apart. Which
    // two pods were first is in the audit record and the pods' names only
    // by chance; the Scheduled times say it (2znrl and x6t4x at .48 and .50,
    // tlsq8 at .76).
    for (pod, scale) in [("2znrl", to_2), ("x6t4x", to_2), ("tlsq8", to_3)] {
        let created = spans.event("SuccessfulCreate", &format!("Created pod: web-5d894c86f5-{pod}"));
        assert_parent(&spans, created, scale);
        let scheduled = spans.event("Scheduled", &format!("default/web-5d894c86f5-{pod} to"));
        assert_parent(&spans, scheduled, created);
        assert_eq!(scheduled.trace_id, to_2.trace_id, "one trace for the Deployment's run of Events");
    }
    // The node's two Events, five seconds apart and announced by nothing,
    // are one run too.
    let registered = spans.event("RegisteredNode", "Registered Node fake-node-1");
    let removing = spans.event("RemovingNode", "Removing Node fake-node-1");
    assert!(registered.parent_span_id.is_none());
    assert_parent(&spans, removing, registered);
    assert_eq!(result.engine.events_only_links, 8, "to 3, three creations, three bindings, the node's second");
}

/// The README's picture of an Events-only trace is the replay's own output.
#[test]
fn the_readme_shows_the_events_only_trace_the_replay_prints() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("trace 1ab6e92efbcc52ea3340986706827fb9").expect("the README shows the Events-only trace");
    let shown = &readme[start..start + readme[start..].find("```").unwrap()];
    let result = replay_paths(&[fixture("rollout-basic/events")]);
    let rendered = kausal::sinks::tree::render(&result.spans, kausal::sinks::tree::TreeOptions { show_all: false });
    let at = rendered.find("trace 1ab6e92efbcc52ea3340986706827fb9").expect("the replay prints the Deployment's trace");
    let printed = &rendered[at..];
    let printed = &printed[..printed.find("\n\n").map_or(printed.len(), |e| e + 1)];
    assert_eq!(shown, printed, "README.md's Events-only picture differs from the replay's output");
}

/// On the shared corpus's real Events-only files (must-gathers, dumps): no
/// Event is left without a parent where another Event announced its object.
/// The announcements are read here on their own, from the spans' messages
/// (`Created pod: X` by a ReplicaSet, Job or DaemonSet), not from the
/// linker's index. Skipped when `../shared/corpus` is absent.
#[test]
fn in_the_corpus_no_announced_pods_event_is_left_without_a_parent() {
    use std::collections::HashMap;
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if !corpus.is_dir() {
        eprintln!("skipped: {} is absent", corpus.display());
        return;
    }
    let window = 30_000_000; // --window; the kubelet's Events follow a pod at any age
    let (mut files_checked, mut events_checked) = (0, 0);
    for input in kausal::sources::files::expand_paths(&[corpus.display().to_string()]).unwrap() {
        let result = kausal::replay::run(
            std::slice::from_ref(&input),
            kausal::decode::DecodeOptions::default(),
            kausal::core::CoreConfig::default(),
            false,
        );
        if result.decode.audit_events > 0 || result.decode.kube_events < 2 {
            continue;
        }
        files_checked += 1;
        let namespace = |s: &kausal::core::Span| s.attr_str("k8s.namespace.name").unwrap_or("").to_owned();
        let mut announced: HashMap<String, i64> = HashMap::new();
        for s in &result.spans {
            if s.attr_str("k8s.event.reason") == Some("SuccessfulCreate")
                && let Some(pod) = s.attr_str("k8s.event.message").and_then(|m| m.strip_prefix("Created pod: "))
            {
                let at = announced.entry(format!("{}/{}", namespace(s), pod.trim())).or_insert(s.start);
                *at = (*at).min(s.start);
            }
        }
        for s in &result.spans {
            if s.attr_str("k8s.object.kind") != Some("Pod") || s.attr_str("k8s.event.reason") == Some("Killing") {
                continue;
            }
            let key = format!("{}/{}", namespace(s), s.attr_str("k8s.object.name").unwrap_or(""));
            let kubelet = s.attr_str("k8s.event.reporting_controller") == Some("kubelet");
            if let Some(&at) = announced.get(&key)
                && s.start >= at
                && (kubelet || s.start <= at + window)
            {
                events_checked += 1;
                assert!(
                    s.parent_span_id.is_some(),
                    "{}: {} about {key} has no parent, though its pod was announced",
                    input.display(),
                    s.name
                );
            }
        }
    }
    println!("Events-only corpus files: {files_checked}; Events of announced pods checked: {events_checked}");
    assert!(files_checked > 0 && events_checked > 0, "nothing to check: the test proves nothing");
}
