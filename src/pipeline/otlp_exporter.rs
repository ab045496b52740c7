//! Export over OTLP: gRPC with tonic, or HTTP/protobuf with reqwest, with the
//! request types of opentelemetry-proto.
//!
//! Why not opentelemetry-otlp's span exporter: it takes one resource per
//! export call, so a batch by twenty actors went out as twenty requests, each
//! after converting kausal's spans into the SDK's `SpanData` and then into
//! protobuf, one request awaited after the other; it measured about 20 k
//! spans/s to a loopback receiver. Here a batch is one request (one
//! `ResourceSpans` per actor) built straight from kausal's spans, and the
//! exporter is a cheap handle to one connection, so several requests can be
//! in flight at once. The `OTEL_EXPORTER_OTLP_*` variables are read in
//! `otlp_settings.rs`.

use std::fmt;
use std::io::Write as _;
use std::ops::Range;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use futures::StreamExt as _;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use prost::Message as _;
use tonic::codec::CompressionEncoding;
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use super::otlp_settings::{Compression, OtlpSettings, SettingsError};
use crate::core::span::Span;
use crate::sinks::otel::{SharedResource, export_request};
use crate::telemetry::error_chain;

/// The wire protocol of the exporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

impl FromStr for OtlpProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" | "http" => Ok(OtlpProtocol::HttpProtobuf),
            other => Err(format!("unknown OTLP protocol `{other}` (expected `grpc` or `http/protobuf`)")),
        }
    }
}

impl fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        })
    }
}

impl OtlpProtocol {
    /// The protocol to use: the explicit choice, else the standard environment
    /// variables, else a guess from the URL (port 4318 or a `/v1/traces` path
    /// means HTTP), else gRPC.
    pub fn choose(explicit: Option<OtlpProtocol>, endpoint: Option<&str>) -> Result<OtlpProtocol, String> {
        if let Some(p) = explicit {
            return Ok(p);
        }
        for var in ["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"] {
            if let Ok(value) = std::env::var(var)
                && !value.is_empty()
            {
                return value.parse().map_err(|e| format!("{var}: {e}"));
            }
        }
        Ok(match endpoint {
            Some(url) if port_of(url) == Some(4318) || url.trim_end_matches('/').ends_with("/v1/traces") => {
                OtlpProtocol::HttpProtobuf
            }
            _ => OtlpProtocol::Grpc,
        })
    }
}

/// The port of a URL's authority (`http://host:4318/x` → 4318). Only the
/// port itself counts: `:43187` is not OTLP/HTTP's port.
fn port_of(url: &str) -> Option<u16> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let (_, port) = authority.rsplit_once(':')?;
    port.parse().ok()
}

/// Why an export, or building the exporter, failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("OTLP exporter settings: {0}")]
    Settings(#[from] SettingsError),
    #[error("OTLP endpoint {endpoint:?}: {why}")]
    Endpoint { endpoint: String, why: String },
    #[error("reading {path}: {source}")]
    ReadFile { path: String, source: std::io::Error },
    #[error("OTLP TLS settings: {0}")]
    Tls(String),
    #[error("OTLP export of {spans} spans failed with gRPC code: {code:?}: {message}")]
    Grpc { spans: usize, code: tonic::Code, message: String, local: bool },
    #[error("OTLP export of {spans} spans failed with HTTP status code: {status}: {body}")]
    Http { spans: usize, status: u16, body: String },
    #[error("OTLP export of {spans} spans failed: the endpoint could not be reached: {message}")]
    Unreachable { spans: usize, message: String },
}

impl ExportError {
    /// Whether sending the same spans again can succeed, as the OTLP
    /// specification lists it: gRPC `CANCELLED`, `DEADLINE_EXCEEDED`,
    /// `RESOURCE_EXHAUSTED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`,
    /// `DATA_LOSS`; HTTP 429, 502, 503, 504; and failures to reach the
    /// endpoint at all. Anything else (`INVALID_ARGUMENT`, `UNAUTHENTICATED`,
    /// HTTP 400...) would fail the same way for ten minutes.
    pub fn retryable(&self) -> bool {
        use tonic::Code;
        match self {
            // The connection failed under the request (a collector shutting
            // down sends GOAWAY): tonic made that status itself, it is not
            // the endpoint's answer, so retrying can succeed.
            ExportError::Grpc { local: true, .. } | ExportError::Unreachable { .. } => true,
            ExportError::Grpc { code, .. } => matches!(
                code,
                Code::Cancelled
                    | Code::DeadlineExceeded
                    | Code::ResourceExhausted
                    | Code::Aborted
                    | Code::OutOfRange
                    | Code::Unavailable
                    | Code::DataLoss
            ),
            ExportError::Http { status, .. } => matches!(status, 429 | 502 | 503 | 504),
            ExportError::Settings(_)
            | ExportError::Endpoint { .. }
            | ExportError::ReadFile { .. }
            | ExportError::Tls(_) => false,
        }
    }

