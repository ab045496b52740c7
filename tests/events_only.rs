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
    // The scale to 3 came in the same second, but it scales the only
    // ReplicaSet with replicas: no rollout is in progress, so it is a new
    // cause, as the audit log of the same capture says (#340, `admin patch
    // deployments/scale default/web`, an intent of its own).
    assert!(to_3.parent_span_id.is_none(), "the scale to 3 starts its own trace");
    assert_ne!(to_3.trace_id, to_2.trace_id);
    // The scale to 2 accounts for two pods, the scale to 3 for one: the
    // Events carry whole seconds only, so counting tells them apart. Which
    // two pods were first is in the audit record and the pods' names only
    // by chance; the Scheduled times say it (2znrl and x6t4x at .48 and .50,
    // tlsq8 at .76).
    for (pod, scale) in [("2znrl", to_2), ("x6t4x", to_2), ("tlsq8", to_3)] {
        let created = spans.event("SuccessfulCreate", &format!("Created pod: web-5d894c86f5-{pod}"));
        assert_parent(&spans, created, scale);
        assert_eq!(created.attr_str("kausal.parent.found_by"), Some("announcement"));
        let scheduled = spans.event("Scheduled", &format!("default/web-5d894c86f5-{pod} to"));
        assert_parent(&spans, scheduled, created);
        assert_eq!(scheduled.trace_id, scale.trace_id, "one trace for each scale's Events");
    }
    // The node's two Events, five seconds apart and announced by nothing,
    // are one run too.
    let registered = spans.event("RegisteredNode", "Registered Node fake-node-1");
    let removing = spans.event("RemovingNode", "Removing Node fake-node-1");
    assert!(registered.parent_span_id.is_none());
    assert_parent(&spans, removing, registered);
    assert_eq!(removing.attr_str("kausal.parent.found_by"), Some("run"));
    assert_eq!(result.engine.events_only_links, 7, "three creations, three bindings, the node's second");
}

/// The README's picture of the Events-only traces is the replay's own output.
#[test]
fn the_readme_shows_the_events_only_traces_the_replay_prints() {
    let shown = common::readme_block("trace 1ab6e92efbcc52ea3340986706827fb9");
    let result = replay_paths(&[fixture("rollout-basic/events")]);
    let rendered = kausal::sinks::tree::render(&result.spans, kausal::sinks::tree::TreeOptions { show_all: false });
    let printed: Vec<&str> = rendered
        .split("\n\n")
        .filter(|block| block.lines().next().is_some_and(|l| l.contains("Events of Deployment web")))
        .map(|block| block.trim_end_matches('\n'))
        .collect();
    assert_eq!(printed.len(), 2, "one trace per scale");
    assert_eq!(
        shown,
        format!("{}\n", printed.join("\n\n")),
        "README.md's Events-only picture differs from the replay's output"
    );
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

/// The owner-reference rule: a pod whose creation no Event announced (the
/// dump lost the ReplicaSet's `Created pod`), and whose name follows no
/// convention, hangs under its owner's latest Event when an object dump says
/// whose it is: here the Deployment's scale Event five minutes before, as
/// the pod's owner chain pod → ReplicaSet `web-1` → Deployment `web` (the
/// dump's `ownerReferences`) leads there. Without the dump it is a root.
#[test]
fn an_object_dump_gives_the_owner_chain_where_no_event_announced_the_pod() {
    let dir = tempfile::tempdir().unwrap();
    let event = |name: &str, kind: &str, object: &str, uid: &str, reason: &str, message: &str, at: &str| {
        serde_json::json!({"apiVersion": "v1", "kind": "Event",
            "metadata": {"name": name, "namespace": "prod", "uid": format!("event-{name}")},
            "involvedObject": {"kind": kind, "namespace": "prod", "name": object, "uid": uid},
            "reason": reason, "message": message, "type": "Normal", "count": 1,
            "source": {"component": if kind == "Pod" { "kubelet" } else { "deployment-controller" }},
            "firstTimestamp": at, "lastTimestamp": at})
    };
    let events = serde_json::json!({"kind": "EventList", "apiVersion": "v1", "items": [
        event("web.1", "Deployment", "web", "u-deploy", "ScalingReplicaSet", "Scaled up replica set web-1 to 1", "2026-11-21T10:00:00Z"),
        event("worker.1", "Pod", "worker", "u-pod", "Pulled", "Successfully pulled image \"busybox\"", "2026-11-21T10:05:00Z"),
    ]});
    let owner = |kind: &str, name: &str, uid: &str| serde_json::json!([{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": true}]);
    let objects = serde_json::json!({"kind": "List", "apiVersion": "v1", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "prod", "uid": "u-deploy"}},
        {"apiVersion": "apps/v1", "kind": "ReplicaSet",
         "metadata": {"name": "web-1", "namespace": "prod", "uid": "u-rs", "ownerReferences": owner("Deployment", "web", "u-deploy")}},
        {"apiVersion": "v1", "kind": "Pod",
         "metadata": {"name": "worker", "namespace": "prod", "uid": "u-pod", "ownerReferences": owner("ReplicaSet", "web-1", "u-rs")}},
    ]});
    let (events_file, objects_file) = (dir.path().join("events.json"), dir.path().join("objects.json"));
    std::fs::write(&events_file, events.to_string()).unwrap();
    std::fs::write(&objects_file, objects.to_string()).unwrap();

    let with = replay_paths(&[objects_file.clone(), events_file.clone()]);
    assert_eq!((with.decode.objects, with.objects_after_events), (3, 0));
    let spans = Spans(&with.spans);
    let (scaled, pulled) = (spans.event("ScalingReplicaSet", "web-1"), spans.event("Pulled", "busybox"));
    assert_parent(&spans, pulled, scaled);
    assert_eq!(pulled.attr_str("kausal.parent.found_by"), Some("owner-reference"));

    let without = replay_paths(std::slice::from_ref(&events_file));
    let pulled = Spans(&without.spans).event("Pulled", "busybox");
    assert!(pulled.parent_span_id.is_none(), "the name `worker` says nothing about its owner");

    // Objects given after the Events come too late for them, and the replay says so.
    let late = replay_paths(&[events_file, objects_file]);
    assert_eq!(late.objects_after_events, 3);
    assert!(kausal::replay::summary(&late, std::time::Duration::ZERO).contains("give object dumps first"));
}
