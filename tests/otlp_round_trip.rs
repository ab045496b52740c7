//! A real OTLP round trip: kausal's exporter (tonic and reqwest) sends the
//! replayed spans to receivers built from the official opentelemetry-proto
//! definitions, over gRPC and over HTTP/protobuf, on loopback. The test checks
//! that IDs, parents and the per-actor `service.name` arrive intact.

mod common;

use std::collections::BTreeSet;

use common::otlp_receiver::{self, Receiver};
use common::rollout_audit;
use kausal::pipeline::otlp_exporter::OtlpProtocol;
use kausal::replay;

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
    for who in
        ["admin", "deployment-controller", "replicaset-controller", "kube-scheduler", "generic-garbage-collector"]
    {
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

/// The server's export loop merges batches already waiting for the same
/// cluster into one export, sent as one request for all actors, keeps
/// clusters apart, and loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_loop_merges_waiting_batches_of_one_cluster() {
    use kausal::pipeline::ExportHealth;
    use kausal::pipeline::SpanBatch;
    use kausal::pipeline::export_loop::{self, ExportSettings};
    use kausal::pipeline::otlp_exporter::OtlpExporter;
    use kausal::sinks::otel::SharedResource;
    use std::sync::Arc;

    let spans = rollout_audit().spans;
    let receiver = Receiver::start(true).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    // The same spans cut into 40 small batches for cluster "a", then one for "b".
    let chunk = spans.len().div_ceil(40);
    for piece in spans.chunks(chunk) {
        tx.send(SpanBatch { cluster: Arc::from("a"), spans: piece.to_vec(), completes: Vec::new() }).await.unwrap();
    }
    tx.send(SpanBatch { cluster: Arc::from("b"), spans: spans[..1].to_vec(), completes: Vec::new() }).await.unwrap();
    drop(tx);
    let exporter =
        OtlpExporter::new(Some(&receiver.endpoint()), OtlpProtocol::Grpc, SharedResource::new(None, [])).unwrap();
    let settings = ExportSettings { give_up_after: std::time::Duration::from_secs(30) };
    export_loop::run(rx, Some(exporter), None, settings, Arc::new(ExportHealth::default()), None).await;

    let requests = receiver.received.lock().unwrap().len();
    let clusters = otlp_receiver::resource_values(&receiver.received, "k8s.cluster.name");
    assert_eq!(otlp_receiver::span_count(&receiver.received), spans.len() + 1, "every span, once");
    assert!(clusters.contains(&"a".to_owned()) && clusters.contains(&"b".to_owned()), "{clusters:?}");
    // The 40 batches of "a" were all waiting: one request for them, with
    // every actor's spans under its own resource, and one for "b".
    assert_eq!(requests, 2, "the 40 batches of one cluster were not merged into one request");
    let actors: BTreeSet<_> = spans.iter().map(|s| s.actor.as_str()).collect();
    // The two requests were in flight together: either may have come first.
    let resources: Vec<usize> = receiver.received.lock().unwrap().iter().map(|r| r.resource_spans.len()).collect();
    assert!(resources.contains(&actors.len()), "one resource per actor in the request of \"a\": {resources:?}");
}

/// A receiver slow to answer does not hold a replay's export: `export`
/// keeps several requests out at once (here: all four, waiting at the
/// receiver's gate together), and once answered, every span is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replays_export_keeps_several_requests_in_flight_for_a_slow_receiver() {
    use kausal::pipeline::otlp_exporter::{IN_FLIGHT, MAX_REQUEST_SPANS, OtlpExporter};
    use kausal::sinks::otel::SharedResource;
    use std::sync::atomic::Ordering;

    let one = rollout_audit().spans;
    // Enough spans for more requests than may be in flight.
    let spans: Vec<_> = one.iter().cycle().take((IN_FLIGHT + 1) * MAX_REQUEST_SPANS).cloned().collect();
    let receiver = Receiver::start(false).await;
    let exporter =
        OtlpExporter::new(Some(&receiver.endpoint()), OtlpProtocol::Grpc, SharedResource::new(None, [])).unwrap();
    let export = tokio::spawn(async move { exporter.export(&spans).await.map(|()| spans.len()) });
    // Not a timing assertion: waits (up to a minute) for the state to be reached.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while receiver.waiting.load(Ordering::SeqCst) < IN_FLIGHT {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} requests in flight",
            receiver.waiting.load(Ordering::SeqCst)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(receiver.received.lock().unwrap().is_empty(), "none answered yet");
    receiver.open();
    let sent = export.await.unwrap().unwrap();
    assert_eq!(otlp_receiver::span_count(&receiver.received), sent, "every span, once");
}
/// A receiver slow to answer does not hold every later batch: the export
/// loop has several batches' requests out at once (here: all four, waiting
/// at the receiver's gate together), and once answered, every span is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_loop_keeps_several_requests_in_flight_for_a_slow_receiver() {
    use kausal::pipeline::export_loop::{self, ExportSettings};
    use kausal::pipeline::otlp_exporter::{IN_FLIGHT, OtlpExporter};
    use kausal::pipeline::{ExportHealth, SpanBatch};
    use kausal::sinks::otel::SharedResource;
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    let spans = rollout_audit().spans;
    let receiver = Receiver::start(false).await;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    // One batch per cluster, so that no two are merged into one export.
    for n in 0..IN_FLIGHT {
        let batch = SpanBatch { cluster: Arc::from(format!("c{n}")), spans: spans.clone(), completes: Vec::new() };
        tx.send(batch).await.unwrap();
    }
    drop(tx);
    let exporter =
        OtlpExporter::new(Some(&receiver.endpoint()), OtlpProtocol::Grpc, SharedResource::new(None, [])).unwrap();
    let settings = ExportSettings { give_up_after: std::time::Duration::from_secs(60) };
    let exports =
        tokio::spawn(export_loop::run(rx, Some(exporter), None, settings, Arc::new(ExportHealth::default()), None));
    // Not a timing assertion: waits (up to a minute) for the state to be reached.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while receiver.waiting.load(Ordering::SeqCst) < IN_FLIGHT {
        assert!(
            std::time::Instant::now() < deadline,
            "only {} requests in flight",
            receiver.waiting.load(Ordering::SeqCst)
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(receiver.received.lock().unwrap().is_empty(), "none answered yet");
    receiver.open();
    exports.await.unwrap();
    assert_eq!(otlp_receiver::span_count(&receiver.received), IN_FLIGHT * spans.len(), "every span, once");
}
