//! Turning bytes into core records, whatever shape they come in.
//!
//! One document (a file, a webhook body, stdin) may hold JSON lines, one
//! pretty-printed value, or several values back to back. Each value is then
//! recognised by its keys: an audit `Event`, an `EventList` or any `*List`, an
//! AKS diagnostic record (`records[]`, `properties.log`), a GKE `LogEntry`
//! (`protoPayload`), a watch line (`{type, object}`), a core/v1 or
//! events.k8s.io/v1 Event, or a JSON array of any of these.
//!
//! A malformed value never stops decoding: it becomes a [`BadRecord`] with a
//! reason and a line, and decoding resumes at the next line that starts a value.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::core::ids::{self, Uid};
use crate::core::kinds;
use crate::core::record::{
    Deletion, EndpointMember, EventOrigin, EventRecord, Owner, Record, Regarding, Relations, Verb, WriteRecord,
};
use crate::model::audit::AuditEvent;
use crate::model::kube_event::WireEvent;
use crate::model::object::{ObjectHead, ObjectMeta, RelationView};
use crate::model::time::{self, Micros, has_fraction, parse_rfc3339_micros};

/// Choices about what to keep.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeOptions {
    /// Keep Lease writes and leader-election ConfigMap/Endpoints updates, which
    /// are dropped by default: they are heartbeat noise, a few per second.
    pub keep_leader_election: bool,
}

/// Why a record was rejected. The label is the metrics and summary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadReason {
    /// Not valid JSON.
    InvalidJson,
    /// A JSON value that is not an object or array where a record should be.
    NotAnObject,
    /// A JSON object whose keys match no known record or wrapper.
    UnknownShape,
    /// An audit event that does not fit `audit.k8s.io` (wrong field types, missing `verb`...).
    InvalidAuditEvent,
    /// A Kubernetes Event without the fields that identify it.
    InvalidKubeEvent,
    /// A cloud wrapper (AKS, GKE) whose payload cannot be read.
    InvalidWrapper,
    /// A timestamp that is missing or not RFC 3339.
    InvalidTimestamp,
    /// Bytes that are not UTF-8 (the line is rejected, the rest is read).
    InvalidUtf8,
    /// The input could not be read at all (I/O, gzip).
    Unreadable,
}

impl BadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::InvalidJson => "invalid_json",
            BadReason::NotAnObject => "not_an_object",
            BadReason::UnknownShape => "unknown_shape",
            BadReason::InvalidAuditEvent => "invalid_audit_event",
            BadReason::InvalidKubeEvent => "invalid_kube_event",
            BadReason::InvalidWrapper => "invalid_wrapper",
            BadReason::InvalidTimestamp => "invalid_timestamp",
            BadReason::InvalidUtf8 => "invalid_utf8",
            BadReason::Unreadable => "unreadable",
        }
    }
}

/// A rejected record: why, where (1-based line in its document), and the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub reason: BadReason,
    pub line: usize,
    pub detail: String,
}

/// What decoding saw, beyond the records it produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Audit events read (any stage or verb).
    pub audit_events: u64,
    /// Kubernetes Event objects read (watch, list, or file).
    pub kube_events: u64,
    /// Well-formed records that kausal does not turn into spans, by reason
    /// (`read`, `stage_request_received`, `lease`, ...).
    pub skipped: BTreeMap<&'static str, u64>,
    pub bad: BTreeMap<BadReason, u64>,
    /// Well-formed audit events by `(verb, stage)`; unusual values are `other`,
    /// so the label set stays small whatever the input.
    pub audit_by_verb_stage: BTreeMap<(&'static str, &'static str), u64>,
}

impl DecodeStats {
    pub fn merge(&mut self, other: &DecodeStats) {
        self.audit_events += other.audit_events;
        self.kube_events += other.kube_events;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
        for (k, v) in &other.bad {
            *self.bad.entry(*k).or_default() += v;
        }
        for (k, v) in &other.audit_by_verb_stage {
            *self.audit_by_verb_stage.entry(*k).or_default() += v;
        }
    }

