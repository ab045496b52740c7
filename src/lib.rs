//! kausal explains what happens inside a Kubernetes cluster as distributed traces.
//!
//! The crate is laid out by pipeline stage, so the data flow reads off the file tree:
//!
//! ```text
//! sources/ (webhook over TLS, Event watch, files) ─► decode/ (bytes → records, bad records counted)
//!        ─► core/ (pure: settle ─► graph ─► linker ─► Span)
//!        ─► pipeline/ (bounded queue ─► core worker ─► export loop; live server only)
//!        ─► sinks/ (pure encoders: tree, OTLP/JSON, OTLP span data)
//! wal/ keeps accepted bodies on disk before the 200 until their spans are out.
//! store/ keeps every span (SQLite); query/ answers Jaeger's APIs and serves the viewer from it.
//! ```
//!
//! Imports point down the layers of ARCHITECTURE.md, toward the core:
//! `core` performs no I/O, reads no clock and never touches tokio: it is driven
//! by explicit timestamps, which is what makes replays deterministic.
//! `replay` and `serve` are the two ways of running the pipeline; `cert` makes
//! development certificates for `serve`.

pub mod cert;
pub mod config_file;
pub mod core;
pub mod decode;
pub mod linking_args;
pub mod pipeline;
pub mod query;
pub mod replay;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod store;
pub mod telemetry;
pub mod view;
pub mod wal;
