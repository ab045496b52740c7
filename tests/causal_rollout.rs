//! The causal shape of the real capture: a Deployment created, scaled and
//! deleted on a real kube-apiserver 1.20. Direct parents are asserted, not only
//! trace membership.

mod common;

use std::collections::{HashMap, HashSet};

use common::{Spans, assert_parent, fixture, names, replay_paths, rollout_audit};
use kausal::core::span::{RootKind, SpanStatus};

fn latest_before<'a>(candidates: &[&'a kausal::core::Span], at: i64) -> &'a kausal::core::Span {
    candidates.iter().copied().filter(|c| c.end <= at).max_by_key(|c| c.end).expect("a cause before the status write")
}

#[test]
fn create_intent_nests_replicaset_pods_bindings_and_events() {
    let result = rollout_audit();
    let spans = Spans(&result.spans);
    let root = spans.intent("create deployments default/web");
    assert_eq!(root.actor, "admin");
    assert!(root.parent_span_id.is_none());
    assert_eq!(hex::encode(root.trace_id), "4ca7c5925ef64d6baaff952f630775d3", "trace ID is the auditID");

    let rs_create = spans.one("ReplicaSet create", |s| s.name == "create replicasets default/web-5d894c86f5");
    assert_eq!(rs_create.actor, "deployment-controller");
    assert_parent(&spans, rs_create, root);

    let scaled = spans.event("ScalingReplicaSet", "to 2");
    assert_parent(&spans, scaled, rs_create);
    assert_eq!(scaled.actor, "deployment-controller");

    for pod in ["web-5d894c86f5-2znrl", "web-5d894c86f5-x6t4x"] {
        let create = spans.one(pod, |s| s.name == format!("create pods default/{pod}"));
        assert_eq!(create.actor, "replicaset-controller");
        assert_parent(&spans, create, rs_create);
        assert_eq!(create.attr_str("k8s.pod.name"), Some(pod), "semconv name from generateName create");
        assert!(create.attr_str("k8s.object.uid").is_some(), "UID taken from responseObject");

        let binding = spans.one("binding", |s| s.name == format!("create pods/binding default/{pod}"));
        assert_eq!(binding.actor, "kube-scheduler");
        assert_parent(&spans, binding, create);

        let scheduled = spans.event("Scheduled", pod);
        assert_eq!(scheduled.actor, "kube-scheduler");
        assert_parent(&spans, scheduled, binding);

        let created = spans.event("SuccessfulCreate", pod);
        assert_parent(&spans, created, create);
    }

    // A status write belongs to the sync that wrote it, and its counts show
    // what that sync had seen (CAUSALITY.md). The capture's first ReplicaSet
    // status says `replicas: 0` though both pods were created before it: the
    // sync that created them wrote it, under the ReplicaSet's create. The
    // second says `replicas: 2`: it reflects both creates, and hangs under
    // the newer one (x6t4x). A status write is no trigger: at most the
    // owner's status, read from it, hangs under it (the Deployment's counts
    // come from its ReplicaSets' status).
    let mut statuses =
        spans.all(|s| s.name == "update replicasets/status default/web-5d894c86f5" && s.trace_id == root.trace_id);
    statuses.sort_by_key(|s| s.end);
    assert_eq!(statuses.len(), 2, "{:?}", names(&statuses));
    assert_parent(&spans, statuses[0], rs_create);
    let second_pod = spans.one("x6t4x", |s| s.name == "create pods default/web-5d894c86f5-x6t4x");
    assert_parent(&spans, statuses[1], second_pod);
    for status in statuses {
        for child in spans.children(status) {
            assert_eq!(child.name, "update deployments/status default/web", "a status write caused a non-status write");
        }
    }
    let conflict = spans.one("the failed Deployment status write", |s| {
        s.name == "update deployments/status default/web" && s.attr("http.response.status_code") == Some(&409i64.into())
    });
    assert!(matches!(conflict.status, SpanStatus::Error(_)), "a 409 is an error span");
    assert_parent(&spans, conflict, latest_before(&[root, rs_create], conflict.end));
}

#[test]
fn scale_intent_updates_the_replicaset_which_adds_a_pod() {
    let result = rollout_audit();
    let spans = Spans(&result.spans);
    let root = spans.intent("patch deployments/scale default/web");
    let rs_update = spans.one("RS update", |s| s.name == "update replicasets default/web-5d894c86f5");
    assert_eq!(rs_update.actor, "deployment-controller");
    assert_parent(&spans, rs_update, root);
    // No runner-up: the deployment controller's own create of the ReplicaSet
    // is not why it writes it again, and the Deployment's create left 2
    // desired replicas, not the 3 this update carries.
    assert!(rs_update.links.is_empty(), "{:?}", rs_update.links);

    let pod = spans.one("new pod", |s| s.name == "create pods default/web-5d894c86f5-tlsq8");
    assert_parent(&spans, pod, rs_update);
    let binding = spans.one("binding", |s| s.name == "create pods/binding default/web-5d894c86f5-tlsq8");
    assert_parent(&spans, binding, pod);
    assert_parent(&spans, spans.event("Scheduled", "tlsq8"), binding);
    assert_parent(&spans, spans.event("ScalingReplicaSet", "to 3"), rs_update);
    assert_parent(&spans, spans.event("SuccessfulCreate", "tlsq8"), pod);
}

