//! The service benchmarks: the HTTPS webhook under concurrent POSTs beside a
//! null axum+rustls endpoint, OTLP/gRPC export to a loopback receiver, and the
//! export lag at the apiserver rates of an HA control plane.
//!
//!   cargo bench --bench service            (add `-- --quick` for a smoke run,
//!                                            `-- startup` for the start-up with a full log only,
//!                                            `-- webhook` for the webhook rows only,
//!                                            `-- export` for the OTLP export rows only,
//!                                            `-- apiservers N SECONDS [null]` for N apiservers' real load
//!                                            (to kausal with its log, or to the null endpoint),
//!                                            `-- headroom SECONDS` for how many of them kausal sustains)
//!
//! Everything is real and on loopback: `kausal serve` (the release binary) with
//! mTLS, a reqwest client presenting the apiserver's client certificate, and
//! an OTLP/gRPC receiver built from opentelemetry-proto that counts spans and
//! measures their lag. The null endpoint runs the same listener, TLS
//! configuration and HTTP stack as kausal, reads the body, and answers 200:
//! the ratio between the two is what kausal's own work costs.

mod support;

// The binary's allocator, so that the in-process rows (the OTLP export)
// allocate as `kausal` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use serde_json::Value;

use kausal::core::{CoreConfig, Engine};
use kausal::pipeline::otlp_exporter::{OtlpExporter, OtlpProtocol};
use kausal::sinks::otel::SharedResource;
use kausal::sources::listener::{self, ConnectionLimits, TlsFiles};

// ---- a counting OTLP receiver ------------------------------------------------

#[derive(Default)]
struct Counting {
    spans: AtomicU64,
    /// Lag of write spans (now − span end), in seconds, while `measure_lag` is on.
    lags: Mutex<Vec<f64>>,
    event_lags: Mutex<Vec<f64>>,
    measure_lag: std::sync::atomic::AtomicBool,
    /// How long each export waits before it is answered (a slow backend), in ms.
    delay_ms: AtomicU64,
}

