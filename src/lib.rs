//! kausal explains what happens inside a Kubernetes cluster as distributed traces.
//!
//! The crate is laid out by pipeline stage, so the data flow reads off the file tree:
//!
//! ```text
//! sources/ (files, webhook over TLS, Event watch) ─► model/ (borrowed, typed input)
//!        ─► wal (accepted bodies on disk before the 200, live server only)
//!        ─► pipeline (bounded queue ─► core worker, live server only)
//!        ─► core/ (pure: reorder ─► graph ─► linker ─► Span)
//!        ─► sinks/ (tree, OTLP/JSON, OTLP export with retries)
//! ```
//!
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
pub mod replay;
pub mod serve;
pub mod sinks;
pub mod sources;
pub mod telemetry;
pub mod wal;
