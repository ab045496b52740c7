//! Shape detection: which kind of record or wrapper a JSON value is.
//!
//! Each value is recognised by its keys: an audit `Event`, an `EventList` or
//! any `*List`, an AKS diagnostic record (`records[]`, `properties.log`), a GKE
//! `LogEntry` (`protoPayload`), a watch line (`{type, object}`), a core/v1 or
//! events.k8s.io/v1 Event, or a JSON array of any of these. Wrappers are
//! unwrapped here; the records inside go to their shape's module ([`super::audit`],
//! [`super::aks`], [`super::gke`], [`super::event`]).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::DecodeOptions;
use super::framing::LineIndex;
use super::outcome::{BadReason, Decoded};

/// How deep wrappers may nest (a list inside a watch line inside an array...).
/// Real inputs need three; the bound keeps hostile input from recursing.
const MAX_WRAPPER_DEPTH: usize = 6;

/// The keys that tell record shapes apart. Unknown keys are skipped unread.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    api_version: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "auditID")]
    audit_id: Option<&'a RawValue>,
    #[serde(borrow, default)]
    items: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default)]
    records: Option<Vec<&'a RawValue>>,
    #[serde(borrow, default, rename = "type")]
    type_: Option<&'a RawValue>,
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    proto_payload: Option<&'a RawValue>,
    #[serde(borrow, default)]
    properties: Option<&'a RawValue>,
    #[serde(borrow, default)]
    involved_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    regarding: Option<&'a RawValue>,
}

/// The state of decoding one document: where values lie in it (for line
/// numbers and invalid-UTF-8 checks) and where the results go.
pub(super) struct Decoder<'o, 't> {
    pub(super) options: DecodeOptions,
    pub(super) out: &'o mut Decoded,
    pub(super) text: &'t str,
    pub(super) lines: LineIndex,
    /// Byte ranges of `text` where invalid UTF-8 was replaced.
    pub(super) replaced: Vec<Range<usize>>,
}

impl Decoder<'_, '_> {
    /// The line a value starts on, when it lies in the document itself (values
    /// unwrapped from a JSON string, as in AKS, report their wrapper's line).
    pub(super) fn locate(&self, raw: &RawValue, fallback: usize) -> usize {
        self.offset_in_text(raw.get()).map_or(fallback, |at| self.lines.line_of(at))
    }

    /// Where a borrowed slice starts in the document, if it lies in it.
    pub(super) fn offset_in_text(&self, s: &str) -> Option<usize> {
        let at = (s.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)?;
        (at < self.text.len()).then_some(at)
    }

    /// Decodes one JSON value. `item_kind` is the kind implied by an enclosing
    /// typed list (`PodList` → `Pod`), since list items often omit `kind`.
    pub(super) fn value(&mut self, raw: &RawValue, line: usize, depth: usize, item_kind: Option<&str>) {
        if depth > MAX_WRAPPER_DEPTH {
            self.out.reject(BadReason::UnknownShape, line, format!("wrappers nested deeper than {MAX_WRAPPER_DEPTH}"));
            return;
        }
        match raw.get().as_bytes().first() {
            Some(b'{') => self.object(raw, line, depth, item_kind),
            Some(b'[') => match serde_json::from_str::<Vec<&RawValue>>(raw.get()) {
                Ok(items) => {
                    items.into_iter().for_each(|item| self.value(item, self.locate(item, line), depth + 1, item_kind))
                }
                Err(e) => self.out.reject(BadReason::InvalidJson, line, e.to_string()),
            },
            _ => self.out.reject(
                BadReason::NotAnObject,
                line,
                format!("expected a JSON object, found `{}`", preview(raw.get())),
            ),
        }
    }

    /// Rejects a record that holds replaced invalid UTF-8; true if it did.
    pub(super) fn reject_if_replaced(&mut self, record: &str, line: usize) -> bool {
        if self.replaced.is_empty() {
            return false;
        }
        let Some(start) = self.offset_in_text(record) else { return false };
        let end = start + record.len();
        let inside = self.replaced.iter().any(|r| r.start < end && r.end > start);
        if inside {
            self.out.reject(BadReason::InvalidUtf8, line, "invalid UTF-8 inside this record");
        }
        inside
    }