    fn count_verb_stage(&mut self, verb: &str, stage: &str) {
        const VERBS: &[&str] =
            &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy"];
        const STAGES: &[&str] = &["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"];
        let verb = VERBS.iter().find(|v| **v == verb).copied().unwrap_or("other");
        let stage = STAGES.iter().find(|s| **s == stage).copied().unwrap_or("other");
        *self.audit_by_verb_stage.entry((verb, stage)).or_default() += 1;
    }

    pub fn bad_total(&self) -> u64 {
        self.bad.values().sum()
    }
}

/// The result of decoding one document.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    pub records: Vec<Record>,
    pub bad: Vec<BadRecord>,
    pub stats: DecodeStats,
}

impl Decoded {
    /// Rejects records stamped later than `latest`. A live source passes its
    /// clock plus a tolerance: one record from the year 9000 would otherwise
    /// move its cluster's event-time clock so far ahead that every later
    /// record skips the settle delay.
    pub fn reject_records_after(&mut self, latest: Micros, tolerance: std::time::Duration) {
        let mut rejected = Vec::new();
        self.records.retain(|r| {
            let ahead = r.order_time() > latest;
            if ahead {
                rejected.push(match r {
                    Record::Write(w) => {
                        format!("auditID {}: stageTimestamp {}", w.audit_id, time::format_micros(w.completed))
                    }
                    Record::Event(e) => {
                        format!("Event {}/{}: time {}", e.namespace, e.name, time::format_micros(e.time))
                    }
                });
            }
            !ahead
        });
        let tolerance = tolerance.as_secs();
        for what in rejected {
            self.reject(
                BadReason::InvalidTimestamp,
                0,
                format!("{what} is more than {tolerance} s ahead of kausal's clock"),
            );
        }
    }

    fn reject(&mut self, reason: BadReason, line: usize, detail: impl Into<String>) {
        *self.stats.bad.entry(reason).or_default() += 1;
        self.bad.push(BadRecord { reason, line, detail: detail.into() });
    }

    fn skip(&mut self, why: &'static str) {
        *self.stats.skipped.entry(why).or_default() += 1;
    }
}

/// How deep wrappers may nest (a list inside a watch line inside an array...).
/// Real inputs need three; the bound keeps hostile input from recursing.
const MAX_WRAPPER_DEPTH: usize = 6;

/// Decodes a whole document. Never fails: problems become [`BadRecord`]s.
pub fn decode_document(text: &str, options: DecodeOptions) -> Decoded {
    let mut out = Decoded::default();
    decode_into(text, options, &mut out);
    out
}

/// Like [`decode_document`], appending to `out`.
pub fn decode_into(text: &str, options: DecodeOptions, out: &mut Decoded) {
    decode_lines_into(text, 1, options, out);
}

/// Decodes a piece of a larger document whose first line is `first_line`, so
/// reported lines stay true to the whole document.
pub fn decode_lines_into(text: &str, first_line: usize, options: DecodeOptions, out: &mut Decoded) {
    decode_with_replacements(text, first_line, &[], options, out);
}

/// Decodes a document in which invalid UTF-8 was replaced by U+FFFD at the
/// byte ranges `replaced` (see `files::decode_bytes`). Every record that
/// contains one is rejected as `invalid_utf8`, by itself: the rest of its
/// batch or file is kept, and nothing is silently altered.
pub fn decode_with_replacements(
    text: &str,
    first_line: usize,
    replaced: &[std::ops::Range<usize>],
    options: DecodeOptions,
    out: &mut Decoded,
) {
    let (text, replaced) = match text.strip_prefix('\u{feff}') {
        Some(rest) => (rest, replaced.iter().map(|r| r.start.saturating_sub(3)..r.end.saturating_sub(3)).collect()),
        None => (text, replaced.to_vec()),
    };
    let mut decoder = Decoder { options, out, text, lines: LineIndex::new(text, first_line), replaced };
    if decoder.replaced.is_empty() && decoder.audit_event_list_in_one_pass() {
        return;
    }
    let mut offset = 0usize;
    'document: while offset < text.len() {
        let rest = &text[offset..];
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<&RawValue>();
        loop {
            let before = stream.byte_offset();
            match stream.next() {
                None => break 'document,
                Some(Ok(raw)) => {
                    let line = decoder.locate(raw, 1);
                    decoder.value(raw, line, 0, None);
                }
                Some(Err(err)) => {
                    let error_line = decoder.lines.line_of(offset) + err.line().saturating_sub(1);
                    decoder.out.reject(BadReason::InvalidJson, error_line, err.to_string());
                    // Resume at the next line that starts a top-level value.
                    offset = next_value_start(text, offset + before);
                    continue 'document;
                }
            }
        }
    }
}

