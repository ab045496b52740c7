//! OTLP/JSON: one `ExportTraceServiceRequest` per line, in the standard OTLP
//! JSON encoding (hex IDs, camelCase fields, typed attribute values), as the
//! opentelemetry-proto crate serialises it.

use std::io::{self, Write};

use super::otel::{SharedResource, export_request};
use crate::core::span::Span;

/// Writes one line holding the request for `spans`.
pub fn write_line<'s>(
    out: &mut impl Write,
    spans: impl IntoIterator<Item = &'s Span>,
    resource: &SharedResource,
) -> io::Result<()> {
    let request = export_request(spans, resource);
    serde_json::to_writer(&mut *out, &request).map_err(io::Error::other)?;
    out.write_all(b"\n")
}
