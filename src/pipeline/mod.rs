//! The live pipeline behind `kausal serve`: the plumbing between sources and sinks.
//!
//! ```text
//! sources ─► queue ─► worker (one core Engine per cluster) ─► span channel ─► export loop ─► trace store, then OTLP
//!                                                                                └─► write-ahead log acknowledgements
//! ```
//!
//! - [`queue`]: bounded in records; a full queue is a 429, never a drop.
//! - [`worker`]: the thread that drives the pure core and hands spans on.
//! - [`export_loop`]: retries with backoff, then gives up and counts; returns
//!   each log entry's [`AckToken`](crate::wal::AckToken) once its spans are out.
//! - [`otlp_exporter`]: the OTLP client (gRPC or HTTP/protobuf) over the sinks' encoding.
//! - [`clock`]: the wall clock, and the core's "now" for a live stream.
//! - [`cluster_slots`]: which clusters have a graph (`--max-clusters`), given up when idle.
//! - [`health`]: what `/readyz` reports about exports.

pub mod clock;
pub mod cluster_slots;
pub mod export_loop;
pub mod health;
pub mod otlp_exporter;
pub mod otlp_settings;
pub mod queue;
pub mod worker;

pub use clock::{EventClock, wall_clock_micros};
pub use cluster_slots::ClusterSlots;
pub use health::ExportHealth;
pub use queue::{Batch, EnqueueError, IngestQueue, QueueReceiver, Reservation};
pub use worker::{LookupRequest, SpanBatch, WorkerConfig, run_worker};
