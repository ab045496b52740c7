//! Export over OTLP (gRPC or HTTP/protobuf) with the opentelemetry-otlp crate,
//! which also honours the standard `OTEL_EXPORTER_OTLP_*` variables (headers,
//! timeout, compression, certificates, and the endpoint when none is given).

use std::fmt;
use std::str::FromStr;

use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SpanExporter as _;

use crate::core::span::Span;
use crate::sinks::otel::{SharedResource, group_by_actor, scope, to_span_data};

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
    #[error("building the OTLP exporter: {0}")]
    Build(#[from] opentelemetry_otlp::ExporterBuildError),
    #[error("OTLP export of {spans} spans failed: {source}")]
    Export { spans: usize, source: opentelemetry_sdk::error::OTelSdkError },
}

impl ExportError {
    /// Whether sending the same spans again can succeed, as the OTLP
    /// specification lists it: gRPC `CANCELLED`, `DEADLINE_EXCEEDED`,
    /// `RESOURCE_EXHAUSTED`, `ABORTED`, `OUT_OF_RANGE`, `UNAVAILABLE`,
    /// `DATA_LOSS`; HTTP 429, 502, 503, 504; and failures to reach the
    /// endpoint at all. Anything else (`INVALID_ARGUMENT`, `UNAUTHENTICATED`,
    /// HTTP 400...) would fail the same way for ten minutes.
    ///
    /// opentelemetry-otlp reports the answer only in its error text
    /// (`... export failed with gRPC code: InvalidArgument`, `HTTP export
    /// failed with status code: 400`), so that text is what is read.
    pub fn retryable(&self) -> bool {
        let text = self.to_string();
        // The connection failed under the request (a collector shutting
        // down sends GOAWAY, which tonic reports as `Internal: transport
        // error: http2 error ...`): not the endpoint's answer, so retrying
        // can succeed, whatever code the client library put on it.
        if text.contains("transport error") {
            return true;
        }
        if let Some(code) = text.split("gRPC code: ").nth(1) {
            let code = code.split(|c: char| !c.is_ascii_alphanumeric()).next().unwrap_or("");
            return matches!(
                code,
                "Cancelled"
                    | "DeadlineExceeded"
                    | "ResourceExhausted"
                    | "Aborted"
                    | "OutOfRange"
                    | "Unavailable"
                    | "DataLoss"
            );
        }
        if let Some(status) = text.split("status code: ").nth(1) {
            let status: String = status.chars().take_while(char::is_ascii_digit).collect();
            return matches!(status.as_str(), "429" | "502" | "503" | "504" | "0" | "");
        }
        true
    }
}

/// An OTLP span exporter that sends each actor's spans under its own resource.
pub struct OtlpExporter {
    exporter: opentelemetry_otlp::SpanExporter,
    resource: SharedResource,
    pub protocol: OtlpProtocol,
    /// Where spans go, for messages: the explicit URL, else the
    /// `OTEL_EXPORTER_OTLP_*ENDPOINT` variable, else the OTLP default.
    pub endpoint: String,
}

/// The endpoint the exporter sends to, as the OTLP exporter resolves it.
fn describe_endpoint(explicit: Option<&str>, protocol: OtlpProtocol) -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (explicit, protocol) {
        (Some(url), OtlpProtocol::Grpc) => url.to_owned(),
        (Some(url), OtlpProtocol::HttpProtobuf) => http_traces_url(url),
        (None, OtlpProtocol::Grpc) => var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))
            .unwrap_or_else(|| "http://localhost:4317".to_owned()),
        (None, OtlpProtocol::HttpProtobuf) => var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT").map(|u| http_traces_url(&u)))
            .unwrap_or_else(|| "http://localhost:4318/v1/traces".to_owned()),
    }
}

/// How many spans go into one export request at most.
const MAX_BATCH: usize = 512;

/// How far the export of one set of spans got. A batch goes out as several
/// requests (one per actor, at most [`MAX_BATCH`] spans each), each accepted
/// or refused whole; a retry of the batch with the same progress sends only
/// the requests not yet accepted, so a failure halfway duplicates nothing.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportProgress {
    /// Requests accepted, in the order [`OtlpExporter::export_with`] sends them.
    pub requests: usize,
    /// Spans in them.
    pub spans: usize,
}

