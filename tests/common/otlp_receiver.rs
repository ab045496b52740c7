//! A real OTLP/gRPC receiver for tests, built from the official
//! opentelemetry-proto service definition. It can be *gated*: exports then
//! wait until the test opens the gate, which is how a test makes the exporter
//! fall behind without any timing.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value;

pub type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

#[derive(Clone)]
struct Service {
    received: Received,
    open: tokio::sync::watch::Receiver<bool>,
    /// Refuse exports with this gRPC status, in runs (see [`Failures`]).
    fail: Option<Failures>,
    /// Exports answered so far, to place each in its run.
    answered: Arc<std::sync::atomic::AtomicUsize>,
    /// Exports that arrived and wait at the gate now.
    waiting: Arc<std::sync::atomic::AtomicUsize>,
}

#[tonic::async_trait]
impl TraceService for Service {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut open = self.open.clone();
        self.waiting.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let _ = open.wait_for(|o| *o).await;
        self.waiting.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        let number = self.answered.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if let Some(Failures { code, accepted, refused }) = self.fail
            && (number - 1) % (accepted + refused) >= accepted
        {
            return Err(tonic::Status::new(code, "refused by the test receiver"));
        }
        self.received.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// Runs of answers: `accepted` exports accepted, then `refused` answered
/// with `code`, and again.
#[derive(Debug, Clone, Copy)]
pub struct Failures {
    pub code: tonic::Code,
    pub accepted: usize,
    pub refused: usize,
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub received: Received,
    /// Exports that arrived and wait at the gate now.
    pub waiting: Arc<std::sync::atomic::AtomicUsize>,
    gate: tokio::sync::watch::Sender<bool>,
    fail: Option<Failures>,
    /// Ends the gRPC server (see [`Receiver::stop`]).
    stop: Option<(tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl Receiver {
    /// Starts a receiver on loopback; `open: false` holds every export until [`Receiver::open`].
    pub async fn start(open: bool) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (gate, _) = tokio::sync::watch::channel(open);
        let mut receiver =
            Receiver { addr, received: Arc::default(), waiting: Arc::default(), gate, fail: None, stop: None };
        receiver.serve(listener);
        receiver
    }

    /// A receiver that answers every export with gRPC status `code`.
    pub async fn start_failing(code: tonic::Code) -> Receiver {
        Receiver::start_failing_in_runs(Failures { code, accepted: 0, refused: 1 }).await
    }

    /// A receiver that accepts and refuses exports in turn, in runs.
    pub async fn start_failing_in_runs(failures: Failures) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (gate, _) = tokio::sync::watch::channel(true);
        let mut receiver = Receiver {
            addr,
            received: Arc::default(),
            waiting: Arc::default(),
            gate,
            fail: Some(failures),
            stop: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let service = TraceServiceServer::new(Service {
            received: self.received.clone(),
            open: self.gate.subscribe(),
            fail: self.fail,
            answered: Arc::default(),
            waiting: self.waiting.clone(),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
        });
        self.stop = Some((stop, task));
    }

    /// Shuts the gRPC server down (connections are told to go away, the port
    /// closes and new connections are refused), as a collector that stopped.
    pub async fn stop(&mut self) {
        let (stop, task) = self.stop.take().expect("running");
        let _ = stop.send(());
        tokio::time::timeout(std::time::Duration::from_secs(30), task).await.expect("receiver stops").unwrap();
    }

    /// Starts again on the same address, keeping what was received.
    pub async fn restart(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.unwrap();
        self.serve(listener);
    }

    /// An OTLP/HTTP (protobuf) receiver on loopback, always open.
    pub async fn start_http() -> Receiver {
        use prost::Message as _;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Received = Arc::default();
        let sink = received.clone();
        let app = axum::Router::new().route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("valid OTLP protobuf");
                    sink.lock().unwrap().push(request);
                    ExportTraceServiceResponse { partial_success: None }.encode_to_vec()
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let (gate, _) = tokio::sync::watch::channel(true);
        Receiver { addr, received, waiting: Arc::default(), gate, fail: None, stop: None }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn open(&self) {
        let _ = self.gate.send(true);
    }
}

pub fn string_attr(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes.iter().find(|kv| kv.key == key).and_then(|kv| kv.value.as_ref()).and_then(|v| match &v.value {
        Some(Value::StringValue(s)) => Some(s.clone()),
        _ => None,
    })
}

/// What identifies a span's place in a trace.
pub type SpanKey = (Vec<u8>, Vec<u8>);
/// Parent span ID, span name, and the resource's `service.name`.
pub type SpanShape = (Vec<u8>, String, String);

/// (trace, span) → (parent, name, service.name) of everything received. A span
/// received twice (same IDs) is kept once: re-sends are harmless by design.
pub fn spans_by_id(received: &Received) -> BTreeMap<SpanKey, SpanShape> {
    shapes(received.lock().unwrap().iter())
}

/// What kausal's own store holds of the traces `wanted` names, read back
/// from its query API (`/api/v3/traces/{id}`, OTLP/JSON) in the same view.
pub async fn stored_shapes(query_base: &str, wanted: &BTreeMap<SpanKey, SpanShape>) -> BTreeMap<SpanKey, SpanShape> {
    let traces: std::collections::BTreeSet<&Vec<u8>> = wanted.keys().map(|(trace, _)| trace).collect();
    let client = reqwest::Client::new();
    let mut requests = Vec::new();
    for trace in traces {
        let id: String = trace.iter().map(|b| format!("{b:02x}")).collect();
        let answer = client.get(format!("{query_base}/api/v3/traces/{id}")).send().await.unwrap();
        if answer.status() != 200 {
            continue;
        }
        let body: serde_json::Value = answer.json().await.unwrap();
        requests.push(serde_json::from_value::<ExportTraceServiceRequest>(body["result"].clone()).unwrap());
    }
    shapes(requests.iter())
}

fn shapes<'a>(requests: impl Iterator<Item = &'a ExportTraceServiceRequest>) -> BTreeMap<SpanKey, SpanShape> {
    let mut out = BTreeMap::new();
    for request in requests {
        for rs in &request.resource_spans {
            let attrs = rs.resource.as_ref().map(|r| r.attributes.as_slice()).unwrap_or_default();
            let service = string_attr(attrs, "service.name").expect("every resource has service.name");
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.insert(
                        (s.trace_id.clone(), s.span_id.clone()),
                        (s.parent_span_id.clone(), s.name.clone(), service.clone()),
                    );
                }
            }
        }
    }
    out
}

