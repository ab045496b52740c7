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
    spans.all(|s| s.kind == SpanKind::Write && s.name.starts_with(&format!("{verb} {resource} {ns}/{prefix}")))
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
    let first_pods: Vec<_> =
        write(&spans, "create", "pods", ns, "web-").into_iter().filter(|p| p.trace_id == create.trace_id).collect();
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
    let new_rs =
        rs.iter().find(|r| r.parent_span_id == Some(rollout.span_id)).expect("the new ReplicaSet under the rollout");
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
fn statefulset_create_scale_up_down_and_delete() {
    let all = replay("statefulset");
    let spans = Spans(&all);
    let ns = "e2e-sts";
    let svc = spans.intent("create services e2e-sts/db");
    let endpoints = spans.one("the headless Service's Endpoints", |s| s.name == "create endpoints e2e-sts/db");
    assert_eq!(endpoints.actor, "endpoint-controller");
    assert_parent(&spans, endpoints, svc);

    let sts = spans.intent("create statefulsets e2e-sts/db");
    for pod in ["db-0", "db-1"] {
        let create = spans.one(pod, |s| s.name == format!("create pods e2e-sts/{pod}"));
        assert_eq!(create.actor, "statefulset-controller");
        assert_parent(&spans, create, sts);
        assert_parent(&spans, spans.event("SuccessfulCreate", &format!("create Pod {pod} in StatefulSet db")), create);
    }
    let mut scales = spans.named("patch statefulsets/scale e2e-sts/db");
    scales.sort_by_key(|s| s.start);
    let [up, down] = scales.as_slice() else { panic!("{} scale patches, expected 2", scales.len()) };
    assert_parent(&spans, spans.one("db-2", |s| s.name == "create pods e2e-sts/db-2"), up);
    for pod in ["db-2", "db-1"] {
        let delete = spans.one(pod, |s| s.name == format!("delete pods e2e-sts/{pod}"));
        assert_eq!(delete.actor, "statefulset-controller");
        assert_eq!(delete.trace_id, down.trace_id, "{pod}: in the scale-down's trace");
        assert_parent(&spans, spans.event("SuccessfulDelete", &format!("delete Pod {pod} in StatefulSet db")), delete);
    }
    let delete = spans.intent("delete statefulsets e2e-sts/db");
    let gc = write(&spans, "delete", "pods", ns, "db-0");
    assert_eq!(gc.len(), 1);
    assert_eq!(gc[0].actor, "generic-garbage-collector");
    assert_eq!(gc[0].trace_id, delete.trace_id);
}

#[test]
fn daemonset_pods_follow_nodes_joining_and_leaving() {
    let all = replay("daemonset");
    let spans = Spans(&all);
    let ds = spans.intent("create daemonsets e2e-ds/agent");
    let node_create = spans.intent("create nodes e2e-node-c");
    let pods = write(&spans, "create", "pods", "e2e-ds", "agent-");
    assert_eq!(pods.len(), 3, "one per node: a and b at the start, c when it joins");
    for pod in &pods {
        assert_eq!(pod.actor, "daemon-set-controller");
        // Reported as `daemonset-controller`, written as `daemon-set-controller`.
        let name = pod.attr_str("k8s.object.name").unwrap();
        assert_parent(&spans, spans.event("SuccessfulCreate", &format!("Created pod: {name}")), pod);
    }
    let (for_c, for_ab): (Vec<_>, Vec<_>) = pods.iter().partition(|p| p.trace_id == node_create.trace_id);
    assert_eq!((for_c.len(), for_ab.len()), (1, 2));
    assert_parent(&spans, for_c[0], node_create);
    for_ab.iter().for_each(|p| assert_parent(&spans, p, ds));

    // The node leaves; the pod garbage collector deletes its orphan about a minute later.
    let node_delete = spans.intent("delete nodes e2e-node-c");
    let orphan = for_c[0].attr_str("k8s.object.name").unwrap();
    let gc = spans.one("the orphan's delete", |s| s.name == format!("delete pods e2e-ds/{orphan}"));
    assert_eq!(gc.actor, "pod-garbage-collector");
    assert_parent(&spans, gc, node_delete);
    assert!(gc.start - node_delete.start > 30_000_000, "outside the window, yet linked");
}

