//! The query API on the real capture (tests/fixtures/rollout-basic), served
//! by the real `kausal view`: Jaeger's HTTP JSON API in the shapes of
//! Jaeger's `model/json` and its query service's envelope, Jaeger's v3 API
//! read back with opentelemetry-proto's own types, and the object questions.
//!
//! Where a test names a parent, the reason is in the recording: the
//! capture's `expected-parents.tsv` (written from the records and
//! CAUSALITY.md), or the objects' names and owners (Deployment `web` owns
//! ReplicaSet `web-5d894c86f5`, which owns pods `web-5d894c86f5-*`).

mod common;

use std::collections::{BTreeSet, HashMap};

use common::fixture;
use common::viewer::View;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use serde_json::Value;

const DEPLOYMENT_CREATE: &str = "create deployments default/web";
const RS_CREATE: &str = "create replicasets default/web-5d894c86f5";
/// Far before and after the capture (µs).
const ALL_TIME: &str = "start=0&end=4102444800000000";

fn view() -> View {
    View::start(&[&fixture("rollout-basic")])
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"].as_array().unwrap().iter().find(|t| t["key"] == key).map(|t| &t["value"])
}

fn parent_of(span: &Value) -> Option<&str> {
    span["references"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["refType"] == "CHILD_OF")
        .map(|r| r["spanID"].as_str().unwrap())
}

/// The envelope every answer of Jaeger's query service has.
fn assert_envelope(body: &Value) {
    assert_eq!(keys(body), BTreeSet::from(["data", "total", "limit", "offset", "errors"]), "{body}");
}

/// Every field of a trace and its spans as Jaeger's `model/json` names them.
fn assert_jaeger_trace(trace: &Value) {
    assert_eq!(keys(trace), BTreeSet::from(["traceID", "spans", "processes", "warnings"]));
    let trace_id = trace["traceID"].as_str().unwrap();
    assert_eq!(trace_id.len(), 32);
    let processes = trace["processes"].as_object().unwrap();
    for (n, (key, process)) in processes.iter().enumerate() {
        assert!(key.starts_with('p') && key[1..].parse::<usize>().is_ok(), "process key {key}");
        assert!(n < processes.len());
        assert!(process["serviceName"].is_string() && process["tags"].is_array());
    }
    for span in trace["spans"].as_array().unwrap() {
        assert_eq!(
            keys(span),
            BTreeSet::from([
                "traceID",
                "spanID",
                "flags",
                "operationName",
                "references",
                "startTime",
                "duration",
                "tags",
                "logs",
                "processID",
                "warnings"
            ])
        );
        assert_eq!(span["traceID"], trace_id);
        assert_eq!(span["spanID"].as_str().unwrap().len(), 16);
        // µs since the epoch: the capture was made in 2026.
        let start = span["startTime"].as_i64().unwrap();
        assert!((1_767_225_600_000_000..1_798_761_600_000_000).contains(&start), "startTime {start} is not µs of 2026");
        assert!(span["duration"].as_i64().unwrap() >= 0);
        assert!(processes.contains_key(span["processID"].as_str().unwrap()));
        for t in span["tags"].as_array().unwrap() {
            let kind = t["type"].as_str().unwrap();
            assert!(["string", "bool", "int64"].contains(&kind), "tag type {kind}");
            match kind {
                "string" => assert!(t["value"].is_string()),
                "bool" => assert!(t["value"].is_boolean()),
                _ => assert!(t["value"].is_i64()),
            }
        }
        for r in span["references"].as_array().unwrap() {
            assert!(r["refType"] == "CHILD_OF" || r["refType"] == "FOLLOWS_FROM", "{r}");
        }
    }
}

