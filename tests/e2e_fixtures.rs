//! Fast replays of what the end-to-end scenarios recorded (`tests/e2e/run.sh
//! --record`): the raw audit batches and watched Events a real kube-apiserver
//! 1.20 and its controllers produced for each scenario. They pin the causal
//! shapes of controllers beyond Deployments without starting a cluster.

mod common;

use common::{Spans, assert_parent, fixture, replay_paths};
use kausal::core::Span;
use kausal::core::span::{RootKind, SpanKind};

fn replay(scenario: &str) -> Vec<Span> {
    replay_paths(&[fixture(&format!("e2e/{scenario}"))]).spans
}

fn write<'a>(spans: &Spans<'a>, verb: &str, resource: &str, ns: &str, prefix: &str) -> Vec<&'a Span> {
    spans.all(|s| {
        s.kind == SpanKind::Write
            && s.name.starts_with(&format!("{verb} {resource} {ns}/{prefix}"))
    })
}

#[test]
fn deployment_scale_down_rollout_and_deletes() {
    let all = replay("deployment");
    let spans = Spans(&all);
    let ns = "e2e-deploy";
    let create = spans.intent("create deployments e2e-deploy/web");
    let rs = write(&spans, "create", "replicasets", ns, "web-");
    assert_eq!(rs.len(), 2, "the first ReplicaSet and the rollout's");
    let first_rs = rs.iter().find(|r| r.parent_span_id == Some(create.span_id)).expect("a ReplicaSet under the create");
    let first_pods: Vec<_> = write(&spans, "create", "pods", ns, "web-").into_iter().filter(|p| p.trace_id == create.trace_id).collect();
    assert_eq!(first_pods.len(), 3);
    first_pods.iter().for_each(|p| assert_parent(&spans, p, first_rs));

    // Scale-down (the second scale patch): SuccessfulDelete under the pod
    // delete, under the ReplicaSet update, under the patch.
    let scale_down = spans.named("patch deployments/scale e2e-deploy/web").into_iter().max_by_key(|s| s.start).unwrap();
    assert_eq!(scale_down.root, Some(RootKind::Intent));
    let deleted = spans.one("SuccessfulDelete of the scale-down", |s| {
        s.trace_id == scale_down.trace_id && s.attr_str("k8s.event.reason") == Some("SuccessfulDelete")
    });
    let pod_delete = spans.parent(deleted).expect("SuccessfulDelete has a parent");
    assert!(pod_delete.name.starts_with("delete pods e2e-deploy/web-"), "{}", pod_delete.name);
    let rs_update = spans.parent(pod_delete).unwrap();
    assert!(rs_update.name.starts_with("update replicasets e2e-deploy/web-"), "{}", rs_update.name);
    assert_parent(&spans, rs_update, scale_down);

    // Rollout: a new ReplicaSet and the old one scaled down, both under the patch.
    let rollout = spans.intent("patch deployments e2e-deploy/web");
    let new_rs = rs.iter().find(|r| r.parent_span_id == Some(rollout.span_id)).expect("the new ReplicaSet under the rollout");
    assert_ne!(new_rs.attr_str("k8s.object.name"), first_rs.attr_str("k8s.object.name"));
    let old_name = first_rs.attr_str("k8s.object.name").unwrap();
    assert!(
        spans.children(rollout).iter().any(|c| c.name == format!("update replicasets e2e-deploy/{old_name}")),
        "the old ReplicaSet is scaled down in the rollout's trace"
    );

    // Foreground and background deletes: the garbage collector's deletes in their traces.
    for name in ["web", "api"] {
        let delete = spans.intent(&format!("delete deployments e2e-deploy/{name}"));
        let gc: Vec<_> = spans.all(|s| s.trace_id == delete.trace_id && s.actor == "generic-garbage-collector");
        assert!(gc.iter().any(|s| s.name.starts_with("delete replicasets")), "{name}: no GC ReplicaSet delete");
        assert!(gc.iter().any(|s| s.name.starts_with("delete pods")), "{name}: no GC pod delete");
    }
}

#[test]
fn statefulset_pods_and_their_events() {
    let all = replay("statefulset");
    let spans = Spans(&all);
    let sts = spans.intent("create statefulsets e2e-sts/db");
    for pod in ["db-0", "db-1"] {
        let create = spans.one(pod, |s| s.name == format!("create pods e2e-sts/{pod}"));
        assert_eq!(create.actor, "statefulset-controller");
        assert_parent(&spans, create, sts);
        assert_parent(&spans, spans.event("SuccessfulCreate", &format!("create Pod {pod} in StatefulSet db")), create);
    }
    let scale = spans.intent("patch statefulsets/scale e2e-sts/db");
    assert_parent(&spans, spans.one("db-2", |s| s.name == "create pods e2e-sts/db-2"), scale);
}

