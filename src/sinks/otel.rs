//! kausal spans as OTLP protobuf messages, grouped by actor.
//!
//! Both the OTLP/JSON writer and the network exporter go through this one
//! conversion, so what `--format otlp-json` shows is what the exporter sends.
//! Every actor (who acted) becomes its own resource with `service.name` set to
//! it, so Jaeger's service list reads as "who acted".

use std::collections::BTreeMap;

use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue as ProtoKeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span as ProtoSpan, SpanFlags, Status, span};
use opentelemetry_proto::transform::common::tonic::Attributes as ProtoAttributes;
use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector};

use crate::core::span::{AttrValue, Attributes, Span, SpanStatus};
use crate::core::time::Micros;

/// Resource attributes shared by every span: the cluster name (when known) and
/// whatever `OTEL_RESOURCE_ATTRIBUTES` says, sorted so output is deterministic.
/// `service.name` is never taken from here: it is always the actor.
#[derive(Debug, Clone, Default)]
pub struct SharedResource {
    pub attributes: Vec<KeyValue>,
}

impl SharedResource {
    pub fn new(cluster: Option<&str>, extra: impl IntoIterator<Item = KeyValue>) -> SharedResource {
        let mut attributes: Vec<KeyValue> = extra.into_iter().filter(|kv| kv.key.as_str() != "service.name").collect();
        if let Some(cluster) = cluster {
            attributes.retain(|kv| kv.key.as_str() != "k8s.cluster.name");
            attributes.push(KeyValue::new("k8s.cluster.name", cluster.to_owned()));
        }
        attributes.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
        SharedResource { attributes }
    }

    /// `OTEL_RESOURCE_ATTRIBUTES`, read through the SDK's own detector.
    pub fn from_env(cluster: Option<&str>) -> SharedResource {
        let detected = EnvResourceDetector::new().detect();
        let extra: Vec<KeyValue> = detected.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
        SharedResource::new(cluster, extra)
    }

    /// The attributes of one actor's resource, `service.name` first.
    pub fn for_actor(&self, actor: &str) -> Vec<KeyValue> {
        let mut attrs = Vec::with_capacity(self.attributes.len() + 1);
        attrs.push(KeyValue::new("service.name", actor.to_owned()));
        attrs.extend(self.attributes.iter().cloned());
        attrs
    }
}

/// The instrumentation scope of every span: kausal and its version.
fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "kausal".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
}

/// Span and link flags: sampled (W3C trace flag 0x01), and "whether the parent is remote is known" (it is not remote).
const FLAGS: u32 = 0x01 | SpanFlags::ContextHasIsRemoteMask as u32;

fn nanos(micros: Micros) -> u64 {
    (micros.max(0) as u64).saturating_mul(1000)
}

fn string(value: &str) -> AnyValue {
    AnyValue { value: Some(any_value::Value::StringValue(value.to_owned())) }
}

fn attribute_values(attrs: &Attributes) -> Vec<ProtoKeyValue> {
    attrs
        .iter()
        .map(|(k, v)| {
            let value = match v {
                AttrValue::Str(s) => any_value::Value::StringValue(s.clone()),
                AttrValue::Int(i) => any_value::Value::IntValue(*i),
                AttrValue::Bool(b) => any_value::Value::BoolValue(*b),
            };
            ProtoKeyValue { key: (*k).to_owned(), value: Some(AnyValue { value: Some(value) }), ..Default::default() }
        })
        .collect()
}

/// One kausal span as an OTLP span, with its own IDs and times. Built
/// straight from kausal's span: no SDK `SpanData` in between, whose only
/// use here was to be converted again.
pub fn proto_span(span: &Span) -> ProtoSpan {
    ProtoSpan {
        trace_id: span.trace_id.to_vec(),
        span_id: span.span_id.to_vec(),
        trace_state: String::new(),
        parent_span_id: span.parent_span_id.map_or_else(Vec::new, |id| id.to_vec()),
        flags: FLAGS,
        name: span.name.clone(),
        kind: span::SpanKind::Internal as i32,
        start_time_unix_nano: nanos(span.start),
        end_time_unix_nano: nanos(span.end.max(span.start)),
        attributes: attribute_values(&span.attributes),
        dropped_attributes_count: 0,
        events: span
            .events
            .iter()
            .map(|e| span::Event {
                time_unix_nano: nanos(e.time),
                name: e.name.clone(),
                attributes: attribute_values(&e.attributes),
                dropped_attributes_count: 0,
            })
            .collect(),
        dropped_events_count: 0,
        links: span
            .links
            .iter()
            .map(|l| span::Link {
                trace_id: l.trace_id.to_vec(),
                span_id: l.span_id.to_vec(),
                trace_state: String::new(),
                attributes: vec![ProtoKeyValue {
                    key: "kausal.link.reason".to_owned(),
                    value: Some(string(l.reason.as_str())),
                    ..Default::default()
                }],
                dropped_attributes_count: 0,
                flags: FLAGS,
            })
            .collect(),
        dropped_links_count: 0,
        status: Some(match &span.status {
            SpanStatus::Unset => Status { code: StatusCode::Unset as i32, message: String::new() },
            SpanStatus::Error(message) => Status { code: StatusCode::Error as i32, message: message.clone() },
        }),
    }
}

/// The one request that carries `spans`: one `ResourceSpans` per actor, in
/// actor order, each actor's spans in their given order.
pub fn export_request<'s>(
    spans: impl IntoIterator<Item = &'s Span>,
    resource: &SharedResource,
) -> ExportTraceServiceRequest {
    let scope = scope();
    let resource_spans = group_by_actor(spans)
        .into_iter()
        .map(|(actor, group)| ResourceSpans {
            resource: Some(Resource {
                attributes: ProtoAttributes::from(resource.for_actor(actor)).0,
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(scope.clone()),
                spans: group.into_iter().map(proto_span).collect(),
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        })
        .collect();
    ExportTraceServiceRequest { resource_spans }
}

/// Spans grouped by actor, actors in name order, spans in their given order.
pub fn group_by_actor<'s>(spans: impl IntoIterator<Item = &'s Span>) -> BTreeMap<&'s str, Vec<&'s Span>> {
    let mut groups: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for span in spans {
        groups.entry(span.actor.as_str()).or_default().push(span);
    }
    groups
}