    fn object(&mut self, raw: &RawValue, line: usize, depth: usize, item_kind: Option<&str>) {
        let probe: Probe = match serde_json::from_str(raw.get()) {
            Ok(p) => p,
            Err(e) => {
                self.out.reject(BadReason::UnknownShape, line, format!("not a record kausal knows: {e}"));
                return;
            }
        };
        // A record (not a wrapper of records) with replaced bytes is rejected whole.
        let is_record = probe.audit_id.is_some()
            || probe.proto_payload.is_some()
            || probe.properties.is_some()
            || (probe.records.is_none() && probe.items.is_none() && probe.object.is_none());
        if is_record && self.reject_if_replaced(raw.get(), line) {
            return;
        }
        if probe.audit_id.is_some() {
            self.audit_event(raw.get(), line);
        } else if let Some(payload) = probe.proto_payload {
            self.gke_entry(raw, payload, line);
        } else if let Some(records) = probe.records {
            records.into_iter().for_each(|r| self.value(r, self.locate(r, line), depth + 1, None));
        } else if let Some(properties) = probe.properties {
            self.aks_record(properties, line, depth);
        } else if let Some(items) = probe.items {
            if probe.kind.as_deref() == Some("EventList")
                && probe.api_version.is_some_and(|v| v.get().contains("audit.k8s.io"))
            {
                // The apiserver's webhook body: every item is an audit event,
                // so skip probing each one (a whole extra pass over the bytes).
                for item in items {
                    let line = self.locate(item, line);
                    if self.reject_if_replaced(item.get(), line) {
                        continue;
                    }
                    if item.get().starts_with('{') {
                        self.audit_event(item.get(), line);
                    } else {
                        self.value(item, line, depth + 1, None);
                    }
                }
                return;
            }
            // `PodList` items are Pods; a generic `List` says nothing about its items.
            let implied = probe.kind.as_deref().and_then(|k| k.strip_suffix("List")).filter(|k| !k.is_empty());
            for item in items {
                self.value(item, self.locate(item, line), depth + 1, implied);
            }
        } else if let (Some(t), Some(object)) = (probe.type_, probe.object) {
            self.watch_line(t, object, line, depth);
        } else {
            let kind = probe.kind.as_deref().filter(|k| !k.is_empty()).or(item_kind);
            let is_object = probe.api_version.is_some() || item_kind.is_some();
            if matches!(kind, None | Some("Event")) && (probe.involved_object.is_some() || probe.regarding.is_some()) {
                self.kube_event(raw.get(), None, line);
            } else if kind.is_some_and(|k| k.ends_with("List")) && is_object {
                // An empty list (`items` null or absent): nothing to do.
            } else if kind.is_some() && is_object {
                // A Kubernetes object that is not an Event (context in dumps),
                // or a Status: its owner is what the Events-only linker wants.
                match super::object_meta::observed(raw, item_kind) {
                    Some(object) => {
                        self.out.stats.objects += 1;
                        self.out.observed.push(object);
                    }
                    None => self.out.skip("not_an_event"),
                }
            } else {
                let keys = top_level_keys(raw.get());
                self.out.reject(BadReason::UnknownShape, line, format!("unknown record or wrapper with keys [{keys}]"));
            }
        }
    }

    fn watch_line(&mut self, watch_type: &RawValue, object: &RawValue, line: usize, depth: usize) {
        match watch_type.get() {
            "\"ADDED\"" | "\"MODIFIED\"" => self.value(object, line, depth + 1, None),
            "\"DELETED\"" => self.out.skip("event_deleted"),
            "\"BOOKMARK\"" => self.out.skip("watch_bookmark"),
            "\"ERROR\"" => self.out.skip("watch_error"),
            other => self.out.reject(BadReason::UnknownShape, line, format!("watch line with type {}", preview(other))),
        }
    }
}

pub(super) fn preview(s: &str) -> String {
    let mut p: String = s.chars().take(40).collect();
    if p.len() < s.len() {
        p.push('…');
    }
    p
}

fn top_level_keys(text: &str) -> String {
    serde_json::from_str::<BTreeMap<Cow<str>, &RawValue>>(text)
        .map(|m| m.keys().take(8).map(|k| k.to_string()).collect::<Vec<_>>().join(", "))
        .unwrap_or_default()
}
