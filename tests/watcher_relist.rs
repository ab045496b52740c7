//! The Event watcher against a scripted Kubernetes API on loopback.
//!
//! Why a scripted server and not the real apiserver: the point here is an
//! expired watch (410 Gone), which a real apiserver only produces after its
//! watch cache has moved past the client's resourceVersion (minutes of churn).
//! The scripted server returns exactly that sequence, over real HTTP, to the
//! real kube client. The end-to-end suite (tests/e2e) runs the watcher against
//! a real apiserver.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;
use kausal::core::Record;
use kausal::core::record::UnknownObject;
use kausal::decode::DecodeOptions;
use kausal::pipeline::{IngestQueue, LookupRequest};
use kausal::sources::watcher::{self, WatchSettings};
use serde_json::{Value, json};

#[derive(Default)]
struct Script {
    lists: usize,
    watches: usize,
    requests: Vec<String>,
}

type Shared = Arc<Mutex<Script>>;

fn event(name: &str, uid: &str, resource_version: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": name, "namespace": "default", "uid": uid, "resourceVersion": resource_version},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": "default", "name": "web-1",
                           "uid": "7c1f9d52-1a4e-4d8e-9d6a-3f1b2c4d5e6f"},
        "reason": "Pulled", "message": format!("message of {name}"), "type": "Normal",
        "source": {"component": "kubelet", "host": "node-1"},
        "firstTimestamp": "2020-01-01T10:00:00Z", "lastTimestamp": "2020-01-01T10:00:00Z", "count": 1
    })
}

fn a() -> Value {
    event("web-1.a", "aaaaaaaa-0000-4000-8000-000000000001", "10")
}
fn b() -> Value {
    event("web-1.b", "bbbbbbbb-0000-4000-8000-000000000002", "11")
}
fn c() -> Value {
    event("web-1.c", "cccccccc-0000-4000-8000-000000000003", "13")
}

/// `/api/v1/events`: the first list has A; its watch delivers B and then
/// expires (410); the relist has A, B and a new C; later watches stay open.
async fn events(State(script): State<Shared>, RawQuery(query): RawQuery) -> axum::response::Response {
    let query = query.unwrap_or_default();
    let watching = query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1");
    let mut s = script.lock().unwrap();
    s.requests.push(format!("events?{query}"));
    if !watching {
        s.lists += 1;
        let (items, rv) = if s.lists == 1 { (vec![a()], "10") } else { (vec![a(), b(), c()], "13") };
        return axum::Json(
            json!({"apiVersion": "v1", "kind": "EventList", "metadata": {"resourceVersion": rv}, "items": items}),
        )
        .into_response();
    }
    s.watches += 1;
    if s.watches == 1 {
        let lines = format!(
            "{}\n{}\n",
            json!({"type": "ADDED", "object": b()}),
            json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "message": "too old resource version: 10 (12)", "reason": "Expired", "code": 410}})
        );
        return lines.into_response();
    }
    drop(s);
    // Later watches stay open with nothing to say.
    let body = axum::body::Body::from_stream(futures::stream::pending::<Result<Vec<u8>, std::io::Error>>());
    body.into_response()
}

async fn pod(
    State(script): State<Shared>,
    Path((ns, name)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> axum::response::Response {
    script.lock().unwrap().requests.push(format!("pods/{ns}/{name}?{}", query.unwrap_or_default()));
    axum::Json(json!({
        "apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
        "metadata": {"name": name, "namespace": ns, "uid": "7c1f9d52-1a4e-4d8e-9d6a-3f1b2c4d5e6f",
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-5d894c86f5",
                                          "uid": "5b9c0a44-2f7e-4c1a-9a59-8d6f0e1b2c3d", "controller": true}]}
    }))
    .into_response()
}

async fn start_api() -> (String, Shared) {
    let script: Shared = Arc::default();
    let app = axum::Router::new()
        .route("/api/v1/events", axum::routing::get(events))
        .route("/api/v1/namespaces/{ns}/pods/{name}", axum::routing::get(pod))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), script)
}

fn event_name(record: &Record) -> String {
    match record {
        Record::Event(e) => e.name.to_string(),
        Record::Write(w) => panic!("a write from the Event watch: {}", w.audit_id),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_watch_relists_without_redelivering_what_it_already_handed_on() {
    let (url, script) = start_api().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let (queue, receiver) = IngestQueue::new(1000);
    let settings = WatchSettings {
        namespaces: vec![],
        lookup_rate: 100,
        decode: DecodeOptions::default(),
        recorder: None,
        // The scripted Events are from 2020; keep them however old.
        list_max_age: Duration::from_secs(100 * 365 * 24 * 3600),
        owners: false,
    };
    let watch = watcher::spawn(client, settings, queue, "test".into());

    let receiver = Arc::new(Mutex::new(receiver));
    let mut names = Vec::new();
    while names.len() < 3 {
        let r = receiver.clone();
        let batch = tokio::task::spawn_blocking(move || r.lock().unwrap().recv_batch_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no Event after {names:?}; requests: {:?}", script.lock().unwrap().requests));
        assert_eq!(&*batch.cluster, "test");
        names.extend(batch.records.iter().map(event_name));
    }
    // A from the first list, B from the watch, then the relist after the 410:
    // it lists A and B again, which were handed on already, and C, which is new.
    assert_eq!(names, ["web-1.a", "web-1.b", "web-1.c"]);
    assert_eq!(script.lock().unwrap().lists, 2, "the 410 made the watcher relist");

    // A metadata lookup of an object known only from an Event.
    watch
        .lookups
        .send(LookupRequest {
            cluster: "test".into(),
            object: UnknownObject {
                uid: "7c1f9d52-1a4e-4d8e-9d6a-3f1b2c4d5e6f".into(),
                api_version: Some("v1".into()),
                kind: "Pod".into(),
                namespace: "default".into(),
                name: "web-1".into(),
            },
        })
        .await
        .unwrap();
    let r = receiver.clone();
    let batch = tokio::task::spawn_blocking(move || r.lock().unwrap().recv_batch_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("lookup result");
    assert_eq!(batch.observed.len(), 1);
    let observed = &batch.observed[0];
    assert_eq!(&*observed.resource, "pods");
    assert_eq!(observed.controller_owner.as_ref().map(|o| &*o.kind), Some("ReplicaSet"));
    let requests = script.lock().unwrap().requests.clone();
    let lookup = requests.iter().find(|r| r.starts_with("pods/default/web-1")).expect("a GET of the pod");
    assert!(lookup.contains("resourceVersion=0"), "served from the apiserver's cache: {lookup}");
    watch.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listed_events_older_than_the_window_are_not_handed_on() {
    let (url, _script) = start_api().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let (queue, receiver) = IngestQueue::new(1000);
    let settings = WatchSettings {
        namespaces: vec![],
        lookup_rate: 100,
        decode: DecodeOptions::default(),
        recorder: None,
        list_max_age: Duration::from_secs(30),
        owners: false,
    };
    let watch = watcher::spawn(client, settings, queue, "test".into());
    // A (from 2020) comes in the first list and is skipped; B comes from the
    // watch itself, so it is new whatever its timestamp says.
    let batch = tokio::task::spawn_blocking(move || receiver.recv_batch_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("an Event from the watch");
    let names: Vec<String> = batch.records.iter().map(event_name).collect();
    assert_eq!(names, ["web-1.b"]);
    watch.stop();
}
