//! Jaeger's v3 API answers in OTLP/JSON: stored spans back into OTLP's
//! `ResourceSpans`, one resource per (actor, cluster), as kausal exported them.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};

use crate::store::{StoredSpan, StoredValue};

/// `{"resourceSpans": [...]}` (the shape of OTLP's `TracesData`) for `spans`.
pub fn traces_data(spans: &[StoredSpan]) -> ExportTraceServiceRequest {
    let mut by_resource: BTreeMap<(&str, &str), Vec<Span>> = BTreeMap::new();
    for s in spans {
        by_resource.entry((s.service.as_str(), s.cluster.as_str())).or_default().push(span(s));
    }
    let resource_spans = by_resource
        .into_iter()
        .map(|((service, cluster), spans)| {
            let mut attributes = vec![string("service.name", service)];
            if !cluster.is_empty() {
                attributes.push(string("k8s.cluster.name", cluster));
            }
            ResourceSpans {
                resource: Some(Resource { attributes, ..Default::default() }),
                scope_spans: vec![ScopeSpans {
                    scope: Some(InstrumentationScope { name: "kausal".into(), ..Default::default() }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

fn span(s: &StoredSpan) -> Span {
    Span {
        trace_id: hex::decode(&s.trace_id).unwrap_or_default(),
        span_id: hex::decode(&s.span_id).unwrap_or_default(),
        parent_span_id: s.parent_span_id.as_deref().and_then(|p| hex::decode(p).ok()).unwrap_or_default(),
        name: s.name.clone(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: nanos(s.start_us),
        end_time_unix_nano: nanos(s.end_us),
        attributes: s.attributes.iter().map(|(k, v)| value(k, v)).collect(),
        events: s
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: nanos(e.time_us),
                name: e.name.clone(),
                attributes: e.attributes.iter().map(|(k, v)| value(k, v)).collect(),
                ..Default::default()
            })
            .collect(),
        links: s
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: hex::decode(&l.trace_id).unwrap_or_default(),
                span_id: hex::decode(&l.span_id).unwrap_or_default(),
                attributes: vec![string("kausal.link.reason", &l.reason)],
                ..Default::default()
            })
            .collect(),
        status: s.error.as_ref().map(|m| Status { message: m.clone(), code: status::StatusCode::Error as i32 }),
        ..Default::default()
    }
}

fn nanos(us: i64) -> u64 {
    (us.max(0) as u64).saturating_mul(1000)
}

fn value(key: &str, v: &StoredValue) -> KeyValue {
    let v = match v {
        StoredValue::Str(s) => any_value::Value::StringValue(s.clone()),
        StoredValue::Int(i) => any_value::Value::IntValue(*i),
        StoredValue::Bool(b) => any_value::Value::BoolValue(*b),
    };
    KeyValue { key: key.to_owned(), value: Some(AnyValue { value: Some(v) }), ..Default::default() }
}

fn string(key: &str, v: &str) -> KeyValue {
    value(key, &StoredValue::Str(v.to_owned()))
}
