//! The engine: settle-delay ordering, graph upkeep, and span building.
//!
//! Records go in with [`Engine::ingest`]. [`Engine::advance`] processes every
//! record older than the watermark minus the settle delay, in timestamp order;
//! [`Engine::flush`] processes everything. Spans come out of
//! [`Engine::drain_spans`]. The watermark is the newest record time seen, or a
//! time the caller passes in: the engine never reads a clock.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, VecDeque};

use foldhash::{HashMap, HashSet};

use super::actors::{self, ControllerPatterns, ReporterUsers, actor_name};
use super::graph::{Graph, GraphLimits, GraphStats, Mark, SpanRef, WriteMark};
use super::ids::{self, Uid};
use super::kinds;
use super::linker::{self, Link, Window};
use super::record::{
    Deletion, EndpointMember, EventOrigin, EventRecord, ObservedObject, Record, UnknownObject, Verb, WriteRecord,
};
use super::span::{AttrValue, Attributes, RootKind, Span, SpanEvent, SpanKind, SpanLink, SpanStatus};
use crate::core::time::{MICROS_PER_SECOND, Micros};

/// Tunables of the core. Durations are in microseconds.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub controllers: ControllerPatterns,
    /// How far back a trigger may be and still cause a controller's write.
    pub window: Micros,
    /// How long records are held to be put in timestamp order.
    pub settle: Micros,
    /// How long an Event span stays open to collect repeats as span events.
    pub event_linger: Micros,
    /// How long write auditIDs and Event identities are remembered, so that a
    /// resent batch or a second copy of an Event produces no duplicate spans.
    pub dedup_ttl: Micros,
    pub limits: GraphLimits,
    /// Collect the objects Events are about that the graph has never seen, for
    /// [`Engine::drain_unknown_objects`]. A live server looks them up; a
    /// replay has nobody to ask.
    pub report_unknown_objects: bool,
}

impl Default for CoreConfig {
    fn default() -> Self {
        CoreConfig {
            controllers: ControllerPatterns::default(),
            window: 30 * MICROS_PER_SECOND,
            settle: 2 * MICROS_PER_SECOND,
            event_linger: 60 * MICROS_PER_SECOND,
            dedup_ttl: 15 * 60 * MICROS_PER_SECOND,
            limits: GraphLimits {
                gone_ttl: 10 * 60 * MICROS_PER_SECOND,
                deleting_ttl: 60 * 60 * MICROS_PER_SECOND,
                max_objects: 1_000_000,
            },
            report_unknown_objects: false,
        }
    }
}

/// Counters the engine keeps; sources and sinks add their own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub records_in: u64,
    pub writes: u64,
    pub events: u64,
    pub duplicate_writes: u64,
    pub duplicate_events: u64,
    pub event_repeats: u64,
    /// Records that arrived after newer records had already been processed.
    pub late_records: u64,
    /// Spans of replayed records (see [`Engine::ingest_replayed`]) not emitted again.
    pub replayed_spans_suppressed: u64,
    pub spans_out: u64,
    pub intent_roots: u64,
    pub controller_roots: u64,
    pub orphan_events: u64,
    pub runner_up_links: u64,
    /// Objects added from metadata lookups rather than writes.
    pub observed_objects: u64,
    pub pending: usize,
    pub graph: GraphStats,
}

/// A record waiting in the settle buffer, ordered by time and then by a
/// deterministic key, so any arrival order gives the same processing order.
struct Pending {
    time: Micros,
    class: u8,
    key: Box<str>,
    record: Record,
    /// Already exported before a restart: processed for graph state only.
    replayed: bool,
}

impl Pending {
    fn sort_key(&self) -> (Micros, u8, &str) {
        (self.time, self.class, &self.key)
    }
}
impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        self.sort_key() == other.sort_key()
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

/// What the engine remembers about an Event it has seen.
struct EventState {
    uid: Option<Box<str>>,
    span: SpanRef,
    parent: Option<ids::SpanId>,
    count: i64,
    /// The span is still held open (not yet emitted).
    open: bool,
    seen_at: Micros,
}

