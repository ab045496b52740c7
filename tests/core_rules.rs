//! The causal rules one at a time, on small synthetic inputs driven through the
//! pure engine. Times are explicit: no clock, no I/O.

use kausal::core::ids::Uid;
use kausal::core::record::{
    ContainersReport, Deletion, EndpointMember, EventOrigin, EventRecord, Owner, Record, Regarding, Relations, Verb,
    WriteRecord,
};
use kausal::core::span::{RootKind, Span};
use kausal::core::time::MICROS_PER_SECOND as S;
use kausal::core::{CoreConfig, Engine};

const RS_UID: &str = "00000000-0000-0000-0000-0000000000aa";

fn write(id: &str, user: &str, verb: Verb, resource: &str, name: &str, uid: &str, at: i64) -> WriteRecord {
    WriteRecord {
        audit_id: id.into(),
        verb,
        api_group: "".into(),
        api_version: "v1".into(),
        resource: resource.into(),
        subresource: None,
        namespace: Some("default".into()),
        name: Some(name.into()),
        uid: Some(uid.into()),
        kind: None,
        user: user.into(),
        user_agent: None,
        status_code: if verb == Verb::Create { 201 } else { 200 },
        status_message: None,
        received: at - 1000,
        completed: at,
        generation: None,
        request_generation: None,
        resource_version: None,
        observed_version: None,
        no_op: false,
        deletion: if verb.is_delete() { Deletion::Gone } else { Deletion::None },
        owners: Vec::new(),
        dry_run: false,
        relations: None,
        trace_context: None,
        gitops: None,
    }
}

fn owned_by_rs(mut w: WriteRecord) -> WriteRecord {
    w.owners =
        vec![Owner { kind: "ReplicaSet".into(), name: "rs".into(), uid: Uid::from_text(RS_UID), controller: true }];
    w
}

const RS_CTRL: &str = "system:serviceaccount:kube-system:replicaset-controller";
const GC: &str = "system:serviceaccount:kube-system:generic-garbage-collector";

fn run(records: Vec<Record>) -> Vec<Span> {
    let mut engine = Engine::new(CoreConfig::default());
    records.into_iter().for_each(|r| engine.ingest(r));
    engine.flush();
    engine.drain_spans()
}

fn by_id<'a>(spans: &'a [Span], audit_id: &str) -> &'a Span {
    spans.iter().find(|s| s.attr_str("k8s.audit.id") == Some(audit_id)).unwrap_or_else(|| panic!("no span {audit_id}"))
}

fn parent_id<'a>(spans: &'a [Span], child: &Span) -> Option<&'a str> {
    let p = child.parent_span_id?;
    spans.iter().find(|s| s.span_id == p).and_then(|s| s.attr_str("k8s.audit.id"))
}

fn rs_create() -> Record {
    Record::Write(write("rs-create", "admin", Verb::Create, "replicasets", "rs", RS_UID, 0))
}

#[test]
fn a_replacement_pod_is_caused_by_the_sibling_delete_but_deletes_never_chain() {
    let spans = run(vec![
        rs_create(),
        Record::Write(owned_by_rs(write(
            "pod-a",
            RS_CTRL,
            Verb::Create,
            "pods",
            "a",
            "00000000-0000-0000-0000-00000000000a",
            S,
        ))),
        Record::Write(owned_by_rs(write(
            "pod-c",
            RS_CTRL,
            Verb::Create,
            "pods",
            "c",
            "00000000-0000-0000-0000-00000000000c",
            S + 10,
        ))),
        Record::Write(owned_by_rs(write(
            "delete-a",
            "alice",
            Verb::Delete,
            "pods",
            "a",
            "00000000-0000-0000-0000-00000000000a",
            5 * S,
        ))),
        Record::Write(owned_by_rs(write(
            "pod-b",
            RS_CTRL,
            Verb::Create,
            "pods",
            "b",
            "00000000-0000-0000-0000-00000000000b",
            5 * S + 100,
        ))),
        Record::Write(owned_by_rs(write(
            "delete-c",
            GC,
            Verb::Delete,
            "pods",
            "c",
            "00000000-0000-0000-0000-00000000000c",
            6 * S,
        ))),
    ]);
    let pod_b = by_id(&spans, "pod-b");
    assert_eq!(parent_id(&spans, pod_b), Some("delete-a"), "the replacement belongs to alice's delete");
    let delete_c = by_id(&spans, "delete-c");
    assert_ne!(parent_id(&spans, delete_c), Some("delete-a"), "a delete is never caused by a sibling's delete");
    assert_eq!(parent_id(&spans, delete_c), Some("pod-c"), "the most recent trigger on the pod itself");
}

#[test]
fn a_controller_write_outside_the_window_starts_its_own_trace() {
    let spans = run(vec![
        rs_create(),
        Record::Write(owned_by_rs(write(
            "late",
            RS_CTRL,
            Verb::Create,
            "pods",
            "x",
            "00000000-0000-0000-0000-000000000001",
            31 * S,
        ))),
    ]);
    let late = by_id(&spans, "late");
    assert_eq!(late.parent_span_id, None);
    assert_eq!(late.root, Some(RootKind::ControllerInitiated));
    assert_eq!(late.attr_str("kausal.root"), Some("controller"));
}

#[test]
fn a_delete_in_progress_stays_a_trigger_until_the_object_is_gone() {
    let pod = "00000000-0000-0000-0000-000000000002";
    let mut graceful = write("graceful", "bob", Verb::Delete, "pods", "p", pod, S);
    graceful.deletion = Deletion::InProgress;
    let podgc = "system:serviceaccount:kube-system:pod-garbage-collector";
    let spans = run(vec![
        Record::Write(write("create", "bob", Verb::Create, "pods", "p", pod, 0)),
        Record::Write(graceful),
        Record::Write(write("force", podgc, Verb::Delete, "pods", "p", pod, 300 * S)),
        Record::Write(write("after-gone", podgc, Verb::Delete, "pods", "p", pod, 340 * S)),
    ]);
    assert_eq!(parent_id(&spans, by_id(&spans, "force")), Some("graceful"), "5 minutes later, still the cause");
    // The force delete made the pod gone: 40 s later (outside the window)
    // nothing is active any more.
    assert_eq!(
        by_id(&spans, "after-gone").root,
        Some(RootKind::ControllerInitiated),
        "gone objects keep no active delete"
    );
}

#[test]
fn failed_and_dry_run_writes_are_spans_but_never_triggers() {
    let mut failed = write("failed", "admin", Verb::Create, "replicasets", "rs", RS_UID, 0);
    failed.status_code = 409;
    let mut dry = write("dry", "admin", Verb::Update, "replicasets", "rs", RS_UID, S);
    dry.dry_run = true;
    let spans = run(vec![
        Record::Write(failed),
        Record::Write(dry),
        Record::Write(owned_by_rs(write(
            "pod",
            RS_CTRL,
            Verb::Create,
            "pods",
            "x",
            "00000000-0000-0000-0000-000000000003",
            2 * S,
        ))),
    ]);
    assert!(matches!(by_id(&spans, "failed").status, kausal::core::span::SpanStatus::Error(_)));
    let dry = by_id(&spans, "dry");
    assert_eq!(dry.attr("k8s.dry_run"), Some(&true.into()));
    assert_eq!(by_id(&spans, "pod").root, Some(RootKind::ControllerInitiated), "neither write can cause the pod");
}

