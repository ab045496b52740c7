//! The Event lifecycle: what kausal remembers about each Event it has seen,
//! and the spans it holds open to collect repeats.
//!
//! An Event is reported many times (a watch and the audit stream carry the
//! same object; `count` grows with each repeat). The first report opens a
//! span, held for the linger period; copies fill in what the first lacked,
//! repeats become span events on it, and repeats after it closed get spans
//! of their own, linked to it. The tracker returns the spans that are due;
//! the engine decides where they go.

use std::collections::{BTreeMap, VecDeque};

use foldhash::{HashMap, HashSet};

use super::actors;
use super::graph::SpanRef;
use super::ids;
use super::linker::Link;
use super::record::{EventOrigin, EventRecord, Regarding};
use super::span::{AttrValue, LinkReason, Span, SpanEvent, SpanLink};
use super::span_builder::{self, Placement, set_attr};
use super::time::Micros;

/// What the engine remembers about an Event it has seen.
struct EventState {
    uid: Option<Box<str>>,
    span: SpanRef,
    parent: Option<ids::SpanId>,
    count: i64,
    /// The span is still held open (not yet emitted).
    open: bool,
    seen_at: Micros,
    /// What the first report said: a repeat's record may lack it.
    described: Box<Described>,
}

/// What an Event says besides its count, time and message. A repeat logged
/// as a `patch events` carries only what changed (the count, the last time,
/// the message), so its span takes the rest from the first report: without
/// it, a repeat after the original span closed would be an Event of no reason
/// by no one. Kept for every remembered Event (`dedup_ttl`), so the message,
/// the longest field, which every repeat carries, is not.
#[derive(Debug, Clone)]
struct Described {
    reason: Option<Box<str>>,
    event_type: Option<Box<str>>,
    action: Option<Box<str>>,
    reporter: Option<Box<str>>,
    reporter_host: Option<Box<str>>,
    regarding: Regarding,
}

impl Described {
    fn of(e: &EventRecord) -> Described {
        Described {
            reason: e.reason.clone(),
            event_type: e.event_type.clone(),
            action: e.action.clone(),
            reporter: e.reporter.clone(),
            reporter_host: e.reporter_host.clone(),
            regarding: e.regarding.clone(),
        }
    }

    /// `e` with what it lacks taken from the first report.
    fn fill(&self, e: &EventRecord) -> EventRecord {
        let mut filled = e.clone();
        let take = |field: &mut Option<Box<str>>, first: &Option<Box<str>>| {
            if field.is_none() {
                field.clone_from(first);
            }
        };
        take(&mut filled.reason, &self.reason);
        take(&mut filled.event_type, &self.event_type);
        take(&mut filled.action, &self.action);
        take(&mut filled.reporter, &self.reporter);
        take(&mut filled.reporter_host, &self.reporter_host);
        if filled.regarding == Regarding::default() {
            filled.regarding = self.regarding.clone();
        }
        filled
    }
}

/// What a second report of a known Event amounted to.
pub(super) enum Again {
    /// A copy (same or lower count): merged into the open span, if any.
    Copy,
    /// A repeat, merged into the open span (`None`) or, once the original is
    /// out, a repeat span of its own to emit.
    Repeat(Option<Span>),
}

/// Spans whose linger ended.
#[derive(Default)]
pub(super) struct Closed {
    pub(super) spans: Vec<Span>,
    /// Open spans that only replayed records reported: closed silently.
    pub(super) suppressed: u64,
}

#[derive(Default)]
pub(super) struct EventTracker {
    events: HashMap<Box<str>, EventState>,
    event_uid_keys: HashMap<Box<str>, Box<str>>,
    /// Keys by first sighting, oldest first, to forget them in order.
    events_queue: VecDeque<(Micros, Box<str>)>,
    open_spans: HashMap<Box<str>, Span>,
    /// When each open span closes.
    open_close: BTreeMap<(Micros, Box<str>), ()>,
    /// Open spans that only replayed records reported.
    replayed_open: HashSet<Box<str>>,
}