/// Byte offsets of line starts, to report 1-based line numbers.
struct LineIndex {
    newlines: Vec<usize>,
    first_line: usize,
}

impl LineIndex {
    fn new(text: &str, first_line: usize) -> Self {
        let newlines = text.bytes().enumerate().filter(|(_, b)| *b == b'\n').map(|(i, _)| i).collect();
        LineIndex { newlines, first_line }
    }

    fn line_of(&self, offset: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < offset) + self.first_line
    }
}

/// The byte offset of the next line after `from` that begins with `{` or `[`
/// in column 0, or the end of the text.
fn next_value_start(s: &str, from: usize) -> usize {
    let bytes = s.as_bytes();
    let mut i = from;
    while let Some(nl) = bytes[i..].iter().position(|&b| b == b'\n') {
        i += nl + 1;
        if matches!(bytes.get(i), Some(b'{') | Some(b'[')) {
            return i;
        }
    }
    s.len()
}

/// An audit `EventList` with every item typed: the shape of every webhook body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditEventList<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    items: Vec<AuditEvent<'a>>,
}

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

struct Decoder<'o, 't> {
    options: DecodeOptions,
    out: &'o mut Decoded,
    text: &'t str,
    lines: LineIndex,
    /// Byte ranges of `text` where invalid UTF-8 was replaced.
    replaced: Vec<std::ops::Range<usize>>,
}

impl Decoder<'_, '_> {
    /// The line a value starts on, when it lies in the document itself (values
    /// unwrapped from a JSON string, as in AKS, report their wrapper's line).
    fn locate(&self, raw: &RawValue, fallback: usize) -> usize {
        self.offset_in_text(raw.get()).map_or(fallback, |at| self.lines.line_of(at))
    }

    /// Where a borrowed slice starts in the document, if it lies in it.
    fn offset_in_text(&self, s: &str) -> Option<usize> {
        let at = (s.as_ptr() as usize).checked_sub(self.text.as_ptr() as usize)?;
        (at < self.text.len()).then_some(at)
    }