#[test]
fn arrival_order_within_the_settle_delay_does_not_matter() {
    let records = vec![
        rs_create(),
        Record::Write(owned_by_rs(write(
            "p1",
            RS_CTRL,
            Verb::Create,
            "pods",
            "a",
            "00000000-0000-0000-0000-000000000004",
            S / 2,
        ))),
        Record::Write(owned_by_rs(write(
            "p2",
            RS_CTRL,
            Verb::Create,
            "pods",
            "b",
            "00000000-0000-0000-0000-000000000005",
            S,
        ))),
    ];
    let mut reversed = records.clone();
    reversed.reverse();
    let in_order = {
        let mut e = Engine::new(CoreConfig::default());
        for r in records {
            e.ingest(r);
            e.advance(None);
        }
        e.flush();
        e.drain_spans()
    };
    let mut e = Engine::new(CoreConfig::default());
    for r in reversed {
        e.ingest(r);
        e.advance(None);
    }
    e.flush();
    assert_eq!(e.drain_spans(), in_order);
    assert_eq!(parent_id(&in_order, by_id(&in_order, "p2")), Some("rs-create"));
}

#[test]
fn a_resent_write_is_dropped_as_a_duplicate() {
    let mut e = Engine::new(CoreConfig::default());
    e.ingest(rs_create());
    e.ingest(rs_create());
    e.flush();
    assert_eq!(e.drain_spans().len(), 1);
    assert_eq!(e.stats().duplicate_writes, 1);
}

fn event(count: i64, at: i64, coarse: bool) -> EventRecord {
    EventRecord {
        uid: Some("00000000-0000-0000-0000-0000000000ee".into()),
        namespace: "default".into(),
        name: "rs.1".into(),
        reason: Some("SuccessfulCreate".into()),
        message: Some("Created pod: a".into()),
        event_type: Some("Normal".into()),
        action: None,
        reporter: Some("replicaset-controller".into()),
        reporter_host: None,
        regarding: Regarding {
            kind: Some("ReplicaSet".into()),
            namespace: Some("default".into()),
            name: Some("rs".into()),
            uid: Some(RS_UID.into()),
            ..Regarding::default()
        },
        time: at,
        coarse_time: coarse,
        count,
        origin: EventOrigin::Object,
    }
}

/// A kubelet's Event names its node as its source host: the span says where
/// it happened as `k8s.node.name`; for an Event about the node itself, once.
#[test]
fn a_kubelet_event_names_its_node() {
    let on = |kind: &str, name: &str, reason: &str| {
        let mut e = event(1, 3 * S, false);
        e.name = format!("{name}.{reason}").into();
        e.uid = Some(format!("00000000-0000-0000-0000-0000000000{}", if kind == "Node" { "e1" } else { "e2" }).into());
        e.reason = Some(reason.into());
        e.reporter = Some("kubelet".into());
        e.reporter_host = Some("node-a".into());
        e.regarding = Regarding { kind: Some(kind.into()), name: Some(name.into()), ..Regarding::default() };
        Record::Event(e)
    };
    let spans = run(vec![on("Pod", "web-1", "Started"), on("Node", "node-a", "NodeReady")]);
    let node_names = |reason: &str| {
        let span = spans.iter().find(|s| s.attr_str("k8s.event.reason") == Some(reason)).unwrap();
        span.attributes.iter().filter(|(k, _)| *k == "k8s.node.name").count()
    };
    let started = spans.iter().find(|s| s.attr_str("k8s.event.reason") == Some("Started")).unwrap();
    assert_eq!(started.attr_str("k8s.node.name"), Some("node-a"));
    assert_eq!(node_names("Started"), 1);
    assert_eq!(node_names("NodeReady"), 1);
}

#[test]
fn a_whole_second_event_matches_a_write_later_in_the_same_second() {
    let spans = run(vec![
        rs_create(),
        Record::Write(owned_by_rs(write(
            "pod-a",
            RS_CTRL,
            Verb::Create,
            "pods",
            "a",
            "00000000-0000-0000-0000-00000000000a",
            10 * S + 700_000,
        ))),
        Record::Event(event(1, 10 * S, true)),
    ]);
    let ev = spans.iter().find(|s| s.attr_str("k8s.event.reason") == Some("SuccessfulCreate")).unwrap();
    assert_eq!(parent_id(&spans, ev), Some("pod-a"), "firstTimestamp 10s covers [10s, 11s)");
}

#[test]
fn event_repeats_become_span_events_then_repeat_spans() {
    let mut e = Engine::new(CoreConfig::default());
    e.ingest(rs_create());
    e.ingest(Record::Event(event(1, S, false)));
    e.ingest(Record::Event(event(2, 20 * S, false)));
    e.advance(None);
    e.ingest(Record::Event(event(3, 200 * S, false)));
    e.advance(Some(400 * S));
    e.flush();
    let spans = e.drain_spans();
    let events: Vec<&Span> = spans.iter().filter(|s| s.attr_str("k8s.event.reason").is_some()).collect();
    assert_eq!(events.len(), 2, "the original span and one repeat span");
    let original = events.iter().find(|s| s.links.is_empty()).unwrap();
    assert_eq!(original.events.len(), 1, "the count-2 repeat is a span event");
    assert_eq!(original.attr("k8s.event.count"), Some(&2i64.into()));
    let repeat = events.iter().find(|s| !s.links.is_empty()).unwrap();
    assert_eq!(repeat.links[0].span_id, original.span_id);
    assert_eq!(repeat.parent_span_id, original.parent_span_id);
    assert_eq!(e.stats().event_repeats, 2);
}

/// A durable source that needs its entries back closes the lingering spans
/// early: the original goes out at once, and the repeat that would have been
/// a span event on it becomes a repeat span linked to it. Nothing is lost.
#[test]
fn an_early_close_turns_a_later_repeat_into_a_linked_repeat_span() {
    let mut e = Engine::new(CoreConfig::default());
    e.ingest(rs_create());
    e.ingest(Record::Event(event(1, S, false)));
    e.advance(Some(10 * S));
    assert!(e.emitted_through() < S, "the open span holds its Event back");
    assert_eq!(e.close_lingering_events(), 1);
    assert!(e.emitted_through() >= S, "closed early, the Event no longer holds anything back");
    let first = e.drain_spans();
    let original = first.iter().find(|s| s.attr_str("k8s.event.reason").is_some()).expect("the original is out");
    assert!(original.events.is_empty());
    // Count 2 arrives within what would have been the linger.
    e.ingest(Record::Event(event(2, 20 * S, false)));
    e.flush();
    let later = e.drain_spans();
    let repeat = later.iter().find(|s| s.attr_str("k8s.event.reason").is_some()).expect("the repeat has a span");
    assert_eq!(repeat.links[0].span_id, original.span_id);
    assert_eq!((repeat.trace_id, repeat.parent_span_id), (original.trace_id, original.parent_span_id));
    assert_eq!(e.stats().events_closed_early, 1);
}

