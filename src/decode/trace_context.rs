//! Trace contexts carried in annotations: a CI pipeline, a GitOps agent or an
//! operator that traces itself can say, on the object it writes, which of its
//! spans made the write. kausal links the intent to it.
//!
//! Each annotation is read in the format its convention uses; a key given on
//! the command line is tried in every format. A value that parses in none is
//! counted and ignored: a bad annotation never costs the record.

use base64::Engine as _;

use crate::core::ids::{SpanId, TraceId};

/// The annotations read by default, in order: the first one present wins.
pub const DEFAULT_KEYS: &[&str] = &[
    // KEP-5915 (proposed): plain W3C traceparent.
    "tracing.k8s.io/traceparent",
    // Tekton: JSON `{"traceparent": "..."}`.
    "tekton.dev/pipelinerunSpanContext",
    "tekton.dev/taskrunSpanContext",
    // Jaeger's format, as the kubevirt operator-tracing proof of concept uses it.
    "uber-trace-id",
    // The retired KEP-650 webhook: base64 of the OpenCensus binary format.
    "trace.kubernetes.io/context",
];

/// Reads a trace context in any of the formats above.
pub fn parse(value: &str) -> Option<(TraceId, SpanId)> {
    let value = value.trim();
    traceparent(value).or_else(|| tekton(value)).or_else(|| jaeger(value)).or_else(|| opencensus_binary(value))
}

/// `00-<32 hex trace>-<16 hex span>-<2 hex flags>` (W3C Trace Context).
fn traceparent(value: &str) -> Option<(TraceId, SpanId)> {
    let mut parts = value.split('-');
    let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    // Version 00 has exactly four fields; later versions may add more.
    if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) || flags.len() != 2 {
        return None;
    }
    hex::decode(flags).ok()?;
    ids(trace, span, 32, 16)
}

/// `{"traceparent": "00-..."}`, as Tekton annotates its runs.
fn tekton(value: &str) -> Option<(TraceId, SpanId)> {
    #[derive(serde::Deserialize)]
    struct Carrier<'a> {
        #[serde(borrow)]
        traceparent: std::borrow::Cow<'a, str>,
    }
    let carrier: Carrier<'_> = serde_json::from_str(value).ok()?;
    traceparent(carrier.traceparent.trim())
}

/// `<trace>:<span>:<parent>:<flags>` (Jaeger), hex without leading zeros: a
/// 64-bit trace ID is the low half of a 128-bit one.
fn jaeger(value: &str) -> Option<(TraceId, SpanId)> {
    let value = value.replace("%3A", ":").replace("%3a", ":");
    let mut parts = value.split(':');
    let (trace, span, _parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || flags.is_empty() || flags.len() > 2 || u8::from_str_radix(flags, 16).is_err() {
        return None;
    }
    if trace.is_empty() || trace.len() > 32 || span.is_empty() || span.len() > 16 {
        return None;
    }
    ids(&format!("{trace:0>32}"), &format!("{span:0>16}"), 32, 16)
}

/// base64 of OpenCensus's binary context: version 0, then field 0 (the
/// 16-byte trace ID), field 1 (the 8-byte span ID), field 2 (one byte of
/// options).
fn opencensus_binary(value: &str) -> Option<(TraceId, SpanId)> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(value).ok()?;
    let (&version, rest) = bytes.split_first()?;
    if version != 0 {
        return None;
    }
    let (trace, span) = match rest {
        [0, trace @ .., 1, s0, s1, s2, s3, s4, s5, s6, s7, 2, _options] if trace.len() == 16 => {
            (trace, [*s0, *s1, *s2, *s3, *s4, *s5, *s6, *s7])
        }
        _ => return None,
    };
    let trace: TraceId = trace.try_into().ok()?;
    valid(trace, span)
}

fn ids(trace: &str, span: &str, trace_len: usize, span_len: usize) -> Option<(TraceId, SpanId)> {
    if trace.len() != trace_len || span.len() != span_len {
        return None;
    }
    let trace: TraceId = hex::decode(trace).ok()?.try_into().ok()?;
    let span: SpanId = hex::decode(span).ok()?.try_into().ok()?;
    valid(trace, span)
}

/// All-zero IDs are invalid in every format.
fn valid(trace: TraceId, span: SpanId) -> Option<(TraceId, SpanId)> {
    (trace != [0; 16] && span != [0; 8]).then_some((trace, span))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn expected() -> (TraceId, SpanId) {
        (hex::decode(TRACE).unwrap().try_into().unwrap(), hex::decode(SPAN).unwrap().try_into().unwrap())
    }

    #[test]
    fn every_default_format_reads_the_same_context() {
        let w3c = format!("00-{TRACE}-{SPAN}-01");
        assert_eq!(parse(&w3c), Some(expected()));
        assert_eq!(parse(&format!(r#"{{"traceparent":"{w3c}"}}"#)), Some(expected()), "Tekton's JSON");
        assert_eq!(parse(&format!("{TRACE}:{SPAN}:0:1")), Some(expected()), "Jaeger");
        assert_eq!(parse(&format!("{TRACE}%3A{SPAN}%3A0%3A1")), Some(expected()), "Jaeger, URL-encoded");
        let mut binary = vec![0u8, 0];
        binary.extend(hex::decode(TRACE).unwrap());
        binary.push(1);
        binary.extend(hex::decode(SPAN).unwrap());
        binary.extend([2, 1]);
        let encoded = base64::engine::general_purpose::STANDARD.encode(&binary);
        assert_eq!(parse(&encoded), Some(expected()), "KEP-650 binary");
    }

    #[test]
    fn a_64_bit_jaeger_trace_id_is_the_low_half() {
        let (trace, span) = parse("a3ce929d0e0e4736:f067aa0ba902b7:0:1").unwrap();
        assert_eq!(hex::encode(trace), "0000000000000000a3ce929d0e0e4736");
        assert_eq!(hex::encode(span), SPAN);
    }

    #[test]
    fn malformed_values_parse_as_nothing() {
        for bad in [
            "",
            "garbage",
            &format!("00-{TRACE}-{SPAN}"),
            &format!("00-{TRACE}-{SPAN}-01-extra"),
            &format!("ff-{TRACE}-{SPAN}-01"),
            &format!("00-{}-{SPAN}-01", "0".repeat(32)),
            &format!("00-{TRACE}-{}-01", "0".repeat(16)),
            &format!("00-{}-{SPAN}-01", "z".repeat(32)),
            r#"{"traceparent": 7}"#,
            r#"{"other": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}"#,
            "abc:def",
            &format!("{TRACE}:{SPAN}:0"),
            "AAAA",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }
}