pub struct Engine {
    config: CoreConfig,
    graph: Graph,
    pending: BinaryHeap<Reverse<Pending>>,
    /// The newest order time seen in input or passed in by the caller.
    watermark: Micros,
    /// The newest order time already processed.
    processed_until: Micros,
    seen_writes: HashSet<Box<str>>,
    seen_writes_queue: VecDeque<(Micros, Box<str>)>,
    events: HashMap<Box<str>, EventState>,
    event_uid_keys: HashMap<Box<str>, Box<str>>,
    events_queue: VecDeque<(Micros, Box<str>)>,
    open_event_spans: HashMap<Box<str>, Span>,
    open_event_close: BTreeMap<(Micros, Box<str>), ()>,
    /// Open Event spans that only replayed records reported: closed silently.
    replayed_open_events: HashSet<Box<str>>,
    /// The record being processed was replayed: its spans are not emitted.
    replaying: bool,
    /// Every record with an order time up to here has been processed
    /// (`Micros::MAX` after a flush).
    processed_horizon: Micros,
    out: Vec<Span>,
    unknown_objects: Vec<UnknownObject>,
    stats: EngineStats,
    since_expiry: u32,
}

/// How many records are processed between two expiry passes.
const EXPIRY_EVERY: u32 = 1024;

impl Engine {
    pub fn new(config: CoreConfig) -> Engine {
        let graph = Graph::new(config.limits);
        Engine {
            config,
            graph,
            pending: BinaryHeap::new(),
            watermark: Micros::MIN,
            processed_until: Micros::MIN,
            seen_writes: HashSet::default(),
            seen_writes_queue: VecDeque::new(),
            events: HashMap::default(),
            event_uid_keys: HashMap::default(),
            events_queue: VecDeque::new(),
            open_event_spans: HashMap::default(),
            open_event_close: BTreeMap::new(),
            replayed_open_events: HashSet::default(),
            replaying: false,
            processed_horizon: Micros::MIN,
            out: Vec::new(),
            unknown_objects: Vec::new(),
            stats: EngineStats::default(),
            since_expiry: 0,
        }
    }

    pub fn config(&self) -> &CoreConfig {
        &self.config
    }

    pub fn stats(&self) -> EngineStats {
        EngineStats { pending: self.pending.len(), graph: self.graph.stats(), ..self.stats.clone() }
    }

    /// Buffers a record. Nothing is processed until [`advance`](Self::advance)
    /// or [`flush`](Self::flush).
    pub fn ingest(&mut self, record: Record) {
        self.buffer(record, false);
    }

    /// Buffers a record whose spans were already exported before a restart
    /// (recovery from the write-ahead log). It is processed in order like any
    /// record, so the graph and every later record's parent come out as they
    /// did the first time, but its own spans are not emitted again.
    pub fn ingest_replayed(&mut self, record: Record) {
        self.buffer(record, true);
    }

    fn buffer(&mut self, record: Record, replayed: bool) {
        self.stats.records_in += 1;
        let time = record.order_time();
        if time < self.processed_until {
            self.stats.late_records += 1;
        }
        self.watermark = self.watermark.max(time);
        let (class, key) = match &record {
            Record::Write(w) => (0, w.audit_id.clone()),
            Record::Event(e) => (1, format!("{}/{}#{:020}", e.namespace, e.name, e.count).into_boxed_str()),
        };
        self.pending.push(Reverse(Pending { time, class, key, record, replayed }));
    }

    /// Takes the objects Events were about that the graph did not know (only
    /// collected with [`CoreConfig::report_unknown_objects`]).
    pub fn drain_unknown_objects(&mut self) -> Vec<UnknownObject> {
        std::mem::take(&mut self.unknown_objects)
    }

    /// Whether the graph tracks the object with this UID (as written in input).
    pub fn knows_object(&self, uid: &str) -> bool {
        self.graph.node(&Uid::from_text(uid)).is_some()
    }

    /// Adds what a metadata lookup found about an object the graph has not
    /// seen. Known objects are left alone: their writes are fresher than any
    /// lookup. Takes effect at once, outside the settle buffer, because it is
    /// state rather than an occurrence in time.
    pub fn observe(&mut self, object: ObservedObject) {
        let uid = Uid::from_text(&object.uid);
        if self.graph.node(&uid).is_some() {
            return;
        }
        let touched = self.processed_until.max(0);
        let kind =
            object.kind.as_deref().or_else(|| kinds::kind_for_resource(&object.resource)).map(|k| self.graph.intern(k));
        let node = self.graph.upsert(uid, &object.resource, &object.namespace, &object.name, touched);
        node.kind = kind;
        node.set_controller_owner(object.controller_owner.map(|o| o.uid));
        self.stats.observed_objects += 1;
    }

