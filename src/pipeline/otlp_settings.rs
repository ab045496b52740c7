//! Where and how the OTLP exporter sends: the explicit flags first, then the
//! standard `OTEL_EXPORTER_OTLP_*` variables (the `TRACES_` one before the
//! general one), then the OTLP defaults.
//!
//! kausal sends with tonic and reqwest directly (see `otlp_exporter.rs`), so it
//! reads these variables itself, as the OpenTelemetry specification defines
//! them: endpoint, headers, timeout, compression, and the certificate files.
//! A value that cannot be used is an error at start-up that names the
//! variable, never a silent default.

use std::path::PathBuf;
use std::time::Duration;

use super::otlp_exporter::OtlpProtocol;

/// The OTLP default for how long one export may take.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How request bodies are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

/// PEM files for TLS: a CA to trust beside the system's, and a client
/// certificate and key for mutual TLS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub client_certificate: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

/// Everything the exporter needs to know to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    pub protocol: OtlpProtocol,
    /// The URL requests go to (for HTTP, with its `/v1/traces` path).
    pub endpoint: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub compression: Compression,
    pub tls: TlsFiles,
}

/// A setting that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("{variable}={value:?}: {why}")]
    Invalid { variable: &'static str, value: String, why: &'static str },
    #[error("{variable} is set but {missing} is not: a client certificate needs its key and the key its certificate")]
    HalfAnIdentity { variable: &'static str, missing: &'static str },
}

/// The two names of one setting: the traces-only variable, then the general one.
struct Variable {
    traces: &'static str,
    general: &'static str,
}

