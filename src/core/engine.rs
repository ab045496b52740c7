//! The engine: settle-delay ordering, graph upkeep, and span building.
//!
//! Records go in with [`Engine::ingest`]. [`Engine::advance`] processes every
//! record older than the watermark minus the settle delay, in timestamp order;
//! [`Engine::flush`] processes everything. Spans come out of
//! [`Engine::drain_spans`]. The watermark is the newest record time seen, or a
//! time the caller passes in: the engine never reads a clock.

use super::actors::{self, ControllerPatterns, actor_name};
use super::context_origins::ContextOrigins;
use super::dedup::WriteDedup;
use super::event_chain::{EventChains, FoundBy, ObjectKey, Placed};
use super::event_tracker::{Again, EventTracker};
use super::graph::{Graph, GraphLimits, GraphStats, Mark, SpanRef, TriggerFacts, WriteMark};
use super::ids::{self, Uid};
use super::kinds;
use super::linker::{self, Link, Window};
use super::record::{
    CarriedContext, Deletion, EndpointMember, EventRecord, ObservedObject, Record, UnknownObject, Verb, WriteRecord,
};
use super::settle::SettleBuffer;
use super::span::{AttrValue, LinkReason, RootKind, Span, SpanLink};
use super::span_builder::{Placement, build_event_span, build_write_span};
use super::time::{MICROS_PER_SECOND, Micros};

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
    /// Make the span a trace-context annotation names the intent's parent
    /// (the rollout appears inside the CI run's trace), rather than a link.
    pub adopt_trace_context: bool,
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
            adopt_trace_context: false,
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
    /// Events linked by what other Events announced, on a cluster without
    /// audit records (the Events-only linker).
    pub events_only_links: u64,
    /// Event spans emitted before their linger ended, because a durable
    /// source needed its entries back ([`Engine::close_lingering_events`]).
    pub events_closed_early: u64,
    /// Spans of replayed records (see [`Engine::ingest_replayed`]) not emitted again.
    pub replayed_spans_suppressed: u64,
    pub spans_out: u64,
    pub intent_roots: u64,
    pub controller_roots: u64,
    /// Traces started by automation (see `ControllerPatterns`).
    pub automation_roots: u64,
    pub orphan_events: u64,
    pub runner_up_links: u64,
    /// Objects added from metadata lookups rather than writes.
    pub observed_objects: u64,
    pub pending: usize,
    pub graph: GraphStats,
}

