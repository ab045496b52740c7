//! OTLP/JSON: one `ExportTraceServiceRequest` per line, in the standard OTLP
//! JSON encoding (hex IDs, camelCase fields, typed attribute values), as the
//! opentelemetry-proto crate serialises it.

use std::io::{self, Write};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;

use super::otel::{SharedResource, group_by_actor, scope, to_span_data};
use crate::core::span::Span;

/// The request that carries `spans`: one `ResourceSpans` per actor, in actor order.
pub fn export_request(spans: &[Span], resource: &SharedResource) -> ExportTraceServiceRequest {
    let scope = scope();
    let mut resource_spans = Vec::new();
    for (actor, group) in group_by_actor(spans) {
        let attributes =
            ResourceAttributesWithSchema { attributes: resource.for_actor(actor).into(), schema_url: None };
        let data = group.into_iter().map(|s| to_span_data(s, &scope)).collect();
        resource_spans.extend(group_spans_by_resource_and_scope(data, &attributes));
    }
    ExportTraceServiceRequest { resource_spans }
}

/// Writes one line holding the request for `spans`.
pub fn write_line(out: &mut impl Write, spans: &[Span], resource: &SharedResource) -> io::Result<()> {
    let request = export_request(spans, resource);
    serde_json::to_writer(&mut *out, &request).map_err(io::Error::other)?;
    out.write_all(b"\n")
}