#[test]
fn an_object_known_only_from_an_event_is_reported_and_a_lookup_teaches_the_graph_its_owner() {
    use kausal::core::record::ObservedObject;
    const POD_UID: &str = "00000000-0000-0000-0000-0000000000p1";
    let mut engine = Engine::new(CoreConfig { report_unknown_objects: true, ..CoreConfig::default() });
    let pulled = EventRecord {
        uid: Some("e1".into()),
        namespace: "default".into(),
        name: "old.pulled".into(),
        reason: Some("Pulled".into()),
        message: Some("Container image pulled".into()),
        event_type: Some("Normal".into()),
        action: None,
        reporter: Some("kubelet".into()),
        reporter_host: Some("node-1".into()),
        regarding: Regarding {
            kind: Some("Pod".into()),
            api_version: Some("v1".into()),
            namespace: Some("default".into()),
            name: Some("old".into()),
            uid: Some(POD_UID.into()),
            field_path: None,
        },
        time: S,
        coarse_time: false,
        count: 1,
        origin: EventOrigin::Object,
    };
    engine.ingest(Record::Event(pulled));
    engine.flush();
    let unknown = engine.drain_unknown_objects();
    assert_eq!(unknown.len(), 1);
    assert_eq!((&*unknown[0].kind, &*unknown[0].name, &*unknown[0].uid), ("Pod", "old", POD_UID));
    assert!(!engine.knows_object(POD_UID));

    // The lookup says the pod belongs to the ReplicaSet; a person then deletes
    // that ReplicaSet, and the garbage collector's delete of the pod (logged
    // without owners) must land in the person's trace through that owner.
    engine.observe(ObservedObject {
        uid: POD_UID.into(),
        resource: "pods".into(),
        kind: Some("Pod".into()),
        namespace: "default".into(),
        name: "old".into(),
        controller_owner: Some(Owner {
            kind: "ReplicaSet".into(),
            name: "rs".into(),
            uid: Uid::from_text(RS_UID),
            controller: true,
        }),
    });
    assert!(engine.knows_object(POD_UID));
    engine.ingest(Record::Write(write("rs-delete", "alice", Verb::Delete, "replicasets", "rs", RS_UID, 10 * S)));
    engine.ingest(Record::Write(write("pod-gc", GC, Verb::Delete, "pods", "old", POD_UID, 11 * S)));
    engine.flush();
    let spans = engine.drain_spans();
    assert_eq!(parent_id(&spans, by_id(&spans, "pod-gc")), Some("rs-delete"));
    assert!(engine.drain_unknown_objects().is_empty(), "writes do not report unknown objects");
}

/// Seen in the e2e restart scenario: the metadata lookup of a ReplicaSet ran
/// while the deployment controller's scale-up of it still sat in the settle
/// buffer. The lookup must not hide that write's spec change.
#[test]
fn a_lookup_that_lands_before_a_buffered_write_does_not_hide_its_spec_change() {
    use kausal::core::record::ObservedObject;
    const DEPLOY: &str = "system:serviceaccount:kube-system:deployment-controller";
    let mut engine = Engine::new(CoreConfig { report_unknown_objects: true, ..CoreConfig::default() });
    let mut scale_up = write("rs-scale-up", DEPLOY, Verb::Update, "replicasets", "rs", RS_UID, 10 * S);
    scale_up.request_generation = Some(1);
    scale_up.generation = Some(2);
    engine.ingest(Record::Write(scale_up));
    engine.observe(ObservedObject {
        uid: RS_UID.into(),
        resource: "replicasets".into(),
        kind: Some("ReplicaSet".into()),
        namespace: "default".into(),
        name: "rs".into(),
        controller_owner: None,
    });
    engine.ingest(Record::Write(owned_by_rs(write(
        "pod-new",
        RS_CTRL,
        Verb::Create,
        "pods",
        "new",
        "00000000-0000-0000-0000-0000000000n1",
        10 * S + 5000,
    ))));
    engine.flush();
    let spans = engine.drain_spans();
    assert_eq!(parent_id(&spans, by_id(&spans, "pod-new")), Some("rs-scale-up"));
}

// ---- relations beyond ownerReferences, status writes, time triggers -------

const DS_CTRL: &str = "system:serviceaccount:kube-system:daemon-set-controller";
const EP_CTRL: &str = "system:serviceaccount:kube-system:endpoint-controller";
const SLICE_CTRL: &str = "system:serviceaccount:kube-system:endpointslice-controller";
const POD_GC: &str = "system:serviceaccount:kube-system:pod-garbage-collector";

fn owned_by(mut w: WriteRecord, kind: &str, name: &str, uid: &str) -> WriteRecord {
    w.owners = vec![Owner { kind: kind.into(), name: name.into(), uid: Uid::from_text(uid), controller: true }];
    w
}

fn with_relations(mut w: WriteRecord, relations: Relations) -> WriteRecord {
    w.relations = Some(Box::new(relations));
    w
}

fn on_node(w: WriteRecord, node: &str) -> WriteRecord {
    with_relations(w, Relations { node_name: Some(node.into()), ..Relations::default() })
}

fn listing(w: WriteRecord, service: Option<&str>, members: &[(&str, u64)]) -> WriteRecord {
    let mut members: Vec<EndpointMember> =
        members.iter().map(|(uid, state)| EndpointMember { pod: Uid::from_text(uid), state: *state }).collect();
    members.sort();
    with_relations(
        w,
        Relations { service_name: service.map(Into::into), endpoint_members: Some(members), ..Relations::default() },
    )
}

fn status(mut w: WriteRecord) -> WriteRecord {
    w.subresource = Some("status".into());
    w
}

fn cluster_scoped(mut w: WriteRecord) -> WriteRecord {
    w.namespace = None;
    w
}