#[test]
fn a_fired_cronjob_starts_its_own_trace() {
    let all = replay("batch");
    let spans = Spans(&all);
    let cron = spans.intent("create cronjobs e2e-batch/tick");
    let job = spans.one("the fired Job", |s| s.name.starts_with("create jobs e2e-batch/tick-"));
    assert_eq!(job.actor, "cronjob-controller");
    assert_eq!(job.root, Some(RootKind::ControllerInitiated), "the schedule fired it");
    assert_eq!(
        job.links.iter().map(|l| (l.span_id, l.reason.as_str())).collect::<Vec<_>>(),
        vec![(cron.span_id, "scheduled-by")]
    );
    assert_parent(&spans, spans.event("SuccessfulCreate", "Created job tick-"), job);
    let pod = spans.one("its pod", |s| s.name.starts_with("create pods e2e-batch/tick-"));
    assert_parent(&spans, pod, job);

    let once = spans.intent("create jobs e2e-batch/once");
    let pod = spans.one("the Job's pod", |s| s.name.starts_with("create pods e2e-batch/once-"));
    assert_parent(&spans, pod, once);
}

#[test]
fn endpoints_and_slices_follow_the_service_and_its_pods() {
    let all = replay("service");
    let spans = Spans(&all);
    let ns = "e2e-svc";
    let svc = spans.intent("create services e2e-svc/web");
    let endpoints = spans.one("the Endpoints create", |s| s.name == "create endpoints e2e-svc/web");
    assert_eq!(endpoints.actor, "endpoint-controller");
    assert_parent(&spans, endpoints, svc);
    let slices = write(&spans, "create", "endpointslices", ns, "web-");
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].actor, "endpointslice-controller");
    assert_parent(&spans, slices[0], svc);

    // The (kubelet-like) status write that gives the pod an IP and readiness.
    let ready = spans.one("the status patch", |s| s.name.starts_with("patch pods/status e2e-svc/web-"));
    let pod = ready.attr_str("k8s.object.name").unwrap();
    // The person's delete of that pod.
    let delete = spans.intent(&format!("delete pods e2e-svc/{pod}"));
    for (verb_resource, name) in [("update endpoints", "web"), ("update endpointslices", "web-")] {
        let updates = spans.all(|s| s.name.starts_with(&format!("{verb_resource} {ns}/{name}")));
        assert!(!updates.is_empty(), "{verb_resource}");
        let added = updates.iter().filter(|u| u.trace_id == ready.trace_id).collect::<Vec<_>>();
        assert_eq!(added.len(), 1, "{verb_resource}: one update adds the ready pod");
        assert_parent(&spans, added[0], ready);
        let mut removed = updates.iter().filter(|u| u.trace_id == delete.trace_id).collect::<Vec<_>>();
        removed.sort_by_key(|u| u.start);
        assert!(!removed.is_empty(), "{verb_resource}: the delete takes the pod out");
        assert_parent(&spans, removed[0], delete);
        // Later updates in that trace follow the newer pod writes it caused
        // (the ReplicaSet's replacement pod), as CAUSALITY.md says.
        for u in &removed[1..] {
            let parent = spans.parent(u).expect("a parent");
            assert!(
                parent.name.contains(" pods") && parent.name.contains(" e2e-svc/web-"),
                "{}: {}",
                u.name,
                parent.name
            );
        }
        assert!(
            updates
                .iter()
                .all(|u| u.parent_span_id != Some(endpoints.span_id) && u.parent_span_id != Some(slices[0].span_id)),
            "{verb_resource}: never caused by the object's own create"
        );
    }
}

#[test]
fn a_persons_pod_delete_owns_the_replacement_and_the_status_then_rollout_and_undo() {
    let all = replay("rollout-undo");
    let spans = Spans(&all);
    let ns = "e2e-undo";
    let create = spans.intent("create deployments e2e-undo/app");
    let delete = spans.one("the person's pod delete", |s| {
        s.name.starts_with("delete pods e2e-undo/app-") && s.root == Some(RootKind::Intent)
    });
    let victim = delete.attr_str("k8s.object.name").unwrap();
    let rs_names: Vec<&str> = write(&spans, "create", "replicasets", ns, "app-")
        .iter()
        .map(|r| r.attr_str("k8s.object.name").unwrap())
        .collect();
    assert_eq!(rs_names.len(), 2, "the first ReplicaSet and the rollout's; the undo reuses the first");
    let first_rs = victim.rsplit_once('-').unwrap().0;
    let replacement = spans
        .one("the replacement", |s| s.name.starts_with("create pods e2e-undo/app-") && s.trace_id == delete.trace_id);
    assert_parent(&spans, replacement, delete);
    let mut patches = spans.named("patch deployments e2e-undo/app");
    patches.sort_by_key(|s| s.start);
    let [rollout, undo] = patches.as_slice() else { panic!("{} Deployment patches, expected 2", patches.len()) };
    let statuses_after = spans.all(|s| {
        s.name == format!("update replicasets/status e2e-undo/{first_rs}")
            && s.start > delete.start
            && s.start < rollout.start
    });
    assert!(!statuses_after.is_empty());
    for status in statuses_after {
        assert_eq!(
            status.trace_id, delete.trace_id,
            "the ReplicaSet's status after the person's delete is in the person's trace"
        );
        assert_ne!(status.trace_id, create.trace_id);
    }
    let second_rs = rs_names.iter().find(|n| **n != first_rs).unwrap();
    assert_parent(
        &spans,
        spans.one("the rollout's ReplicaSet", |s| s.name == format!("create replicasets e2e-undo/{second_rs}")),
        rollout,
    );
    // The undo reuses the first ReplicaSet: the deployment controller makes it current again.
    let updates =
        spans.all(|s| s.name == format!("update replicasets e2e-undo/{first_rs}") && s.trace_id == undo.trace_id);
    assert!(!updates.is_empty(), "{first_rs} is updated in the undo's trace");
    updates.iter().for_each(|u| assert_parent(&spans, u, undo));
}