    fn grpc(spans: usize, status: tonic::Status) -> ExportError {
        // A status the client made from a local failure carries that failure
        // as its source; one decoded from the endpoint's answer has none.
        let local = std::error::Error::source(&status).is_some();
        ExportError::Grpc { spans, code: status.code(), message: status.message().to_owned(), local }
    }
}

/// How many spans go into one request at most: at kausal's span sizes (about
/// 700 bytes encoded) a request stays far below the 4 MiB that gRPC servers,
/// the OpenTelemetry Collector among them, accept by default.
pub const MAX_REQUEST_SPANS: usize = 2048;

/// How many requests are in flight at once, at most: [`OtlpExporter::export`]
/// (a replay's export) and the server's export loop (batches) alike.
pub const IN_FLIGHT: usize = 4;

/// The wire: a tonic client (one HTTP/2 connection, requests multiplexed on
/// it) or a reqwest client (a pool of connections). Both are cheap handles.
#[derive(Clone)]
enum Transport {
    Grpc { client: Box<TraceServiceClient<Channel>>, metadata: Arc<MetadataMap> },
    Http { client: reqwest::Client, url: String, gzip: bool },
}

/// An OTLP span exporter that sends each actor's spans under its own
/// resource, all actors of a batch in one request. Clones share the connection.
#[derive(Clone)]
pub struct OtlpExporter {
    transport: Transport,
    resource: SharedResource,
    pub protocol: OtlpProtocol,
    /// Where spans go, for messages.
    pub endpoint: String,
}

/// How far the export of one set of spans got. Spans go out as requests of
/// at most [`MAX_REQUEST_SPANS`], each accepted or refused whole; a retry
/// with the same progress sends only the requests not yet accepted, so a
/// failure halfway duplicates nothing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportProgress {
    /// Requests accepted, in the order [`OtlpExporter::export_with`] sends them.
    pub requests: usize,
    /// Spans in them.
    pub spans: usize,
}

impl OtlpExporter {
    /// Builds the exporter from the flags and the `OTEL_EXPORTER_OTLP_*`
    /// variables. `endpoint` of `None` leaves the endpoint to the variables
    /// and the OTLP defaults. For HTTP, an endpoint without a path gets
    /// `/v1/traces`. Must be called within a tokio runtime; nothing connects
    /// until the first export.
    pub fn new(endpoint: Option<&str>, protocol: OtlpProtocol, resource: SharedResource) -> Result<Self, ExportError> {
        OtlpExporter::with_settings(OtlpSettings::resolve(endpoint, protocol)?, resource)
    }