    /// Processes every record older than the watermark minus the settle delay.
    /// `now` moves the watermark forward when input is idle (a server passes its
    /// clock here; a replay passes `None`).
    pub fn advance(&mut self, now: Option<Micros>) {
        if let Some(now) = now {
            self.watermark = self.watermark.max(now);
        }
        let horizon = self.watermark.saturating_sub(self.config.settle);
        self.process_until(horizon);
        self.close_events_until(horizon);
        self.expire(horizon);
        self.processed_horizon = self.processed_horizon.max(horizon);
    }

    /// Every record ingested so far whose order time is at or before the
    /// returned time has had all of its spans emitted (they are in
    /// [`drain_spans`](Self::drain_spans) or were taken already): it has been
    /// processed and no Event span it opened or extended is still held open.
    /// A durable source may forget such records once those spans are exported.
    pub fn emitted_through(&self) -> Micros {
        let pending = self.pending.peek().map_or(Micros::MAX, |Reverse(p)| p.time.saturating_sub(1));
        // An open span closes at its Event's time plus the linger, and that
        // Event's record is ordered no earlier than the Event's time.
        let open = self.open_event_close.first_key_value().map_or(Micros::MAX, |((close_at, _), ())| {
            close_at.saturating_sub(self.config.event_linger).saturating_sub(1)
        });
        self.processed_horizon.min(pending).min(open)
    }

    /// The record time at which [`advance`](Self::advance) next has work: the
    /// oldest buffered record's time plus the settle delay. A live worker
    /// sleeps until then instead of polling.
    pub fn next_due(&self) -> Option<Micros> {
        let record = self.pending.peek().map(|Reverse(p)| p.time.saturating_add(self.config.settle));
        let event_close =
            self.open_event_close.first_key_value().map(|((t, _), ())| t.saturating_add(self.config.settle));
        record.into_iter().chain(event_close).min()
    }

    /// Processes everything buffered and emits every open span.
    pub fn flush(&mut self) {
        self.process_until(Micros::MAX);
        self.close_events_until(Micros::MAX);
        self.processed_horizon = Micros::MAX;
    }

    /// Takes the spans produced so far.
    pub fn drain_spans(&mut self) -> Vec<Span> {
        std::mem::take(&mut self.out)
    }

    fn process_until(&mut self, horizon: Micros) {
        while self.pending.peek().is_some_and(|Reverse(p)| p.time <= horizon) {
            let Reverse(p) = self.pending.pop().expect("peeked");
            // Event spans whose linger ended before this record are closed
            // first, so a later repeat gets a repeat span, whatever the batching.
            self.close_events_until(p.time.saturating_sub(1));
            self.processed_until = self.processed_until.max(p.time);
            // Keep memory bounded during one long flush (a replay) too: forget
            // what is past its TTL as processing time moves on.
            self.since_expiry += 1;
            if self.since_expiry >= EXPIRY_EVERY {
                self.since_expiry = 0;
                self.expire(p.time);
            }
            self.replaying = p.replayed;
            match p.record {
                Record::Write(w) => self.process_write(w),
                Record::Event(e) => self.process_event(e),
            }
            self.replaying = false;
        }
    }

    fn expire(&mut self, horizon: Micros) {
        let cutoff = horizon.saturating_sub(self.config.dedup_ttl);
        while self.seen_writes_queue.front().is_some_and(|(t, _)| *t < cutoff) {
            let (_, id) = self.seen_writes_queue.pop_front().expect("checked");
            self.seen_writes.remove(&id);
        }
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
        self.graph.evict(horizon);
    }

    fn emit(&mut self, span: Span) {
        if self.replaying {
            self.stats.replayed_spans_suppressed += 1;
            return;
        }
        self.stats.spans_out += 1;
        match span.root {
            Some(RootKind::Intent) => self.stats.intent_roots += 1,
            Some(RootKind::ControllerInitiated) => self.stats.controller_roots += 1,
            Some(RootKind::OrphanEvent) => self.stats.orphan_events += 1,
            None => {}
        }
        self.stats.runner_up_links += span.links.iter().filter(|l| l.reason == "runner-up").count() as u64;
        self.out.push(span);
    }