const ENDPOINT: Variable =
    Variable { traces: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", general: "OTEL_EXPORTER_OTLP_ENDPOINT" };
const HEADERS: Variable =
    Variable { traces: "OTEL_EXPORTER_OTLP_TRACES_HEADERS", general: "OTEL_EXPORTER_OTLP_HEADERS" };
const TIMEOUT: Variable =
    Variable { traces: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", general: "OTEL_EXPORTER_OTLP_TIMEOUT" };
const COMPRESSION: Variable =
    Variable { traces: "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", general: "OTEL_EXPORTER_OTLP_COMPRESSION" };
const CERTIFICATE: Variable =
    Variable { traces: "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", general: "OTEL_EXPORTER_OTLP_CERTIFICATE" };
const CLIENT_CERTIFICATE: Variable = Variable {
    traces: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE",
    general: "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE",
};
const CLIENT_KEY: Variable =
    Variable { traces: "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", general: "OTEL_EXPORTER_OTLP_CLIENT_KEY" };

impl OtlpSettings {
    /// The settings from the flags and the process environment.
    pub fn resolve(endpoint: Option<&str>, protocol: OtlpProtocol) -> Result<OtlpSettings, SettingsError> {
        OtlpSettings::from_lookup(endpoint, protocol, |name| std::env::var(name).ok())
    }

    /// The settings from the flags and `lookup` (the environment, or a test's map).
    pub fn from_lookup(
        endpoint: Option<&str>,
        protocol: OtlpProtocol,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<OtlpSettings, SettingsError> {
        let get = |name: &'static str| lookup(name).filter(|v| !v.trim().is_empty()).map(|v| (name, v));
        let either = |v: &Variable| get(v.traces).or_else(|| get(v.general));
        let endpoint = match (endpoint, protocol) {
            (Some(url), OtlpProtocol::Grpc) => url.to_owned(),
            (Some(url), OtlpProtocol::HttpProtobuf) => http_traces_url(url),
            (None, OtlpProtocol::Grpc) => {
                either(&ENDPOINT).map_or_else(|| "http://localhost:4317".to_owned(), |(_, url)| url)
            }
            // The traces variable is the whole URL; the general one is a base.
            (None, OtlpProtocol::HttpProtobuf) => match (get(ENDPOINT.traces), get(ENDPOINT.general)) {
                (Some((_, url)), _) => url,
                (None, Some((_, base))) => http_traces_url(&base),
                (None, None) => "http://localhost:4318/v1/traces".to_owned(),
            },
        };
        // Both header lists apply; the traces one wins for a key in both.
        let mut headers = Vec::new();
        for name in [HEADERS.general, HEADERS.traces] {
            if let Some((name, value)) = get(name) {
                for (key, value) in parse_headers(name, &value)? {
                    headers.retain(|(k, _): &(String, String)| !k.eq_ignore_ascii_case(&key));
                    headers.push((key, value));
                }
            }
        }
        let timeout = match either(&TIMEOUT) {
            None => DEFAULT_TIMEOUT,
            Some((variable, value)) => match value.trim().parse::<u64>() {
                Ok(0) | Err(_) => {
                    return Err(SettingsError::Invalid {
                        variable,
                        value,
                        why: "a timeout is a positive whole number of milliseconds",
                    });
                }
                Ok(ms) => Duration::from_millis(ms),
            },
        };
        let compression = match either(&COMPRESSION) {
            None => Compression::None,
            Some((variable, value)) => match value.trim() {
                "gzip" => Compression::Gzip,
                "none" => Compression::None,
                _ => return Err(SettingsError::Invalid { variable, value, why: "expected `gzip` or `none`" }),
            },
        };
        let path = |v: &Variable| either(v).map(|(name, value)| (name, PathBuf::from(value)));
        let (certificate, key) = (path(&CLIENT_CERTIFICATE), path(&CLIENT_KEY));
        match (&certificate, &key) {
            (Some((variable, _)), None) => {
                return Err(SettingsError::HalfAnIdentity { variable, missing: CLIENT_KEY.general });
            }
            (None, Some((variable, _))) => {
                return Err(SettingsError::HalfAnIdentity { variable, missing: CLIENT_CERTIFICATE.general });
            }
            _ => {}
        }
        let tls = TlsFiles {
            ca: path(&CERTIFICATE).map(|(_, p)| p),
            client_certificate: certificate.map(|(_, p)| p),
            client_key: key.map(|(_, p)| p),
        };
        Ok(OtlpSettings { protocol, endpoint, headers, timeout, compression, tls })
    }
}

/// `k1=v1,k2=v2`, values percent-decoded (W3C Baggage's format, as the
/// specification says).
fn parse_headers(variable: &'static str, value: &str) -> Result<Vec<(String, String)>, SettingsError> {
    let invalid = |why| SettingsError::Invalid { variable, value: value.to_owned(), why };
    let mut headers = Vec::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, raw) = pair.split_once('=').ok_or_else(|| invalid("each header is `key=value`"))?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)) {
            return Err(invalid("a header name is a token: letters, digits and !#$%&'*+-.^_`|~"));
        }
        let decoded: String = percent_decode(raw.trim()).ok_or_else(|| invalid("bad percent-encoding"))?;
        headers.push((key.to_ascii_lowercase(), decoded));
    }
    Ok(headers)
}

