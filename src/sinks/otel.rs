//! kausal spans as OpenTelemetry SDK `SpanData`, grouped by actor.
//!
//! Both the OTLP/JSON writer and the network exporter go through this one
//! conversion, so what `--format otlp-json` shows is what the exporter sends.
//! Every actor (who acted) becomes its own resource with `service.name` set to
//! it, so Jaeger's service list reads as "who acted".

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanContext, SpanId, SpanKind as OtelSpanKind, Status, TraceFlags, TraceId, TraceState};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

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

    pub fn resource_for_actor(&self, actor: &str) -> Resource {
        Resource::builder_empty().with_attributes(self.for_actor(actor)).build()
    }
}

pub fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("kausal").with_version(env!("CARGO_PKG_VERSION")).build()
}

fn system_time(micros: Micros) -> SystemTime {
    if micros >= 0 { UNIX_EPOCH + Duration::from_micros(micros as u64) } else { UNIX_EPOCH }
}

fn attribute_values(attrs: &Attributes) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| {
            let value = match v {
                AttrValue::Str(s) => Value::from(s.clone()),
                AttrValue::Int(i) => Value::I64(*i),
                AttrValue::Bool(b) => Value::Bool(*b),
            };
            KeyValue::new(*k, value)
        })
        .collect()
}

/// A sampled, local span context with kausal's own IDs.
fn span_context(trace_id: [u8; 16], span_id: [u8; 8]) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    )
}

/// One kausal span as SDK `SpanData`, with its own IDs and times.
pub fn to_span_data(span: &Span, scope: &InstrumentationScope) -> SpanData {
    let context = span_context(span.trace_id, span.span_id);
    let mut events = SpanEvents::default();
    events.events = span
        .events
        .iter()
        .map(|e| {
            opentelemetry::trace::Event::new(e.name.clone(), system_time(e.time), attribute_values(&e.attributes), 0)
        })
        .collect();
    let mut links = SpanLinks::default();
    links.links = span
        .links
        .iter()
        .map(|l| {
            let reason = vec![KeyValue::new("kausal.link.reason", l.reason.as_str())];
            opentelemetry::trace::Link::new(span_context(l.trace_id, l.span_id), reason, 0)
        })
        .collect();
    SpanData {
        span_context: context,
        parent_span_id: span.parent_span_id.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: false,
        span_kind: OtelSpanKind::Internal,
        name: Cow::Owned(span.name.clone()),
        start_time: system_time(span.start),
        end_time: system_time(span.end.max(span.start)),
        attributes: attribute_values(&span.attributes),
        dropped_attributes_count: 0,
        events,
        links,
        status: match &span.status {
            SpanStatus::Unset => Status::Unset,
            SpanStatus::Error(message) => Status::error(message.clone()),
        },
        instrumentation_scope: scope.clone(),
    }
}

/// Spans grouped by actor, actors in name order, spans in their given order.
pub fn group_by_actor(spans: &[Span]) -> BTreeMap<&str, Vec<&Span>> {
    let mut groups: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    for span in spans {
        groups.entry(span.actor.as_str()).or_default().push(span);
    }
    groups
}
