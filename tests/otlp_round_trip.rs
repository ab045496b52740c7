//! A real OTLP round trip: kausal's exporter (opentelemetry-otlp) sends the
//! replayed spans to receivers built from the official opentelemetry-proto
//! definitions, over gRPC and over HTTP/protobuf, on loopback. The test checks
//! that IDs, parents and the per-actor `service.name` arrive intact.

mod common;

use std::collections::BTreeSet;

use common::otlp_receiver::{self, Receiver};
use common::rollout_audit;
use kausal::replay;
use kausal::sinks::otlp_export::OtlpProtocol;

async fn round_trip(protocol: OtlpProtocol) {
    let result = rollout_audit();
    let receiver = match protocol {
        OtlpProtocol::Grpc => Receiver::start(true).await,
        OtlpProtocol::HttpProtobuf => Receiver::start_http().await,
    };
    replay::export(&result.spans, Some(&receiver.endpoint()), protocol).await.unwrap();
    let got = otlp_receiver::spans_by_id(&receiver.received);
    assert_eq!(otlp_receiver::span_count(&receiver.received), got.len(), "no span is sent twice");
    let want = otlp_receiver::shape_of(&result.spans);
    assert!(got == want, "{}", otlp_receiver::describe_difference(&want, &got));
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
