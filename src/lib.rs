//! kausal explains what happens inside a Kubernetes cluster as distributed traces.
//!
//! The crate is laid out by pipeline stage, so the data flow reads off the file tree:
//!
//! ```text
//! sources/ (files, later webhook + watch) ─► model/ (borrowed, typed input)
//!        ─► core/ (pure: reorder ─► graph ─► linker ─► Span)
//!        ─► sinks/ (tree, OTLP/JSON, OTLP export)
//! ```
//!
//! `core` performs no I/O, reads no clock and never touches tokio: it is driven
//! by explicit timestamps, which is what makes replays deterministic.

pub mod core;
pub mod model;
pub mod replay;
pub mod sinks;
pub mod sources;
