//! Sinks: where spans go. They decide the encoding; the core never sees it.

pub mod export_task;
pub mod otel;
pub mod otlp_export;
pub mod otlp_json;
pub mod tree;
