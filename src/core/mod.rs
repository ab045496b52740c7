//! The causal core: pure, deterministic, and free of I/O, clocks and tokio.
//!
//! Sources hand it [`record::Record`]s; it orders them within a settle delay,
//! keeps the object graph, decides each record's cause and yields
//! [`span::Span`]s for the sinks. Time only moves when a caller says so
//! ([`engine::Engine::advance`]), so a replay of recorded input is exact.

pub mod actors;
mod context_origins;
mod dedup;
pub mod engine;
mod event_chain;
mod event_tracker;
pub(crate) mod graph;
pub mod ids;
pub mod kinds;
pub(crate) mod linker;
pub mod record;
mod settle;
pub mod span;
pub mod span_builder;
pub mod time;

pub use engine::{CoreConfig, Engine, EngineStats};
pub use record::Record;
pub use span::Span;
