//! kausal's own span type: what the core produces and every sink consumes.
//!
//! It is deliberately plain (no OpenTelemetry types), so the core stays fast and
//! testable and the sinks decide the encoding.

use super::ids::{SpanId, TraceId};
use crate::core::time::Micros;

#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::Str(s.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::Str(s)
    }
}
impl From<i64> for AttrValue {
    fn from(v: i64) -> Self {
        AttrValue::Int(v)
    }
}
impl From<bool> for AttrValue {
    fn from(v: bool) -> Self {
        AttrValue::Bool(v)
    }
}

pub type Attributes = Vec<(&'static str, AttrValue)>;

/// Whether the span is a write or an Event (`kausal.span.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanKind {
    Write,
    Event,
}

/// Why a span has no parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootKind {
    /// A write by a person or CI: the start of an intent.
    Intent,
    /// A controller's write with no trigger in the window (e.g. a CronJob firing,
    /// or an object created before kausal started watching).
    ControllerInitiated,
    /// An Event with no write to attach to.
    OrphanEvent,
    /// Automation's write (a service account outside the control plane: an
    /// operator, a GitOps agent, CI) with no cause in the window: shown like
    /// an intent.
    Automation,
}

impl RootKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RootKind::Intent => "intent",
            RootKind::ControllerInitiated => "controller",
            RootKind::OrphanEvent => "orphan-event",
            RootKind::Automation => "automation",
        }
    }
}

/// A pointer to another span, with why it is there.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanLink {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// `kausal.link.reason`.
    pub reason: LinkReason,
}

/// Why a span links to another instead of (or besides) having it as parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkReason {
    /// The second-best candidate cause, when the best one won narrowly.
    RunnerUp,
    /// A time-triggered write (a CronJob's Job) links to the spec write whose schedule fired.
    ScheduledBy,
    /// A repeat of an Event whose span was already out links to that span.
    RepeatOf,
    /// An intent links to the span a trace-context annotation names (a CI
    /// run's, an operator's).
    TraceContext,
    /// The parent the linker's rules chose, where a copied trace context
    /// named another one (the evidence wins; the rules' answer is kept).
    LinkerRule,
}

impl LinkReason {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkReason::RunnerUp => "runner-up",
            LinkReason::ScheduledBy => "scheduled-by",
            LinkReason::RepeatOf => "repeat-of",
            LinkReason::TraceContext => "trace-context",
            LinkReason::LinkerRule => "linker-rule",
        }
    }
}

impl PartialEq<&str> for LinkReason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A timestamped annotation on a span (used for Event repeats).
#[derive(Debug, Clone, PartialEq)]
pub struct SpanEvent {
    pub time: Micros,
    pub name: String,
    pub attributes: Attributes,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpanStatus {
    Unset,
    Error(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    /// Who acted: becomes the resource's `service.name`.
    pub actor: String,
    pub start: Micros,
    pub end: Micros,
    pub attributes: Attributes,
    pub links: Vec<SpanLink>,
    pub events: Vec<SpanEvent>,
    pub status: SpanStatus,
    pub root: Option<RootKind>,
}

impl Span {
    pub fn attr(&self, key: &str) -> Option<&AttrValue> {
        self.attributes.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attr(key) {
            Some(AttrValue::Str(s)) => Some(s),
            _ => None,
        }
    }
}
