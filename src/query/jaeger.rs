//! Jaeger's JSON trace model (`model/json` in Jaeger's source), as Jaeger UI
//! and Grafana's Jaeger data source read it from `/api/traces`.
//!
//! - one process per (actor, cluster), keyed `p1`, `p2`, ... in order of
//!   first appearance;
//! - the parent is a `CHILD_OF` reference, span links are `FOLLOWS_FROM`
//!   (Jaeger's model has no link attributes: the link's reason is kept in a
//!   `kausal.link.<n>.reason` tag);
//! - span events (an Event's repeats) are logs, with their name as `event`;
//! - times are µs since the epoch, durations µs.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::store::{StoredSpan, StoredValue};

#[derive(Debug, Clone, Serialize)]
pub struct KeyValue {
    pub key: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub value: Value,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reference {
    pub ref_type: &'static str,
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Log {
    pub timestamp: i64,
    pub fields: Vec<KeyValue>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Span {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    #[serde(rename = "spanID")]
    pub span_id: String,
    pub flags: u32,
    pub operation_name: String,
    pub references: Vec<Reference>,
    pub start_time: i64,
    pub duration: i64,
    pub tags: Vec<KeyValue>,
    pub logs: Vec<Log>,
    #[serde(rename = "processID")]
    pub process_id: String,
    pub warnings: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Process {
    pub service_name: String,
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    #[serde(rename = "traceID")]
    pub trace_id: String,
    pub spans: Vec<Span>,
    pub processes: HashMap<String, Process>,
    pub warnings: Option<Vec<String>>,
}

/// A structured error, as Jaeger's query service reports one.
#[derive(Debug, Clone, Serialize)]
pub struct StructuredError {
    pub code: u16,
    pub msg: String,
    #[serde(rename = "traceID", skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
}

/// The envelope of every answer of Jaeger's HTTP JSON API.
#[derive(Debug, Clone, Serialize)]
pub struct Response<T: Serialize> {
    pub data: T,
    pub total: usize,
    pub limit: usize,
    pub offset: usize,
    pub errors: Option<Vec<StructuredError>>,
}

impl<T: Serialize> Response<T> {
    pub fn new(data: T, total: usize) -> Self {
        Response { data, total, limit: 0, offset: 0, errors: None }
    }
}

/// One trace in Jaeger's model; `spans` are the trace's spans, in any order.
pub fn trace(trace_id: &str, spans: &[StoredSpan]) -> Trace {
    let mut process_ids: HashMap<(&str, &str), String> = HashMap::new();
    let mut processes = HashMap::new();
    let mut out = Vec::with_capacity(spans.len());
    for span in spans {
        let process_id = process_ids
            .entry((span.service.as_str(), span.cluster.as_str()))
            .or_insert_with(|| {
                let next = format!("p{}", processes.len() + 1);
                let mut tags = Vec::new();
                if !span.cluster.is_empty() {
                    tags.push(string_tag("k8s.cluster.name", &span.cluster));
                }
                processes.insert(next.clone(), Process { service_name: span.service.clone(), tags });
                next
            })
            .clone();
        out.push(self::span(span, process_id));
    }
    Trace { trace_id: trace_id.to_owned(), spans: out, processes, warnings: None }
}

fn span(span: &StoredSpan, process_id: String) -> Span {
    let mut references = Vec::new();
    if let Some(parent) = &span.parent_span_id {
        references.push(Reference { ref_type: "CHILD_OF", trace_id: span.trace_id.clone(), span_id: parent.clone() });
    }
    let mut tags: Vec<KeyValue> = span.attributes.iter().map(|(k, v)| tag(k, v)).collect();
    for (n, link) in span.links.iter().enumerate() {
        references.push(Reference {
            ref_type: "FOLLOWS_FROM",
            trace_id: link.trace_id.clone(),
            span_id: link.span_id.clone(),
        });
        tags.push(string_tag(&format!("kausal.link.{n}.reason"), &link.reason));
    }
    if let Some(message) = &span.error {
        tags.push(KeyValue { key: "error".into(), kind: "bool", value: Value::Bool(true) });
        tags.push(string_tag("otel.status_code", "ERROR"));
        tags.push(string_tag("otel.status_description", message));
    }
    let logs = span
        .events
        .iter()
        .map(|e| {
            let mut fields = vec![string_tag("event", &e.name)];
            fields.extend(e.attributes.iter().map(|(k, v)| tag(k, v)));
            Log { timestamp: e.time_us, fields }
        })
        .collect();
    Span {
        trace_id: span.trace_id.clone(),
        span_id: span.span_id.clone(),
        flags: 1,
        operation_name: span.name.clone(),
        references,
        start_time: span.start_us,
        duration: span.duration_us(),
        tags,
        logs,
        process_id,
        warnings: None,
    }
}

fn tag(key: &str, value: &StoredValue) -> KeyValue {
    let (kind, value) = match value {
        StoredValue::Str(s) => ("string", Value::String(s.clone())),
        StoredValue::Int(i) => ("int64", Value::from(*i)),
        StoredValue::Bool(b) => ("bool", Value::Bool(*b)),
    };
    KeyValue { key: key.to_owned(), kind, value }
}

fn string_tag(key: &str, value: &str) -> KeyValue {
    KeyValue { key: key.to_owned(), kind: "string", value: Value::String(value.to_owned()) }
}