#[tokio::test]
async fn services_and_operations_answer_in_jaegers_envelope() {
    let view = view();
    let (status, body) = view.get("/api/services").await;
    assert_eq!(status, 200);
    assert_envelope(&body);
    let services: Vec<&str> = body["data"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    for actor in ["admin", "deployment-controller", "replicaset-controller", "kube-scheduler"] {
        assert!(services.contains(&actor), "{actor} missing from {services:?}");
    }
    assert_eq!(body["total"], services.len());

    let (_, ops) = view.get("/api/services/admin/operations").await;
    assert_envelope(&ops);
    let names: Vec<&str> = ops["data"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    assert!(names.contains(&DEPLOYMENT_CREATE), "{names:?}");
    assert!(!names.contains(&RS_CREATE), "the ReplicaSet create is the deployment controller's, not admin's");

    let (_, ops) = view.get("/api/operations?service=deployment-controller").await;
    let first = &ops["data"][0];
    assert_eq!(keys(first), BTreeSet::from(["name", "spanKind"]));
    assert!(ops["data"].as_array().unwrap().iter().any(|o| o["name"] == RS_CREATE));
}

#[tokio::test]
async fn the_deployment_creates_trace_nests_the_replicaset_and_its_pods() {
    let view = view();
    let path = format!(
        "/api/traces?service=admin&operation={}&{ALL_TIME}",
        DEPLOYMENT_CREATE.replace(' ', "%20").replace('/', "%2F")
    );
    let (status, body) = view.get(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_envelope(&body);
    assert_eq!(body["data"].as_array().unwrap().len(), 1, "one kubectl apply of Deployment web");
    let trace = &body["data"][0];
    assert_jaeger_trace(trace);
    let spans = trace["spans"].as_array().unwrap();
    let by_name = |name: &'static str| spans.iter().filter(move |s| s["operationName"] == name);
    let deployment = by_name(DEPLOYMENT_CREATE).next().expect("the Deployment create");
    assert_eq!(parent_of(deployment), None, "the Deployment create is the intent");
    assert_eq!(tag(deployment, "kausal.root"), Some(&Value::from("intent")));
    let rs = by_name(RS_CREATE).next().expect("the ReplicaSet create");
    assert_eq!(parent_of(rs), deployment["spanID"].as_str());
    let pods: Vec<&Value> = spans
        .iter()
        .filter(|s| s["operationName"].as_str().unwrap().starts_with("create pods default/web-5d894c86f5-"))
        .collect();
    assert_eq!(pods.len(), 2, "the Deployment asks for 2 replicas");
    for pod in pods {
        assert_eq!(parent_of(pod), rs["spanID"].as_str(), "{}", pod["operationName"]);
        let process = &trace["processes"][pod["processID"].as_str().unwrap()];
        assert_eq!(process["serviceName"], "replicaset-controller");
    }

    let id = trace["traceID"].as_str().unwrap();
    let (status, one) = view.get(&format!("/api/traces/{id}")).await;
    assert_eq!(status, 200);
    assert_envelope(&one);
    assert_eq!(one["data"][0]["spans"].as_array().unwrap().len(), spans.len());
    let (status, missing) = view.get(&format!("/api/traces/{}", "0".repeat(32))).await;
    assert_eq!(status, 404);
    assert_eq!(missing["errors"][0]["code"], 404);
    assert!(missing["data"].is_null());
}

/// Every record of the capture's ground truth, through the API: the span
/// whose `k8s.audit.id` is the record has, as its CHILD_OF, a span whose
/// `k8s.audit.id` is one of the expected parents (none for `root`).
#[tokio::test]
async fn every_parent_in_the_ground_truth_is_the_child_of_reference_the_api_gives() {
    let view = view();
    let (_, body) = view.get(&format!("/api/traces?limit=1500&{ALL_TIME}")).await;
    let mut audit_of: HashMap<(String, String), String> = HashMap::new();
    let mut spans_by_audit: HashMap<String, (String, Value)> = HashMap::new();
    for trace in body["data"].as_array().unwrap() {
        assert_jaeger_trace(trace);
        let trace_id = trace["traceID"].as_str().unwrap().to_owned();
        for span in trace["spans"].as_array().unwrap() {
            if let Some(Value::String(audit)) = tag(span, "k8s.audit.id") {
                audit_of.insert((trace_id.clone(), span["spanID"].as_str().unwrap().to_owned()), audit.clone());
                spans_by_audit.insert(audit.clone(), (trace_id.clone(), span.clone()));
            }
        }
    }
    let truth = std::fs::read_to_string(fixture("rollout-basic/expected-parents.tsv")).unwrap();
    let mut checked = 0;
    for line in truth.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let mut fields = line.split('\t');
        let (record, expected) = (fields.next().unwrap(), fields.next().unwrap());
        let alternatives: Vec<&str> = expected.split('|').collect();
        let (trace_id, span) = spans_by_audit.get(record).unwrap_or_else(|| panic!("record {record} has no span"));
        let parent =
            parent_of(span).map(|p| audit_of.get(&(trace_id.clone(), p.to_owned())).cloned().unwrap_or_default());
        let ok = match &parent {
            None => alternatives.contains(&"root"),
            Some(p) => alternatives.contains(&p.as_str()),
        };
        assert!(ok, "{line}\n  the API gives parent {parent:?}");
        checked += 1;
    }
    assert!(checked > 50, "only {checked} records checked");
}

#[tokio::test]
async fn searches_narrow_by_tags_time_duration_and_ids() {
    let view = view();
    let traces = |body: &Value| body["data"].as_array().unwrap().clone();
    let (_, deletes) =
        view.get(&format!("/api/traces?service=admin&tags=%7B%22k8s.verb%22%3A%22delete%22%7D&{ALL_TIME}")).await;
    let deletes = traces(&deletes);
    // The capture deletes the Deployment and the node.
    assert_eq!(deletes.len(), 2, "{deletes:?}");
    for t in &deletes {
        assert!(t["spans"].as_array().unwrap().iter().any(|s| tag(s, "k8s.verb") == Some(&Value::from("delete"))));
    }
    let (_, failed) = view.get(&format!("/api/traces?tag=error:true&{ALL_TIME}")).await;
    let failed = traces(&failed);
    assert!(!failed.is_empty(), "the capture has 409 Conflicts");
    for t in &failed {
        assert!(t["spans"].as_array().unwrap().iter().any(|s| tag(s, "error") == Some(&Value::Bool(true))));
    }
    // Without start and end, the last two days up to the recording's end.
    let (_, recent) = view.get("/api/traces?service=admin").await;
    assert_eq!(traces(&recent).len(), 5, "admin's five writes: node, apply, scale, delete, node delete");
    let (_, before) = view.get("/api/traces?service=admin&end=1000000").await;
    assert!(traces(&before).is_empty());
    let (_, long) = view.get(&format!("/api/traces?minDuration=1h&{ALL_TIME}")).await;
    assert!(traces(&long).is_empty(), "no write took an hour");
    let ids: Vec<String> = deletes.iter().map(|t| t["traceID"].as_str().unwrap().to_owned()).collect();
    let (_, by_id) = view.get(&format!("/api/traces?traceID={}&traceID={}", ids[0], ids[1])).await;
    let mut got: Vec<String> = traces(&by_id).iter().map(|t| t["traceID"].as_str().unwrap().to_owned()).collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    let (status, bad) = view.get("/api/traces?limit=many").await;
    assert_eq!(status, 400);
    assert_envelope(&bad);
    assert!(bad["errors"][0]["msg"].as_str().unwrap().contains("limit"));
}

#[tokio::test]
async fn the_v3_api_answers_in_otlp_json_that_opentelemetry_proto_reads() {
    let view = view();
    let (_, services) = view.get("/api/v3/services").await;
    assert!(services["services"].as_array().unwrap().iter().any(|s| s == "admin"));
    let (_, found) = view
        .get("/api/v3/traces?query.service_name=admin&query.start_time_min=2026-01-01T00:00:00Z&query.start_time_max=2027-01-01T00:00:00Z")
        .await;
    let data: ExportTraceServiceRequest = serde_json::from_value(found["result"].clone()).unwrap();
    let spans: Vec<_> = data.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).collect();
    let deployment = spans.iter().find(|s| s.name == DEPLOYMENT_CREATE).expect("the Deployment create");
    let rs = spans.iter().find(|s| s.name == RS_CREATE).expect("its ReplicaSet create, in the same trace");
    assert_eq!(rs.parent_span_id, deployment.span_id);
    assert_eq!(rs.trace_id, deployment.trace_id);
    let services: BTreeSet<String> = data
        .resource_spans
        .iter()
        .filter_map(|r| r.resource.as_ref())
        .flat_map(|r| &r.attributes)
        .filter(|kv| kv.key == "service.name")
        .filter_map(|kv| kv.value.as_ref().and_then(|v| v.value.as_ref()))
        .map(|v| format!("{v:?}"))
        .collect();
    assert!(services.iter().any(|s| s.contains("deployment-controller")), "{services:?}");

    let id = hex::encode(&deployment.trace_id);
    let (status, one) = view.get(&format!("/api/v3/traces/{id}")).await;
    assert_eq!(status, 200);
    let one: ExportTraceServiceRequest = serde_json::from_value(one["result"].clone()).unwrap();
    assert!(one.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans).any(|s| s.name == RS_CREATE));
    let (status, _) = view.get(&format!("/api/v3/traces/{}", "0".repeat(32))).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn why_a_pod_exists_is_its_replicaset_then_the_deployment_apply() {
    let view = view();
    let (_, found) = view.get("/api/kausal/objects?kind=pod&namespace=default&name=web-5d894c86f5-2znrl").await;
    let objects = found["data"].as_array().unwrap();
    assert_eq!(objects.len(), 1);
    let uid = objects[0]["uid"].as_str().unwrap();
    let (_, why) = view.get(&format!("/api/kausal/objects/{uid}/why?question=exists")).await;
    let chain: Vec<&str> =
        why["data"]["chain"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(chain, ["create pods default/web-5d894c86f5-2znrl", RS_CREATE, DEPLOYMENT_CREATE]);
    let (_, history) = view.get(&format!("/api/kausal/objects/{uid}/history")).await;
    let entries = history["data"]["entries"].as_array().unwrap();
    let names: Vec<&str> = entries.iter().map(|e| e["span"]["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"create pods/binding default/web-5d894c86f5-2znrl"), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with("event Scheduled")), "{names:?}");
    // Every entry names the intent at the root of its trace.
    assert!(entries.iter().all(|e| e["intent"]["attributes"]["kausal.root"].is_string()));
    let (status, _) = view.get("/api/kausal/objects/not-a-uid/history").await;
    assert_eq!(status, 404);
}