#[test]
fn watched_events_link_like_audited_ones() {
    let all = replay("watch");
    let spans = Spans(&all);
    let rs = spans.one("the ReplicaSet create", |s| s.name.starts_with("create replicasets e2e-watch/web-"));
    let in_ns = |s: &Span| s.attr_str("k8s.namespace.name") == Some("e2e-watch");
    let scaled =
        spans.one("ScalingReplicaSet", |s| in_ns(s) && s.attr_str("k8s.event.reason") == Some("ScalingReplicaSet"));
    assert_parent(&spans, scaled, rs);
    for pod in write(&spans, "create", "pods", "e2e-watch", "web-") {
        let name = pod.attr_str("k8s.object.name").unwrap();
        assert_parent(&spans, spans.event("SuccessfulCreate", &format!("Created pod: {name}")), pod);
    }
    let events = spans.all(|s| s.kind == SpanKind::Event);
    assert!(
        !events.is_empty() && events.iter().all(|e| e.attr_str("k8s.audit.id").is_none()),
        "these came from the watch"
    );
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
    let decoded = kausal::decode::decode(event.as_bytes(), &Default::default());
    let [kausal::core::Record::Write(w)] = decoded.records.as_slice() else { panic!("{:?}", decoded.bad) };
    assert_eq!(w.name, None);
    assert_eq!(kausal::core::span_builder::write_span_name(w), "create pods e2e-batch");
}

/// Issue 19's proof, on what the real control plane recorded: in the same
/// run, one kausal got the apiserver's audit batches (with the Events in
/// them), and a second, without the webhook, watched the Events and the
/// owners' metadata. Replayed apart, every Event must land in the same trace
/// grouping and in the same order of nesting (`common::event_grouping`).
#[test]
fn without_the_webhook_events_land_in_the_same_traces_and_nesting() {
    use common::event_grouping::{compare, from_spans};
    for (scenario, ns) in
        [("deployment", "e2e-deploy"), ("statefulset", "e2e-sts"), ("daemonset", "e2e-ds"), ("batch", "e2e-batch")]
    {
        let audit = replay_paths(&[fixture(&format!("e2e/events-only/{scenario}/audit-batches"))]);
        let events_only = replay_paths(&[fixture(&format!("e2e/events-only/{scenario}/events"))]);
        assert!(audit.engine.writes > 0 && events_only.engine.writes == 0, "{scenario}: one run of each");
        assert!(events_only.decode.objects > 0, "{scenario}: the owner watches' objects were recorded");
        let compared =
            compare(&from_spans(&audit.spans, ns), &from_spans(&events_only.spans, ns)).unwrap_or_else(|problems| {
                panic!("{scenario}: without the webhook, Events landed differently:\n{problems}")
            });
        assert!(compared >= 4, "{scenario}: only {compared} Events compared");
        println!("{scenario}: {compared} Events in the same grouping and nesting");
    }
}