#[test]
fn a_status_write_reports_on_children_so_a_persons_pod_delete_owns_it() {
    const DEPLOY_UID: &str = "00000000-0000-0000-0000-0000000000d1";
    const DEPLOY: &str = "system:serviceaccount:kube-system:deployment-controller";
    let pod = "00000000-0000-0000-0000-00000000000a";
    let rs = |w| owned_by(w, "Deployment", "web", DEPLOY_UID);
    let spans = run(vec![
        Record::Write(write("deploy-create", "admin", Verb::Create, "deployments", "web", DEPLOY_UID, 0)),
        Record::Write(rs(write("rs-create", DEPLOY, Verb::Create, "replicasets", "rs", RS_UID, S / 10))),
        Record::Write(owned_by_rs(write("pod-a", RS_CTRL, Verb::Create, "pods", "a", pod, S / 5))),
        Record::Write(rs(status(write("rs-status-1", RS_CTRL, Verb::Update, "replicasets", "rs", RS_UID, S / 2)))),
        Record::Write(owned_by_rs(write("alice-delete", "alice", Verb::Delete, "pods", "a", pod, 5 * S))),
        Record::Write(owned_by_rs(write(
            "pod-b",
            RS_CTRL,
            Verb::Create,
            "pods",
            "b",
            "00000000-0000-0000-0000-00000000000b",
            5 * S + 1000,
        ))),
        Record::Write(rs(status(write(
            "rs-status-2",
            RS_CTRL,
            Verb::Update,
            "replicasets",
            "rs",
            RS_UID,
            5 * S + 2000,
        )))),
    ]);
    assert_eq!(parent_id(&spans, by_id(&spans, "rs-status-1")), Some("pod-a"), "the latest child create");
    let replacement = by_id(&spans, "pod-b");
    assert_eq!(parent_id(&spans, replacement), Some("alice-delete"));
    let status_2 = by_id(&spans, "rs-status-2");
    assert_eq!(parent_id(&spans, status_2), Some("pod-b"));
    assert_eq!(
        status_2.trace_id,
        by_id(&spans, "alice-delete").trace_id,
        "in alice's trace, not the Deployment create's"
    );
}

#[test]
fn endpoints_follow_their_service_and_the_pod_writes_that_change_the_listing() {
    const SVC: &str = "00000000-0000-0000-0000-0000000000c1";
    const EP: &str = "00000000-0000-0000-0000-0000000000e1";
    const SLICE: &str = "00000000-0000-0000-0000-0000000000e2";
    let (a, b) = ("00000000-0000-0000-0000-00000000000a", "00000000-0000-0000-0000-00000000000b");
    let ep = |id: &str, verb, at, members: &[(&str, u64)]| {
        listing(write(id, EP_CTRL, verb, "endpoints", "web", EP, at), None, members)
    };
    let slice = |id: &str, verb, at, members: &[(&str, u64)]| {
        listing(
            owned_by(write(id, SLICE_CTRL, verb, "endpointslices", "web-x1", SLICE, at), "Service", "web", SVC),
            Some("web"),
            members,
        )
    };
    let spans = run(vec![
        Record::Write(write("svc-create", "admin", Verb::Create, "services", "web", SVC, 0)),
        Record::Write(ep("ep-create", Verb::Create, S / 10, &[])),
        Record::Write(slice("slice-create", Verb::Create, S / 10 + 1, &[])),
        Record::Write(owned_by_rs(write("pod-a", RS_CTRL, Verb::Create, "pods", "a", a, S))),
        Record::Write(owned_by_rs(write("pod-b", RS_CTRL, Verb::Create, "pods", "b", b, S + 1))),
        // Pod a gets an IP and becomes ready: both lists add it.
        Record::Write(status(write("a-ready", "system:node:n1", Verb::Patch, "pods", "a", a, 10 * S))),
        Record::Write(ep("ep-add-a", Verb::Update, 10 * S + 100, &[(a, 1)])),
        Record::Write(slice("slice-add-a", Verb::Update, 10 * S + 101, &[(a, 1)])),
        // An unrelated later write on the listed pod a, then b becomes ready: b's write is the cause.
        Record::Write(status(write("b-ready", "system:node:n1", Verb::Patch, "pods", "b", b, 20 * S))),
        Record::Write(write("a-relabel", "alice", Verb::Patch, "pods", "a", a, 20 * S + 50)),
        Record::Write(ep("ep-add-b", Verb::Update, 20 * S + 100, &[(a, 1), (b, 1)])),
        // A person deletes pod a: it leaves the lists.
        Record::Write(owned_by_rs(write("alice-delete-a", "alice", Verb::Delete, "pods", "a", a, 25 * S))),
        Record::Write(ep("ep-remove-a", Verb::Update, 25 * S + 100, &[(b, 1)])),
        Record::Write(slice("slice-remove-a", Verb::Update, 25 * S + 101, &[(b, 1)])),
    ]);
    assert_eq!(parent_id(&spans, by_id(&spans, "ep-create")), Some("svc-create"), "same namespace and name");
    assert_eq!(parent_id(&spans, by_id(&spans, "slice-create")), Some("svc-create"));
    assert_eq!(parent_id(&spans, by_id(&spans, "ep-add-a")), Some("a-ready"), "not the Endpoints' own create");
    assert_eq!(parent_id(&spans, by_id(&spans, "slice-add-a")), Some("a-ready"), "not the slice's own create");
    assert_eq!(parent_id(&spans, by_id(&spans, "ep-add-b")), Some("b-ready"), "only pods whose listing changed");
    let removal = by_id(&spans, "ep-remove-a");
    assert_eq!(parent_id(&spans, removal), Some("alice-delete-a"));
    assert_eq!(removal.trace_id, by_id(&spans, "alice-delete-a").trace_id);
    assert_eq!(parent_id(&spans, by_id(&spans, "slice-remove-a")), Some("alice-delete-a"));
}

/// A write requested at `received` and answered at `completed`.
fn requested_and_answered(received: i64, completed: i64, mut w: WriteRecord) -> Record {
    w.received = received;
    w.completed = completed;
    Record::Write(w)
}

/// The endpoint controllers act on a Service's commit, which they see by
/// watch before the apiserver has answered the person who created it: a
/// recorded run (the e2e service scenario) had `create endpoints e2e-svc/web`
/// requested 3 ms before the Service create's `stageTimestamp`, and answered
/// before it too. The create is still the cause: it was requested first, and
/// the listing is named after it (CAUSALITY.md: an Endpoints create is under
/// its Service's create).
#[test]
fn a_listing_created_before_its_services_create_was_answered_is_still_under_it() {
    const SVC: &str = "00000000-0000-0000-0000-0000000000c1";
    const EP: &str = "00000000-0000-0000-0000-0000000000e1";
    const SLICE: &str = "00000000-0000-0000-0000-0000000000e2";
    let spans = run(vec![
        // The Service create: requested at 0, answered at 18.4 ms.
        requested_and_answered(0, 18_400, write("svc-create", "admin", Verb::Create, "services", "web", SVC, 0)),
        // The Endpoints create: requested at 15.4 ms, answered at 16.9 ms, before the Service's answer.
        requested_and_answered(
            15_400,
            16_900,
            listing(write("ep-create", EP_CTRL, Verb::Create, "endpoints", "web", EP, 0), None, &[]),
        ),
        // The slice names its Service by owner and label, answered after it.
        requested_and_answered(
            15_500,
            20_000,
            listing(
                owned_by(
                    write("slice-create", SLICE_CTRL, Verb::Create, "endpointslices", "web-x1", SLICE, 0),
                    "Service",
                    "web",
                    SVC,
                ),
                Some("web"),
                &[],
            ),
        ),
        // A second Service, and an Endpoints create of its name requested
        // before the Service was: not its effect.
        requested_and_answered(
            0,
            18_400,
            write("svc2-create", "admin", Verb::Create, "services", "web2", "00000000-0000-0000-0000-0000000000c2", 0),
        ),
        requested_and_answered(
            -5_000,
            17_000,
            listing(
                write(
                    "early-ep",
                    EP_CTRL,
                    Verb::Create,
                    "endpoints",
                    "web2",
                    "00000000-0000-0000-0000-0000000000e3",
                    0,
                ),
                None,
                &[],
            ),
        ),
    ]);
    assert_eq!(parent_id(&spans, by_id(&spans, "ep-create")), Some("svc-create"), "same namespace and name");
    assert_eq!(parent_id(&spans, by_id(&spans, "slice-create")), Some("svc-create"));
    assert_eq!(by_id(&spans, "ep-create").trace_id, by_id(&spans, "svc-create").trace_id);
    assert_eq!(parent_id(&spans, by_id(&spans, "early-ep")), None, "requested before the Service");
}

