//! Inputs for the benchmarks: the real capture's audit batches, and a
//! generator that replays the capture's records as many times as needed, each
//! round with fresh identities, so a stream of any length keeps the capture's
//! event mix and causal shape without tripping de-duplication.
#![allow(dead_code)]

use std::path::Path;

use kausal::core::ids::parse_uuid;
use kausal::core::record::Owner;
use kausal::core::{CoreConfig, Engine, Record};
use kausal::decode::{DecodeOptions, decode};

/// The capture's batches as the apiserver POSTed them, in order.
pub fn capture_batches() -> Vec<String> {
    batches_in(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rollout-basic/audit-batches"))
}

/// The files of a recording's `audit-batches` directory, in name order.
fn batches_in(dir: &Path) -> Vec<String> {
    let mut paths: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect()
}

/// The real kubelet's recordings (tests/fixtures/e2e/kubelet-*), batch by
/// batch, one recording after another: a stream where the kubelet's pod and
/// node status writes and Events are most of what arrives.
pub fn kubelet_batches() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/e2e");
    let mut recordings: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("kubelet-")))
        .collect();
    recordings.sort();
    recordings.iter().flat_map(|r| batches_in(&r.join("audit-batches"))).collect()
}

/// How many audit events the batches hold (reads included: the apiserver sends them all).
pub fn audit_event_count(batches: &[String]) -> u64 {
    batches.iter().map(|b| decode(b.as_bytes(), &DecodeOptions::default()).stats.audit_events).sum()
}

/// The capture's records, decoded once.
pub fn capture_records() -> Vec<Record> {
    capture_batches().iter().flat_map(|b| decode(b.as_bytes(), &DecodeOptions::default()).records).collect()
}

/// A UUID text with its first 4 bytes replaced by `round`: still a UUID, so
/// the core parses it to the same bytes `owner_uid` produces.
fn round_uuid(text: &str, round: u32) -> Box<str> {
    if parse_uuid(text).is_some() && text.len() >= 8 {
        format!("{round:08x}{}", &text[8..]).into_boxed_str()
    } else {
        format!("{text}-{round}").into_boxed_str()
    }
}

fn round_owner(owner: &Owner, round: u32) -> Owner {
    let mut uid = owner.uid;
    uid.0[..4].copy_from_slice(&round.to_be_bytes());
    Owner { uid, name: format!("{}-r{round}", owner.name).into_boxed_str(), ..owner.clone() }
}

fn round_name(name: &str, round: u32) -> Box<str> {
    format!("{name}-r{round}").into_boxed_str()
}

/// The capture's span of time, plus a gap, so that rounds never share a window.
const ROUND_MICROS: i64 = 10 * 60 * 1_000_000;

/// One round of the capture with fresh auditIDs, UIDs, names and times.
pub fn round(records: &[Record], round: u32) -> Vec<Record> {
    let shift = i64::from(round) * ROUND_MICROS;
    records
        .iter()
        .map(|r| match r {
            Record::Write(w) => {
                let mut w = w.clone();
                w.audit_id = round_uuid(&w.audit_id, round);
                w.uid = w.uid.as_deref().map(|u| round_uuid(u, round));
                w.name = w.name.as_deref().map(|n| round_name(n, round));
                w.owners = w.owners.iter().map(|o| round_owner(o, round)).collect();
                w.received += shift;
                w.completed += shift;
                Record::Write(w)
            }
            Record::Event(e) => {
                let mut e = e.clone();
                e.uid = e.uid.as_deref().map(|u| round_uuid(u, round));
                e.name = round_name(&e.name, round);
                e.regarding.uid = e.regarding.uid.as_deref().map(|u| round_uuid(u, round));
                e.regarding.name = e.regarding.name.as_deref().map(|n| round_name(n, round));
                if let Some(EventOrigin::Audit { audit_id, verb }) = Some(&e.origin).cloned() {
                    e.origin = EventOrigin::Audit { audit_id: round_uuid(&audit_id, round), verb };
                }
                e.time += shift;
                Record::Event(e)
            }
        })
        .collect()
}

use kausal::core::record::EventOrigin;

/// Feeds one round's records and links everything due, into a null sink.
pub fn feed(engine: &mut Engine, records: Vec<Record>) {
    for record in records {
        engine.ingest(record);
    }
    engine.advance(None);
    drop(engine.drain_spans());
}

/// Grows a graph to `objects` tracked objects with rounds of the capture
/// whose deletes are left out (so the objects stay), as a cluster with that
/// many live objects would look. Returns the engine and the next free round.
pub fn engine_with_objects(template: &[Record], objects: usize) -> (Engine, u32) {
    let keep: Vec<Record> =
        template.iter().filter(|r| !matches!(r, Record::Write(w) if w.verb.is_delete())).cloned().collect();
    // Room above the target: at the cap the graph evicts its oldest tenth.
    let mut config = CoreConfig::default();
    config.limits.max_objects = config.limits.max_objects.max(objects * 2);
    let mut engine = Engine::new(config);
    let mut round = 1;
    while engine.stats().graph.objects < objects {
        feed(&mut engine, self::round(&keep, round));
        round += 1;
    }
    (engine, round)
}

/// Resident set size of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    pages * 4096
}

/// An OTLP/gRPC receiver on loopback (opentelemetry-proto's service) that
/// decodes every request and counts its spans. Call within a tokio runtime.
pub async fn counting_receiver() -> (std::net::SocketAddr, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
    use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Counter(Arc<AtomicU64>);
    #[tonic::async_trait]
    impl TraceService for Counter {
        async fn export(
            &self,
            request: tonic::Request<ExportTraceServiceRequest>,
        ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
            let spans: usize =
                request.get_ref().resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
            self.0.fetch_add(spans as u64, Ordering::Relaxed);
            Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let service = TraceServiceServer::new(Counter(count.clone())).max_decoding_message_size(64 << 20);
    tokio::spawn(async move {
        // HTTP/2 windows of a production collector's size (see benches/service.rs).
        tonic::transport::Server::builder()
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .max_frame_size(Some(1 << 20))
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, count)
}
