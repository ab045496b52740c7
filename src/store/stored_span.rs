//! The store's own form of a span: owned, serialisable, and independent of
//! the core's `&'static str` attribute keys, so a span read back from disk
//! is the span that was written, whichever encoding (Jaeger JSON, OTLP/JSON,
//! the viewer's) is asked for later.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::core::span::{AttrValue, Span, SpanStatus};

/// An attribute value as stored: the three types kausal's spans carry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StoredValue {
    Bool(bool),
    Int(i64),
    Str(String),
}

impl StoredValue {
    /// The value as a query compares it (`tag=k:v` is text).
    pub fn as_text(&self) -> String {
        match self {
            StoredValue::Bool(b) => b.to_string(),
            StoredValue::Int(i) => i.to_string(),
            StoredValue::Str(s) => s.clone(),
        }
    }
}

impl From<&AttrValue> for StoredValue {
    fn from(v: &AttrValue) -> Self {
        match v {
            AttrValue::Str(s) => StoredValue::Str(s.clone()),
            AttrValue::Int(i) => StoredValue::Int(*i),
            AttrValue::Bool(b) => StoredValue::Bool(*b),
        }
    }
}

pub type StoredAttributes = BTreeMap<String, StoredValue>;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredLink {
    pub trace_id: String,
    pub span_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub time_us: i64,
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: StoredAttributes,
}

/// One span as the store keeps it. IDs are lower-case hex, times are
/// microseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredSpan {
    pub trace_id: String,
    pub span_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<String>,
    pub name: String,
    /// The actor: `service.name` of the span's resource.
    pub service: String,
    /// `k8s.cluster.name` of the span's resource (empty: the unnamed cluster).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    pub start_us: i64,
    pub end_us: i64,
    pub attributes: StoredAttributes,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<StoredLink>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<StoredEvent>,
    /// The status message of a failed write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StoredSpan {
    pub fn from_span(span: &Span, cluster: &str) -> StoredSpan {
        StoredSpan {
            trace_id: hex::encode(span.trace_id),
            span_id: hex::encode(span.span_id),
            parent_span_id: span.parent_span_id.map(hex::encode),
            name: span.name.clone(),
            service: span.actor.clone(),
            cluster: cluster.to_owned(),
            start_us: span.start,
            end_us: span.end.max(span.start),
            attributes: span.attributes.iter().map(|(k, v)| ((*k).to_owned(), v.into())).collect(),
            links: span
                .links
                .iter()
                .map(|l| StoredLink {
                    trace_id: hex::encode(l.trace_id),
                    span_id: hex::encode(l.span_id),
                    reason: l.reason.as_str().to_owned(),
                })
                .collect(),
            events: span
                .events
                .iter()
                .map(|e| StoredEvent {
                    time_us: e.time,
                    name: e.name.clone(),
                    attributes: e.attributes.iter().map(|(k, v)| ((*k).to_owned(), v.into())).collect(),
                })
                .collect(),
            error: match &span.status {
                SpanStatus::Unset => None,
                SpanStatus::Error(m) => Some(m.clone()),
            },
        }
    }

    pub fn attr_str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(StoredValue::Str(s)) => Some(s),
            _ => None,
        }
    }

    pub fn duration_us(&self) -> i64 {
        self.end_us - self.start_us
    }

    /// `kausal.root`: why the span starts a trace (`intent`, `controller`, ...).
    pub fn root(&self) -> Option<&str> {
        self.attr_str("kausal.root")
    }
}