/// The same with a scale, as the e2e watch scenario saw it once after a
/// restart: the deployment controller read the new `spec.replicas` from its
/// watch, updated the ReplicaSet (its `desired-replicas` annotation says 3)
/// and was answered before the apiserver answered the person's
/// `patch deployments/scale` to 3. The scale is still the cause: it was
/// requested first and the update carries its count (CAUSALITY.md: a
/// ReplicaSet's scaling follows the Deployment's spec write). A write
/// requested after the update cannot be its cause however it was answered,
/// and a pod's binding answered after it is not a trigger of the update.
#[test]
fn a_replicaset_update_answered_before_the_scale_that_caused_it_is_still_under_it() {
    const DEPLOY: &str = "00000000-0000-0000-0000-0000000000d1";
    const DEPLOY_CTRL: &str = "system:serviceaccount:kube-system:deployment-controller";
    let desired = |n: i64| Relations { desired_replicas: Some(n), ..Relations::default() };
    let mut scale = write("scale", "admin", Verb::Patch, "deployments", "web", DEPLOY, 0);
    scale.subresource = Some("scale".into());
    let mut rs_update = owned_by(
        write("rs-update", DEPLOY_CTRL, Verb::Update, "replicasets", "web-1", RS_UID, 0),
        "Deployment",
        "web",
        DEPLOY,
    );
    rs_update.relations = Some(Box::new(Relations { owner_desired_replicas: Some(3), ..Relations::default() }));
    let mut later_scale = write("later-scale", "admin", Verb::Patch, "deployments", "web", DEPLOY, 0);
    later_scale.subresource = Some("scale".into());
    let spans = run(vec![
        // The scale: requested at 0, committed, answered only at 40 ms.
        requested_and_answered(0, 40_000, with_relations(scale, desired(3))),
        // The update: requested at 10 ms, answered at 20 ms.
        requested_and_answered(10_000, 20_000, rs_update),
        // Another scale to 3, requested after the update: not its cause.
        requested_and_answered(15_000, 30_000, with_relations(later_scale, desired(3))),
    ]);
    assert_eq!(parent_id(&spans, by_id(&spans, "rs-update")), Some("scale"));
    assert_eq!(by_id(&spans, "rs-update").trace_id, by_id(&spans, "scale").trace_id);
}

#[test]
fn a_daemonset_pod_for_a_new_node_belongs_to_the_node_and_pod_gc_to_its_removal() {
    const DS_UID: &str = "00000000-0000-0000-0000-0000000000d5";
    const NODE_C: &str = "00000000-0000-0000-0000-0000000000c3";
    let (pod_a, pod_c) = ("00000000-0000-0000-0000-0000000000a1", "00000000-0000-0000-0000-0000000000a3");
    let ds_pod = |id: &str, name: &str, uid: &str, node: &str, at| {
        on_node(owned_by(write(id, DS_CTRL, Verb::Create, "pods", name, uid, at), "DaemonSet", "agent", DS_UID), node)
    };
    let mut node_delete =
        cluster_scoped(write("node-c-delete", "admin", Verb::Delete, "nodes", "node-c", NODE_C, 100 * S));
    node_delete.deletion = Deletion::Gone;
    let spans = run(vec![
        Record::Write(cluster_scoped(write(
            "node-a-create",
            "system:node:node-a",
            Verb::Create,
            "nodes",
            "node-a",
            "00000000-0000-0000-0000-0000000000c1",
            0,
        ))),
        Record::Write(write("ds-create", "admin", Verb::Create, "daemonsets", "agent", DS_UID, 10 * S)),
        Record::Write(ds_pod("pod-a", "agent-a", pod_a, "node-a", 10 * S + 100)),
        Record::Write(cluster_scoped(write("node-c-create", "admin", Verb::Create, "nodes", "node-c", NODE_C, 20 * S))),
        Record::Write(ds_pod("pod-c", "agent-c", pod_c, "node-c", 20 * S + 100)),
        Record::Write(node_delete),
        // The pod garbage collector removes the orphan minutes later, outside any window.
        Record::Write(owned_by(
            write("pod-c-gc", POD_GC, Verb::Delete, "pods", "agent-c", pod_c, 400 * S),
            "DaemonSet",
            "agent",
            DS_UID,
        )),
    ]);
    assert_eq!(
        parent_id(&spans, by_id(&spans, "pod-a")),
        Some("ds-create"),
        "the DaemonSet's create, newer than node-a's"
    );
    assert_eq!(
        parent_id(&spans, by_id(&spans, "pod-c")),
        Some("node-c-create"),
        "the new node, not the DaemonSet's last write"
    );
    let gc = by_id(&spans, "pod-c-gc");
    assert_eq!(parent_id(&spans, gc), Some("node-c-delete"), "5 minutes after, still the node's removal");
    assert_eq!(gc.trace_id, by_id(&spans, "node-c-delete").trace_id);
}

#[test]
fn only_the_pod_garbage_collector_is_blamed_on_a_removed_node() {
    const NODE: &str = "00000000-0000-0000-0000-0000000000c3";
    let pod = "00000000-0000-0000-0000-0000000000a3";
    let mut node_delete = cluster_scoped(write("node-delete", "admin", Verb::Delete, "nodes", "node-c", NODE, 10 * S));
    node_delete.deletion = Deletion::Gone;
    let spans = run(vec![
        Record::Write(cluster_scoped(write("node-create", "admin", Verb::Create, "nodes", "node-c", NODE, 0))),
        rs_create(),
        Record::Write(on_node(owned_by_rs(write("pod", RS_CTRL, Verb::Create, "pods", "p", pod, S)), "node-c")),
        Record::Write(node_delete),
        // A person deletes the ReplicaSet before the pod GC's quarantine ends:
        // the garbage collector's pod delete is the person's doing.
        Record::Write(write("rs-delete", "alice", Verb::Delete, "replicasets", "rs", RS_UID, 20 * S)),
        Record::Write(owned_by_rs(write("gc-delete", GC, Verb::Delete, "pods", "p", pod, 20 * S + 500))),
    ]);
    assert_eq!(parent_id(&spans, by_id(&spans, "gc-delete")), Some("rs-delete"));
}