#[test]
fn daemonset_pods_on_both_nodes_with_the_daemonset_controllers_events() {
    let all = replay("daemonset");
    let spans = Spans(&all);
    let ds = spans.intent("create daemonsets e2e-ds/agent");
    let pods = write(&spans, "create", "pods", "e2e-ds", "agent-");
    assert_eq!(pods.len(), 2);
    for pod in pods {
        assert_eq!(pod.actor, "daemon-set-controller");
        assert_parent(&spans, pod, ds);
        // Reported as `daemonset-controller`, written as `daemon-set-controller`.
        let name = pod.attr_str("k8s.object.name").unwrap();
        assert_parent(&spans, spans.event("SuccessfulCreate", &format!("Created pod: {name}")), pod);
    }
}

#[test]
fn a_fired_cronjob_starts_its_own_trace() {
    let all = replay("batch");
    let spans = Spans(&all);
    let job = spans.one("the fired Job", |s| s.name.starts_with("create jobs e2e-batch/tick-"));
    assert_eq!(job.actor, "cronjob-controller");
    assert_eq!(job.root, Some(RootKind::ControllerInitiated), "fired more than the window after the CronJob's create");
    assert_parent(&spans, spans.event("SuccessfulCreate", "Created job tick-"), job);
    let pod = spans.one("its pod", |s| s.name.starts_with("create pods e2e-batch/tick-"));
    assert_parent(&spans, pod, job);

    let once = spans.intent("create jobs e2e-batch/once");
    let pod = spans.one("the Job's pod", |s| s.name.starts_with("create pods e2e-batch/once-"));
    assert_parent(&spans, pod, once);
}

#[test]
fn watched_events_link_like_audited_ones() {
    let all = replay("watch");
    let spans = Spans(&all);
    let rs = spans.one("the ReplicaSet create", |s| s.name.starts_with("create replicasets e2e-watch/web-"));
    let in_ns = |s: &Span| s.attr_str("k8s.namespace.name") == Some("e2e-watch");
    let scaled = spans.one("ScalingReplicaSet", |s| in_ns(s) && s.attr_str("k8s.event.reason") == Some("ScalingReplicaSet"));
    assert_parent(&spans, scaled, rs);
    for pod in write(&spans, "create", "pods", "e2e-watch", "web-") {
        let name = pod.attr_str("k8s.object.name").unwrap();
        assert_parent(&spans, spans.event("SuccessfulCreate", &format!("Created pod: {name}")), pod);
    }
    let events = spans.all(|s| s.kind == SpanKind::Event);
    assert!(!events.is_empty() && events.iter().all(|e| e.attr_str("k8s.audit.id").is_none()), "these came from the watch");
}

/// Seen on the real apiserver: a pod create refused because the namespace's
/// service-account token did not exist yet answers a Status whose details name
/// another resource (`serviceaccounts`, "create pod"). The write must not be
/// named after them.
#[test]
fn a_refused_create_is_not_named_after_another_resources_status_details() {
    let event = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse",
      "auditID":"7f1d1c3a-5b7e-4c1e-9f7a-0d6c2b8e4a11","stage":"ResponseComplete",
      "requestURI":"/api/v1/namespaces/e2e-batch/pods","verb":"create",
      "user":{"username":"system:serviceaccount:kube-system:job-controller"},
      "objectRef":{"resource":"pods","namespace":"e2e-batch","apiVersion":"v1"},
      "responseStatus":{"metadata":{},"status":"Failure","reason":"ServerTimeout","code":500},
      "responseObject":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
        "message":"No API token found for service account \"default\", retry after the token is automatically created and added to the service account",
        "reason":"ServerTimeout","details":{"name":"create pod","kind":"serviceaccounts","retryAfterSeconds":1},"code":500},
      "requestReceivedTimestamp":"2026-11-22T00:40:00.000000Z","stageTimestamp":"2026-11-22T00:40:00.002000Z"}"#;
    let decoded = kausal::sources::decode::decode_document(event, Default::default());
    let [kausal::core::Record::Write(w)] = decoded.records.as_slice() else { panic!("{:?}", decoded.bad) };
    assert_eq!(w.name, None);
    assert_eq!(kausal::core::engine::write_span_name(w), "create pods e2e-batch");
}