    pub fn with_settings(settings: OtlpSettings, resource: SharedResource) -> Result<Self, ExportError> {
        let endpoint_error = |why: String| ExportError::Endpoint { endpoint: settings.endpoint.clone(), why };
        let https = settings.endpoint.starts_with("https://");
        if !https && !settings.endpoint.starts_with("http://") {
            return Err(endpoint_error("expected an http:// or https:// URL".to_owned()));
        }
        let transport = match settings.protocol {
            OtlpProtocol::Grpc => {
                let mut endpoint = Channel::from_shared(settings.endpoint.clone())
                    .map_err(|e| endpoint_error(e.to_string()))?
                    .timeout(settings.timeout)
                    .connect_timeout(settings.timeout);
                if https {
                    endpoint =
                        endpoint.tls_config(grpc_tls(&settings)?).map_err(|e| ExportError::Tls(e.to_string()))?;
                }
                let mut client = TraceServiceClient::new(endpoint.connect_lazy()).max_decoding_message_size(16 << 20);
                if settings.compression == Compression::Gzip {
                    client =
                        client.send_compressed(CompressionEncoding::Gzip).accept_compressed(CompressionEncoding::Gzip);
                }
                let mut metadata = MetadataMap::new();
                for (key, value) in &settings.headers {
                    let key = MetadataKey::from_bytes(key.as_bytes()).map_err(|e| ExportError::Endpoint {
                        endpoint: settings.endpoint.clone(),
                        why: format!("header {key:?}: {e}"),
                    })?;
                    let value = MetadataValue::try_from(value.as_str()).map_err(|e| ExportError::Endpoint {
                        endpoint: settings.endpoint.clone(),
                        why: format!("header {key:?}: {e}"),
                    })?;
                    metadata.insert(key, value);
                }
                Transport::Grpc { client: Box::new(client), metadata: Arc::new(metadata) }
            }
            OtlpProtocol::HttpProtobuf => {
                let mut headers = reqwest::header::HeaderMap::new();
                headers.insert(reqwest::header::CONTENT_TYPE, "application/x-protobuf".parse().expect("static"));
                for (key, value) in &settings.headers {
                    let name = reqwest::header::HeaderName::from_bytes(key.as_bytes())
                        .map_err(|e| endpoint_error(format!("header {key:?}: {e}")))?;
                    let value = reqwest::header::HeaderValue::from_str(value)
                        .map_err(|e| endpoint_error(format!("header {key:?}: {e}")))?;
                    headers.insert(name, value);
                }
                let mut builder = reqwest::Client::builder().timeout(settings.timeout).default_headers(headers);
                if let Some(ca) = &settings.tls.ca {
                    let pem = read(ca)?;
                    builder = builder.add_root_certificate(
                        reqwest::Certificate::from_pem(&pem)
                            .map_err(|e| ExportError::Tls(format!("{}: {e}", ca.display())))?,
                    );
                }
                if let (Some(cert), Some(key)) = (&settings.tls.client_certificate, &settings.tls.client_key) {
                    let mut pem = read(cert)?;
                    pem.extend(read(key)?);
                    builder = builder.identity(
                        reqwest::Identity::from_pem(&pem)
                            .map_err(|e| ExportError::Tls(format!("{} and {}: {e}", cert.display(), key.display())))?,
                    );
                }
                let client = builder.build().map_err(|e| endpoint_error(e.to_string()))?;
                Transport::Http {
                    client,
                    url: settings.endpoint.clone(),
                    gzip: settings.compression == Compression::Gzip,
                }
            }
        };
        Ok(OtlpExporter { transport, resource, protocol: settings.protocol, endpoint: settings.endpoint })
    }

    /// Exports spans under the exporter's own resource, [`IN_FLIGHT`]
    /// requests at a time (a replay's whole output).
    pub async fn export(&self, spans: &[Span]) -> Result<(), ExportError> {
        let mut sends = futures::stream::iter(request_ranges(spans.len()))
            .map(|range| self.send(export_request(&spans[range.clone()], &self.resource), range.len()))
            .buffer_unordered(IN_FLIGHT);
        while let Some(result) = sends.next().await {
            result?;
        }
        Ok(())
    }

    /// Exports spans under another shared resource (a server's per-cluster
    /// resource), one request after the other, skipping the requests
    /// `progress` says were accepted and counting the ones that are. `spans`
    /// must be the same on every call with the same progress. Several
    /// batches may be exported at once from clones of the exporter.
    pub async fn export_with(
        &self,
        resource: &SharedResource,
        spans: &[Span],
        progress: &mut ExportProgress,
    ) -> Result<(), ExportError> {
        for range in request_ranges(spans.len()).skip(progress.requests) {
            let count = range.len();
            self.send(export_request(&spans[range], resource), count).await?;
            progress.requests += 1;
            progress.spans += count;
        }
        Ok(())
    }

    /// Sends one request of `spans` spans.
    async fn send(&self, request: ExportTraceServiceRequest, spans: usize) -> Result<(), ExportError> {
        let partial = match &self.transport {
            Transport::Grpc { client, metadata } => {
                let request = tonic::Request::from_parts(MetadataMap::clone(metadata), Default::default(), request);
                let response =
                    TraceServiceClient::clone(client).export(request).await.map_err(|s| ExportError::grpc(spans, s))?;
                response.into_inner().partial_success
            }
            Transport::Http { client, url, gzip } => {
                let mut body = request.encode_to_vec();
                let mut post = client.post(url);
                if *gzip {
                    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                    encoder.write_all(&body).and_then(|()| encoder.flush()).expect("writing to memory");
                    body = encoder.finish().expect("writing to memory");
                    post = post.header(reqwest::header::CONTENT_ENCODING, "gzip");
                }
                let response = post
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| ExportError::Unreachable { spans, message: error_chain(&e) })?;
                let status = response.status();
                let bytes = response.bytes().await.unwrap_or_default();
                if !status.is_success() {
                    let body = String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
                    return Err(ExportError::Http { spans, status: status.as_u16(), body });
                }
                use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
                ExportTraceServiceResponse::decode(bytes).ok().and_then(|r| r.partial_success)
            }
        };
        // The endpoint took the request but not every span: said, not retried
        // (the specification: a partial success must not be retried).
        if let Some(p) = partial.filter(|p| p.rejected_spans > 0) {
            tracing::warn!(endpoint = %self.endpoint, rejected = p.rejected_spans, message = %p.error_message, "the OTLP endpoint rejected some spans");
        }
        Ok(())
    }
}