#[test]
fn a_cronjobs_job_is_a_controller_root_linked_to_the_cronjobs_spec_write() {
    const CRON_UID: &str = "00000000-0000-0000-0000-0000000000cc";
    const CRON: &str = "system:serviceaccount:kube-system:cronjob-controller";
    let job = |id: &str, name: &str, uid: &str, at| {
        owned_by(write(id, CRON, Verb::Create, "jobs", name, uid, at), "CronJob", "tick", CRON_UID)
    };
    let spans = run(vec![
        Record::Write(write("cron-create", "admin", Verb::Create, "cronjobs", "tick", CRON_UID, 0)),
        Record::Write(job("job-1", "tick-1", "00000000-0000-0000-0000-0000000000j1", 20 * S)),
        Record::Write(job("job-2", "tick-2", "00000000-0000-0000-0000-0000000000j2", 80 * S)),
    ]);
    for id in ["job-1", "job-2"] {
        let job = by_id(&spans, id);
        assert_eq!(job.parent_span_id, None, "{id}: the clock caused it, inside the window or not");
        assert_eq!(job.root, Some(RootKind::ControllerInitiated));
        let cron = by_id(&spans, "cron-create");
        assert_eq!(job.links.len(), 1, "{id}");
        assert_eq!((job.links[0].span_id, job.links[0].reason.as_str()), (cron.span_id, "scheduled-by"), "{id}");
    }
}

#[test]
fn under_shared_credentials_an_event_finds_its_own_controllers_write() {
    const KCM: &str = "system:kube-controller-manager";
    const UA: &str = "kube-controller-manager/v1.20.2 (linux/amd64) kubernetes/faecb19/";
    let pod = "00000000-0000-0000-0000-00000000000a";
    let mut by_rs = owned_by_rs(write("pod-create", KCM, Verb::Create, "pods", "a", pod, S));
    by_rs.user_agent = Some(format!("{UA}replicaset-controller").into());
    let mut by_gc = owned_by_rs(write("gc-patch", KCM, Verb::Patch, "pods", "a", pod, 2 * S));
    by_gc.user_agent = Some(format!("{UA}generic-garbage-collector").into());
    let mut created = event(1, 3 * S, false);
    created.message = Some("Created pod: a".into());
    let spans = run(vec![rs_create(), Record::Write(by_rs), Record::Write(by_gc), Record::Event(created)]);
    assert_eq!(by_id(&spans, "pod-create").actor, "replicaset-controller");
    assert_eq!(by_id(&spans, "gc-patch").actor, "generic-garbage-collector");
    let ev = spans.iter().find(|s| s.attr_str("k8s.event.reason") == Some("SuccessfulCreate")).unwrap();
    assert_eq!(parent_id(&spans, ev), Some("pod-create"), "the replicaset controller's write, not the newer GC patch");
}

#[test]
fn next_due_says_when_the_oldest_record_settles() {
    let mut engine = Engine::new(CoreConfig::default());
    let settle = engine.config().settle;
    assert_eq!(engine.next_due(), None, "nothing buffered, nothing due");
    engine.ingest(Record::Write(write(
        "b",
        "admin",
        Verb::Create,
        "pods",
        "b",
        "00000000-0000-0000-0000-00000000000b",
        5 * S,
    )));
    engine.ingest(Record::Write(write(
        "a",
        "admin",
        Verb::Create,
        "pods",
        "a",
        "00000000-0000-0000-0000-00000000000a",
        4 * S,
    )));
    // A write is ordered by the earliest it can have been committed: its
    // request, 1 ms before its answer here (see `write`).
    let committed = |answered: i64| answered - 1000;
    assert_eq!(engine.next_due(), Some(committed(4 * S) + settle));
    engine.advance(Some(committed(4 * S) + settle - 1));
    assert!(engine.drain_spans().is_empty(), "one microsecond early");
    engine.advance(Some(committed(4 * S) + settle));
    assert_eq!(engine.drain_spans().len(), 1);
    assert_eq!(engine.next_due(), Some(committed(5 * S) + settle));
}

/// A trace context counts only on the write that set or changed it: an
/// annotation the object kept from an earlier write is not this write's.
#[test]
fn a_trace_context_counts_on_the_write_that_set_or_changed_it() {
    use kausal::core::record::CarriedContext;
    use kausal::core::span::LinkReason;
    let context = |n: u8, in_request: bool| {
        Some(Box::new(CarriedContext {
            annotation: "tracing.k8s.io/traceparent".into(),
            trace_id: [n; 16],
            span_id: [n; 8],
            in_request,
            fingerprint: u64::from(n),
        }))
    };
    let uid = "00000000-0000-0000-0000-0000000000d1";
    let with = |mut w: WriteRecord, c| {
        w.trace_context = c;
        Record::Write(w)
    };
    let spans = run(vec![
        with(write("c", "ci-bot", Verb::Create, "deployments", "web", uid, S), context(1, true)),
        // kept, unchanged: a person's later patch of something else
        with(write("p1", "alice", Verb::Patch, "deployments", "web", uid, 2 * S), context(1, false)),
        // a patch that sends the same value again changes nothing either
        with(write("p2", "ci-bot", Verb::Patch, "deployments", "web", uid, 3 * S), context(1, true)),
        // a new run sets a new value
        with(write("p3", "ci-bot", Verb::Patch, "deployments", "web", uid, 4 * S), context(2, true)),
    ]);
    let linked = |id: &str| {
        let span = spans.iter().find(|s| s.attr_str("k8s.audit.id") == Some(id)).unwrap();
        span.links.iter().find(|l| l.reason == LinkReason::TraceContext).map(|l| l.span_id[0])
    };
    assert_eq!(linked("c"), Some(1), "the create set it");
    assert_eq!(linked("p1"), None, "kept from the create");
    assert_eq!(linked("p2"), None, "sent again unchanged");
    assert_eq!(linked("p3"), Some(2), "changed");
}

/// An operator chain in the kubevirt convention: the Head's controller
/// copies the Head's trace context onto the ChildA it creates (without an
/// owner reference, so the rules alone find no cause), and ChildA's
/// controller copies it onto a Deployment. That Deployment's owner reference
/// names another object, `other`, just created by a person (the rules would
/// answer its create). The copies are the evidence: each hangs under the
/// write that set the same context before it, and where the rules disagree
/// their answer stays as a `linker-rule` link.
#[test]
fn a_trace_context_an_operator_copied_names_the_write_it_acted_on() {
    use kausal::core::span::LinkReason;
    let (head, child, deploy, other) = (
        "00000000-0000-0000-0000-0000000000e1",
        "00000000-0000-0000-0000-0000000000e2",
        "00000000-0000-0000-0000-0000000000e3",
        "00000000-0000-0000-0000-0000000000e4",
    );
    let head_ctrl = "system:serviceaccount:ops:head-controller";
    let child_ctrl = "system:serviceaccount:ops:childa-controller";
    let mut deployment = write("deploy", child_ctrl, Verb::Create, "deployments", "web", deploy, 2 * S);
    deployment.owners =
        vec![Owner { kind: "Other".into(), name: "o".into(), uid: Uid::from_text(other), controller: true }];
    let spans = run(vec![
        with_context(write("head", "alice", Verb::Create, "heads", "h", head, 0), 7),
        with_context(write("child", head_ctrl, Verb::Create, "childas", "c", child, S), 7),
        Record::Write(write("other", "alice", Verb::Create, "others", "o", other, S + S / 2)),
        with_context(deployment, 7),
        // The Head's controller writes the Head's status: it keeps the
        // context, it does not set it, so it is no evidence of anything.
        with_context(write("status", head_ctrl, Verb::Update, "heads", "h", head, 3 * S), 7),
    ]);
    let child_span = by_id(&spans, "child");
    assert_eq!(parent_id(&spans, child_span), Some("head"), "the copy names the Head's create");
    assert_eq!(child_span.attr_str("kausal.parent.found_by"), Some("trace-context"));
    let deploy_span = by_id(&spans, "deploy");
    assert_eq!(parent_id(&spans, deploy_span), Some("child"), "copied from ChildA, whatever its owner says");
    let rule = deploy_span.links.iter().find(|l| l.reason == LinkReason::LinkerRule).expect("the rules' answer");
    assert_eq!(rule.span_id, by_id(&spans, "other").span_id);
    assert_eq!(deploy_span.trace_id, by_id(&spans, "head").trace_id, "one trace for the operator chain");
    assert_ne!(by_id(&spans, "status").attr_str("kausal.parent.found_by"), Some("trace-context"));
}