impl EventTracker {
    /// The key of a known Event: by UID when a copy carried one, else by
    /// namespace and name.
    pub(super) fn key_of(&self, e: &EventRecord) -> Option<Box<str>> {
        if let Some(key) = e.uid.as_deref().and_then(|u| self.event_uid_keys.get(u)) {
            return Some(key.clone());
        }
        let by_name = e.key_by_name();
        self.events.contains_key(by_name.as_str()).then(|| by_name.into_boxed_str())
    }

    /// Remembers a new Event and holds its span open for `linger`; returns
    /// the span when it is due at once (no linger).
    pub(super) fn open(&mut self, e: &EventRecord, span: Span, linger: Micros, replaying: bool) -> Option<Span> {
        let key: Box<str> = e.key_by_name().into_boxed_str();
        let span_ref = SpanRef { trace_id: span.trace_id, span_id: span.span_id };
        let open = linger > 0;
        let state = EventState {
            uid: e.uid.clone(),
            span: span_ref,
            parent: span.parent_span_id,
            count: e.count,
            open,
            seen_at: e.time,
            described: Box::new(Described::of(e)),
        };
        self.events.insert(key.clone(), state);
        if let Some(uid) = &e.uid {
            self.event_uid_keys.insert(uid.clone(), key.clone());
        }
        self.events_queue.push_back((e.time, key.clone()));
        if !open {
            return Some(span);
        }
        self.open_close.insert((e.time.saturating_add(linger), key.clone()), ());
        if replaying {
            self.replayed_open.insert(key.clone());
        }
        self.open_spans.insert(key, span);
        None
    }

    /// A second report of a known Event: a copy from another source, or a
    /// repeat with a higher count.
    pub(super) fn again(&mut self, key: Box<str>, e: &EventRecord, replaying: bool) -> Again {
        let state = self.events.get_mut(&key).expect("known key");
        if let Some(uid) = &e.uid {
            self.event_uid_keys.entry(uid.clone()).or_insert_with(|| key.clone());
        }
        if state.open && !replaying {
            // A report that was not exported yet: the open span must go out.
            self.replayed_open.remove(&key);
        }
        if e.count <= state.count {
            if let Some(span) = self.open_spans.get_mut(&key) {
                merge_copy_into_open_span(span, e);
            }
            return Again::Copy;
        }
        state.count = e.count;
        let (original, parent, open) = (state.span, state.parent, state.open);
        let e = &state.described.fill(e);
        let repeat = SpanEvent {
            time: e.time,
            name: "repeat".to_owned(),
            attributes: vec![
                ("k8s.event.count", AttrValue::Int(e.count)),
                ("k8s.event.message", AttrValue::Str(e.message.as_deref().unwrap_or("").to_owned())),
            ],
        };
        if open {
            if let Some(span) = self.open_spans.get_mut(&key) {
                span.end = span.end.max(e.time);
                span.events.push(repeat);
                set_attr(&mut span.attributes, "k8s.event.count", AttrValue::Int(e.count));
            }
            return Again::Repeat(None);
        }
        // The original span is already out: the repeat gets a span of its own,
        // under the same parent and linked to the original.
        let identity = e.uid.as_deref().map_or_else(|| key.to_string(), |u| u.to_owned());
        let span_ref =
            SpanRef { trace_id: original.trace_id, span_id: ids::span_id_for_event_repeat(&identity, e.count) };
        let placement = Placement { span: span_ref, parent, root: None };
        let actor = actors::reporter_of(e).actor();
        let mut span = span_builder::build_event_span(e, placement, &Link::default(), actor);
        span.name = format!("{} (repeat)", span.name);
        span.links.push(SpanLink {
            trace_id: original.trace_id,
            span_id: original.span_id,
            reason: LinkReason::RepeatOf,
        });
        span.events.push(repeat);
        Again::Repeat(Some(span))
    }

    /// Closes every open span whose linger ends at or before `until`.
    pub(super) fn close_until(&mut self, until: Micros) -> Closed {
        let mut closed = Closed::default();
        while let Some(((close_at, key), ())) = self.open_close.pop_first() {
            if close_at > until {
                self.open_close.insert((close_at, key), ());
                break;
            }
            if let Some(state) = self.events.get_mut(&key) {
                state.open = false;
            }
            if let Some(span) = self.open_spans.remove(&key) {
                if self.replayed_open.remove(&key) {
                    closed.suppressed += 1;
                } else {
                    closed.spans.push(span);
                }
            }
        }
        closed
    }

