//! A real OTLP round trip: kausal's exporter (opentelemetry-otlp) sends the
//! replayed spans to receivers built from the official opentelemetry-proto
//! definitions, over gRPC and over HTTP/protobuf, on loopback. The test checks
//! that IDs, parents and the per-actor `service.name` arrive intact.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

use common::rollout_audit;
use kausal::core::Span;
use kausal::replay;
use kausal::sinks::otlp_export::OtlpProtocol;

type Received = Arc<Mutex<Vec<ExportTraceServiceRequest>>>;

struct GrpcReceiver(Received);

#[tonic::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

async fn start_grpc() -> (SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let service = TraceServiceServer::new(GrpcReceiver(received.clone()));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, received)
}

async fn start_http() -> (SocketAddr, Received) {
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
    (addr, received)
}

/// (trace, span) → (parent, name, service.name) as received.
fn received_spans(received: &Received) -> BTreeMap<(Vec<u8>, Vec<u8>), (Vec<u8>, String, String)> {
    let mut out = BTreeMap::new();
    for request in received.lock().unwrap().iter() {
        for rs in &request.resource_spans {
            let service = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    _ => None,
                })
                .expect("every resource has service.name");
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    let previous = out.insert(
                        (s.trace_id.clone(), s.span_id.clone()),
                        (s.parent_span_id.clone(), s.name.clone(), service.clone()),
                    );
                    assert!(previous.is_none(), "span {} received twice", s.name);
                }
            }
        }
    }
    out
}

fn expected_spans(spans: &[Span]) -> BTreeMap<(Vec<u8>, Vec<u8>), (Vec<u8>, String, String)> {
    spans
        .iter()
        .map(|s| {
            (
                (s.trace_id.to_vec(), s.span_id.to_vec()),
                (s.parent_span_id.map(|p| p.to_vec()).unwrap_or_default(), s.name.clone(), s.actor.clone()),
            )
        })
        .collect()
}

async fn round_trip(protocol: OtlpProtocol) {
    let result = rollout_audit();
    let (addr, received) = match protocol {
        OtlpProtocol::Grpc => start_grpc().await,
        OtlpProtocol::HttpProtobuf => start_http().await,
    };
    replay::export(&result.spans, Some(&format!("http://{addr}")), protocol).await.unwrap();
    let got = received_spans(&received);
    let want = expected_spans(&result.spans);
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want);
    let services: BTreeSet<_> = got.values().map(|(_, _, s)| s.as_str()).collect();
    for who in ["admin", "deployment-controller", "replicaset-controller", "kube-scheduler", "generic-garbage-collector"] {
        assert!(services.contains(who), "service.name {who} missing from {services:?}");
    }
}

#[tokio::test]
async fn grpc_receiver_gets_every_span_with_ids_and_parents() {
    round_trip(OtlpProtocol::Grpc).await;
}

#[tokio::test]
async fn http_protobuf_receiver_gets_every_span_with_ids_and_parents() {
    round_trip(OtlpProtocol::HttpProtobuf).await;
}