/// The spans of each request, in order: at most [`MAX_REQUEST_SPANS`] each.
fn request_ranges(spans: usize) -> impl Iterator<Item = Range<usize>> {
    (0..spans.div_ceil(MAX_REQUEST_SPANS)).map(move |i| i * MAX_REQUEST_SPANS..((i + 1) * MAX_REQUEST_SPANS).min(spans))
}

fn read(path: &Path) -> Result<Vec<u8>, ExportError> {
    std::fs::read(path).map_err(|source| ExportError::ReadFile { path: path.display().to_string(), source })
}

/// TLS for gRPC: the system's roots, the given CA, the client identity.
fn grpc_tls(settings: &OtlpSettings) -> Result<ClientTlsConfig, ExportError> {
    let mut tls = ClientTlsConfig::new().with_native_roots();
    if let Some(ca) = &settings.tls.ca {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
    }
    if let (Some(cert), Some(key)) = (&settings.tls.client_certificate, &settings.tls.client_key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_guess_from_url() {
        // Only meaningful when the environment does not choose; skip otherwise.
        if std::env::var_os("OTEL_EXPORTER_OTLP_PROTOCOL").is_some()
            || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").is_some()
        {
            return;
        }
        assert_eq!(OtlpProtocol::choose(None, Some("http://h:4318")).unwrap(), OtlpProtocol::HttpProtobuf);
        assert_eq!(OtlpProtocol::choose(None, Some("http://h:4317")).unwrap(), OtlpProtocol::Grpc);
        // A port that only starts with 4318 (a test receiver's, 43187) is not OTLP/HTTP's.
        assert_eq!(OtlpProtocol::choose(None, Some("http://127.0.0.1:43187")).unwrap(), OtlpProtocol::Grpc);
        assert_eq!(OtlpProtocol::choose(None, Some("https://otel.example:4318/")).unwrap(), OtlpProtocol::HttpProtobuf);
        assert_eq!(OtlpProtocol::choose(Some(OtlpProtocol::Grpc), Some("http://h:4318")).unwrap(), OtlpProtocol::Grpc);
        assert!("zipkin".parse::<OtlpProtocol>().is_err());
    }

    #[test]
    fn only_answers_the_otlp_specification_calls_retryable_are_retried() {
        use tonic::Code;
        let grpc = |code, local| ExportError::Grpc { spans: 1, code, message: String::new(), local };
        let http = |status| ExportError::Http { spans: 1, status, body: String::new() };
        for retryable in [
            grpc(Code::Unavailable, false),
            grpc(Code::ResourceExhausted, false),
            grpc(Code::DeadlineExceeded, false),
            // A collector that shut down under the request (seen in the
            // outage fault test): a transport failure, whatever its code.
            grpc(Code::Internal, true),
            http(503),
            http(429),
            ExportError::Unreachable { spans: 1, message: "connection refused".to_owned() },
        ] {
            assert!(retryable.retryable(), "{retryable}");
        }
        for final_answer in [
            grpc(Code::InvalidArgument, false),
            grpc(Code::Unauthenticated, false),
            grpc(Code::PermissionDenied, false),
            grpc(Code::Internal, false),
            http(400),
            http(401),
        ] {
            assert!(!final_answer.retryable(), "{final_answer}");
        }
    }

    #[test]
    fn requests_cover_every_span_once_in_order() {
        let ranges: Vec<_> = request_ranges(2 * MAX_REQUEST_SPANS + 5).collect();
        assert_eq!(
            ranges,
            vec![
                0..MAX_REQUEST_SPANS,
                MAX_REQUEST_SPANS..2 * MAX_REQUEST_SPANS,
                2 * MAX_REQUEST_SPANS..2 * MAX_REQUEST_SPANS + 5
            ]
        );
        assert_eq!(request_ranges(0).count(), 0);
    }
}