/// The same view of kausal's own spans, for comparison with what arrived.
pub fn shape_of(spans: &[kausal::core::Span]) -> BTreeMap<SpanKey, SpanShape> {
    spans
        .iter()
        .map(|s| {
            let parent = s.parent_span_id.map(|p| p.to_vec()).unwrap_or_default();
            ((s.trace_id.to_vec(), s.span_id.to_vec()), (parent, s.name.clone(), s.actor.clone()))
        })
        .collect()
}

/// How many span records arrived in total, duplicates included.
pub fn span_count(received: &Received) -> usize {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// Every resource's value of `key`.
pub fn resource_values(received: &Received, key: &str) -> Vec<String> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|r| &r.resource_spans)
        .filter_map(|rs| rs.resource.as_ref().and_then(|r| string_attr(&r.attributes, key)))
        .collect()
}

/// A readable difference between two span maps: what is missing, extra, or shaped differently.
pub fn describe_difference(expected: &BTreeMap<SpanKey, SpanShape>, got: &BTreeMap<SpanKey, SpanShape>) -> String {
    let mut lines = Vec::new();
    for (key, shape) in expected {
        match got.get(key) {
            None => lines.push(format!("missing: {} ({})", shape.1, shape.2)),
            Some(other) if other != shape => lines.push(format!(
                "different: {} ({}): parent {} expected, {} received",
                shape.1,
                shape.2,
                hex(&shape.0),
                hex(&other.0)
            )),
            Some(_) => {}
        }
    }
    for (key, shape) in got {
        if !expected.contains_key(key) {
            lines.push(format!("unexpected: {} ({})", shape.1, shape.2));
        }
    }
    let total = lines.len();
    lines.truncate(20);
    format!("{total} differences (first 20):\n  {}", lines.join("\n  "))
}

fn hex(bytes: &[u8]) -> String {
    if bytes.is_empty() { "none".to_owned() } else { bytes.iter().map(|b| format!("{b:02x}")).collect() }
}

/// The span IDs of a map, which do not depend on how spans were linked.
pub fn span_ids(spans: &BTreeMap<SpanKey, SpanShape>) -> std::collections::BTreeSet<Vec<u8>> {
    spans.keys().map(|(_, span)| span.clone()).collect()
}
