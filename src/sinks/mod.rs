//! Sinks: pure encoders. They take the core's spans and return bytes or
//! requests (a terminal tree, OTLP/JSON lines, OpenTelemetry span data); they
//! never do I/O of their own, so the export loop decides when and where bytes go.

pub mod otel;
pub mod otlp_json;
pub mod tree;