    // ---- writes -------------------------------------------------------------

    fn process_write(&mut self, w: WriteRecord) {
        if !self.seen_writes.insert(w.audit_id.clone()) {
            self.stats.duplicate_writes += 1;
            return;
        }
        self.seen_writes_queue.push_back((w.completed, w.audit_id.clone()));
        self.stats.writes += 1;

        let by_controller = self.config.controllers.is_controller(&w.user);
        let acting = actors::acting_user(&w.user, w.user_agent.as_deref());
        let actor = actor_name(&acting);
        let mut related = self.related_objects(&w);
        related.by_pod_gc = actor == actors::POD_GC_SERVICE_ACCOUNT;
        let time_triggered = by_controller && {
            let owner_kind = w
                .controller_owner()
                .map(|o| o.kind.as_ref())
                .or_else(|| related.owner.and_then(|u| self.graph.node(&u)).and_then(|n| self.graph.kind_of(n)));
            linker::is_time_triggered(&w, owner_kind)
        };

        // A time-triggered create has no parent (the clock caused it), only a
        // link to the spec write it runs on behalf of.
        let link = if by_controller && !time_triggered {
            linker::trigger_for_write(&self.graph, &w, &related, Window::before(w.completed, self.config.window))
        } else {
            Link::default()
        };
        let schedule =
            if time_triggered { linker::schedule_for_write(&self.graph, related.owner, w.completed) } else { None };
        let span_id = ids::span_id_for_write(&w.audit_id);
        let (trace_id, parent, root) = match (by_controller, link.parent) {
            (false, _) => (ids::trace_id_for_write(&w.audit_id), None, Some(RootKind::Intent)),
            (true, Some(p)) => (p.span.trace_id, Some(p.span.span_id), None),
            (true, None) => (ids::trace_id_for_write(&w.audit_id), None, Some(RootKind::ControllerInitiated)),
        };
        let span_ref = SpanRef { trace_id, span_id };

        let object_node = related.object.and_then(|u| self.graph.node(&u));
        let known_kind = object_node.and_then(|n| self.graph.kind_of(n));
        let trigger = if w.dry_run {
            false
        } else {
            let previous_generation = object_node.and_then(|n| n.generation());
            linker::is_trigger(&w, previous_generation, by_controller)
        };
        let placement = Placement { span: span_ref, parent, root };
        let mut span = build_write_span(&w, actor, placement, &link, known_kind, trigger);
        if let Some(s) = schedule {
            span.links.push(SpanLink { trace_id: s.span.trace_id, span_id: s.span.span_id, reason: "scheduled-by" });
        }

        if !w.dry_run {
            self.record_write(&w, &acting, &related, span_ref, trigger);
        }
        self.emit(span);
    }

    /// Resolves what a write relates to from the write and the graph: the
    /// object, its controller owner, and the relations that are not
    /// ownerReferences (a pod's node, an Endpoints' Service and pods).
    fn related_objects(&self, w: &WriteRecord) -> linker::Related {
        let namespace = w.namespace.as_deref().unwrap_or("");
        let object = w
            .uid
            .as_deref()
            .map(Uid::from_text)
            .or_else(|| w.name.as_deref().and_then(|n| self.graph.lookup_name(&w.resource, namespace, n)));
        let object_node = object.and_then(|u| self.graph.node(&u));
        let owner = w.controller_owner().map(|o| o.uid).or_else(|| object_node.and_then(|n| n.controller_owner()));
        let relations = w.relations.as_deref();
        let node = relations.and_then(|r| r.node_name.as_deref()).and_then(|n| self.graph.lookup_name("nodes", "", n));
        let mut related = linker::Related { object, owner, node, ..Default::default() };
        if linker::is_endpoints_like(&w.resource) {
            let service_name = match w.resource.as_ref() {
                "endpoints" => w.name.as_deref(),
                _ => relations.and_then(|r| r.service_name.as_deref()),
            };
            related.service = service_name
                .and_then(|n| self.graph.lookup_name("services", namespace, n))
                .or(if w.resource.as_ref() == "endpointslices" { owner } else { None });
            if let Some(now) = relations.and_then(|r| r.endpoint_members.as_deref()) {
                let before = object_node.map_or(&[][..], |n| n.endpoint_members());
                related.changed_members = changed_members(before, now);
            }
        }
        related
    }

