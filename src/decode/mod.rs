//! Decoding: bytes in, core records out, whatever shape they come in.
//!
//! One entry point, [`decode`], for every source (files, webhook bodies, the
//! write-ahead log, watched Events). The layers, in the order bytes meet them:
//!
//! - [`framing`]: UTF-8 isolation and the JSON values of one document;
//! - [`shape`]: which record or wrapper a value is (audit, Event, AKS, GKE,
//!   lists, watch lines), one module per shape: [`audit`], [`event`], [`aks`], [`gke`];
//! - [`normalize`]: a mutating request into the core's `WriteRecord`;
//! - [`outcome`]: what comes back, with every rejected record and its reason;
//! - [`views`]: borrowed serde views of the input formats.
//!
//! A malformed value never stops decoding: it becomes a [`BadRecord`] with a
//! reason and a line, and decoding resumes at the next line that starts a value.

mod aks;
mod audit;
mod event;
mod floor;
mod framing;
mod gitops;
mod gke;
mod normalize;
mod object_meta;
mod outcome;
mod shape;
pub mod trace_context;
pub(crate) mod views;

use std::time::Duration;

pub use floor::{FloorCount, parse_floor};
pub use outcome::{BadReason, BadRecord, DecodeStats, Decoded};

use crate::core::time::{self, Micros};

/// Choices about what to keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Keep Lease writes and leader-election ConfigMap/Endpoints updates, which
    /// are dropped by default: they are heartbeat noise, a few per second.
    pub keep_leader_election: bool,
    /// A live source's clock: records stamped later than it plus the
    /// tolerance are rejected (see [`ClockBound`]). Replays have none.
    pub clock_bound: Option<ClockBound>,
    /// The annotations that carry a trace context, first found wins
    /// (`--trace-context-annotation`; `None`: [`trace_context::DEFAULT_KEYS`]).
    /// Leaked once at start-up, so the options stay `Copy`.
    pub trace_context_keys: Option<&'static [&'static str]>,
}

impl DecodeOptions {
    pub fn trace_context_keys(&self) -> &'static [&'static str] {
        self.trace_context_keys.unwrap_or(trace_context::DEFAULT_KEYS)
    }
}

/// How far a record's time may be ahead of the receiving machine's clock.
///
/// The core tolerates any skew (its clock is the records' own); this only
/// keeps one record from the year 9000 from moving its cluster's event-time
/// clock so far ahead that every later record skips the settle delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockBound {
    /// The receiving machine's clock when the body was accepted.
    pub now: Micros,
    pub tolerance: Duration,
}

impl DecodeOptions {
    /// The same options, bounded by a live source's clock.
    pub fn bounded_by(self, now: Micros, tolerance: Duration) -> DecodeOptions {
        DecodeOptions { clock_bound: Some(ClockBound { now, tolerance }), ..self }
    }
}

/// Decodes one document (a file, a webhook body, a watch line). Never fails:
/// problems become [`BadRecord`]s in the result, and every good record around
/// them is kept.
pub fn decode(bytes: &[u8], options: &DecodeOptions) -> Decoded {
    let mut decoded = Decoded::default();
    framing::decode_bytes(bytes, options, &mut decoded);
    if let Some(bound) = options.clock_bound {
        let latest = bound.now.saturating_add(time::from_duration(bound.tolerance));
        decoded.reject_records_after(latest, bound.tolerance);
    }
    decoded
}