struct Receiver(Arc<Counting>);

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let delay = self.0.delay_ms.load(Ordering::Relaxed);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let now = kausal::pipeline::wall_clock_micros() as f64 * 1000.0;
        let request = request.into_inner();
        let mut n = 0;
        let measuring = self.0.measure_lag.load(Ordering::Relaxed);
        for rs in &request.resource_spans {
            for ss in &rs.scope_spans {
                n += ss.spans.len() as u64;
                if measuring {
                    for s in &ss.spans {
                        let lag = (now - s.end_time_unix_nano as f64) / 1e9;
                        let is_event = s.name.starts_with("event ");
                        if is_event { &self.0.event_lags } else { &self.0.lags }.lock().unwrap().push(lag);
                    }
                }
            }
        }
        self.0.spans.fetch_add(n, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

async fn start_receiver() -> (SocketAddr, Arc<Counting>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counting = Arc::new(Counting::default());
    let service = TraceServiceServer::new(Receiver(counting.clone())).max_decoding_message_size(64 << 20);
    tokio::spawn(async move {
        // HTTP/2 windows of a production collector's size (grpc-go, which
        // the OpenTelemetry Collector uses, grows its window to 16 MiB as it
        // measures the link), not h2's 64 KiB start, which would stall every
        // large request on window updates.
        tonic::transport::Server::builder()
            .initial_stream_window_size(Some(8 << 20))
            .initial_connection_window_size(Some(16 << 20))
            .max_frame_size(Some(1 << 20))
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (addr, counting)
}

// ---- inputs ------------------------------------------------------------------

const BATCH_EVENTS: usize = 400;

/// Every audit event of the capture, as JSON values.
fn capture_items() -> Vec<Value> {
    support::capture_batches()
        .iter()
        .flat_map(|b| serde_json::from_str::<Value>(b).unwrap()["items"].as_array().unwrap().clone())
        .collect()
}

/// A 400-event `EventList` body made of capture events with fresh auditIDs
/// (batch `n`), and optionally their timestamps set to now.
fn batch_body(items: &[Value], n: u64, now: Option<String>) -> Vec<u8> {
    let start = (n as usize * BATCH_EVENTS) % items.len();
    let events: Vec<Value> = (0..BATCH_EVENTS)
        .map(|i| {
            let mut e = items[(start + i) % items.len()].clone();
            let id = e["auditID"].as_str().unwrap_or("00000000-0000-0000-0000-000000000000").to_owned();
            e["auditID"] = Value::String(format!("{:08x}{}", (n << 12) as u32 ^ i as u32, &id[8..]));
            if let Some(now) = &now {
                e["requestReceivedTimestamp"] = Value::String(now.clone());
                e["stageTimestamp"] = Value::String(now.clone());
            }
            e
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events}))
        .unwrap()
}

/// Stands for the first 8 hex digits of every auditID in a [`BodyTemplate`].
const ID_MARK: &str = "@@@@@@@@";
/// Stands for both timestamps of every event in a [`BodyTemplate`] (as long as a real one).
const TIME_MARK: &str = "1999-01-01T00:00:00.000000Z";

/// A batch body serialised once, whose auditIDs and timestamps are filled in
/// per batch by replacing marks, so that sending costs the load generator
/// little of the CPU it shares with kausal.
struct BodyTemplate(String);

impl BodyTemplate {
    fn new(items: &[Value], n: u64) -> BodyTemplate {
        let start = (n as usize * BATCH_EVENTS) % items.len();
        let events: Vec<Value> = (0..BATCH_EVENTS)
            .map(|i| {
                let mut e = items[(start + i) % items.len()].clone();
                let id = e["auditID"].as_str().unwrap_or("00000000-0000-0000-0000-000000000000").to_owned();
                e["auditID"] = Value::String(format!("{ID_MARK}{}", &id[8..]));
                e["requestReceivedTimestamp"] = Value::String(TIME_MARK.to_owned());
                e["stageTimestamp"] = Value::String(TIME_MARK.to_owned());
                e
            })
            .collect();
        let body = serde_json::json!({"kind": "EventList", "apiVersion": "audit.k8s.io/v1", "items": events});
        BodyTemplate(serde_json::to_string(&body).unwrap())
    }

    /// The body of batch `id` (unique across every apiserver), stamped now.
    fn body(&self, id: u32) -> Vec<u8> {
        self.0.replace(ID_MARK, &format!("{id:08x}")).replace(TIME_MARK, &now_rfc3339()).into_bytes()
    }
}

fn now_rfc3339() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

// ---- servers -----------------------------------------------------------------

struct Certs(tempfile::TempDir);

impl Certs {
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new(env!("CARGO_BIN_EXE_kausal"))
            .args(["cert", "--out"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(ok);
        Certs(dir)
    }
    fn path(&self, name: &str) -> String {
        self.0.path().join(name).display().to_string()
    }
    fn client(&self) -> reqwest::Client {
        let mut pem = std::fs::read(self.path("client.crt")).unwrap();
        pem.extend(std::fs::read(self.path("client.key")).unwrap());
        reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(self.path("ca.crt")).unwrap()).unwrap()])
            .identity(reqwest::Identity::from_pem(&pem).unwrap())
            .http1_only()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Kausal {
    child: Child,
    port: u16,
    ops: u16,
}

impl Drop for Kausal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `kausal serve`; with `data_dir`, with its write-ahead log there (a budget
/// large enough that the run measures syncing, not 429s) and its trace store;
/// without `store`, `--no-store` (export only).
async fn start_kausal(certs: &Certs, otlp: SocketAddr, data_dir: Option<&std::path::Path>, store: bool) -> Kausal {
    let mut extra: Vec<String> = match data_dir {
        Some(dir) => ["--data-dir", &dir.display().to_string(), "--max-wal-bytes", "8Gi", "--wal-context", "0s"]
            .map(String::from)
            .to_vec(),
        None => Vec::new(),
    };
    if !store {
        extra.push("--no-store".into());
    }
    let mut kausal = spawn_kausal(certs, otlp, &extra);
    if wait_healthy(&mut kausal, Duration::from_secs(30)).await.is_none() {
        panic!("kausal serve did not start");
    }
    kausal
}

/// Starts `kausal serve` with `extra` flags, without waiting for it.
fn spawn_kausal(certs: &Certs, otlp: SocketAddr, extra: &[String]) -> Kausal {
    let (port, ops) = (free_port(), free_port());
    // Wrapped at once, so that Drop kills and reaps it on every path.
    Kausal {
        child: Command::new(env!("CARGO_BIN_EXE_kausal"))
            .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--ops-listen", &format!("127.0.0.1:{ops}")])
            .args(["--tls-cert", &certs.path("server.crt"), "--tls-key", &certs.path("server.key")])
            .args(["--client-ca", &certs.path("ca.crt"), "--otlp-endpoint", &format!("http://{otlp}")])
            .args(["--watch-events", "off", "--log-level", "warn", "--query-listen", "off"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
        port,
        ops,
    }
}

/// Waits until `/healthz` answers 200 and returns how long that took; `None`
/// after `limit`. Panics when the process exits.
async fn wait_healthy(kausal: &mut Kausal, limit: Duration) -> Option<Duration> {
    let url = format!("http://127.0.0.1:{}/healthz", kausal.ops);
    let start = Instant::now();
    while start.elapsed() < limit {
        if reqwest::get(&url).await.is_ok_and(|r| r.status().is_success()) {
            return Some(start.elapsed());
        }
        if let Ok(Some(status)) = kausal.child.try_wait() {
            panic!("kausal serve exited with {status}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// A metric's value (summed over its series) from `/metrics`.
async fn metric(kausal: &Kausal, name: &str) -> f64 {
    let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", kausal.ops)).await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with([' ', '{'])))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Start-up with a full write-ahead log: fills a log of `target` bytes with
/// exported batches (kept as context, `--wal-context 1h`), kills the process
/// with SIGKILL, and times the restart on the same directory until
/// `/healthz` answers (the whole log is replayed first), with its peak RSS.
async fn startup_with_full_log(certs: &Certs, otlp: SocketAddr, items: &[Value], target: u64) {
    let data_dir = tempfile::tempdir().unwrap();
    let flags: Vec<String> =
        ["--data-dir", &data_dir.path().display().to_string(), "--max-wal-bytes", "2Gi", "--wal-context", "1h"]
            .map(String::from)
            .to_vec();
    let mut kausal = spawn_kausal(certs, otlp, &flags);
    wait_healthy(&mut kausal, Duration::from_secs(30)).await.expect("kausal serve starts");
    let url = format!("https://127.0.0.1:{}/audit", kausal.port);
    let next = Arc::new(AtomicU64::new(0));
    let written = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, next, written, items) =
                (certs.client(), url.clone(), next.clone(), written.clone(), items.to_vec());
            tokio::spawn(async move {
                while written.load(Ordering::Relaxed) < target {
                    let body = batch_body(&items, 2_000_000 + next.fetch_add(1, Ordering::Relaxed), None);
                    let size = body.len() as u64;
                    let ok = client.post(&url).body(body).send().await.is_ok_and(|r| r.status().is_success());
                    if ok {
                        written.fetch_add(size, Ordering::Relaxed);
                    } else {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    // Every entry exported: the log holds context only, as in steady state.
    let deadline = Instant::now() + Duration::from_secs(600);
    while metric(&kausal, "kausal_wal_unacknowledged_entries").await > 0.0 {
        assert!(Instant::now() < deadline, "the log was never drained");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log_bytes = metric(&kausal, "kausal_wal_bytes").await;
    drop(kausal); // SIGKILL
    let mut restarted = spawn_kausal(certs, otlp, &flags);
    let took = wait_healthy(&mut restarted, Duration::from_secs(1800)).await.expect("restart within 30 min");
    let entries = metric(&restarted, "kausal_wal_recovered_entries_total").await;
    let peak_rss = std::fs::read_to_string(format!("/proc/{}/status", restarted.child.id()))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0);
    println!(
        "\nstart-up with a full write-ahead log: {:.0} MiB in the log ({entries} entries of {BATCH_EVENTS} events, all \
         exported), healthy after {:.2} s (SIGKILL, then restart on the same directory), peak RSS {peak_rss:.0} MiB",
        log_bytes / (1024.0 * 1024.0),
        took.as_secs_f64(),
    );
}

/// The same listener and TLS configuration as kausal, with a handler that
/// reads the body and answers 200.
async fn start_null(certs: &Certs) -> u16 {
    let cert = certs.path("server.crt");
    let key = certs.path("server.key");
    let ca = certs.path("ca.crt");
    let tls = listener::server_config(&TlsFiles {
        cert: cert.as_ref(),
        key: key.as_ref(),
        client_ca: Some(ca.as_ref()),
        client_cert_optional: false,
    })
    .unwrap();
    let app = axum::Router::new()
        .route(
            "/audit",
            axum::routing::post(|body: axum::body::Body| async move {
                let bytes = axum::body::to_bytes(body, 64 << 20).await.unwrap();
                axum::Json(serde_json::json!({"accepted": bytes.len()}))
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(10),
        drain_timeout: Duration::from_secs(1),
        max_connections: 1024,
        // The floor server authenticates nothing (the clients present certificates).
        unauthenticated: None,
    };
    tokio::spawn(listener::serve(listener, Some(tls), app, limits, std::future::pending()));
    port
}

// ---- the webhook load ----------------------------------------------------------

struct Load {
    acknowledged: u64,
    rejected: u64,
    seconds: f64,
    latencies: Vec<Duration>,
}

impl Load {
    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or_default()
    }
}

/// `connections` clients, each POSTing one batch after another for `duration`.
async fn load(certs: &Certs, url: &str, bodies: &Arc<Vec<Vec<u8>>>, connections: usize, duration: Duration) -> Load {
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let client = certs.client();
        let (url, bodies, next) = (url.to_owned(), bodies.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut rejected, mut latencies) = (0u64, 0u64, Vec::new());
            while start.elapsed() < duration {
                let n = next.fetch_add(1, Ordering::Relaxed) as usize;
                let body = bodies[n % bodies.len()].clone();
                let sent = Instant::now();
                let status = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .map(|r| r.status());
                match status {
                    Ok(s) if s.is_success() => {
                        ok += 1;
                        latencies.push(sent.elapsed());
                    }
                    _ => rejected += 1,
                }
            }
            (ok, rejected, latencies)
        }));
    }
    let mut total = Load { acknowledged: 0, rejected: 0, seconds: 0.0, latencies: Vec::new() };
    for t in tasks {
        let (ok, rejected, latencies) = t.await.unwrap();
        total.acknowledged += ok;
        total.rejected += rejected;
        total.latencies.extend(latencies);
    }
    total.seconds = start.elapsed().as_secs_f64();
    total
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn print_load(who: &str, connections: usize, l: &Load) {
    println!(
        "{who:<21} {connections:>3} conn: {:>7.1} batches/s {:>9.0} events/s  p50 {:>6.2} ms  p99 {:>6.2} ms  p999 {:>6.2} ms  ({} acknowledged, {} not)",
        l.acknowledged as f64 / l.seconds,
        l.acknowledged as f64 * BATCH_EVENTS as f64 / l.seconds,
        ms(l.percentile(0.50)),
        ms(l.percentile(0.99)),
        ms(l.percentile(0.999)),
        l.acknowledged,
        l.rejected
    );
}

/// An OTLP/HTTP (protobuf) receiver on loopback that decodes and counts.
async fn start_http_receiver() -> (SocketAddr, Arc<AtomicU64>) {
    use prost::Message as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicU64::new(0));
    let sink = count.clone();
    let app = axum::Router::new()
        .route(
            "/v1/traces",
            axum::routing::post(move |body: axum::body::Bytes| {
                let sink = sink.clone();
                async move {
                    let request = ExportTraceServiceRequest::decode(body).expect("OTLP protobuf");
                    let n: usize =
                        request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum();
                    sink.fetch_add(n as u64, Ordering::Relaxed);
                    ExportTraceServiceResponse { partial_success: None }.encode_to_vec()
                }
            }),
        )
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, count)
}

/// OTLP export to loopback receivers, gRPC and HTTP/protobuf, through both
/// paths that send: `OtlpExporter::export` (a replay's whole output) and the
/// server's export loop (batches of the worker's size, several in flight).
/// The receivers decode every request in this process, on the same two cores.
async fn export_rows(quick: bool, grpc: SocketAddr, counting: &Arc<Counting>) {
    use prost::Message as _;
    let template = support::capture_records();
    let mut engine = Engine::new(CoreConfig::default());
    let mut spans = Vec::new();
    for r in 0..if quick { 2 } else { 60 } {
        support::round(&template, r).into_iter().for_each(|record| engine.ingest(record));
        engine.advance(None);
        spans.extend(engine.drain_spans());
    }
    engine.flush();
    spans.extend(engine.drain_spans());
    let encoded = kausal::sinks::otel::export_request(&spans, &SharedResource::new(Some("bench"), [])).encoded_len();
    let (http, http_count) = start_http_receiver().await;
    println!(
        "\notlp export: {} spans ({:.0} bytes each encoded), {} spans per request at most, {} requests in flight",
        spans.len(),
        encoded as f64 / spans.len() as f64,
        kausal::pipeline::otlp_exporter::MAX_REQUEST_SPANS,
        kausal::pipeline::otlp_exporter::IN_FLIGHT
    );
    let rows: [(&str, OtlpProtocol, String, u64); 3] = [
        ("gRPC", OtlpProtocol::Grpc, format!("http://{grpc}"), 0),
        ("HTTP/protobuf", OtlpProtocol::HttpProtobuf, format!("http://{http}/v1/traces"), 0),
        ("gRPC, each answer 20 ms late", OtlpProtocol::Grpc, format!("http://{grpc}"), 20),
    ];
    for (label, protocol, url, delay) in rows {
        counting.delay_ms.store(delay, Ordering::Relaxed);
        let received = || counting.spans.load(Ordering::Relaxed) + http_count.load(Ordering::Relaxed);
        let exporter = OtlpExporter::new(Some(&url), protocol, SharedResource::new(Some("bench"), [])).unwrap();
        // Warm the connection up, outside the timing.
        exporter.export(&spans[..1]).await.unwrap();
        // Several passes over the spans, so that each row runs for about a second.
        let passes = if quick { 1 } else { 10 };
        let total = (passes * spans.len()) as u64;
        let before = received();
        let start = Instant::now();
        for _ in 0..passes {
            exporter.export(&spans).await.unwrap();
        }
        let replayed = start.elapsed().as_secs_f64();
        assert_eq!(received() - before, total, "every span arrived");

        let (tx, rx) = tokio::sync::mpsc::channel(passes * (spans.len() / 4096 + 1));
        for _ in 0..passes {
            for chunk in spans.chunks(4096) {
                let batch = kausal::pipeline::SpanBatch {
                    cluster: Arc::from("bench"),
                    spans: chunk.to_vec(),
                    completes: Vec::new(),
                };
                tx.send(batch).await.unwrap();
            }
        }
        drop(tx);
        let settings = kausal::pipeline::export_loop::ExportSettings { give_up_after: Duration::from_secs(60) };
        let health = Arc::new(kausal::pipeline::ExportHealth::default());
        let before = received();
        let start = Instant::now();
        kausal::pipeline::export_loop::run(rx, Some(exporter), None, settings, health, None).await;
        let served = start.elapsed().as_secs_f64();
        assert_eq!(received() - before, total, "every span arrived");
        println!(
            "  {label:<30} export(): {:>8.0} spans/s   export loop (4096-span batches): {:>8.0} spans/s",
            total as f64 / replayed,
            total as f64 / served
        );
    }
    counting.delay_ms.store(0, Ordering::Relaxed);
}

/// What one run of the apiservers' load measured.
struct ApiserverRun {
    seconds: f64,
    acknowledged: u64,
    rejected: u64,
    /// Fewer than 95 % of the scheduled batches went out: answers too slow to keep up.
    behind: bool,
    latencies: Vec<f64>,
    lags: Vec<f64>,
}

impl ApiserverRun {
    fn print(&self, who: &str, n: usize) {
        let (mut latencies, mut lags) = (self.latencies.clone(), self.lags.clone());
        let (p50, p99, p999) =
            (percentile(&mut latencies, 0.50), percentile(&mut latencies, 0.99), percentile(&mut latencies, 0.999));
        let (l50, l99, lmax) = (percentile(&mut lags, 0.50), percentile(&mut lags, 0.99), percentile(&mut lags, 1.0));
        println!(
            "{n:>3} apiservers x 10 batches/s x {BATCH_EVENTS} events, {who}, {:.0} s: {:.0} events/s; \
             response p50 {:.2} ms p99 {:.2} ms p999 {:.2} ms; export lag p50 {:.3} s p99 {:.3} s max {:.3} s; \
             {} acknowledged, {} answered 429 or failed{}",
            self.seconds,
            self.acknowledged as f64 * BATCH_EVENTS as f64 / self.seconds,
            p50 * 1e3,
            p99 * 1e3,
            p999 * 1e3,
            l50,
            l99,
            lmax,
            self.acknowledged,
            self.rejected,
            if self.behind { "; could not keep the schedule" } else { "" }
        );
    }
}

/// `n` apiservers, each POSTing 10 batches of 400 events a second (the
/// webhook's defaults: `--audit-webhook-batch-max-size 400`,
/// `--audit-webhook-batch-throttle-qps 10`) on one connection, one batch after
/// the other as the apiserver's webhook does, stamped with the time it is
/// sent, to kausal with its write-ahead log on this machine's disk.
async fn apiserver_load(
    certs: &Certs,
    otlp: SocketAddr,
    counting: &Arc<Counting>,
    items: &[Value],
    n: usize,
    duration: Duration,
    null: bool,
) -> ApiserverRun {
    let data_dir = tempfile::tempdir().unwrap();
    let (kausal, url) = match null {
        false => {
            let kausal = start_kausal(certs, otlp, Some(data_dir.path()), true).await;
            let url = format!("https://127.0.0.1:{}/audit", kausal.port);
            (Some(kausal), url)
        }
        true => (None, format!("https://127.0.0.1:{}/audit", start_null(certs).await)),
    };
    let templates: Arc<Vec<BodyTemplate>> = Arc::new((0..16).map(|n| BodyTemplate::new(items, n)).collect());
    let next_id = Arc::new(AtomicU64::new(1));
    counting.lags.lock().unwrap().clear();
    counting.measure_lag.store(true, Ordering::Relaxed);
    let start = Instant::now();
    let mut apiservers = Vec::new();
    for server in 0..n {
        // One client per apiserver, with one connection (reqwest keeps it alive).
        let (client, url, templates, next_id) = (certs.client(), url.clone(), templates.clone(), next_id.clone());
        apiservers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            let (mut ok, mut rejected, mut latencies, mut sent) = (0u64, 0u64, Vec::new(), 0u64);
            while start.elapsed() < duration {
                tick.tick().await;
                let id = next_id.fetch_add(1, Ordering::Relaxed) as u32;
                let body = templates[(server + sent as usize) % templates.len()].body(id);
                sent += 1;
                let posted = Instant::now();
                match client.post(&url).body(body).send().await {
                    Ok(r) if r.status().is_success() => {
                        ok += 1;
                        latencies.push(posted.elapsed().as_secs_f64());
                    }
                    _ => rejected += 1,
                }
            }
            (ok, rejected, latencies)
        }));
    }
    let mut run = ApiserverRun {
        seconds: 0.0,
        acknowledged: 0,
        rejected: 0,
        behind: false,
        latencies: Vec::new(),
        lags: Vec::new(),
    };
    for apiserver in apiservers {
        let (ok, rejected, latencies) = apiserver.await.unwrap();
        run.acknowledged += ok;
        run.rejected += rejected;
        run.latencies.extend(latencies);
    }
    run.seconds = start.elapsed().as_secs_f64();
    // The apiservers' schedule asks 10 batches a second each; answers slower
    // than that hold the next batch back, as they would an apiserver's.
    run.behind = (run.acknowledged as f64) < 0.95 * (n as f64 * 10.0 * duration.as_secs_f64());
    // The last records wait out the settle delay before their spans go.
    tokio::time::sleep(Duration::from_secs(4)).await;
    counting.measure_lag.store(false, Ordering::Relaxed);
    run.lags = std::mem::take(&mut *counting.lags.lock().unwrap());
    drop(kausal);
    run
}

fn percentile(values: &mut [f64], p: f64) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(((values.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(f64::NAN)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let quick = std::env::args().any(|a| a == "--quick" || a == "--test");
    let duration = if quick { Duration::from_millis(500) } else { Duration::from_secs(5) };
    let certs = Certs::new();
    let (otlp, counting) = start_receiver().await;
    let items = capture_items();
    // `-- export`: only the OTLP export rows.
    if std::env::args().any(|a| a == "export") {
        export_rows(quick, otlp, &counting).await;
        return;
    }
    // `-- apiservers N SECONDS`: the apiservers' real load, with the write-ahead log.
    if let Some(at) = std::env::args().position(|a| a == "apiservers") {
        let arg = |i: usize, default: u64| std::env::args().nth(at + i).and_then(|a| a.parse().ok()).unwrap_or(default);
        let (n, seconds) = (arg(1, 3) as usize, if quick { 2 } else { arg(2, 60) });
        let null = std::env::args().any(|a| a == "null");
        let run = apiserver_load(&certs, otlp, &counting, &items, n, Duration::from_secs(seconds), null).await;
        run.print(if null { "null" } else { "kausal+wal" }, n);
        return;
    }
    // `-- headroom SECONDS`: the most apiservers kausal keeps up with, with no
    // 429: doubling from 3 until a run fails, then halving the gap.
    if let Some(at) = std::env::args().position(|a| a == "headroom") {
        let seconds = std::env::args().nth(at + 1).and_then(|a| a.parse().ok()).unwrap_or(60);
        let sustains = |n: usize| {
            let (certs, items, counting) = (&certs, &items, &counting);
            async move {
                let run = apiserver_load(certs, otlp, counting, items, n, Duration::from_secs(seconds), false).await;
                run.print("kausal+wal", n);
                run.rejected == 0 && !run.behind
            }
        };
        let (mut good, mut bad) = (0, 3);
        while sustains(bad).await {
            good = bad;
            bad *= 2;
        }
        while bad - good > 1 {
            let middle = (good + bad) / 2;
            if sustains(middle).await { good = middle } else { bad = middle }
        }
        println!("headroom: {good} apiservers sustained for {seconds} s with no 429 ({bad} were not)");
        return;
    }
    // `-- startup`: only the start-up with a full write-ahead log.
    if std::env::args().any(|a| a == "startup") {
        startup_with_full_log(&certs, otlp, &items, if quick { 16 << 20 } else { 1 << 30 }).await;
        return;
    }
    let bodies: Arc<Vec<Vec<u8>>> =
        Arc::new((0..if quick { 4 } else { 64 }).map(|n| batch_body(&items, n, None)).collect());
    let size = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    println!(
        "webhook: {BATCH_EVENTS}-event batches of the capture's events ({:.0} KB each), {duration:?} per run",
        size as f64 / 1e3
    );

    let null_port = start_null(&certs).await;
    let null_url = format!("https://127.0.0.1:{null_port}/audit");
    let settle = if quick { Duration::from_millis(200) } else { Duration::from_secs(3) };
    for connections in [1, 8, 32] {
        let null = load(&certs, &null_url, &bodies, connections, duration).await;
        print_load("null", connections, &null);
        // A fresh process for each row, stopped before the next row starts,
        // so no row competes with an earlier row's export backlog.
        // The same path with and without the trace store, one after the
        // other in the same run: what storing costs the webhook.
        let bare = start_kausal(&certs, otlp, None, false).await;
        let unstored =
            load(&certs, &format!("https://127.0.0.1:{}/audit", bare.port), &bodies, connections, duration).await;
        print_load("kausal --no-store", connections, &unstored);
        drop(bare);
        tokio::time::sleep(settle).await;
        let kausal = start_kausal(&certs, otlp, None, true).await;
        let served =
            load(&certs, &format!("https://127.0.0.1:{}/audit", kausal.port), &bodies, connections, duration).await;
        print_load("kausal", connections, &served);
        drop(kausal);
        tokio::time::sleep(settle).await;
        let data_dir = tempfile::tempdir().unwrap();
        let bare_durable = start_kausal(&certs, otlp, Some(data_dir.path()), false).await;
        let synced_unstored =
            load(&certs, &format!("https://127.0.0.1:{}/audit", bare_durable.port), &bodies, connections, duration)
                .await;
        print_load("kausal+wal --no-store", connections, &synced_unstored);
        drop(bare_durable);
        tokio::time::sleep(settle).await;
        let data_dir = tempfile::tempdir().unwrap();
        let durable = start_kausal(&certs, otlp, Some(data_dir.path()), true).await;
        let synced =
            load(&certs, &format!("https://127.0.0.1:{}/audit", durable.port), &bodies, connections, duration).await;
        print_load("kausal+wal", connections, &synced);
        let metrics =
            reqwest::get(format!("http://127.0.0.1:{}/metrics", durable.ops)).await.unwrap().text().await.unwrap();
        let counter = |name: &str| {
            metrics
                .lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let (appends, syncs) = (counter("kausal_wal_appends_total"), counter("kausal_wal_syncs_total"));
        println!(
            "           group commit: {appends} appends in {syncs} syncs ({:.1} per sync)",
            appends / syncs.max(1.0)
        );
        drop(durable);
        let per_second = |l: &Load| l.acknowledged as f64 / l.seconds;
        println!(
            "           ratio kausal/null: {:.2}, kausal+wal/null: {:.2} (acknowledged batches/s)",
            per_second(&served) / per_second(&null),
            per_second(&synced) / per_second(&null)
        );
        println!(
            "           the store's cost: kausal/kausal --no-store {:.2}, kausal+wal/kausal+wal --no-store {:.2}",
            per_second(&served) / per_second(&unstored),
            per_second(&synced) / per_second(&synced_unstored)
        );
        tokio::time::sleep(settle).await;
    }
    // `-- webhook`: only the webhook rows above.
    if std::env::args().any(|a| a == "webhook") {
        return;
    }

    export_rows(quick, otlp, &counting).await;

    startup_with_full_log(&certs, otlp, &items, if quick { 16 << 20 } else { 1 << 30 }).await;

    // Export lag at 12,000 events/s: 30 batches of 400 a second, timestamped now.
    let kausal = start_kausal(&certs, otlp, None, true).await;
    let url = format!("https://127.0.0.1:{}/audit", kausal.port);
    let client = certs.client();
    counting.measure_lag.store(true, Ordering::Relaxed);
    let seconds = if quick { 2 } else { 20 };
    // Batches go out on a fixed schedule whatever the answers' latency, as an
    // apiserver's would; each is stamped with the time it is sent.
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / 30));
    let start = Instant::now();
    let mut sent = 0u64;
    let mut posts = Vec::new();
    let items = Arc::new(items);
    while start.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let (client, url, items) = (client.clone(), url.clone(), items.clone());
        posts.push(tokio::spawn(async move {
            let body = batch_body(&items, 1_000_000 + sent, Some(now_rfc3339()));
            client.post(&url).body(body).send().await.map(|r| r.status().is_success()).unwrap_or(false)
        }));
        sent += 1;
    }
    let sending = start.elapsed().as_secs_f64();
    let mut acknowledged = 0;
    for post in posts {
        acknowledged += u64::from(post.await.unwrap());
    }
    assert_eq!(acknowledged, sent, "every batch of the lag run is acknowledged");
    // Let the last records pass the settle delay and their spans arrive.
    tokio::time::sleep(Duration::from_secs(4)).await;
    counting.measure_lag.store(false, Ordering::Relaxed);
    let rate = sent as f64 * BATCH_EVENTS as f64 / sending;
    let mut lags = std::mem::take(&mut *counting.lags.lock().unwrap());
    let event_lags = std::mem::take(&mut *counting.event_lags.lock().unwrap());
    println!(
        "\nexport lag at {rate:.0} events/s (settle 2s): write spans p50 {:.3}s p99 {:.3}s max {:.3}s over {} spans",
        percentile(&mut lags, 0.5),
        percentile(&mut lags, 0.99),
        percentile(&mut lags, 1.0),
        lags.len(),
    );
    println!(
        "  ({} Event spans arrived during the run; Event spans are held open for --event-linger, 60s, to gather repeats)",
        event_lags.len()
    );
    drop(kausal);
}