/// A CI run that annotates everything it applies with one context: the
/// deployment controller copies the Deployment's annotations onto its
/// ReplicaSet, and the latest object the run set the context on is a
/// Service. The ReplicaSet's owner set it too: the owner's create is the
/// cause, not the Service's.
#[test]
fn a_context_a_ci_run_set_on_many_objects_names_the_copy_s_own_owner() {
    let (deploy, rs, svc) = (
        "00000000-0000-0000-0000-0000000000f1",
        "00000000-0000-0000-0000-0000000000f2",
        "00000000-0000-0000-0000-0000000000f3",
    );
    let mut replica_set = write(
        "rs",
        "system:serviceaccount:kube-system:deployment-controller",
        Verb::Create,
        "replicasets",
        "web-1",
        rs,
        S,
    );
    replica_set.owners =
        vec![Owner { kind: "Deployment".into(), name: "web".into(), uid: Uid::from_text(deploy), controller: true }];
    let spans = run(vec![
        with_context(write("deploy", "ci-bot", Verb::Create, "deployments", "web", deploy, 0), 9),
        with_context(write("svc", "ci-bot", Verb::Create, "services", "web", svc, S / 2), 9),
        with_context(replica_set, 9),
    ]);
    let rs_span = by_id(&spans, "rs");
    assert_eq!(parent_id(&spans, rs_span), Some("deploy"));
    assert!(rs_span.links.iter().all(|l| l.reason != kausal::core::span::LinkReason::LinkerRule));
}

/// `w` with a trace context (fingerprint `n`) its own request set.
fn with_context(mut w: WriteRecord, n: u8) -> Record {
    w.trace_context = Some(Box::new(kausal::core::record::CarriedContext {
        annotation: "uber-trace-id".into(),
        trace_id: [n; 16],
        span_id: [n; 8],
        in_request: true,
        fingerprint: u64::from(n),
    }));
    Record::Write(w)
}

// ---- the kubelet ------------------------------------------------------------

const POD: &str = "00000000-0000-0000-0000-0000000000b1";
const KUBELET: &str = "system:node:node-a";

/// The scheduler's binding of pod `p` at `at`.
fn binding(at: i64) -> Record {
    let mut w = write("bind", "system:kube-scheduler", Verb::Create, "pods", "p", POD, at);
    w.subresource = Some("binding".into());
    Record::Write(w)
}

/// A kubelet status write on pod `p` reporting its containers.
fn kubelet_status(id: &str, at: i64, restarts: i64, terminated: bool) -> Record {
    let containers = Some(ContainersReport { restarts, terminated });
    Record::Write(with_relations(
        status(write(id, KUBELET, Verb::Patch, "pods", "p", POD, at)),
        Relations { containers, ..Relations::default() },
    ))
}

/// The kubelet's registration of its node `node-a` at `at`.
fn node_registration(at: i64) -> WriteRecord {
    cluster_scoped(write("register", KUBELET, Verb::Create, "nodes", "node-a", "node-uid-a", at))
}

fn pod_create() -> Record {
    Record::Write(write("create", "alice", Verb::Create, "pods", "p", POD, 0))
}

/// CAUSALITY.md: a restart hangs under the kubelet's status write that
/// reported the failure it restarts from (the container terminated); the
/// failure itself, the back-off and the rest of the run under the binding.
#[test]
fn a_restart_hangs_under_the_status_write_that_reported_the_failure() {
    let spans = run(vec![
        pod_create(),
        binding(S / 10),
        kubelet_status("running", S, 0, false),
        kubelet_status("crashed", 2 * S, 0, true),
        kubelet_status("restarted", 3 * S, 1, false),
        kubelet_status("crashed-again", 4 * S, 1, true),
        kubelet_status("backing-off", 5 * S, 1, false),
        // After a back-off of 15 s, beyond nothing but the back-off's bound.
        kubelet_status("restarted-again", 20 * S, 2, false),
        kubelet_status("still-running", 21 * S, 2, false),
    ]);
    let parent = |id: &str| parent_id(&spans, by_id(&spans, id));
    for under_binding in ["running", "crashed", "crashed-again", "backing-off", "still-running"] {
        assert_eq!(parent(under_binding), Some("bind"), "{under_binding}");
    }
    assert_eq!(parent("restarted"), Some("crashed"));
    assert_eq!(parent("restarted-again"), Some("crashed-again"), "the last report of the failure, not the back-off's");
}

/// A liveness kill and its restart are reported in one write: no status
/// write reported the failure first, and an old failure (before an earlier
/// restart) is not this restart's cause.
#[test]
fn a_restart_no_write_reported_the_failure_of_stays_under_the_binding() {
    let spans = run(vec![
        pod_create(),
        binding(S / 10),
        kubelet_status("crashed", S, 0, true),
        kubelet_status("restarted", 2 * S, 1, false),
        kubelet_status("liveness-restart", 10 * S, 2, false),
    ]);
    assert_eq!(parent_id(&spans, by_id(&spans, "restarted")), Some("crashed"));
    assert_eq!(parent_id(&spans, by_id(&spans, "liveness-restart")), Some("bind"));
}

/// A kubelet Event about its node, which it names with the node's name as
/// the UID (`UID: nodeName`); `reason` at `at`.
fn node_event(reason: &str, at: i64) -> Record {
    let mut e = event(1, at, false);
    e.uid = Some(format!("node-event-{reason}").into());
    e.name = format!("node-a.{reason}").into();
    e.reason = Some(reason.into());
    e.message = Some(format!("Node node-a status is now: {reason}").into());
    e.reporter = Some("kubelet".into());
    e.reporter_host = Some("node-a".into());
    e.regarding = Regarding {
        kind: Some("Node".into()),
        name: Some("node-a".into()),
        uid: Some("node-a".into()),
        ..Regarding::default()
    };
    Record::Event(e)
}