    /// Decodes one JSON value. `item_kind` is the kind implied by an enclosing
    /// typed list (`PodList` → `Pod`), since list items often omit `kind`.
    fn value(&mut self, raw: &RawValue, line: usize, depth: usize, item_kind: Option<&str>) {
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
    fn reject_if_replaced(&mut self, record: &str, line: usize) -> bool {
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
                // A Kubernetes object that is not an Event (context in dumps), or a Status.
                self.out.skip("not_an_event");
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

    /// AKS diagnostic record: `properties.log` holds the audit event, as a JSON
    /// string or as an object.
    fn aks_record(&mut self, properties: &RawValue, line: usize, depth: usize) {
        #[derive(Deserialize)]
        struct Properties<'a> {
            #[serde(borrow, default)]
            log: Option<&'a RawValue>,
        }
        let log = match serde_json::from_str::<Properties>(properties.get()) {
            Ok(Properties { log: Some(log) }) => log,
            Ok(_) => {
                self.out.reject(BadReason::InvalidWrapper, line, "AKS record without properties.log");
                return;
            }
            Err(e) => {
                self.out.reject(BadReason::InvalidWrapper, line, format!("AKS properties: {e}"));
                return;
            }
        };
        if log.get().starts_with('"') {
            match serde_json::from_str::<Cow<str>>(log.get()) {
                Ok(inner) => match serde_json::from_str::<&RawValue>(&inner) {
                    Ok(raw) => self.value(raw, line, depth + 1, None),
                    Err(e) => {
                        self.out.reject(BadReason::InvalidWrapper, line, format!("AKS properties.log is not JSON: {e}"))
                    }
                },
                Err(e) => self.out.reject(BadReason::InvalidWrapper, line, format!("AKS properties.log: {e}")),
            }
        } else {
            self.value(log, line, depth + 1, None);
        }
    }

    /// The fast path for the apiserver's webhook body (and audit `EventList`
    /// files): the whole list typed in one pass, without first locating each
    /// item. Any item that does not parse sends the document down the general
    /// path instead, which isolates bad items one by one; so this only ever
    /// changes speed, never results.
    fn audit_event_list_in_one_pass(&mut self) -> bool {
        if !self.text.trim_start().starts_with('{') {
            return false;
        }
        let Ok(list) = serde_json::from_str::<AuditEventList>(self.text) else {
            return false;
        };
        let is_audit_list = list.kind.as_deref() == Some("EventList")
            && list.api_version.as_deref().is_some_and(|v| v.contains("audit.k8s.io"));
        if !is_audit_list {
            return false;
        }
        for event in list.items {
            self.out.stats.audit_events += 1;
            let line = self.locate_str(&event.audit_id);
            self.audit_event_parsed(event, line);
        }
        true
    }

    /// The line a borrowed string lies on (1 when it is not in the document).
    fn locate_str(&self, s: &str) -> usize {
        self.offset_in_text(s).map_or(self.lines.first_line, |at| self.lines.line_of(at))
    }

    fn audit_event(&mut self, text: &str, line: usize) {
        self.out.stats.audit_events += 1;
        match serde_json::from_str::<AuditEvent>(text) {
            Ok(event) => self.audit_event_parsed(event, line),
            Err(e) => self.out.reject(BadReason::InvalidAuditEvent, line, e.to_string()),
        }
    }

    fn audit_event_parsed(&mut self, event: AuditEvent<'_>, line: usize) {
        self.out.stats.count_verb_stage(&event.verb, &event.stage);
        if !matches!(&*event.stage, "ResponseComplete" | "Panic") {
            self.out.skip(match &*event.stage {
                "RequestReceived" => "stage_request_received",
                "ResponseStarted" => "stage_response_started",
                _ => "stage_other",
            });
            return;
        }
        let Some(verb) = Verb::parse(&event.verb) else {
            self.out.skip("read");
            return;
        };
        let Some(object_ref) = event.object_ref.as_ref() else {
            self.out.skip("non_resource");
            return;
        };
        let Some(completed) =
            event.stage_timestamp.as_deref().or(event.timestamp.as_deref()).and_then(parse_rfc3339_micros)
        else {
            self.out.reject(
                BadReason::InvalidTimestamp,
                line,
                format!("auditID {}: stageTimestamp (or v1beta1 timestamp) missing or not RFC 3339", event.audit_id),
            );
            return;
        };
        let received = event.request_received_timestamp.as_deref().and_then(parse_rfc3339_micros).unwrap_or(completed);
        let status = event.response_status.as_ref();
        let write = WriteInput {
            audit_id: &event.audit_id,
            verb,
            api_group: object_ref.api_group.as_deref().unwrap_or(""),
            api_version: object_ref.api_version.as_deref().unwrap_or(""),
            resource: object_ref.resource.as_deref().unwrap_or(""),
            subresource: object_ref.subresource.as_deref().filter(|s| !s.is_empty()),
            namespace: object_ref.namespace.as_deref().filter(|s| !s.is_empty()),
            name: object_ref.name.as_deref().filter(|s| !s.is_empty()),
            uid: object_ref.uid.as_deref().filter(|s| !s.is_empty()),
            user: event.effective_user(),
            user_agent: event.user_agent.as_deref(),
            status_code: status.and_then(|s| s.code),
            status_message: status.and_then(|s| s.message.as_deref().or(s.reason.as_deref())),
            received,
            completed,
            request_object: event.request_object,
            response_object: event.response_object,
            dry_run: event.is_dry_run(),
        };
        self.write(write, line);
    }

    /// Google Cloud Audit Logs `LogEntry` for GKE: the Kubernetes request is in
    /// `protoPayload` (`methodName`, `resourceName`, `request`, `response`).
    fn gke_entry(&mut self, entry: &RawValue, payload: &RawValue, line: usize) {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Entry<'a> {
            #[serde(borrow, default)]
            insert_id: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            timestamp: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            operation: Option<Operation<'a>>,
        }
        #[derive(Deserialize)]
        struct Operation<'a> {
            #[serde(borrow, default)]
            id: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload<'a> {
            #[serde(borrow, default)]
            method_name: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            resource_name: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            authentication_info: Option<AuthInfo<'a>>,
            #[serde(borrow, default)]
            request_metadata: Option<RequestMetadata<'a>>,
            #[serde(borrow, default)]
            status: Option<GrpcStatus<'a>>,
            #[serde(borrow, default)]
            request: Option<&'a RawValue>,
            #[serde(borrow, default)]
            response: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct AuthInfo<'a> {
            #[serde(borrow, default)]
            principal_email: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RequestMetadata<'a> {
            #[serde(borrow, default)]
            caller_supplied_user_agent: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct GrpcStatus<'a> {
            #[serde(default)]
            code: Option<i64>,
            #[serde(borrow, default)]
            message: Option<Cow<'a, str>>,
        }
        self.out.stats.audit_events += 1;
        let (entry, payload): (Entry, Payload) =
            match (serde_json::from_str(entry.get()), serde_json::from_str(payload.get())) {
                (Ok(e), Ok(p)) => (e, p),
                (Err(e), _) | (_, Err(e)) => {
                    self.out.reject(BadReason::InvalidWrapper, line, format!("GKE LogEntry: {e}"));
                    return;
                }
            };
        let Some(method) = payload.method_name.as_deref() else {
            self.out.reject(BadReason::InvalidWrapper, line, "GKE LogEntry without protoPayload.methodName");
            return;
        };
        let Some(verb) = method.rsplit('.').next().and_then(Verb::parse) else {
            self.out.skip("read");
            return;
        };
        let Some(path) = payload.resource_name.as_deref().and_then(GkeResourceName::parse) else {
            self.out.reject(BadReason::InvalidWrapper, line, format!("GKE resourceName not understood for {method}"));
            return;
        };
        let Some(time) = entry.timestamp.as_deref().and_then(parse_rfc3339_micros) else {
            self.out.reject(BadReason::InvalidTimestamp, line, "GKE LogEntry timestamp missing or not RFC 3339");
            return;
        };
        let audit_id = entry.operation.as_ref().and_then(|o| o.id.as_deref()).or(entry.insert_id.as_deref());
        let Some(audit_id) = audit_id else {
            self.out.reject(BadReason::InvalidWrapper, line, "GKE LogEntry without operation.id or insertId");
            return;
        };
        let grpc = payload.status.as_ref().and_then(|s| s.code).unwrap_or(0);
        let write = WriteInput {
            audit_id,
            verb,
            api_group: path.group,
            api_version: path.version,
            resource: path.resource,
            subresource: path.subresource,
            namespace: path.namespace,
            name: path.name,
            uid: None,
            user: payload.authentication_info.as_ref().and_then(|a| a.principal_email.as_deref()).unwrap_or(""),
            user_agent: payload.request_metadata.as_ref().and_then(|m| m.caller_supplied_user_agent.as_deref()),
            status_code: Some(http_status_for_grpc(grpc, verb)),
            status_message: payload.status.as_ref().and_then(|s| s.message.as_deref()).filter(|m| !m.is_empty()),
            received: time,
            completed: time,
            request_object: payload.request,
            response_object: payload.response,
            dry_run: false,
        };
        self.write(write, line);
    }

    /// The common path for a mutating request from any audit source.
    fn write(&mut self, w: WriteInput<'_>, line: usize) {
        if !self.options.keep_leader_election && w.resource == "leases" {
            self.out.skip("lease");
            return;
        }
        if w.resource == "events" && w.subresource.is_none() {
            self.audit_kube_event(&w, line);
            return;
        }
        let response = w.response_object.and_then(ObjectHead::parse);
        let request = w.request_object.and_then(ObjectHead::parse);
        let response_meta = response.as_ref().and_then(|h| h.metadata.as_ref());
        let request_meta = request.as_ref().and_then(|h| h.metadata.as_ref());
        if !self.options.keep_leader_election
            && matches!(w.resource, "configmaps" | "endpoints")
            && [response_meta, request_meta].into_iter().flatten().any(|m| m.has_annotation(LEADER_ANNOTATION))
        {
            self.out.skip("leader_election");
            return;
        }
        // A Status's details describe *some* resource, not always the one
        // written: a pod create refused for lack of a service-account token
        // says `{"kind": "serviceaccounts", "name": "create pod"}`. Trust them
        // only when they name the written resource.
        let status_details = response.as_ref().filter(|h| h.is_status()).and_then(|h| h.details.as_ref()).filter(|d| {
            d.kind.as_deref().is_none_or(|k| k == w.resource || Some(k) == kinds::kind_for_resource(w.resource))
        });
        let meta_field = |f: for<'m> fn(&'m ObjectMeta<'_>) -> Option<&'m str>| {
            response_meta.and_then(f).or_else(|| request_meta.and_then(f)).filter(|s| !s.is_empty())
        };
        let uid = response_meta
            .and_then(|m| m.uid.as_deref())
            .or_else(|| status_details.and_then(|d| d.uid.as_deref()))
            .or_else(|| request_meta.and_then(|m| m.uid.as_deref()))
            .filter(|s| !s.is_empty())
            .or(w.uid);
        let name = w
            .name
            .or_else(|| meta_field(|m| m.name.as_deref()))
            .or_else(|| status_details.and_then(|d| d.name.as_deref()).filter(|s| !s.is_empty()));
        let namespace = w.namespace.or_else(|| meta_field(|m| m.namespace.as_deref()));
        let kind = [&response, &request]
            .into_iter()
            .flatten()
            .filter(|h| !h.is_status())
            .find_map(|h| h.kind.as_deref().filter(|k| !k.is_empty()));
        let owners = response_meta
            .and_then(|m| m.owner_references.as_ref())
            .or_else(|| request_meta.and_then(|m| m.owner_references.as_ref()))
            .map(|refs| {
                refs.iter()
                    .filter(|o| !o.uid.is_empty())
                    .map(|o| Owner {
                        kind: o.kind.as_ref().into(),
                        name: o.name.as_ref().into(),
                        uid: Uid::from_text(&o.uid),
                        controller: o.controller == Some(true),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let deletion = deletion_state(w.verb, response.as_ref());
        let relations = relations(&w, response_meta.or(request_meta));
        let status_code = w.status_code.and_then(|c| u16::try_from(c).ok()).unwrap_or(0);
        self.out.records.push(Record::Write(WriteRecord {
            audit_id: w.audit_id.into(),
            verb: w.verb,
            api_group: w.api_group.into(),
            api_version: w.api_version.into(),
            resource: w.resource.into(),
            subresource: w.subresource.map(Into::into),
            namespace: namespace.map(Into::into),
            name: name.map(Into::into),
            uid: uid.map(Into::into),
            kind: kind.map(Into::into),
            user: w.user.into(),
            user_agent: w.user_agent.map(Into::into),
            status_code,
            status_message: match (w.status_message, w.status_code) {
                (Some(m), _) => Some(m.into()),
                (None, None) => Some("the audit record has no responseStatus".into()),
                (None, Some(_)) => None,
            },
            received: w.received,
            completed: w.completed,
            generation: response_meta.and_then(|m| m.generation),
            request_generation: request_meta.and_then(|m| m.generation),
            deletion,
            owners,
            dry_run: w.dry_run,
            relations,
        }));
    }

    /// A create, update or patch of the `events` resource: an Event span, not a write.
    fn audit_kube_event(&mut self, w: &WriteInput<'_>, line: usize) {
        if w.verb.is_delete() {
            self.out.skip("event_deleted");
            return;
        }
        if !(200..300).contains(&w.status_code.unwrap_or(0)) {
            self.out.skip("event_write_failed");
            return;
        }
        let Some(object) = w.response_object.or(w.request_object) else {
            self.out.skip("event_without_object");
            return;
        };
        let origin = EventOrigin::Audit { audit_id: w.audit_id.into(), verb: w.verb };
        let context = AuditEventContext { namespace: w.namespace, name: w.name, time: w.completed };
        self.kube_event_with(object.get(), Some(context), origin, line);
    }

    fn kube_event(&mut self, text: &str, context: Option<AuditEventContext<'_>>, line: usize) {
        self.out.stats.kube_events += 1;
        self.kube_event_with(text, context, EventOrigin::Object, line);
    }

    fn kube_event_with(
        &mut self,
        text: &str,
        context: Option<AuditEventContext<'_>>,
        origin: EventOrigin,
        line: usize,
    ) {
        let event: WireEvent = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) => {
                self.out.reject(BadReason::InvalidKubeEvent, line, e.to_string());
                return;
            }
        };
        let name = event.metadata.name.as_deref().filter(|s| !s.is_empty()).or(context.as_ref().and_then(|c| c.name));
        let namespace = event
            .metadata
            .namespace
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(context.as_ref().and_then(|c| c.namespace))
            .unwrap_or("default");
        let Some(name) = name else {
            self.out.reject(BadReason::InvalidKubeEvent, line, "Event without metadata.name");
            return;
        };
        let count = event.observed_count();
        let (time, coarse_time) = match &context {
            Some(c) => (c.time, false),
            None => {
                let text = if count > 1 { event.last_time_text() } else { event.first_time_text() };
                match text.and_then(|t| parse_rfc3339_micros(t).map(|m| (m, !has_fraction(t)))) {
                    Some(found) => found,
                    None => {
                        self.out.reject(
                            BadReason::InvalidTimestamp,
                            line,
                            format!("Event {namespace}/{name}: no eventTime, firstTimestamp or lastTimestamp"),
                        );
                        return;
                    }
                }
            }
        };
        let regarding = event.regarding().map_or_else(Regarding::default, |r| Regarding {
            kind: owned(&r.kind),
            api_version: owned(&r.api_version),
            namespace: owned(&r.namespace),
            name: owned(&r.name),
            uid: owned(&r.uid),
            field_path: owned(&r.field_path),
        });
        self.out.records.push(Record::Event(EventRecord {
            uid: owned(&event.metadata.uid),
            namespace: namespace.into(),
            name: name.into(),
            reason: owned(&event.reason),
            message: event.text().map(Into::into),
            event_type: owned(&event.event_type),
            action: owned(&event.action),
            reporter: event.reporter().map(Into::into),
            reporter_host: event.reporter_host().map(Into::into),
            regarding,
            time,
            coarse_time,
            count,
            origin,
        }));
    }
}

const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// Label by which an EndpointSlice names its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Relations other than ownerReferences, for the few resources that carry
/// them; everything else skips this second, narrow parse of the object.
fn relations(w: &WriteInput<'_>, meta: Option<&ObjectMeta<'_>>) -> Option<Box<Relations>> {
    let endpoints_like = matches!(w.resource, "endpoints" | "endpointslices") && w.subresource.is_none();
    let placed = w.resource == "pods"
        && ((w.verb == Verb::Create && w.subresource.is_none()) || w.subresource == Some("binding"));
    if !endpoints_like && !placed {
        return None;
    }
    // A binding's response is a Status: its target is in the request.
    let object =
        if w.subresource == Some("binding") { w.request_object } else { w.response_object.or(w.request_object) };
    let view = object.and_then(RelationView::parse)?;
    let mut relations = Relations::default();
    if placed {
        relations.node_name = view.node_name().map(Into::into);
    }
    if endpoints_like && !w.verb.is_delete() {
        let mut members: Vec<EndpointMember> = view
            .endpoint_members()
            .unwrap_or_default()
            .into_iter()
            .map(|(uid, state)| EndpointMember { pod: Uid::from_text(uid), state: ids::fingerprint(&state) })
            .collect();
        members.sort_unstable();
        members.dedup();
        relations.endpoint_members = Some(members);
        if w.resource == "endpointslices" {
            relations.service_name = meta.and_then(|m| m.label(SERVICE_NAME_LABEL)).map(Into::into);
        }
    }
    (relations != Relations::default()).then(|| Box::new(relations))
}

fn owned(v: &Option<Cow<'_, str>>) -> Option<Box<str>> {
    v.as_deref().filter(|s| !s.is_empty()).map(Into::into)
}

/// What an audit record of an `events` write adds to the Event object inside it.
struct AuditEventContext<'a> {
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    time: Micros,
}

