//! Who acted: a person, automation (an operator's service account) or the
//! control plane, and what is not a change at all (access reviews), from
//! audit records through the decoder and the engine.

use kausal::core::span::RootKind;

/// An audit record of `verb resource` by `user`, as the apiserver writes it.
fn audit_record(id: &str, user: &str, verb: &str, resource: &str, namespace: &str, name: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete",
        "requestURI":"/x","verb":"{verb}","user":{{"username":"{user}"}},
        "objectRef":{{"resource":"{resource}","namespace":"{namespace}","name":"{name}","apiVersion":"v1"}},
        "responseStatus":{{"metadata":{{}},"code":201}},
        "requestReceivedTimestamp":"2026-11-22T00:40:00.000000Z","stageTimestamp":"2026-11-22T00:40:00.002000Z"}}"#
    )
}

/// Access reviews ask the apiserver a question; they change nothing and are
/// never traced, but counted (an OpenShift log is full of them).
#[test]
fn access_reviews_are_counted_not_traced() {
    for resource in ["tokenreviews", "subjectaccessreviews", "selfsubjectaccessreviews", "localsubjectaccessreviews"] {
        let record = audit_record("a1", "system:kube-controller-manager", "create", resource, "", "");
        let decoded = kausal::decode::decode(record.as_bytes(), &Default::default());
        assert!(decoded.records.is_empty() && decoded.bad.is_empty(), "{resource}: {:?}", decoded.records);
        assert_eq!(decoded.stats.skipped.get("access_review"), Some(&1), "{resource}");
    }
}

/// An operator's service account is automation: with no cause its write
/// starts a trace shown like an intent, not a hidden controller root.
#[test]
fn an_operators_uncaused_write_is_an_automation_root() {
    let record = audit_record(
        "b2",
        "system:serviceaccount:openshift-operator-lifecycle-manager:olm-operator-serviceaccount",
        "create",
        "configmaps",
        "openshift-marketplace",
        "catalog",
    );
    let decoded = kausal::decode::decode(record.as_bytes(), &Default::default());
    let mut engine = kausal::core::Engine::new(kausal::core::CoreConfig::default());
    decoded.records.into_iter().for_each(|r| engine.ingest(r));
    engine.flush();
    let spans = engine.drain_spans();
    let [span] = spans.as_slice() else { panic!("{spans:?}") };
    assert_eq!(span.root, Some(RootKind::Automation));
    assert_eq!(span.parent_span_id, None);
}