#[test]
fn delete_intent_cascades_through_the_garbage_collector() {
    let result = rollout_audit();
    let spans = Spans(&result.spans);
    let root = spans.intent("delete deployments default/web");
    assert_eq!(
        root.attr_str("k8s.object.uid"),
        Some("2fb028b3-cf59-4505-afd6-c66d1ac6964d"),
        "UID from Status.details"
    );
    let rs_delete = spans.one("GC RS delete", |s| s.name == "delete replicasets default/web-5d894c86f5");
    assert_eq!(rs_delete.actor, "generic-garbage-collector");
    assert_parent(&spans, rs_delete, root);

    let gc_pod_deletes =
        spans.all(|s| s.name.starts_with("delete pods default/web-") && s.actor == "generic-garbage-collector");
    assert_eq!(gc_pod_deletes.len(), 3);
    for delete in &gc_pod_deletes {
        // The sibling rule applies to creates only: deletes never chain under each other.
        assert_parent(&spans, delete, rs_delete);
    }
    // 70 s later the pod GC removes the pods left terminating on the deleted
    // node: it removes them because their node is gone, so the node's delete
    // is the cause; the GC's earlier delete, still in progress, is the link.
    let node_delete = spans.intent("delete nodes fake-node-1");
    let podgc = spans.all(|s| s.actor == "pod-garbage-collector");
    assert_eq!(podgc.len(), 3);
    for delete in podgc {
        assert_parent(&spans, delete, node_delete);
        let runner_up = delete.links.iter().find(|l| l.reason == "runner-up").expect("the GC's delete as a link");
        let linked = spans.one("the linked delete", |s| s.span_id == runner_up.span_id);
        assert_eq!(linked.actor, "generic-garbage-collector");
        assert_eq!(linked.attr_str("k8s.object.name"), delete.attr_str("k8s.object.name"));
    }
}

#[test]
fn node_events_hang_under_the_node_writes() {
    let result = rollout_audit();
    let spans = Spans(&result.spans);
    let node_delete = spans.intent("delete nodes fake-node-1");
    assert_parent(&spans, spans.event("RemovingNode", "fake-node-1"), node_delete);
    let node_create = spans.intent("create nodes fake-node-1");
    let registered = spans.event("RegisteredNode", "fake-node-1");
    assert_eq!(registered.trace_id, node_create.trace_id);
}

#[test]
fn no_span_of_one_intent_appears_in_another_intents_trace() {
    let result = rollout_audit();
    let spans = Spans(&result.spans);
    let mut ids = HashSet::new();
    for s in spans.0 {
        assert!(ids.insert(s.span_id), "span ID {:?} used twice ({})", s.span_id, s.name);
    }
    let intents = spans.all(|s| s.root == Some(RootKind::Intent));
    assert_eq!(intents.len(), 5, "node create, apply, scale, delete, node delete");
    let intent_traces: HashSet<_> = intents.iter().map(|s| s.trace_id).collect();
    assert_eq!(intent_traces.len(), 5);
    // Every span's parent chain ends at its own trace's root, never crossing traces.
    let by_id: HashMap<_, _> = spans.0.iter().map(|s| (s.span_id, s)).collect();
    for s in spans.0 {
        let mut cur = s;
        let mut hops = 0;
        while let Some(p) = cur.parent_span_id {
            let parent = by_id[&p];
            assert_eq!(parent.trace_id, s.trace_id, "{} crosses traces", s.name);
            cur = parent;
            hops += 1;
            assert!(hops < 64, "parent cycle at {}", s.name);
        }
        assert!(cur.root.is_some(), "{} chains to a root", s.name);
    }
    // Everything about `web` is in one of the three Deployment intents.
    let web: HashSet<_> =
        ["create deployments default/web", "patch deployments/scale default/web", "delete deployments default/web"]
            .iter()
            .map(|n| spans.intent(n).trace_id)
            .collect();
    // (The pod GC's deletes after the node delete are in the node delete's trace.)
    for s in spans.all(|s| {
        s.attr_str("k8s.namespace.name") == Some("default")
            && s.name.contains("web")
            && s.actor != "pod-garbage-collector"
    }) {
        assert!(web.contains(&s.trace_id), "{} {} is outside the web intents", s.actor, s.name);
    }
}

#[test]
fn events_from_a_watch_or_list_deduplicate_against_the_audit_stream() {
    let audit_only = rollout_audit();
    let both = replay_paths(&[fixture("rollout-basic/audit-batches"), fixture("rollout-basic/events")]);
    assert_eq!(both.decode.kube_events, 20, "10 Events in each of the two schemas");
    assert_eq!(both.engine.duplicate_events, 20, "each is a copy of an Event the audit stream carried");
    let shape = |spans: &[kausal::core::Span]| -> Vec<String> {
        let mut v: Vec<String> = spans
            .iter()
            .map(|s| {
                format!("{:?} {:?} {:?} {} {} {}", s.trace_id, s.span_id, s.parent_span_id, s.name, s.start, s.end)
            })
            .collect();
        v.sort();
        v
    };
    let (a, b) = (shape(&audit_only.spans), shape(&both.spans));
    let differences: Vec<_> = a.iter().zip(&b).filter(|(x, y)| x != y).take(3).collect();
    assert!(a.len() == b.len() && differences.is_empty(), "copies change nothing, but: {differences:#?}");
}

/// The README's picture of a trace is the replay's own output, so the docs
/// cannot drift from what `cargo run -- replay tests/fixtures/rollout-basic` prints.
#[test]
fn the_readme_shows_the_trace_the_replay_prints() {
    let trace = "trace 4ca7c5925ef64d6baaff952f630775d3";
    let (shown, printed) = (common::readme_block(trace), common::rendered_trace(&rollout_audit().spans, trace));
    assert_eq!(shown, printed, "README.md's trace picture differs from the replay's output");
}