/// A mutating request, from whichever audit format it came in.
struct WriteInput<'a> {
    audit_id: &'a str,
    verb: Verb,
    api_group: &'a str,
    api_version: &'a str,
    resource: &'a str,
    subresource: Option<&'a str>,
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    uid: Option<&'a str>,
    user: &'a str,
    user_agent: Option<&'a str>,
    status_code: Option<i64>,
    status_message: Option<&'a str>,
    received: Micros,
    completed: Micros,
    request_object: Option<&'a RawValue>,
    response_object: Option<&'a RawValue>,
    dry_run: bool,
}

/// What the response says about deletion. A `Status` response means the object
/// is gone; an object with `deletionTimestamp` and pending finalizers or a grace
/// period means deletion is in progress. A delete logged without its response
/// is taken as in progress (bounded by the graph's deleting TTL).
fn deletion_state(verb: Verb, response: Option<&ObjectHead<'_>>) -> Deletion {
    match response {
        Some(head) if head.is_status() => {
            if verb.is_delete() {
                Deletion::Gone
            } else {
                Deletion::None
            }
        }
        Some(head) => match head.metadata.as_ref().and_then(|m| m.deletion_timestamp.as_deref().map(|_| m)) {
            Some(meta) => {
                let finalizers = meta.finalizers.as_ref().is_some_and(|f| !f.is_empty());
                let grace = meta.deletion_grace_period_seconds.unwrap_or(0) > 0;
                if finalizers || grace { Deletion::InProgress } else { Deletion::Gone }
            }
            None if verb.is_delete() => Deletion::Gone,
            None => Deletion::None,
        },
        None if verb == Verb::Delete => Deletion::InProgress,
        None => Deletion::None,
    }
}