    /// Updates the graph with a write that took effect.
    fn record_write(
        &mut self,
        w: &WriteRecord,
        acting_user: &str,
        related: &linker::Related,
        span: SpanRef,
        trigger: bool,
    ) {
        let (object, owner) = (related.object, related.owner);
        let namespace = w.namespace.as_deref().unwrap_or("");
        let Some(uid) = object.or_else(|| w.name.as_deref().map(|n| Uid::from_name(&w.resource, namespace, n))) else {
            return;
        };
        let mark = Mark { time: w.completed, span };
        let actor = self.graph.intern_actor(acting_user);
        let written_kind = w.kind.as_deref().filter(|_| w.subresource.is_none()).map(|k| self.graph.intern(k));
        let resource_kind = kinds::kind_for_resource(&w.resource).map(|k| self.graph.intern(k));
        let node = self.graph.upsert(uid, &w.resource, namespace, w.name.as_deref().unwrap_or(""), w.completed);
        if let Some(kind) = written_kind {
            node.kind = Some(kind);
        }
        if node.kind.is_none() {
            node.kind = resource_kind;
        }
        if !w.owners.is_empty() {
            node.set_controller_owner(w.controller_owner().map(|o| o.uid));
        }
        if w.succeeded()
            && let Some(g) = w.generation
        {
            node.set_generation(g);
        }
        node.push_write(WriteMark {
            time: w.completed,
            span,
            actor,
            is_status: w.is_status_write(),
            succeeded: w.succeeded(),
        });
        if trigger {
            node.push_trigger(mark);
        }
        if w.succeeded()
            && let Some(relations) = w.relations.as_deref()
        {
            if let Some(bound) = related.node.filter(|_| relations.node_name.is_some()) {
                node.extra_mut().bound_node = Some(bound);
            }
            if let Some(members) = &relations.endpoint_members {
                node.extra_mut().endpoint_members = members.clone();
            }
        }
        if w.succeeded() && w.verb.is_delete() && w.deletion == Deletion::InProgress {
            node.extra_mut().deleting = Some(mark);
        }
        if w.succeeded() && w.deletion == Deletion::Gone {
            self.graph.mark_gone(uid, mark);
        }
        let child_write = w.succeeded() && w.subresource.is_none() && (w.verb.is_delete() || w.verb == Verb::Create);
        if child_write && let Some(owner_node) = owner.and_then(|o| self.graph.node_mut(&o)) {
            if w.verb == Verb::Create {
                owner_node.push_child_create(mark);
            } else {
                owner_node.push_child_delete(mark);
            }
        }
    }

    // ---- Events -------------------------------------------------------------

    fn event_key(&self, e: &EventRecord) -> Option<Box<str>> {
        if let Some(key) = e.uid.as_deref().and_then(|u| self.event_uid_keys.get(u)) {
            return Some(key.clone());
        }
        let by_name = e.key_by_name();
        self.events.contains_key(by_name.as_str()).then(|| by_name.into_boxed_str())
    }

    fn process_event(&mut self, e: EventRecord) {
        self.stats.events += 1;
        match self.event_key(&e) {
            Some(key) => self.process_event_again(key, e),
            None => self.process_new_event(e),
        }
    }

    fn process_new_event(&mut self, e: EventRecord) {
        let key: Box<str> = e.key_by_name().into_boxed_str();
        let identity = e.uid.as_deref().map_or_else(|| key.to_string(), |u| u.to_owned());
        let span_id = ids::span_id_for_event(&identity);

        let reporter = event_reporter(&e);
        let regarding = self.regarding_uid(&e);
        if self.config.report_unknown_objects {
            self.note_if_unknown(&e, regarding);
        }
        let window = Window::before(e.time_upper_bound(), self.config.window);
        let link = linker::parent_for_event(&self.graph, &e, regarding, &reporter, window);
        let (trace_id, parent, root) = match link.parent {
            Some(p) => (p.span.trace_id, Some(p.span.span_id), None),
            None => (ids::trace_id_for_orphan_event(&identity), None, Some(RootKind::OrphanEvent)),
        };
        let span_ref = SpanRef { trace_id, span_id };
        let span = build_event_span(&e, Placement { span: span_ref, parent, root }, &link, reporter.actor());

        let state =
            EventState { uid: e.uid.clone(), span: span_ref, parent, count: e.count, open: true, seen_at: e.time };
        self.events.insert(key.clone(), state);
        if let Some(uid) = &e.uid {
            self.event_uid_keys.insert(uid.clone(), key.clone());
        }
        self.events_queue.push_back((e.time, key.clone()));
        if self.config.event_linger <= 0 {
            self.events.get_mut(&key).expect("inserted").open = false;
            self.emit(span);
        } else {
            self.open_event_close.insert((e.time.saturating_add(self.config.event_linger), key.clone()), ());
            if self.replaying {
                self.replayed_open_events.insert(key.clone());
            }
            self.open_event_spans.insert(key, span);
        }
    }