/// CAUSALITY.md and issue 21: node-condition Events are observations of the
/// node, under its registration when they follow it, else roots; the
/// kubelet's own start (`Starting`, `NodeAllocatableEnforced`) is caused by
/// no write, even right after the registration.
#[test]
fn a_kubelets_node_events_follow_its_registration_or_start_their_own_traces() {
    let spans = run(vec![
        node_event("NodeHasSufficientMemory", S),
        Record::Write(node_registration(2 * S)),
        node_event("NodeAllocatableEnforced", 2 * S + 10),
        node_event("Starting", 2 * S + 20),
        node_event("NodeReady", 10 * S),
    ]);
    let event = |reason: &str| spans.iter().find(|s| s.attr_str("k8s.event.reason") == Some(reason)).unwrap();
    let register = by_id(&spans, "register");
    assert_eq!(event("NodeReady").parent_span_id, Some(register.span_id), "the UID is the node's name");
    assert_eq!(event("NodeReady").trace_id, register.trace_id);
    for root in ["NodeHasSufficientMemory", "NodeAllocatableEnforced", "Starting"] {
        assert_eq!(event(root).parent_span_id, None, "{root}");
        assert_eq!(event(root).root, Some(RootKind::OrphanEvent), "{root}");
    }
}

/// A repeat logged as a `patch events` carries only its count and time: once
/// the original span is out, the repeat span still names the Event's reason
/// and reporter.
#[test]
fn a_repeat_span_from_a_patch_keeps_what_the_event_said() {
    let mut e = Engine::new(CoreConfig::default());
    e.ingest(rs_create());
    e.ingest(Record::Event(event(1, S, false)));
    e.advance(Some(200 * S));
    let mut patch = event(2, 150 * S, false);
    // What a `patch events` carries: the count, the last time and the message.
    (patch.reason, patch.reporter, patch.event_type) = (None, None, None);
    patch.regarding = Regarding::default();
    e.ingest(Record::Event(patch));
    e.advance(Some(400 * S));
    e.flush();
    let spans = e.drain_spans();
    let repeat = spans.iter().find(|s| s.name.ends_with("(repeat)")).expect("a repeat span");
    assert_eq!(repeat.attr_str("k8s.event.reason"), Some("SuccessfulCreate"));
    assert_eq!(repeat.actor, "replicaset-controller");
    assert!(repeat.name.contains("SuccessfulCreate"), "{}", repeat.name);
}

/// The EndpointSlice controller syncs on a pod's removal as soon as its
/// watch sees the commit, before the apiserver has answered the kubelet's
/// final delete (recorded: a no-op slice update requested 4 ms after the
/// delete's request and 2 ms before its answer, off the controller's other
/// syncs). A pod's delete counts for the listings of the Services selecting
/// it, like a trigger, from its request on; the pod's status write before
/// it is the runner-up.
#[test]
fn a_listing_synced_on_a_pods_removal_before_the_delete_was_answered_is_under_it() {
    const SVC: &str = "00000000-0000-0000-0000-0000000000c1";
    const SLICE: &str = "00000000-0000-0000-0000-0000000000e2";
    let app = kausal::core::record::label_pair("app", "web");
    let svc = with_relations(
        write("svc-create", "admin", Verb::Create, "services", "web", SVC, 0),
        Relations { selector: Some(vec![app]), ..Relations::default() },
    );
    let pod = with_relations(
        write("pod-create", "admin", Verb::Create, "pods", "p", POD, S),
        Relations { labels: Some(vec![app]), ..Relations::default() },
    );
    let slice = |id: &str, received: i64, completed: i64| {
        let w = owned_by(
            write(id, SLICE_CTRL, Verb::Update, "endpointslices", "web-x1", SLICE, completed),
            "Service",
            "web",
            SVC,
        );
        requested_and_answered(received, completed, listing(w, Some("web"), &[]))
    };
    let spans = run(vec![
        Record::Write(svc),
        Record::Write(pod),
        Record::Write(status(write("terminated", KUBELET, Verb::Patch, "pods", "p", POD, 10 * S))),
        slice("after-status", 10 * S + 2_000, 10 * S + 4_000),
        requested_and_answered(
            15 * S,
            15 * S + 6_000,
            write("final-delete", KUBELET, Verb::Delete, "pods", "p", POD, 0),
        ),
        slice("on-removal", 15 * S + 4_000, 15 * S + 5_900),
        slice("unrelated-later", 15 * S + 9_000, 15 * S + 9_500),
    ]);
    assert_eq!(parent_id(&spans, by_id(&spans, "after-status")), Some("terminated"));
    assert_eq!(parent_id(&spans, by_id(&spans, "on-removal")), Some("final-delete"));
    assert_eq!(parent_id(&spans, by_id(&spans, "unrelated-later")), Some("final-delete"));
}

/// The kubelet's CSINode names its Node as its only owner, without
/// `controller: true`: the sole owner reference is the owner it was made for.
#[test]
fn an_object_with_one_owner_reference_follows_that_owner() {
    let mut csinode =
        cluster_scoped(write("csinode", KUBELET, Verb::Create, "csinodes", "node-a", "csinode-uid-a", S + S / 2));
    csinode.owners = vec![Owner {
        kind: "Node".into(),
        name: "node-a".into(),
        uid: Uid::from_text("node-uid-a"),
        controller: false,
    }];
    let spans = run(vec![Record::Write(node_registration(S)), Record::Write(csinode)]);
    assert_eq!(parent_id(&spans, by_id(&spans, "csinode")), Some("register"));
}

/// A kubelet status write on its node that reports a condition's transition
/// (Ready turning True) is what the node lifecycle controller untaints the
/// node by; a heartbeat (no transition) is not, and its own earlier taint is
/// not either.
#[test]
fn the_node_lifecycle_controller_follows_the_condition_its_kubelet_reported() {
    const NODE_CTRL: &str = "system:serviceaccount:kube-system:node-controller";
    let patch = |id: &str, user: &str, at: i64| {
        cluster_scoped(write(id, user, Verb::Patch, "nodes", "node-a", "node-uid-a", at))
    };
    let kubelet_status = |id: &str, condition_transition: bool, at: i64| {
        Record::Write(with_relations(
            status(patch(id, KUBELET, at)),
            Relations { condition_transition, ..Relations::default() },
        ))
    };
    let spans = run(vec![
        Record::Write(node_registration(S)),
        kubelet_status("heartbeat", false, S + S / 10),
        Record::Write(patch("taint", NODE_CTRL, 2 * S)),
        kubelet_status("ready", true, 10 * S),
        Record::Write(patch("untaint", NODE_CTRL, 10 * S + S / 100)),
    ]);
    assert_eq!(parent_id(&spans, by_id(&spans, "taint")), Some("register"), "a heartbeat changes nothing");
    assert_eq!(parent_id(&spans, by_id(&spans, "untaint")), Some("ready"));
    assert_eq!(by_id(&spans, "ready").parent_span_id, None, "the kubelet's own node status: infrastructure");
}
