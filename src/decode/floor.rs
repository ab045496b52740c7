//! The read+parse floor: how fast the input can be parsed at all.
//!
//! Each audit event is parsed into the borrowed view the decoder reads
//! records from ([`AuditEvent`], request and response objects left raw), and
//! each Kubernetes Event into its view, and nothing else: no record is built,
//! nothing is linked. `kausal replay --parse-only` runs this over the same
//! files, so the ratio of a replay to its floor comes from one build and
//! one machine (BENCHMARKS.md).

use serde::Deserialize;
use serde_json::value::RawValue;

use super::views::audit::AuditEvent;
use super::views::kube_event::WireEvent;

/// What the floor parsed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FloorCount {
    pub audit_events: u64,
    pub kube_events: u64,
    /// Values that are neither (wrappers of other shapes, bad JSON).
    pub other: u64,
}

#[derive(Deserialize)]
struct List<'a> {
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, rename = "auditID")]
    audit_id: Option<&'a RawValue>,
}

/// Parses every JSON value of `bytes` (JSON lines, one value, or values back
/// to back; lists are opened) into the views.
pub fn parse_floor(bytes: &[u8]) -> FloorCount {
    let mut count = FloorCount::default();
    let text = String::from_utf8_lossy(bytes);
    // A webhook batch (an `EventList`) in one pass, as the decoder reads it.
    if looks_like_a_list(text.trim_start())
        && let Ok(list) = serde_json::from_str::<AuditList>(&text)
    {
        count.audit_events += list.items.len() as u64;
        std::hint::black_box(list);
        return count;
    }
    for value in serde_json::Deserializer::from_str(&text).into_iter::<&RawValue>() {
        match value {
            Ok(raw) => parse_value(raw, &mut count),
            Err(_) => {
                count.other += 1;
                break;
            }
        }
    }
    count
}

/// An audit `EventList`, parsed in one pass.
#[derive(Deserialize)]
struct AuditList<'a> {
    #[serde(borrow)]
    items: Vec<AuditEvent<'a>>,
}

/// An object whose first 256 bytes hold an `items` key.
fn looks_like_a_list(text: &str) -> bool {
    let head = &text.as_bytes()[..text.len().min(256)];
    head.first() == Some(&b'{') && head.windows(8).any(|w| w == b"\"items\":")
}

fn parse_value(raw: &RawValue, count: &mut FloorCount) {
    if looks_like_a_list(raw.get())
        && let Ok(list) = serde_json::from_str::<AuditList>(raw.get())
    {
        count.audit_events += list.items.len() as u64;
        std::hint::black_box(list);
        return;
    }
    // An audit event on its own line parses as one directly.
    if let Ok(event) = serde_json::from_str::<AuditEvent>(raw.get()) {
        std::hint::black_box(event);
        count.audit_events += 1;
        return;
    }
    match serde_json::from_str::<List>(raw.get()) {
        Ok(List { items: Some(items), audit_id: None }) => {
            for item in items {
                if let Ok(event) = serde_json::from_str::<AuditEvent>(item.get()) {
                    std::hint::black_box(event);
                    count.audit_events += 1;
                } else if let Ok(event) = serde_json::from_str::<WireEvent>(item.get()) {
                    std::hint::black_box(event);
                    count.kube_events += 1;
                } else {
                    count.other += 1;
                }
            }
        }
        _ => match serde_json::from_str::<WireEvent>(raw.get()) {
            Ok(event) => {
                std::hint::black_box(event);
                count.kube_events += 1;
            }
            Err(_) => count.other += 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_audit_events_of_a_batch_and_of_lines() {
        let event = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{"username":"u"},"stageTimestamp":"2026-01-01T00:00:00.000000Z"}"#;
        let batch = format!(r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{event},{event}]}}"#);
        assert_eq!(parse_floor(batch.as_bytes()).audit_events, 2);
        let lines = format!("{event}\n{event}\n{event}\n");
        assert_eq!(parse_floor(lines.as_bytes()), FloorCount { audit_events: 3, kube_events: 0, other: 0 });
        let kube = r#"{"kind":"Event","apiVersion":"v1","metadata":{"name":"e"},"involvedObject":{"kind":"Pod","name":"p"},"reason":"Scheduled"}"#;
        assert_eq!(parse_floor(kube.as_bytes()).kube_events, 1);
        assert_eq!(parse_floor(b"{nope").other, 1);
    }
}