/// Percent-decoding of a header value (`+` stays a plus sign, unlike forms).
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// `http://host:4318` → `http://host:4318/v1/traces`; a URL with a path is kept.
pub fn http_traces_url(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    if after_scheme.trim_end_matches('/').contains('/') {
        url.to_owned()
    } else {
        format!("{}/v1/traces", url.trim_end_matches('/'))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(endpoint: Option<&str>, protocol: OtlpProtocol, env: &[(&str, &str)]) -> Result<OtlpSettings, String> {
        let env: HashMap<String, String> = env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        OtlpSettings::from_lookup(endpoint, protocol, |name| env.get(name).cloned()).map_err(|e| e.to_string())
    }

    #[test]
    fn http_urls_get_the_traces_path() {
        assert_eq!(http_traces_url("http://127.0.0.1:4318"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(http_traces_url("http://127.0.0.1:4318/"), "http://127.0.0.1:4318/v1/traces");
        assert_eq!(http_traces_url("https://otel.example/custom/traces"), "https://otel.example/custom/traces");
    }

    #[test]
    fn endpoints_come_from_the_flag_then_the_traces_variable_then_the_general_one() {
        let grpc = OtlpProtocol::Grpc;
        let http = OtlpProtocol::HttpProtobuf;
        assert_eq!(settings(None, grpc, &[]).unwrap().endpoint, "http://localhost:4317");
        assert_eq!(settings(None, http, &[]).unwrap().endpoint, "http://localhost:4318/v1/traces");
        let env = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")];
        assert_eq!(settings(None, http, &env).unwrap().endpoint, "http://c:4318/v1/traces");
        let env =
            [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t/x")];
        assert_eq!(settings(None, http, &env).unwrap().endpoint, "http://t/x");
        assert_eq!(settings(Some("http://flag:4318"), http, &env).unwrap().endpoint, "http://flag:4318/v1/traces");
        assert_eq!(
            settings(None, grpc, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://g:4317")]).unwrap().endpoint,
            "http://g:4317"
        );
    }

    #[test]
    fn headers_are_merged_decoded_and_checked() {
        let env = [
            ("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Basic%20abc, x-tenant=a"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "X-Tenant=b"),
        ];
        let headers = settings(None, OtlpProtocol::Grpc, &env).unwrap().headers;
        assert_eq!(
            headers,
            vec![("authorization".to_owned(), "Basic abc".to_owned()), ("x-tenant".to_owned(), "b".to_owned())]
        );
        let bad = settings(None, OtlpProtocol::Grpc, &[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")]).unwrap_err();
        assert!(bad.contains("OTEL_EXPORTER_OTLP_HEADERS") && bad.contains("key=value"), "{bad}");
        let bad = settings(None, OtlpProtocol::Grpc, &[("OTEL_EXPORTER_OTLP_HEADERS", "a b=c")]).unwrap_err();
        assert!(bad.contains("token"), "{bad}");
        let bad = settings(None, OtlpProtocol::Grpc, &[("OTEL_EXPORTER_OTLP_HEADERS", "a=%zz")]).unwrap_err();
        assert!(bad.contains("percent"), "{bad}");
    }

    #[test]
    fn timeout_and_compression_are_read_or_refused_by_name() {
        let s = settings(None, OtlpProtocol::Grpc, &[]).unwrap();
        assert_eq!((s.timeout, s.compression), (DEFAULT_TIMEOUT, Compression::None));
        let env = [("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"), ("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")];
        let s = settings(None, OtlpProtocol::Grpc, &env).unwrap();
        assert_eq!((s.timeout, s.compression), (Duration::from_millis(2500), Compression::Gzip));
        let bad = settings(None, OtlpProtocol::Grpc, &[("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "10s")]).unwrap_err();
        assert!(bad.contains("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") && bad.contains("milliseconds"), "{bad}");
        let bad = settings(None, OtlpProtocol::Grpc, &[("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd")]).unwrap_err();
        assert!(bad.contains("gzip"), "{bad}");
    }

    #[test]
    fn a_client_certificate_needs_its_key() {
        let env = [("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"), ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem")];
        let bad = settings(None, OtlpProtocol::Grpc, &env).unwrap_err();
        assert!(bad.contains("OTEL_EXPORTER_OTLP_CLIENT_KEY"), "{bad}");
        let env = [
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/ca.pem"),
            ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "/c.pem"),
            ("OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "/k.pem"),
        ];
        let tls = settings(None, OtlpProtocol::Grpc, &env).unwrap().tls;
        assert_eq!(tls.ca, Some(PathBuf::from("/ca.pem")));
        assert_eq!(tls.client_key, Some(PathBuf::from("/k.pem")));
    }
}