    /// A second report of a known Event: a copy from another source (dropped),
    /// or a repeat with a higher count (a span event, or a repeat span once the
    /// original has been emitted).
    fn process_event_again(&mut self, key: Box<str>, e: EventRecord) {
        let state = self.events.get_mut(&key).expect("known key");
        if let Some(uid) = &e.uid {
            self.event_uid_keys.entry(uid.clone()).or_insert_with(|| key.clone());
        }
        if state.open && !self.replaying {
            // A report that was not exported yet: the open span must go out.
            self.replayed_open_events.remove(&key);
        }
        if e.count <= state.count {
            self.stats.duplicate_events += 1;
            if let Some(span) = self.open_event_spans.get_mut(&key) {
                merge_copy_into_open_span(span, &e);
            }
            return;
        }
        self.stats.event_repeats += 1;
        state.count = e.count;
        let (original, parent, open) = (state.span, state.parent, state.open);
        let repeat = SpanEvent {
            time: e.time,
            name: "repeat".to_owned(),
            attributes: vec![
                ("k8s.event.count", AttrValue::Int(e.count)),
                ("k8s.event.message", AttrValue::Str(e.message.as_deref().unwrap_or("").to_owned())),
            ],
        };
        if open {
            if let Some(span) = self.open_event_spans.get_mut(&key) {
                span.end = span.end.max(e.time);
                span.events.push(repeat);
                set_attr(&mut span.attributes, "k8s.event.count", AttrValue::Int(e.count));
            }
            return;
        }
        // The original span is already out: the repeat gets a span of its own,
        // under the same parent and linked to the original.
        let identity = e.uid.as_deref().map_or_else(|| key.to_string(), |u| u.to_owned());
        let span_ref =
            SpanRef { trace_id: original.trace_id, span_id: ids::span_id_for_event_repeat(&identity, e.count) };
        let placement = Placement { span: span_ref, parent, root: None };
        let mut span = build_event_span(&e, placement, &Link::default(), event_reporter(&e).actor());
        span.name = format!("{} (repeat)", span.name);
        span.links.push(SpanLink { trace_id: original.trace_id, span_id: original.span_id, reason: "repeat-of" });
        span.events.push(repeat);
        self.emit(span);
    }

    fn close_events_until(&mut self, until: Micros) {
        while let Some(((close_at, key), ())) = self.open_event_close.pop_first() {
            if close_at > until {
                self.open_event_close.insert((close_at, key), ());
                break;
            }
            if let Some(state) = self.events.get_mut(&key) {
                state.open = false;
            }
            if let Some(span) = self.open_event_spans.remove(&key) {
                if self.replayed_open_events.remove(&key) {
                    self.stats.replayed_spans_suppressed += 1;
                } else {
                    self.emit(span);
                }
            }
        }
    }

    fn note_if_unknown(&mut self, e: &EventRecord, regarding: Option<Uid>) {
        let r = &e.regarding;
        let (Some(uid), Some(kind), Some(name)) = (r.uid.as_deref(), r.kind.as_deref(), r.name.as_deref()) else {
            return;
        };
        if uid.is_empty() || regarding.is_some_and(|u| self.graph.node(&u).is_some()) {
            return;
        }
        self.unknown_objects.push(UnknownObject {
            uid: uid.into(),
            api_version: r.api_version.clone(),
            kind: kind.into(),
            namespace: r.namespace.clone().unwrap_or_default(),
            name: name.into(),
        });
    }

