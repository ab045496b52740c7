//! Trace contexts in annotations, on the real capture: the Deployment's
//! create is given a `tracing.k8s.io/traceparent` annotation (as a CI run
//! would set it), kept on every later copy of the object, as the apiserver
//! keeps annotations. The expected answer follows from the records: the
//! create set the annotation, so its intent links to (or, adopted, is a
//! child of) the CI span; the later `kubectl scale` sent a Scale object
//! without it, so it inherits nothing; a patch that sets a new value does.

mod common;

use common::{Spans, fixture};
use kausal::core::CoreConfig;
use kausal::core::span::LinkReason;
use kausal::decode::DecodeOptions;
use kausal::replay;
use serde_json::Value;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";
const KEY: &str = "tracing.k8s.io/traceparent";

/// Adds the annotation to every Deployment object in the batch's records.
fn annotate(v: &mut Value, value: &str) {
    match v {
        Value::Object(o) => {
            if o.get("kind").and_then(Value::as_str) == Some("Deployment")
                && let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut)
            {
                let annotations = meta.entry("annotations").or_insert_with(|| serde_json::json!({}));
                annotations[KEY] = Value::String(value.to_owned());
            }
            o.values_mut().for_each(|x| annotate(x, value));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| annotate(x, value)),
        _ => {}
    }
}

fn capture_with_context(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let src = fixture("rollout-basic/audit-batches");
    let mut files: Vec<_> = std::fs::read_dir(src).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let mut batch: Value = serde_json::from_slice(&std::fs::read(f).unwrap()).unwrap();
            annotate(&mut batch, &format!("00-{TRACE}-{SPAN}-01"));
            let out = dir.join(f.file_name().unwrap());
            std::fs::write(&out, serde_json::to_vec(&batch).unwrap()).unwrap();
            out
        })
        .collect()
}

fn run(paths: &[std::path::PathBuf], config: CoreConfig) -> replay::ReplayResult {
    replay::run(&common::inputs(paths), DecodeOptions::default(), config, false)
}

#[test]
fn the_write_that_set_the_annotation_links_to_its_span_and_a_later_scale_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let result = run(&capture_with_context(dir.path()), CoreConfig::default());
    let spans = Spans(&result.spans);
    let create = spans.intent("create deployments default/web");
    let link = create.links.iter().find(|l| l.reason == LinkReason::TraceContext).expect("a trace-context link");
    assert_eq!((hex::encode(link.trace_id), hex::encode(link.span_id)), (TRACE.to_owned(), SPAN.to_owned()));
    assert_eq!(create.attr_str("kausal.trace_context.annotation"), Some(KEY));
    assert_eq!(hex::encode(create.trace_id), "4ca7c5925ef64d6baaff952f630775d3", "the trace ID stays the auditID");
    let scale = spans.intent("patch deployments/scale default/web");
    assert!(scale.links.iter().all(|l| l.reason != LinkReason::TraceContext), "the scale set no annotation");
    assert_eq!(scale.attr_str("kausal.trace_context.annotation"), None);
    // Only the create carried one: the controllers' writes of the annotated
    // object are not intents, and nothing else links.
    let linked = result.spans.iter().filter(|s| s.links.iter().any(|l| l.reason == LinkReason::TraceContext)).count();
    assert_eq!(linked, 1);
}

#[test]
fn adopted_the_ci_span_is_the_intents_parent_and_the_rollout_is_in_its_trace() {
    let dir = tempfile::tempdir().unwrap();
    let result =
        run(&capture_with_context(dir.path()), CoreConfig { adopt_trace_context: true, ..CoreConfig::default() });
    let spans = Spans(&result.spans);
    let create = spans.intent("create deployments default/web");
    assert_eq!(hex::encode(create.trace_id), TRACE);
    assert_eq!(create.parent_span_id.map(hex::encode).as_deref(), Some(SPAN));
    let rs = spans.one("ReplicaSet create", |s| s.name == "create replicasets default/web-5d894c86f5");
    assert_eq!(rs.trace_id, create.trace_id, "the rollout moves with its intent");
    assert_eq!(rs.parent_span_id, Some(create.span_id));
}

#[test]
fn a_malformed_annotation_is_counted_and_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let paths = capture_with_context(dir.path());
    for path in &paths {
        let text = std::fs::read_to_string(path).unwrap().replace(&format!("00-{TRACE}-{SPAN}-01"), "not a context");
        std::fs::write(path, text).unwrap();
    }
    let result = run(&paths, CoreConfig::default());
    let plain = common::rollout_audit();
    assert_eq!(result.spans.len(), plain.spans.len(), "every record kept");
    assert!(result.bad.is_empty());
    assert!(result.decode.trace_contexts_invalid > 0);
    assert!(result.spans.iter().all(|s| s.links.iter().all(|l| l.reason != LinkReason::TraceContext)));
}

/// Adds Flux's labels and Argo CD's tracking annotation to every Deployment
/// object in the capture's records, as those agents would have applied it.
fn mark_as_applied_by_gitops(v: &mut Value) {
    match v {
        Value::Object(o) => {
            if o.get("kind").and_then(Value::as_str) == Some("Deployment")
                && let Some(meta) = o.get_mut("metadata").and_then(Value::as_object_mut)
            {
                let labels = meta.entry("labels").or_insert_with(|| serde_json::json!({}));
                labels["kustomize.toolkit.fluxcd.io/name"] = "apps".into();
                labels["kustomize.toolkit.fluxcd.io/namespace"] = "flux-system".into();
                let annotations = meta.entry("annotations").or_insert_with(|| serde_json::json!({}));
                annotations["argocd.argoproj.io/tracking-id"] = "guestbook:apps/Deployment:default/web".into();
            }
            o.values_mut().for_each(mark_as_applied_by_gitops);
        }
        Value::Array(a) => a.iter_mut().for_each(mark_as_applied_by_gitops),
        _ => {}
    }
}

/// The intent a GitOps agent's apply starts is named after what applied it;
/// the controllers' writes below it are not (their objects are the
/// ReplicaSet and pods, which carry no such labels), and the person's
/// `kubectl scale` sent a Scale object, which names nothing. Only what the
/// writer sent counts, not what the object kept.
#[test]
fn an_intent_applied_by_argo_cd_or_flux_is_named_after_its_application() {
    let dir = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for f in std::fs::read_dir(fixture("rollout-basic/audit-batches")).unwrap() {
        let f = f.unwrap().path();
        let mut batch: Value = serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
        mark_as_applied_by_gitops(&mut batch);
        let out = dir.path().join(f.file_name().unwrap());
        std::fs::write(&out, serde_json::to_vec(&batch).unwrap()).unwrap();
        paths.push(out);
    }
    paths.sort();
    let result = run(&paths, CoreConfig::default());
    let spans = Spans(&result.spans);
    let create = spans.intent("create deployments default/web");
    assert_eq!(create.attr_str("argocd.application"), Some("guestbook"));
    assert_eq!(create.attr_str("argocd.tracking_id"), Some("guestbook:apps/Deployment:default/web"));
    assert_eq!(create.attr_str("flux.kustomization.name"), Some("apps"));
    assert_eq!(create.attr_str("flux.kustomization.namespace"), Some("flux-system"));
    let scale = spans.intent("patch deployments/scale default/web");
    assert_eq!(scale.attr_str("flux.kustomization.name"), None);
    let named = result.spans.iter().filter(|s| s.attr_str("argocd.application").is_some()).count();
    // The delete sent no object; the deployment controller's status writes
    // of the same object are not intents.
    assert_eq!(named, 1, "only the create's intent is the agent's");
}