/// The core: records in, spans out. It owns the object graph and the state
/// of each concern in its own type: the settle buffer, the write
/// de-duplication set and the Event tracker.
pub struct Engine {
    config: CoreConfig,
    graph: Graph,
    settle: SettleBuffer,
    writes: WriteDedup,
    events: EventTracker,
    /// What Events announced, for clusters without audit records.
    chains: EventChains,
    /// The trace-context annotation each object last carried (a
    /// fingerprint), to tell a write that set one from a write to an object
    /// that kept it.
    contexts: foldhash::HashMap<Uid, u64>,
    /// The latest write that set each trace context: a copy's cause.
    context_origins: ContextOrigins,
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
            settle: SettleBuffer::new(),
            writes: WriteDedup::default(),
            events: EventTracker::default(),
            chains: EventChains::default(),
            contexts: Default::default(),
            context_origins: ContextOrigins::default(),
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
        EngineStats { pending: self.settle.len(), graph: self.graph.stats(), ..self.stats.clone() }
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
        if self.settle.push(record, replayed) {
            self.stats.late_records += 1;
        }
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
        let touched = self.settle.processed_until().max(0);
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
            self.settle.raise_watermark(now);
        }
        let horizon = self.settle.watermark().saturating_sub(self.config.settle);
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
        let pending = self.settle.oldest().map_or(Micros::MAX, |t| t.saturating_sub(1));
        // An open span closes at its Event's time plus the linger, and that
        // Event's record is ordered no earlier than the Event's time.
        let open = self
            .events
            .earliest_close()
            .map_or(Micros::MAX, |close_at| close_at.saturating_sub(self.config.event_linger).saturating_sub(1));
        self.processed_horizon.min(pending).min(open)
    }

    /// The record time at which [`advance`](Self::advance) next has work: the
    /// oldest buffered record's time plus the settle delay. A live worker
    /// sleeps until then instead of polling.
    pub fn next_due(&self) -> Option<Micros> {
        let record = self.settle.oldest().map(|t| t.saturating_add(self.config.settle));
        let event_close = self.events.earliest_close().map(|t| t.saturating_add(self.config.settle));
        record.into_iter().chain(event_close).min()
    }

    /// Processes everything buffered and emits every open span.
    pub fn flush(&mut self) {
        self.process_until(Micros::MAX);
        self.close_events_until(Micros::MAX);
        self.processed_horizon = Micros::MAX;
    }

    /// Emits every Event span still held open for repeats now, instead of at
    /// the end of its linger, so that [`emitted_through`](Self::emitted_through)
    /// is no longer held back by it. For a durable source that needs its
    /// entries back (a full write-ahead log): a later repeat of such an Event
    /// gets a repeat span of its own, linked to the original, as it would
    /// after a normal close. Nothing is lost; only the grouping of repeats
    /// changes. Returns how many spans were closed.
    pub fn close_lingering_events(&mut self) -> usize {
        let closed = self.events.close_until(Micros::MAX);
        self.stats.replayed_spans_suppressed += closed.suppressed;
        let count = closed.spans.len();
        self.stats.events_closed_early += (count as u64) + closed.suppressed;
        for span in closed.spans {
            self.emit(span);
        }
        count
    }

    /// Takes the spans produced so far.
    pub fn drain_spans(&mut self) -> Vec<Span> {
        std::mem::take(&mut self.out)
    }

    fn process_until(&mut self, horizon: Micros) {
        while let Some(due) = self.settle.pop_due(horizon) {
            // Event spans whose linger ended before this record are closed
            // first, so a later repeat gets a repeat span, whatever the batching.
            self.close_events_until(due.time.saturating_sub(1));
            // Keep memory bounded during one long flush (a replay) too: forget
            // what is past its TTL as processing time moves on.
            self.since_expiry += 1;
            if self.since_expiry >= EXPIRY_EVERY {
                self.since_expiry = 0;
                self.expire(due.time);
            }
            self.replaying = due.replayed;
            match due.record {
                Record::Write(w) => self.process_write(w),
                Record::Event(e) => self.process_event(e),
            }
            self.replaying = false;
        }
    }

    fn expire(&mut self, horizon: Micros) {
        let cutoff = horizon.saturating_sub(self.config.dedup_ttl);
        self.writes.expire(cutoff);
        self.events.expire(cutoff);
        self.chains.expire(cutoff);
        self.context_origins.expire(cutoff);
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
            Some(RootKind::Automation) => self.stats.automation_roots += 1,
            Some(RootKind::OrphanEvent) => self.stats.orphan_events += 1,
            None => {}
        }
        self.stats.runner_up_links += span.links.iter().filter(|l| l.reason == LinkReason::RunnerUp).count() as u64;
        self.out.push(span);
    }

    // ---- writes -------------------------------------------------------------

    fn process_write(&mut self, w: WriteRecord) {
        if !self.writes.first_sight(&w.audit_id, w.completed) {
            self.stats.duplicate_writes += 1;
            return;
        }
        self.stats.writes += 1;

        let by_controller = self.config.controllers.is_controller(&w.user);
        let acting = actors::acting_user(&w.user, w.user_agent.as_deref());
        let actor = actor_name(&acting);
        let related = self.related_objects(&w, &acting, &actor);
        let time_triggered = by_controller && {
            let owner_kind = w
                .controller_owner()
                .map(|o| o.kind.as_ref())
                .or_else(|| related.owner.and_then(|u| self.graph.node(&u)).and_then(|n| self.graph.kind_of(n)));
            linker::is_time_triggered(&w, owner_kind)
        };
        let poll = by_controller && linker::is_poll(&w);

        // A time-triggered create has no parent (the clock caused it), only a
        // link to the spec write it runs on behalf of.
        let link = if by_controller && !time_triggered && !poll && !linker::is_infrastructure(&w) {
            self.cause_of_write(&w, &related)
        } else {
            Link::default()
        };
        let schedule = match (time_triggered, poll) {
            (true, _) => linker::schedule_for_write(&self.graph, related.owner, w.completed),
            (_, true) => linker::schedule_for_write(&self.graph, related.object, w.completed),
            _ => None,
        };
        let span_id = ids::span_id_for_write(&w.audit_id);
        let (trace_id, parent, root) = match (by_controller, link.parent) {
            (false, _) => (ids::trace_id_for_write(&w.audit_id), None, Some(RootKind::Intent)),
            (true, Some(p)) => (p.span.trace_id, Some(p.span.span_id), None),
            (true, None) if self.config.controllers.is_automation(&w.user) => {
                (ids::trace_id_for_write(&w.audit_id), None, Some(RootKind::Automation))
            }
            (true, None) => (ids::trace_id_for_write(&w.audit_id), None, Some(RootKind::ControllerInitiated)),
        };
        // A context this write set (not kept from an earlier write).
        let set_context = w.trace_context.as_deref().filter(|c| self.sets_context(&w, related.object, c));
        // An operator that copied a context from the object it acts for
        // onto this one says which write it acts on: the evidence wins over
        // the rules, whose answer stays as a link.
        let evidence = set_context
            .filter(|_| by_controller)
            .and_then(|c| self.context_origins.origin(c.fingerprint, related.object, related.owner, w.completed));
        let (trace_id, parent, root, by_evidence) = match evidence {
            Some(origin) if parent != Some(origin.span_id) => (origin.trace_id, Some(origin.span_id), None, true),
            _ => (trace_id, parent, root, false),
        };
        let overruled = link.parent.filter(|_| by_evidence).map(|m| m.span);
        // A context an intent's write set (not one the object kept from an
        // earlier write: a person's `kubectl scale` must not inherit last
        // week's CI run) names the span that made the write.
        let intent = matches!(root, Some(RootKind::Intent | RootKind::Automation));
        let carried = set_context.filter(|_| intent);
        let adopted = carried.filter(|_| self.config.adopt_trace_context);
        let (trace_id, parent) = match adopted {
            Some(c) => (c.trace_id, Some(c.span_id)),
            None => (trace_id, parent),
        };
        if let Some(uid) = related.object {
            match (&w.trace_context, w.verb.is_delete()) {
                (_, true) => {
                    self.contexts.remove(&uid);
                }
                (Some(c), false) => {
                    self.contexts.insert(uid, c.fingerprint);
                }
                (None, false) => {}
            }
        }
        let span_ref = SpanRef { trace_id, span_id };
        if let (Some(c), Some(object)) = (set_context, related.object)
            && !w.dry_run
        {
            self.context_origins.note(c.fingerprint, object, span_ref, w.completed);
        }

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
            span.links.push(SpanLink {
                trace_id: s.span.trace_id,
                span_id: s.span.span_id,
                reason: LinkReason::ScheduledBy,
            });
        }
        if let Some(c) = carried {
            if adopted.is_none() {
                span.links.push(SpanLink {
                    trace_id: c.trace_id,
                    span_id: c.span_id,
                    reason: LinkReason::TraceContext,
                });
            }
            span.attributes.push(("kausal.trace_context.annotation", c.annotation.to_string().into()));
            span.attributes.push(("kausal.trace_context.trace_id", ids::hex(&c.trace_id).into()));
            span.attributes.push(("kausal.trace_context.span_id", ids::hex(&c.span_id).into()));
            span.attributes.push(("kausal.trace_context.adopted", AttrValue::Bool(adopted.is_some())));
        }
        if by_evidence {
            span.attributes.push(("kausal.parent.found_by", "trace-context".into()));
        }
        if let Some(rule) = overruled {
            span.links.push(SpanLink {
                trace_id: rule.trace_id,
                span_id: rule.span_id,
                reason: LinkReason::LinkerRule,
            });
        }
        // The GitOps object that applied an intent's write names the intent.
        if intent && let Some(origin) = &w.gitops {
            for (key, value) in &origin.attributes {
                span.attributes.push((key, AttrValue::Str(value.to_string())));
            }
        }

        if !w.dry_run {
            self.record_write(&w, &acting, &related, span_ref, trigger);
        }
        self.emit(span);
    }

    /// Whether this write set (or changed) the context it carries: a create
    /// does; an update or patch only when its own request carries the value,
    /// and the object did not already hold it. An update whose object kausal
    /// has not seen carries the whole object, so it says nothing about what
    /// changed: not honoured.
    fn sets_context(&self, w: &WriteRecord, object: Option<Uid>, c: &CarriedContext) -> bool {
        if w.verb == Verb::Create {
            return true;
        }
        if !c.in_request || w.verb.is_delete() {
            return false;
        }
        match object.and_then(|u| self.contexts.get(&u)) {
            Some(&before) => before != c.fingerprint,
            None => w.verb == Verb::Patch,
        }
    }

    /// A controller's write is caused by something requested before it was
    /// (see [`Window::for_write`]).
    fn cause_of_write(&self, w: &WriteRecord, related: &linker::Related) -> Link {
        linker::trigger_for_write(
            &self.graph,
            w,
            related,
            Window::for_write(w.received, w.completed, self.config.window),
        )
    }

    /// Resolves what a write relates to from the write and the graph: the
    /// object, its controller owner, and the relations that are not
    /// ownerReferences (a pod's node, an Endpoints' Service and pods).
    fn related_objects(&self, w: &WriteRecord, acting: &str, actor: &str) -> linker::Related {
        let namespace = w.namespace.as_deref().unwrap_or("");
        let by_name = || w.name.as_deref().map(|n| Uid::from_name(&w.resource, namespace, n));
        let object = match w.uid.as_deref().map(Uid::from_text) {
            // An object first seen without its UID (a create logged at
            // Metadata level) is keyed by its name until a write names it.
            Some(real) if self.graph.node(&real).is_none() => {
                Some(by_name().filter(|u| self.graph.node(u).is_some()).unwrap_or(real))
            }
            Some(real) => Some(real),
            None => w.name.as_deref().and_then(|n| self.graph.lookup_name(&w.resource, namespace, n)),
        };
        let object_node = object.and_then(|u| self.graph.node(&u));
        let owner = w
            .acting_owner()
            .map(|o| o.uid)
            .or_else(|| object_node.and_then(|n| n.controller_owner()))
            .or_else(|| self.token_secret_account(w, actor));
        let relations = w.relations.as_deref();
        let node = relations.and_then(|r| r.node_name.as_deref()).and_then(|n| self.graph.lookup_name("nodes", "", n));
        // Only an unowned create by a controller that watches namespaces
        // falls back to its namespace's create.
        let namespace_node = (w.verb == Verb::Create
            && owner.is_none()
            && !namespace.is_empty()
            && actors::NAMESPACE_WATCHERS.contains(&actor))
        .then(|| self.graph.lookup_name("namespaces", "", namespace))
        .flatten();
        let mut related = linker::Related {
            object,
            owner,
            node,
            namespace: namespace_node,
            // kube-controller-manager's own client is shared by several loops
            // (the tokens controller, start-up): it names no one writer.
            writer: (acting != actors::SHARED_CONTROLLER_MANAGER_USER).then(|| self.graph.actor_id(acting)).flatten(),
            by_pod_gc: actor == actors::POD_GC_SERVICE_ACCOUNT,
            by_node_lifecycle: actor == actors::NODE_LIFECYCLE_SERVICE_ACCOUNT,
            by_garbage_collector: actor == actors::GC_SERVICE_ACCOUNT,
            ..Default::default()
        };
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

    /// The ServiceAccount a token secret is made for: the tokens controller
    /// names the secret after it (`<account>-token-<5 characters>`), and the
    /// audit policy logs secrets at Metadata, so the name is all there is.
    fn token_secret_account(&self, w: &WriteRecord, actor: &str) -> Option<Uid> {
        // It writes with kube-controller-manager's own credentials, named in the user agent.
        let by_tokens_controller = actor.ends_with("tokens-controller")
            || w.user_agent.as_deref().is_some_and(|ua| ua.ends_with("/tokens-controller"));
        if w.resource.as_ref() != "secrets" || w.verb != Verb::Create || !by_tokens_controller {
            return None;
        }
        let (account, suffix) = w.name.as_deref()?.rsplit_once("-token-")?;
        let generated = suffix.len() == 5 && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        generated
            .then(|| self.graph.lookup_name("serviceaccounts", w.namespace.as_deref().unwrap_or(""), account))
            .flatten()
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
        let real = w.uid.as_deref().map(Uid::from_text);
        if let (Some(real), Some(keyed)) = (real, object)
            && real != keyed
        {
            self.graph.rekey(keyed, real);
        }
        let Some(uid) =
            real.or(object).or_else(|| w.name.as_deref().map(|n| Uid::from_name(&w.resource, namespace, n)))
        else {
            return;
        };
        let mark = Mark { time: w.completed, span, received: w.received.min(w.completed) };
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
            received: mark.received,
            span,
            actor,
            is_status: w.is_status_write(),
            succeeded: w.succeeded(),
        });
        if trigger {
            let desired = w.relations.as_deref().and_then(|r| r.desired_replicas);
            node.push_trigger(
                mark,
                TriggerFacts {
                    // The low bits are what compares within a window (see `version_after`).
                    version: w.resource_version.map(|v| v as u32).filter(|&v| v != 0),
                    desired: desired.map(|d| u16::try_from(d.max(0)).unwrap_or(u16::MAX - 1)),
                },
            );
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
            // What the node's kubelet reported (the node lifecycle controller
            // also writes node status, and acts on what others change).
            if relations.condition_transition && actors::kubelet_node(&w.user).is_some() {
                node.extra_mut().condition_transition = Some(mark);
            }
            if let Some(report) = relations.containers {
                let extra = node.extra_mut();
                extra.containers = Some(report);
                if report.terminated {
                    extra.failure_report = Some((mark, report.restarts));
                }
            }
        }
        // Counting children needs the count from the start: the workload's create.
        let created = w.succeeded() && w.verb == Verb::Create && w.subresource.is_none();
        if created && counts_children(&w.resource) {
            node.extra_mut().live_children = Some(0);
        }
        if created && w.resource.as_ref() == "deployments" {
            node.extra_mut().child_replicas = Some(Vec::new());
        }
        if w.succeeded()
            && let Some(labels) = w.relations.as_deref().and_then(|r| r.labels.clone())
        {
            node.extra_mut().labels = labels;
        }
        if w.succeeded() && w.verb.is_delete() && w.deletion == Deletion::InProgress {
            node.extra_mut().deleting = Some(mark);
        }
        if w.succeeded() && w.deletion == Deletion::Gone {
            self.graph.mark_gone(uid, mark);
        }
        if let Some(selector) = w.relations.as_deref().and_then(|r| r.selector.clone()).filter(|_| w.succeeded()) {
            self.graph.set_selector(uid, selector);
        }
        // A write on a pod is what the Services selecting it follow.
        if w.succeeded() && w.resource.as_ref() == "pods" {
            let labels = self.graph.node(&uid).map_or(&[][..], |n| n.labels());
            for service in self.graph.services_selecting(namespace, labels) {
                if let Some(service) = self.graph.node_mut(&service) {
                    service.push_selected_pod_write(mark, w.verb.is_delete());
                }
            }
        }
        if w.succeeded()
            && w.is_status_write()
            && let Some(owner_node) = owner.and_then(|o| self.graph.node_mut(&o))
        {
            match w.relations.as_deref().and_then(|r| r.child_count) {
                Some(count) => owner_node.push_child_count(uid, count, mark),
                None => owner_node.push_child_status(mark),
            }
        }
        let child_write = w.succeeded() && w.subresource.is_none() && (w.verb.is_delete() || w.verb == Verb::Create);
        if !child_write {
            return;
        }
        let pod = w.resource.as_ref() == "pods";
        // Workloads count their pods: a StatefulSet counts a terminating pod
        // until it is gone; the others stop counting it at its delete.
        let leaves_count = w.verb.is_delete()
            && pod
            && (w.deletion == Deletion::Gone
                || owner
                    .and_then(|o| self.graph.node(&o))
                    .is_none_or(|n| self.graph.symbol(n.resource) != "statefulsets"));
        if let Some(owner_node) = owner.and_then(|o| self.graph.node_mut(&o)) {
            if w.verb == Verb::Create {
                owner_node.push_child_create(mark, pod);
            } else {
                owner_node.push_child_delete(mark, leaves_count);
            }
        }
    }

    // ---- Events -------------------------------------------------------------

    fn process_event(&mut self, e: EventRecord) {
        self.stats.events += 1;
        match self.events.key_of(&e) {
            Some(key) => self.process_event_again(key, e),
            None => self.process_new_event(e),
        }
    }

    fn process_new_event(&mut self, e: EventRecord) {
        let identity = e.uid.as_deref().map_or_else(|| e.key_by_name(), |u| u.to_owned());
        let span_id = ids::span_id_for_event(&identity);
        let reporter = actors::reporter_of(&e);
        let regarding = self.regarding_uid(&e);
        if self.config.report_unknown_objects {
            self.note_if_unknown(&e, regarding);
        }
        let window = Window::before(e.time_upper_bound(), self.config.window);
        let link = linker::parent_for_event(&self.graph, &e, regarding, &reporter, window);
        // Without a single audit write, the audit rules have nothing to go
        // on: the Events-only linker joins Events by what they announce.
        let events_only = self.stats.writes == 0;
        let announced = if link.parent.is_none() && events_only {
            let owners = self.owner_chain(regarding);
            self.chains.parent_of(&e, self.config.window, &owners)
        } else {
            None
        };
        let (trace_id, parent, root) = match (link.parent, announced) {
            (Some(p), _) => (p.span.trace_id, Some(p.span.span_id), None),
            (None, Some((p, _))) => {
                self.stats.events_only_links += 1;
                (p.trace_id, Some(p.span_id), None)
            }
            (None, None) => (ids::trace_id_for_orphan_event(&identity), None, Some(RootKind::OrphanEvent)),
        };
        let span_ref = SpanRef { trace_id, span_id };
        if events_only {
            let placed = match announced {
                _ if parent.is_none() => Placed::Root,
                Some((_, FoundBy::OwnerReference | FoundBy::NamingConvention)) => Placed::Guessed,
                _ => Placed::Linked,
            };
            for adopted in self.chains.note(&e, span_ref, placed, self.config.window) {
                if adopted.guessed {
                    if self.events.reparent_leaf(adopted.span.span_id, span_ref) {
                        self.chains.respan(adopted.span.span_id, trace_id);
                    }
                } else if let Some(old) = self.events.adopt(adopted.span.span_id, span_ref) {
                    self.chains.retrace(old, trace_id);
                    self.stats.events_only_links += 1;
                }
            }
        }
        let placement = Placement { span: span_ref, parent, root };
        let mut span = build_event_span(&e, placement, &link, reporter.actor());
        if let Some((_, found_by)) = announced {
            // How an Events-only parent was found (a guess from the object's
            // name alone among them): say so on the span.
            span.attributes.push(("kausal.parent.found_by", found_by.as_str().into()));
        }
        if let Some(span) = self.events.open(&e, span, self.config.event_linger, self.replaying) {
            self.emit(span);
        }
    }

    /// A second report of a known Event: a copy from another source (dropped),
    /// or a repeat with a higher count (a span event, or a repeat span once the
    /// original has been emitted).
    fn process_event_again(&mut self, key: Box<str>, e: EventRecord) {
        match self.events.again(key, &e, self.replaying) {
            Again::Copy => self.stats.duplicate_events += 1,
            Again::Repeat(span) => {
                self.stats.event_repeats += 1;
                if let Some(span) = span {
                    self.emit(span);
                }
            }
        }
    }

    fn close_events_until(&mut self, until: Micros) {
        let closed = self.events.close_until(until);
        self.stats.replayed_spans_suppressed += closed.suppressed;
        for span in closed.spans {
            self.emit(span);
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

    /// The object's controller owners as far as the graph knows them (from
    /// metadata the API or an object dump gave), nearest first.
    fn owner_chain(&self, object: Option<Uid>) -> Vec<ObjectKey> {
        let mut chain = Vec::new();
        let mut next = object.and_then(|u| self.graph.node(&u)).and_then(|n| n.controller_owner());
        while let Some(uid) = next
            && chain.len() < 4
        {
            let Some(node) = self.graph.node(&uid) else { break };
            let Some(kind) = self.graph.kind_of(node) else { break };
            chain.push(ObjectKey::new(kind, self.graph.symbol(node.namespace), &node.name));
            next = node.controller_owner();
        }
        chain
    }

    fn regarding_uid(&self, e: &EventRecord) -> Option<Uid> {
        // The kubelet refers to its node with the node's name as the UID
        // (`UID: nodeName` in 1.20): that is no object's UID, so such a
        // reference is resolved by name, as one without a UID is.
        if let Some(uid) =
            e.regarding.uid.as_deref().filter(|u| !u.is_empty() && Some(*u) != e.regarding.name.as_deref())
        {
            return Some(Uid::from_text(uid));
        }
        let kind = e.regarding.kind.as_deref()?;
        let name = e.regarding.name.as_deref()?;
        let namespace = e.regarding.namespace.as_deref().unwrap_or("");
        self.graph.lookup_name(&kinds::resource_for_kind(kind), namespace, name)
    }
}

/// Workloads whose status counts their pods (`status.replicas`, a
/// DaemonSet's `currentNumberScheduled`).
fn counts_children(resource: &str) -> bool {
    matches!(resource, "replicasets" | "statefulsets" | "replicationcontrollers" | "daemonsets")
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