    fn regarding_uid(&self, e: &EventRecord) -> Option<Uid> {
        if let Some(uid) = e.regarding.uid.as_deref().filter(|u| !u.is_empty()) {
            return Some(Uid::from_text(uid));
        }
        let kind = e.regarding.kind.as_deref()?;
        let name = e.regarding.name.as_deref()?;
        let namespace = e.regarding.namespace.as_deref().unwrap_or("");
        self.graph.lookup_name(&kinds::resource_for_kind(kind), namespace, name)
    }
}

/// The pods whose listing differs between two sorted member lists: added,
/// removed, or listed with another address or readiness.
fn changed_members(before: &[EndpointMember], now: &[EndpointMember]) -> Vec<Uid> {
    let mut changed: Vec<Uid> = before
        .iter()
        .filter(|m| now.binary_search(m).is_err())
        .chain(now.iter().filter(|m| before.binary_search(m).is_err()))
        .map(|m| m.pod)
        .collect();
    changed.sort_unstable();
    changed.dedup();
    changed
}

/// Where a new span goes: its own IDs, its parent, and what kind of root it
/// is when it has none.
struct Placement {
    span: SpanRef,
    parent: Option<ids::SpanId>,
    root: Option<RootKind>,
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

/// The audit users that count as the Event's reporter; an Event without one
/// matches no writer and falls back to the triggers on its object.
fn event_reporter(e: &EventRecord) -> ReporterUsers {
    match e.reporter.as_deref() {
        Some(r) => ReporterUsers::for_reporter(r, e.reporter_host.as_deref()),
        None => ReporterUsers::Other("unknown".to_owned()),
    }
}

fn set_attr(attrs: &mut Attributes, key: &'static str, value: AttrValue) {
    match attrs.iter_mut().find(|(k, _)| *k == key) {
        Some((_, v)) => *v = value,
        None => attrs.push((key, value)),
    }
}

fn push_opt(attrs: &mut Attributes, key: &'static str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        attrs.push((key, AttrValue::Str(v.to_owned())));
    }
}

/// The runner-up cause, when there was one, as a span link.
fn runner_up_links(link: &Link) -> Vec<SpanLink> {
    link.runner_up
        .map(|r| SpanLink { trace_id: r.span.trace_id, span_id: r.span.span_id, reason: "runner-up" })
        .into_iter()
        .collect()
}

/// `"<verb> <resource>[/<subresource>] <namespace>/<name>"`.
pub fn write_span_name(w: &WriteRecord) -> String {
    let mut name = String::with_capacity(64);
    name.push_str(w.verb.as_str());
    name.push(' ');
    name.push_str(&w.resource);
    if let Some(sub) = &w.subresource {
        name.push('/');
        name.push_str(sub);
    }
    match (w.namespace.as_deref().filter(|n| !n.is_empty()), w.name.as_deref()) {
        (Some(ns), Some(n)) => {
            name.push(' ');
            name.push_str(ns);
            name.push('/');
            name.push_str(n);
        }
        (None, Some(n)) => {
            name.push(' ');
            name.push_str(n);
        }
        (Some(ns), None) => {
            name.push(' ');
            name.push_str(ns);
        }
        (None, None) => {}
    }
    name
}