/// `core/v1/namespaces/NS/pods/NAME[/SUB]`, `apps/v1/namespaces/NS/deployments/NAME`,
/// `core/v1/nodes/NAME`, `rbac.authorization.k8s.io/v1/clusterroles/NAME`.
struct GkeResourceName<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

impl<'a> GkeResourceName<'a> {
    fn parse(path: &'a str) -> Option<Self> {
        let segments: Vec<&str> = path.split('/').collect();
        let (group, version) = (*segments.first()?, *segments.get(1)?);
        let group = if group == "core" { "" } else { group };
        let rest = &segments[2..];
        let (namespace, rest) = match rest {
            ["namespaces", ns, resource, tail @ ..] => (Some(*ns), [&[*resource][..], tail].concat()),
            _ => (None, rest.to_vec()),
        };
        Some(GkeResourceName {
            group,
            version,
            namespace,
            resource: rest.first().copied().filter(|r| !r.is_empty())?,
            name: rest.get(1).copied(),
            subresource: rest.get(2).copied(),
        })
    }
}

/// gRPC status codes as the HTTP codes the apiserver would have answered.
fn http_status_for_grpc(code: i64, verb: Verb) -> i64 {
    match code {
        0 if verb == Verb::Create => 201,
        0 => 200,
        3 | 9 | 11 => 400,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        16 => 401,
        4 => 504,
        _ => 500,
    }
}

fn preview(s: &str) -> String {
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