/// The operator chains the real apiserver recorded (the e2e scenario
/// `audit_an_operator_chain_of_custom_resources_with_a_copied_trace_context`):
/// the custom resources' writes carry their objects because their group is in
/// the policy's custom-resource rule. Chain 1 copies an `uber-trace-id` down
/// and its ChildA has no owner reference: its parent is the Head's create
/// because it set the same context the Head's create set. Chain 2 has no
/// context and owner references all the way down: the same nesting.
#[test]
fn an_operator_chain_follows_the_trace_context_each_operator_copied() {
    let all = replay("operator");
    let spans = Spans(&all);
    for (run, with_context) in [(1, true), (2, false)] {
        let head = spans.intent(&format!("create heads e2e-op/h{run}"));
        let carried = with_context.then_some("4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(head.attr_str("kausal.trace_context.trace_id"), carried, "run {run}");
        let child = spans.one("the ChildA create", |s| s.name == format!("create childas e2e-op/c{run}"));
        assert_parent(&spans, child, head);
        assert_eq!(child.actor, "e2e-op/head-controller");
        let found_by = with_context.then_some("trace-context");
        assert_eq!(child.attr_str("kausal.parent.found_by"), found_by, "run {run}");
        let deploy = spans.one("the Deployment create", |s| s.name == format!("create deployments e2e-op/web-{run}"));
        assert_parent(&spans, deploy, child);
        let rs = write(&spans, "create", "replicasets", "e2e-op", &format!("web-{run}-"));
        assert_eq!(rs.len(), 1, "run {run}");
        assert_parent(&spans, rs[0], deploy);
        let pods = write(&spans, "create", "pods", "e2e-op", &format!("web-{run}-"));
        assert_eq!(pods.len(), 1, "run {run}");
        assert_parent(&spans, pods[0], rs[0]);
    }
}

/// The operator fixture replayed with `--adopt-trace-context`.
fn replay_operator_adopted() -> kausal::replay::ReplayResult {
    let config = kausal::core::CoreConfig { adopt_trace_context: true, ..Default::default() };
    kausal::replay::run(
        &common::inputs(&[fixture("e2e/operator")]),
        kausal::decode::DecodeOptions::default(),
        config,
        false,
    )
}

/// With `--adopt-trace-context`, the carried span (the CI run's, the
/// webhook's) is the Head intent's parent, and the operator chain and its
/// rollout are in that span's trace: the picture in the README.
#[test]
fn adopted_the_operator_chain_is_inside_the_carried_trace() {
    let result = replay_operator_adopted();
    let spans = Spans(&result.spans);
    let head = spans.one("the Head create", |s| s.name == "create heads e2e-op/h1");
    assert_eq!(hex::encode(head.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(head.parent_span_id.map(hex::encode).as_deref(), Some("00f067aa0ba902b7"));
    let pod = spans.one("the pod", |s| s.name.starts_with("create pods e2e-op/web-1-"));
    assert_eq!(pod.trace_id, head.trace_id, "the rollout is in the carried trace");
    let unannotated = spans.one("the second Head create", |s| s.name == "create heads e2e-op/h2");
    assert_ne!(unannotated.trace_id, head.trace_id, "a Head without a context keeps its own trace");
}

/// The README's picture of a rollout inside a carried trace is the replay's
/// own output.
#[test]
fn the_readme_shows_the_operator_chain_inside_the_carried_trace_as_the_replay_prints_it() {
    let trace = "trace 4bf92f3577b34da6a3ce929d0e0e4736";
    let (shown, printed) =
        (common::readme_block(trace), common::rendered_trace(&replay_operator_adopted().spans, trace));
    assert_eq!(shown, printed, "README.md's adopted-trace picture differs from the replay's output");
    assert!(printed.contains("span 00f067aa0ba902b7 (outside kausal, from uber-trace-id)"));
}

/// CAUSALITY.md: repeats of an Event (the kubelet's `BackOff`, probe
/// failures, the `Pulled`/`Created`/`Started` of each restart) are span
/// events on its first span, not new spans, while it is open (60 s in a
/// replay, longer than any of these recordings' repeats come after their
/// first report). What is expected is counted from the records: each
/// `patch events` by a kubelet that raised an Event's count is one repeat.
#[test]
fn the_kubelets_repeated_events_are_span_events_on_their_first_span() {
    for scenario in ["kubelet-crash-loop", "kubelet-liveness", "kubelet-readiness-flip", "kubelet-missing-image"] {
        let dir = fixture(&format!("e2e/{scenario}/audit-batches"));
        let mut patches: std::collections::BTreeMap<String, usize> = Default::default();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let list: serde_json::Value =
                serde_json::from_slice(&std::fs::read(entry.unwrap().path()).unwrap()).unwrap();
            for item in list["items"].as_array().unwrap() {
                let by_kubelet = item["user"]["username"].as_str().is_some_and(|u| u.starts_with("system:node:"));
                let counted = item["requestObject"]["count"].as_i64().is_some_and(|c| c > 1);
                if item["stage"] == "ResponseComplete" && item["verb"] == "patch" && by_kubelet && counted {
                    *patches.entry(item["objectRef"]["name"].as_str().unwrap().to_owned()).or_default() += 1;
                }
            }
        }
        assert!(!patches.is_empty(), "{scenario}: no repeated Event in the recording: the test proves nothing");
        let all = replay(scenario);
        for (name, repeats) in &patches {
            let spans: Vec<&Span> =
                all.iter().filter(|s| s.attr_str("k8s.event.name") == Some(name.as_str())).collect();
            let [span] = spans.as_slice() else { panic!("{scenario}: {name}: {} spans, expected one", spans.len()) };
            let events = span.events.iter().filter(|e| e.name == "repeat").count();
            assert_eq!(events, *repeats, "{scenario}: {name} ({}): repeats as span events", span.name);
        }
    }
}