    /// Puts the open span `root` (a root, still held open) under `parent`,
    /// and moves every open span of its trace into the parent's trace: an
    /// announcement that was ordered after what it announced (Events with
    /// whole-second times) adopts it. Returns the old trace ID, or `None` when
    /// the span is no longer open.
    pub(super) fn adopt(&mut self, root: ids::SpanId, parent: SpanRef) -> Option<ids::TraceId> {
        let old = self.open_spans.values().find(|s| s.span_id == root && s.parent_span_id.is_none())?.trace_id;
        for span in self.open_spans.values_mut().filter(|s| s.trace_id == old) {
            span.trace_id = parent.trace_id;
            if span.span_id == root {
                span.parent_span_id = Some(parent.span_id);
                span.root = None;
                span.attributes.retain(|(k, _)| *k != "kausal.root");
                span.attributes.push(("kausal.parent.found_by", "announcement".into()));
            }
        }
        for state in self.events.values_mut().filter(|s| s.span.trace_id == old) {
            state.span.trace_id = parent.trace_id;
            if state.span.span_id == root {
                state.parent = Some(parent.span_id);
            }
        }
        Some(old)
    }

    /// Puts the open span `id`, which has a guessed parent and no children,
    /// under `parent` instead (into its trace). False when it is no longer
    /// open or has children already: then the guess stays.
    pub(super) fn reparent_leaf(&mut self, id: ids::SpanId, parent: SpanRef) -> bool {
        let Some(trace) = self.open_spans.values().find(|s| s.span_id == id).map(|s| s.trace_id) else {
            return false;
        };
        if self.open_spans.values().any(|s| s.trace_id == trace && s.parent_span_id == Some(id)) {
            return false;
        }
        for span in self.open_spans.values_mut().filter(|s| s.span_id == id) {
            span.trace_id = parent.trace_id;
            span.parent_span_id = Some(parent.span_id);
            span.attributes.retain(|(k, _)| *k != "kausal.parent.found_by");
            span.attributes.push(("kausal.parent.found_by", "announcement".into()));
        }
        for state in self.events.values_mut().filter(|s| s.span.span_id == id) {
            state.span.trace_id = parent.trace_id;
            state.parent = Some(parent.span_id);
        }
        true
    }

    /// When the next open span closes.
    pub(super) fn earliest_close(&self) -> Option<Micros> {
        self.open_close.first_key_value().map(|((t, _), ())| *t)
    }

    /// Forgets closed Events first seen before `cutoff`.
    pub(super) fn expire(&mut self, cutoff: Micros) {
        while self.events_queue.front().is_some_and(|(t, _)| *t < cutoff) {
            let (seen_at, key) = self.events_queue.pop_front().expect("checked");
            let expired = self.events.get(&key).is_some_and(|s| s.seen_at == seen_at && !s.open);
            if expired {
                let state = self.events.remove(&key).expect("checked");
                if let Some(uid) = state.uid
                    && self.event_uid_keys.get(&uid).is_some_and(|k| *k == key)
                {
                    self.event_uid_keys.remove(&uid);
                }
            }
        }
    }
}

/// A second copy of an Event whose span is still open fills in what the first
/// copy lacked: the UID, and (Events that came through audit are timed by
/// their audit record) the audit record's time and ID.
fn merge_copy_into_open_span(span: &mut Span, copy: &EventRecord) {
    if let Some(uid) = &copy.uid
        && span.attr("k8s.event.uid").is_none()
    {
        set_attr(&mut span.attributes, "k8s.event.uid", AttrValue::Str(uid.to_string()));
    }
    if let EventOrigin::Audit { audit_id, .. } = &copy.origin
        && span.attr("k8s.audit.id").is_none()
    {
        span.start = copy.time;
        span.end = span.end.max(copy.time);
        set_attr(&mut span.attributes, "k8s.audit.id", AttrValue::Str(audit_id.to_string()));
    }
}