impl OtlpExporter {
    /// Builds the exporter. `endpoint` of `None` leaves the endpoint to the
    /// `OTEL_EXPORTER_OTLP_*ENDPOINT` variables and the OTLP defaults. For HTTP,
    /// an endpoint without a path gets `/v1/traces`.
    pub fn new(endpoint: Option<&str>, protocol: OtlpProtocol, resource: SharedResource) -> Result<Self, ExportError> {
        let exporter = match protocol {
            OtlpProtocol::Grpc => {
                let mut b = opentelemetry_otlp::SpanExporter::builder().with_tonic();
                if let Some(url) = endpoint {
                    b = b.with_endpoint(url);
                }
                b.build()?
            }
            OtlpProtocol::HttpProtobuf => {
                let mut b = opentelemetry_otlp::SpanExporter::builder().with_http().with_protocol(Protocol::HttpBinary);
                if let Some(url) = endpoint {
                    b = b.with_endpoint(http_traces_url(url));
                }
                b.build()?
            }
        };
        Ok(OtlpExporter { exporter, resource, protocol, endpoint: describe_endpoint(endpoint, protocol) })
    }

    /// Exports spans, one request per actor and at most [`MAX_BATCH`] spans each.
    pub async fn export(&mut self, spans: &[Span]) -> Result<(), ExportError> {
        let resource = self.resource.clone();
        self.export_with(&resource, spans, &mut ExportProgress::default()).await
    }

    /// Like [`export`](Self::export), under another shared resource (a
    /// server's per-cluster resource), skipping the requests `progress` says
    /// were accepted and counting the ones that are. `spans` must be the same
    /// on every call with the same progress.
    pub async fn export_with(
        &mut self,
        resource: &SharedResource,
        spans: &[Span],
        progress: &mut ExportProgress,
    ) -> Result<(), ExportError> {
        let scope = scope();
        let mut request = 0;
        for (actor, group) in group_by_actor(spans) {
            let requests = group.len().div_ceil(MAX_BATCH);
            if request + requests <= progress.requests {
                request += requests;
                continue;
            }
            self.exporter.set_resource(&resource.resource_for_actor(actor));
            for chunk in group.chunks(MAX_BATCH) {
                request += 1;
                if request <= progress.requests {
                    continue;
                }
                let batch = chunk.iter().map(|s| to_span_data(s, &scope)).collect();
                self.exporter
                    .export(batch)
                    .await
                    .map_err(|source| ExportError::Export { spans: chunk.len(), source })?;
                progress.requests += 1;
                progress.spans += chunk.len();
            }
        }
        Ok(())
    }

    pub fn shutdown(&mut self) {
        let _ = self.exporter.shutdown();
    }
}

/// `http://host:4318` → `http://host:4318/v1/traces`; a URL with a path is kept.
fn http_traces_url(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    if after_scheme.trim_end_matches('/').contains('/') {
        url.to_owned()
    } else {
        format!("{}/v1/traces", url.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_get_the_traces_path() {
        assert_eq!(http_traces_url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(http_traces_url("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(http_traces_url("https://otel.example/custom/traces"), "https://otel.example/custom/traces");
    }

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
        let error = |text: &str| ExportError::Export {
            spans: 1,
            source: opentelemetry_sdk::error::OTelSdkError::InternalFailure(text.to_owned()),
        };
        for retryable in [
            "TonicTracesClient export failed with gRPC code: Unavailable: connection refused",
            // A collector that shut down under the request (seen in the
            // outage fault test): a transport failure, not an answer.
            "Operation failed: TonicTracesClient export failed with gRPC code: Internal: transport error: http2 error: \
             connection error received: not a result of an error",
            "TonicTracesClient export failed with gRPC code: ResourceExhausted",
            "HTTP export failed with status code: 503",
            "HTTP export failed with status code: 429",
            "HTTP export failed: network error",
            "operation timed out",
        ] {
            assert!(error(retryable).retryable(), "{retryable}");
        }
        for final_answer in [
            "TonicTracesClient export failed with gRPC code: InvalidArgument",
            "TonicTracesClient export failed with gRPC code: Unauthenticated",
            "TonicTracesClient export failed with gRPC code: PermissionDenied",
            "HTTP export failed with status code: 400",
            "HTTP export failed with status code: 401",
        ] {
            assert!(!error(final_answer).retryable(), "{final_answer}");
        }
    }
}