fn build_write_span(
    w: &WriteRecord,
    actor: String,
    Placement { span, parent, root }: Placement,
    link: &Link,
    known_kind: Option<&str>,
    trigger: bool,
) -> Span {
    let kind = known_kind
        .or(if w.subresource.is_none() { w.kind.as_deref() } else { None })
        .or_else(|| kinds::kind_for_resource(&w.resource));
    let mut attrs: Attributes = Vec::with_capacity(20);
    attrs.push(("kausal.span.kind", "write".into()));
    attrs.push(("k8s.audit.id", AttrValue::Str(w.audit_id.to_string())));
    attrs.push(("k8s.verb", w.verb.as_str().into()));
    attrs.push(("k8s.resource", AttrValue::Str(w.resource.to_string())));
    push_opt(&mut attrs, "k8s.subresource", w.subresource.as_deref());
    push_opt(&mut attrs, "k8s.api.group", Some(&w.api_group));
    push_opt(&mut attrs, "k8s.namespace.name", w.namespace.as_deref());
    push_opt(&mut attrs, "k8s.object.name", w.name.as_deref());
    push_opt(&mut attrs, "k8s.object.uid", w.uid.as_deref());
    push_opt(&mut attrs, "k8s.object.kind", kind);
    if let Some((name_key, uid_key)) = kind.and_then(kinds::semconv_keys) {
        push_opt(&mut attrs, name_key, w.name.as_deref());
        push_opt(&mut attrs, uid_key, w.uid.as_deref());
    }
    attrs.push(("user.name", AttrValue::Str(w.user.to_string())));
    push_opt(&mut attrs, "user_agent.original", w.user_agent.as_deref());
    attrs.push(("http.response.status_code", AttrValue::Int(i64::from(w.status_code))));
    if let Some(g) = w.generation {
        attrs.push(("k8s.object.generation", AttrValue::Int(g)));
    }
    attrs.push(("kausal.trigger", AttrValue::Bool(trigger)));
    if w.dry_run {
        attrs.push(("k8s.dry_run", AttrValue::Bool(true)));
    }
    if let Some(r) = root {
        attrs.push(("kausal.root", r.as_str().into()));
    }
    let status = if w.succeeded() {
        SpanStatus::Unset
    } else {
        SpanStatus::Error(
            w.status_message.as_deref().map_or_else(|| format!("HTTP {}", w.status_code), |m| m.to_owned()),
        )
    };
    Span {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: parent,
        name: write_span_name(w),
        kind: SpanKind::Write,
        actor,
        start: w.received.min(w.completed),
        end: w.completed,
        attributes: attrs,
        links: runner_up_links(link),
        events: Vec::new(),
        status,
        root,
    }
}

fn build_event_span(e: &EventRecord, Placement { span, parent, root }: Placement, link: &Link, actor: String) -> Span {
    let reason = e.reason.as_deref().unwrap_or("Unknown");
    let mut attrs: Attributes = Vec::with_capacity(16);
    attrs.push(("kausal.span.kind", "event".into()));
    attrs.push(("k8s.event.reason", reason.into()));
    push_opt(&mut attrs, "k8s.event.uid", e.uid.as_deref());
    attrs.push(("k8s.event.name", AttrValue::Str(e.name.to_string())));
    push_opt(&mut attrs, "k8s.event.type", e.event_type.as_deref());
    push_opt(&mut attrs, "k8s.event.message", e.message.as_deref());
    push_opt(&mut attrs, "k8s.event.reporting_controller", e.reporter.as_deref());
    push_opt(&mut attrs, "k8s.event.reporting_instance", e.reporter_host.as_deref());
    push_opt(&mut attrs, "k8s.event.action", e.action.as_deref());
    attrs.push(("k8s.event.count", AttrValue::Int(e.count)));
    push_opt(&mut attrs, "k8s.object.kind", e.regarding.kind.as_deref());
    push_opt(&mut attrs, "k8s.object.name", e.regarding.name.as_deref());
    push_opt(&mut attrs, "k8s.object.uid", e.regarding.uid.as_deref());
    push_opt(&mut attrs, "k8s.object.field_path", e.regarding.field_path.as_deref());
    push_opt(&mut attrs, "k8s.namespace.name", e.regarding.namespace.as_deref().or(Some(&e.namespace)));
    if let Some((name_key, uid_key)) = e.regarding.kind.as_deref().and_then(kinds::semconv_keys) {
        push_opt(&mut attrs, name_key, e.regarding.name.as_deref());
        push_opt(&mut attrs, uid_key, e.regarding.uid.as_deref());
    }
    if let EventOrigin::Audit { audit_id, .. } = &e.origin {
        attrs.push(("k8s.audit.id", AttrValue::Str(audit_id.to_string())));
    }
    if let Some(r) = root {
        attrs.push(("kausal.root", r.as_str().into()));
    }
    let status = if e.event_type.as_deref() == Some("Warning") {
        SpanStatus::Error(e.message.as_deref().unwrap_or(reason).to_owned())
    } else {
        SpanStatus::Unset
    };
    Span {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: parent,
        name: format!("event {reason}"),
        kind: SpanKind::Event,
        actor,
        start: e.time,
        end: e.time,
        attributes: attrs,
        links: runner_up_links(link),
        events: Vec::new(),
        status,
        root,
    }
}
