//! The `OTEL_EXPORTER_OTLP_*` variables over the wire: `kausal replay`, as a
//! user runs it, exports the real capture to real receivers on loopback
//! (tonic and axum, with opentelemetry-proto's types) over mutual TLS, with
//! headers and gzip, for gRPC and for HTTP/protobuf. The receivers record
//! what arrived: every span, the headers, the encoding, the client's
//! certificate having been checked.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use common::server::{Certs, KAUSAL};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{TraceService, TraceServiceServer};
use opentelemetry_proto::tonic::collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse};
use prost::Message as _;

/// What one request brought: its spans and the headers the test looks at.
#[derive(Debug, Clone, Default)]
struct Arrival {
    spans: usize,
    authorization: Option<String>,
    tenant: Option<String>,
    encoding: Option<String>,
}

type Arrivals = Arc<Mutex<Vec<Arrival>>>;

fn spans_in(request: &ExportTraceServiceRequest) -> usize {
    request.resource_spans.iter().flat_map(|r| &r.scope_spans).map(|s| s.spans.len()).sum()
}

#[derive(Clone)]
struct Recording(Arrivals);

#[tonic::async_trait]
impl TraceService for Recording {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let header = |name: &str| request.metadata().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        let arrival = Arrival {
            authorization: header("authorization"),
            tenant: header("x-tenant"),
            encoding: header("grpc-encoding"),
            spans: spans_in(request.get_ref()),
        };
        self.0.lock().unwrap().push(arrival);
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

fn server_tls(certs: &Certs) -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_file(certs.path("ca.crt")).unwrap()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).build().unwrap();
    let chain: Vec<CertificateDer> =
        CertificateDer::pem_file_iter(certs.path("server.crt")).unwrap().map(Result::unwrap).collect();
    let key = PrivateKeyDer::from_pem_file(certs.path("server.key")).unwrap();
    let mut config =
        rustls::ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// Serves `app` over TLS that requires a client certificate from `certs`' CA.
async fn serve_mtls(certs: &Certs, app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(server_tls(certs));
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                // A client without a certificate fails here: nothing is served.
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    tower::ServiceExt::oneshot(app.clone(), request)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// An OTLP/gRPC receiver over mutual TLS that takes gzip.
async fn grpc_receiver(certs: &Certs) -> (SocketAddr, Arrivals) {
    let arrivals = Arrivals::default();
    let service =
        TraceServiceServer::new(Recording(arrivals.clone())).accept_compressed(tonic::codec::CompressionEncoding::Gzip);
    let app = tonic::service::Routes::new(service).into_axum_router();
    (serve_mtls(certs, app).await, arrivals)
}

/// An OTLP/HTTP receiver over mutual TLS at a custom path, reading gzip bodies.
async fn http_receiver(certs: &Certs) -> (SocketAddr, Arrivals) {
    let arrivals = Arrivals::default();
    let sink = arrivals.clone();
    let app = axum::Router::new().route(
        "/custom/traces",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let encoding = header("content-encoding");
                let body = if encoding.as_deref() == Some("gzip") {
                    let mut plain = Vec::new();
                    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut plain).unwrap();
                    plain
                } else {
                    body.to_vec()
                };
                let request = ExportTraceServiceRequest::decode(&body[..]).expect("OTLP protobuf");
                let arrival = Arrival {
                    spans: spans_in(&request),
                    authorization: header("authorization"),
                    tenant: header("x-tenant"),
                    encoding,
                };
                sink.lock().unwrap().push(arrival);
                ExportTraceServiceResponse { partial_success: None }.encode_to_vec()
            }
        }),
    );
    (serve_mtls(certs, app).await, arrivals)
}

/// `kausal replay` of the real capture with these variables, off the test's thread.
async fn replay(env: Vec<(&'static str, String)>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(KAUSAL);
        command.args(["replay", "--format", "tree", "--out", "/dev/null"]).arg(common::fixture("rollout-basic"));
        for var in ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "KAUSAL_OTLP_ENDPOINT"] {
            command.env_remove(var);
        }
        command.envs(env).output().unwrap()
    })
    .await
    .unwrap()
}

fn spans_of_the_capture() -> usize {
    common::rollout_audit().spans.len()
}

fn tls_env(certs: &Certs, with_client_certificate: bool) -> Vec<(&'static str, String)> {
    let path = |name: &str| certs.path(name).display().to_string();
    let mut env = vec![
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", path("ca.crt")),
        ("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20s3cret,x-tenant=team-a".to_owned()),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-tenant=team-b".to_owned()),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip".to_owned()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "20000".to_owned()),
    ];
    if with_client_certificate {
        env.push(("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", path("client.crt")));
        env.push(("OTEL_EXPORTER_OTLP_CLIENT_KEY", path("client.key")));
    }
    env
}

fn assert_every_span_arrived_as_configured(arrivals: &Arrivals, encoding: &str) {
    let arrivals = arrivals.lock().unwrap();
    let total: usize = arrivals.iter().map(|a| a.spans).sum();
    assert_eq!(total, spans_of_the_capture(), "every span of the capture, once");
    assert_eq!(arrivals.len(), 1, "one request for all actors: {arrivals:?}");
    for arrival in arrivals.iter() {
        assert_eq!(arrival.authorization.as_deref(), Some("Bearer s3cret"), "percent-decoded header");
        assert_eq!(arrival.tenant.as_deref(), Some("team-b"), "the TRACES_ header wins over the general one");
        assert_eq!(arrival.encoding.as_deref(), Some(encoding));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_export_over_mutual_tls_with_headers_and_gzip_from_the_standard_variables() {
    let certs = Certs::generate();
    let (addr, arrivals) = grpc_receiver(&certs).await;
    let mut env = tls_env(&certs, true);
    // localhost: the name on the server's certificate.
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", format!("https://localhost:{}", addr.port())));
    let out = replay(env).await;
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_every_span_arrived_as_configured(&arrivals, "gzip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_export_over_mutual_tls_with_headers_and_gzip_from_the_standard_variables() {
    let certs = Certs::generate();
    let (addr, arrivals) = http_receiver(&certs).await;
    let mut env = tls_env(&certs, true);
    env.push(("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("https://localhost:{}/custom/traces", addr.port())));
    env.push(("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf".to_owned()));
    let out = replay(env).await;
    assert!(out.status.success(), "replay failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_every_span_arrived_as_configured(&arrivals, "gzip");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_client_certificate_the_export_fails_and_says_so() {
    let certs = Certs::generate();
    let (addr, arrivals) = grpc_receiver(&certs).await;
    let mut env = tls_env(&certs, false);
    env.push(("OTEL_EXPORTER_OTLP_ENDPOINT", format!("https://localhost:{}", addr.port())));
    let out = replay(env).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the export cannot have succeeded: {stderr}");
    assert!(stderr.contains("OTLP export of"), "{stderr}");
    assert!(arrivals.lock().unwrap().is_empty(), "nothing was served without a client certificate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setting_that_cannot_be_used_is_refused_by_name() {
    let out = replay(vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9".to_owned()),
        ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "brotli".to_owned()),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION") && stderr.contains("gzip"), "{stderr}");
}
