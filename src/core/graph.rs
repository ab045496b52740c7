//! The object-relation graph: what the linker remembers about each object.
//!
//! Keyed by 16-byte UID. Each node remembers its controller owner, its last
//! generation, and one short time-sorted list of recent writes, triggers and
//! child creates and deletes. Memory is bounded three ways: the per-node list
//! is capped, deleted objects are forgotten after a TTL, and the whole graph
//! has an object cap. Resource, kind and namespace strings are interned.

use std::collections::VecDeque;

use foldhash::HashMap;

use super::ids::{SpanId, TraceId, Uid};
use super::record::{ContainersReport, EndpointMember};
use crate::core::time::Micros;

/// Where a span lives, so a later span can name it as parent or link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SpanRef {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// A past trigger (a write that can cause controllers to act).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    /// When the write completed (`stageTimestamp`).
    pub time: Micros,
    pub span: SpanRef,
    /// When its request arrived (`requestReceivedTimestamp`): a write can
    /// cause only what was requested after it was.
    pub received: Micros,
}

/// Interned actor (audit user) name.
pub(crate) type ActorId = u32;

/// A past write on a node, by anyone; Events look these up by reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WriteMark {
    pub time: Micros,
    pub received: Micros,
    pub span: SpanRef,
    pub actor: ActorId,
    pub is_status: bool,
    pub succeeded: bool,
}

/// An interned string (resource, kind, namespace): nodes of the same kind in
/// the same namespace share one copy. Non-zero, so `Option<Sym>` is 4 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Sym(std::num::NonZeroU32);

impl Default for Sym {
    /// Not a symbol yet (a node before [`Graph::upsert`] names it).
    fn default() -> Self {
        Sym(std::num::NonZeroU32::MAX)
    }
}

impl Sym {
    fn index(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// `generation` when the object has none (pods, nodes, config maps).
const NO_GENERATION: i64 = i64::MIN;
/// `controller_owner` when the object has none.
const NO_OWNER: Uid = Uid([0; 16]);

/// One remembered span on a node. A create is at once a write on the node and
/// a trigger, so one entry with both flags records it: the node keeps a single
/// short list instead of one list per role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NodeMark {
    time: Micros,
    span: SpanRef,
    /// How long before `time` the request arrived, in µs: a `Micros` of its
    /// own would not leave room for `version`. It saturates at 71 minutes,
    /// which no mutating request takes (the request would look later, so a
    /// cause only less likely).
    lead: u32,
    actor: ActorId,
    /// On a trigger: the low 32 bits of the object's `resourceVersion` after
    /// it (0 when unknown); etcd revisions a window apart compare correctly
    /// with wrapping arithmetic.
    version: u32,
    flags: u8,
    /// On a child create or delete: how many live children the owner had
    /// right after it. On a trigger: the desired replicas it left
    /// (`NO_COUNT` when unknown). Saturates.
    children: u16,
}

impl NodeMark {
    fn received(&self) -> Micros {
        self.time - Micros::from(self.lead)
    }

    fn as_mark(&self) -> Mark {
        Mark { time: self.time, span: self.span, received: self.received() }
    }
}

/// `NodeMark::children` of a trigger that left no known desired count.
const NO_COUNT: u16 = u16::MAX;

/// What a trigger left its object at, as later writes can show they read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TriggerFacts {
    /// The low 32 bits of the object's `resourceVersion` after the trigger.
    pub version: Option<u32>,
    /// `spec.replicas` after it (a workload's spec change or scale).
    pub desired: Option<u16>,
}

/// A trigger on a node with what it left and who made it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TriggerMark {
    pub mark: Mark,
    pub facts: TriggerFacts,
    /// The writer, when the node recorded the write itself.
    pub actor: Option<ActorId>,
}

/// Whether resourceVersion `a` (low 32 bits) is newer than `b`.
pub(crate) fn version_after(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) > 0
}

const WRITE: u8 = 1;
const TRIGGER: u8 = 1 << 1;
const CHILD_CREATE: u8 = 1 << 2;
const CHILD_DELETE: u8 = 1 << 3;
const STATUS: u8 = 1 << 4;
const SUCCEEDED: u8 = 1 << 5;
/// On a Service: a write on a pod it selects.
const SELECTED_POD: u8 = 1 << 6;
/// A status write of a child: what the owner's status is read from (a
/// Deployment's counts from its ReplicaSets', a ReplicaSet's ready count
/// from its pods').
const CHILD_STATUS: u8 = 1 << 7;

/// How many marks a node keeps. When full, the oldest mark that is not a
/// trigger goes first: triggers are what later writes hang under, and older
/// marks fall outside any sensible window long before this many newer ones
/// arrive.
const MAX_MARKS: usize = 24;

/// What the graph knows about one object. Kept small: a million of them is
/// a large cluster, and the map they live in doubles in steps.
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub resource: Sym,
    pub kind: Option<Sym>,
    pub namespace: Sym,
    pub name: Box<str>,
    controller_owner: Uid,
    /// `metadata.generation` after the last write; [`NO_GENERATION`] when none.
    generation: i64,
    /// Time-sorted, allocated to its exact length (most objects see one or
    /// two writes in their life).
    marks: thin_vec::ThinVec<NodeMark>,
    /// When the object was last written or seen, in whole seconds: what the
    /// cap evicts by, least recent first.
    last_touched_secs: u32,
    /// What only some nodes need (deletes, relations), boxed so that the
    /// common node does not pay for it.
    pub extra: Option<Box<NodeExtra>>,
}

/// Per-node state that most nodes never need.
#[derive(Debug, Clone, Default)]
pub(crate) struct NodeExtra {
    /// The delete of an object whose deletion is still in progress: it stays an
    /// active trigger beyond the window, until the object is gone.
    pub deleting: Option<Mark>,
    pub gone_at: Option<Micros>,
    /// A pod's node, from its spec or its binding.
    pub bound_node: Option<Uid>,
    /// The delete that removed the object, kept as long as the node is
    /// remembered: a node's delete causes pod-GC deletes much later.
    pub removed: Option<Mark>,
    /// The pods an Endpoints or EndpointSlice listed at its last write.
    pub endpoint_members: Vec<EndpointMember>,
    /// A workload's live children (creates minus deletes), known when the
    /// graph saw the workload created; what its status counts are checked
    /// against.
    pub live_children: Option<u16>,
    /// A Deployment's ReplicaSets with the replicas each last reported, known
    /// when the graph saw the Deployment created: its status counts are their sum.
    pub child_replicas: Option<Vec<(Uid, u16)>>,
    /// A pod's labels (sorted pair fingerprints).
    pub labels: Vec<u64>,
    /// A Service's selector (sorted pair fingerprints; empty selects nothing).
    pub selector: Vec<u64>,
    /// A pod's containers as its last status write that reported them said.
    pub containers: Option<ContainersReport>,
    /// A pod's last status write that reported a container terminated, with
    /// the restarts it reported: the failure a restart after it follows.
    pub failure_report: Option<(Mark, i64)>,
    /// A node's last status write that reported a condition's transition.
    pub condition_transition: Option<Mark>,
}

impl Default for Node {
    fn default() -> Self {
        Node {
            resource: Sym::default(),
            kind: None,
            namespace: Sym::default(),
            name: Box::default(),
            controller_owner: NO_OWNER,
            generation: NO_GENERATION,
            marks: thin_vec::ThinVec::new(),
            last_touched_secs: 0,
            extra: None,
        }
    }
}

impl Node {
    pub(crate) fn controller_owner(&self) -> Option<Uid> {
        (self.controller_owner != NO_OWNER).then_some(self.controller_owner)
    }

    pub(crate) fn set_controller_owner(&mut self, owner: Option<Uid>) {
        self.controller_owner = owner.unwrap_or(NO_OWNER);
    }

    pub(crate) fn generation(&self) -> Option<i64> {
        (self.generation != NO_GENERATION).then_some(self.generation)
    }

    pub(crate) fn set_generation(&mut self, generation: i64) {
        self.generation = generation;
    }

    fn touch(&mut self, time: Micros) {
        let secs = u32::try_from(time.max(0) / 1_000_000).unwrap_or(u32::MAX);
        self.last_touched_secs = self.last_touched_secs.max(secs);
    }

    /// Child creates and deletes, oldest first, each with the number of live
    /// children right after it.
    pub(crate) fn child_changes(&self) -> impl DoubleEndedIterator<Item = (Mark, u16)> + '_ {
        self.marks.iter().filter(|m| m.flags & (CHILD_CREATE | CHILD_DELETE) != 0).map(|m| (m.as_mark(), m.children))
    }

    /// Successful status writes of this object's children, oldest first.
    pub(crate) fn child_statuses(&self) -> impl DoubleEndedIterator<Item = Mark> + '_ {
        self.marks_with(CHILD_STATUS)
    }

    /// On a Service: the writes on the pods it selects, oldest first.
    pub(crate) fn selected_pod_writes(&self) -> impl DoubleEndedIterator<Item = Mark> + '_ {
        self.marks_with(SELECTED_POD)
    }

    fn marks_with(&self, flag: u8) -> impl DoubleEndedIterator<Item = Mark> + '_ {
        self.marks.iter().filter(move |m| m.flags & flag != 0).map(NodeMark::as_mark)
    }

    /// Triggers on this object, oldest first.
    pub(crate) fn triggers(&self) -> impl DoubleEndedIterator<Item = Mark> + '_ {
        self.marks_with(TRIGGER)
    }

    /// Triggers on this object with what each left and who made it, oldest
    /// first: for the rules that read which trigger a later write had seen.
    pub(crate) fn trigger_marks(&self) -> impl DoubleEndedIterator<Item = TriggerMark> + '_ {
        self.marks.iter().filter(|m| m.flags & TRIGGER != 0).map(|m| TriggerMark {
            mark: m.as_mark(),
            facts: TriggerFacts {
                version: (m.version != 0).then_some(m.version),
                desired: (m.children != NO_COUNT).then_some(m.children),
            },
            actor: (m.flags & WRITE != 0).then_some(m.actor),
        })
    }

    /// Creates of objects this one controls: with child deletes, what a
    /// controller's status write on this object reports on.
    pub(crate) fn child_creates(&self) -> impl DoubleEndedIterator<Item = Mark> + '_ {
        self.marks_with(CHILD_CREATE)
    }

    pub(crate) fn child_deletes(&self) -> impl DoubleEndedIterator<Item = Mark> + '_ {
        self.marks_with(CHILD_DELETE)
    }

    /// Writes on this object, oldest first.
    pub(crate) fn writes(&self) -> impl DoubleEndedIterator<Item = WriteMark> + '_ {
        self.marks.iter().filter(|m| m.flags & WRITE != 0).map(|m| WriteMark {
            time: m.time,
            received: m.received(),
            span: m.span,
            actor: m.actor,
            is_status: m.flags & STATUS != 0,
            succeeded: m.flags & SUCCEEDED != 0,
        })
    }

    /// Adds a role to the mark of `span`, or a new mark in time order.
    fn mark(&mut self, time: Micros, received: Micros, span: SpanRef, actor: Option<ActorId>, flags: u8) {
        if let Some(existing) = self.marks.iter_mut().find(|m| m.span == span) {
            existing.flags |= flags;
            if let Some(a) = actor {
                existing.actor = a;
            }
            return;
        }
        let at = self.marks.partition_point(|m| m.time <= time);
        if self.marks.len() == self.marks.capacity() {
            self.marks.reserve_exact(1);
        }
        let lead = u32::try_from(time.saturating_sub(received).max(0)).unwrap_or(u32::MAX);
        let mark = NodeMark { time, span, lead, actor: actor.unwrap_or(0), version: 0, flags, children: 0 };
        self.marks.insert(at, mark);
        if self.marks.len() > MAX_MARKS {
            let oldest = self.marks.iter().position(|m| m.flags & TRIGGER == 0).unwrap_or(0);
            self.marks.remove(oldest);
        }
    }

    pub(crate) fn push_trigger(&mut self, mark: Mark, facts: TriggerFacts) {
        self.mark(mark.time, mark.received, mark.span, None, TRIGGER);
        if let Some(m) = self.marks.iter_mut().find(|m| m.span == mark.span) {
            m.version = facts.version.unwrap_or(0);
            m.children = facts.desired.unwrap_or(NO_COUNT);
        }
    }

    /// A child's delete; `leaves_count` when the owner's status stops
    /// counting the child at once (a ReplicaSet's active pods), not only once
    /// it is gone (a StatefulSet's replicas).
    pub(crate) fn push_child_delete(&mut self, mark: Mark, leaves_count: bool) {
        let children = self.count_child(if leaves_count { -1 } else { 0 });
        self.mark(mark.time, mark.received, mark.span, None, CHILD_DELETE);
        self.set_children(mark.span, children);
    }

    /// A child's create; `counted` when the owner's status counts it (pods,
    /// not a StatefulSet's ControllerRevisions).
    pub(crate) fn push_child_create(&mut self, mark: Mark, counted: bool) {
        let children = self.count_child(if counted { 1 } else { 0 });
        self.mark(mark.time, mark.received, mark.span, None, CHILD_CREATE);
        self.set_children(mark.span, children);
    }

    pub(crate) fn push_child_status(&mut self, mark: Mark) {
        self.mark(mark.time, mark.received, mark.span, None, CHILD_STATUS);
    }

    /// A child's status write that reported `count` (a ReplicaSet's
    /// replicas): kept on the mark as the sum over the children right after it.
    pub(crate) fn push_child_count(&mut self, child: Uid, count: i64, mark: Mark) {
        self.push_child_status(mark);
        let Some(counts) = self.extra.as_mut().and_then(|e| e.child_replicas.as_mut()) else { return };
        let count = u16::try_from(count.max(0)).unwrap_or(u16::MAX);
        match counts.iter_mut().find(|(uid, _)| *uid == child) {
            Some(entry) => entry.1 = count,
            None => counts.push((child, count)),
        }
        let sum = counts.iter().fold(0u16, |s, (_, c)| s.saturating_add(*c));
        self.set_children(mark.span, sum);
    }

    /// Whether this object's status counts are the sum of its children's.
    pub(crate) fn sums_children(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.child_replicas.is_some())
    }

    /// Children's status writes, oldest first, each with the sum of the
    /// children's counts right after it (see [`push_child_count`](Self::push_child_count)).
    pub(crate) fn child_count_sums(&self) -> impl DoubleEndedIterator<Item = (Mark, u16)> + '_ {
        self.marks.iter().filter(|m| m.flags & CHILD_STATUS != 0).map(|m| (m.as_mark(), m.children))
    }

    /// `removal`: the write deleted the pod (`children` marks it: a selected
    /// pod's write has no children to count).
    pub(crate) fn push_selected_pod_write(&mut self, mark: Mark, removal: bool) {
        self.mark(mark.time, mark.received, mark.span, None, SELECTED_POD);
        if removal && let Some(m) = self.marks.iter_mut().find(|m| m.span == mark.span) {
            m.children = 1;
        }
    }

    /// On a Service: the deletes of pods it selects, oldest first.
    pub(crate) fn selected_pod_deletes(&self) -> impl DoubleEndedIterator<Item = Mark> + '_ {
        self.marks.iter().filter(|m| m.flags & SELECTED_POD != 0 && m.children == 1).map(NodeMark::as_mark)
    }

    /// Moves the live-children count by one; the count after, or 0 when unknown.
    fn count_child(&mut self, by: i32) -> u16 {
        let Some(live) = self.extra.as_mut().and_then(|e| e.live_children.as_mut()) else { return 0 };
        *live = match by {
            1.. => live.saturating_add(1),
            0 => *live,
            _ => live.saturating_sub(1),
        };
        *live
    }

    fn set_children(&mut self, span: SpanRef, children: u16) {
        if let Some(m) = self.marks.iter_mut().find(|m| m.span == span) {
            m.children = children;
        }
    }

    /// Whether the live-children count is known (the graph saw the create).
    pub(crate) fn counts_children(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.live_children.is_some())
    }

    pub(crate) fn labels(&self) -> &[u64] {
        self.extra.as_ref().map_or(&[], |e| &e.labels)
    }

    pub(crate) fn selector(&self) -> &[u64] {
        self.extra.as_ref().map_or(&[], |e| &e.selector)
    }

    pub(crate) fn push_write(&mut self, w: WriteMark) {
        let flags = WRITE | if w.is_status { STATUS } else { 0 } | if w.succeeded { SUCCEEDED } else { 0 };
        self.mark(w.time, w.received, w.span, Some(w.actor), flags);
    }

    pub(crate) fn extra_mut(&mut self) -> &mut NodeExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    pub(crate) fn deleting(&self) -> Option<Mark> {
        self.extra.as_ref().and_then(|e| e.deleting)
    }

    pub(crate) fn gone_at(&self) -> Option<Micros> {
        self.extra.as_ref().and_then(|e| e.gone_at)
    }

    pub(crate) fn bound_node(&self) -> Option<Uid> {
        self.extra.as_ref().and_then(|e| e.bound_node)
    }

    pub(crate) fn removed(&self) -> Option<Mark> {
        self.extra.as_ref().and_then(|e| e.removed)
    }

    pub(crate) fn endpoint_members(&self) -> &[EndpointMember] {
        self.extra.as_ref().map_or(&[], |e| &e.endpoint_members)
    }
}

/// Graph limits and counters.
#[derive(Debug, Clone, Copy)]
pub struct GraphLimits {
    /// How long a deleted object is remembered (for late Events and writes).
    pub gone_ttl: Micros,
    /// How long a delete in progress stays an active trigger at most.
    pub deleting_ttl: Micros,
    /// The most objects tracked at once.
    pub max_objects: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GraphStats {
    pub objects: usize,
    pub evicted_ttl: u64,
    pub evicted_cap: u64,
}

#[derive(Debug)]
pub(crate) struct Graph {
    nodes: HashMap<Uid, Node>,
    /// A hash of `(resource, namespace, name)` → the latest UID with that
    /// name. Names are reused after a delete, so the newest object wins. A
    /// lookup checks the node's own name, so a hash collision is a miss, never
    /// a wrong object.
    names: HashMap<u64, Uid>,
    symbols: Vec<Box<str>>,
    symbol_ids: HashMap<Box<str>, Sym>,
    actors: Vec<Box<str>>,
    actor_ids: HashMap<Box<str>, ActorId>,
    gone_queue: VecDeque<(Micros, Uid)>,
    /// Services with a selector, by namespace: the ones a pod write may concern.
    selecting: HashMap<Sym, Vec<Uid>>,
    limits: GraphLimits,
    stats: GraphStats,
}

fn name_key(resource: Sym, namespace: Sym, name: &str) -> u64 {
    let mut key = Vec::with_capacity(8 + name.len());
    key.extend_from_slice(&resource.0.get().to_le_bytes());
    key.extend_from_slice(&namespace.0.get().to_le_bytes());
    key.extend_from_slice(name.as_bytes());
    xxhash_rust::xxh3::xxh3_64(&key)
}

impl Graph {
    pub(crate) fn new(limits: GraphLimits) -> Graph {
        Graph {
            nodes: HashMap::default(),
            names: HashMap::default(),
            symbols: Vec::new(),
            symbol_ids: HashMap::default(),
            actors: Vec::new(),
            actor_ids: HashMap::default(),
            gone_queue: VecDeque::new(),
            selecting: HashMap::default(),
            limits,
            stats: GraphStats::default(),
        }
    }

    pub(crate) fn stats(&self) -> GraphStats {
        GraphStats { objects: self.nodes.len(), ..self.stats }
    }

    pub(crate) fn node(&self, uid: &Uid) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub(crate) fn intern(&mut self, s: &str) -> Sym {
        if let Some(&sym) = self.symbol_ids.get(s) {
            return sym;
        }
        let sym = Sym(std::num::NonZeroU32::new(self.symbols.len() as u32 + 1).expect("fewer than 4 billion symbols"));
        self.symbols.push(s.into());
        self.symbol_ids.insert(s.into(), sym);
        sym
    }

    pub(crate) fn symbol(&self, sym: Sym) -> &str {
        &self.symbols[sym.index()]
    }

    pub(crate) fn kind_of(&self, node: &Node) -> Option<&str> {
        node.kind.map(|k| self.symbol(k))
    }

    pub(crate) fn lookup_name(&self, resource: &str, namespace: &str, name: &str) -> Option<Uid> {
        let resource = *self.symbol_ids.get(resource)?;
        let namespace = *self.symbol_ids.get(namespace)?;
        let uid = *self.names.get(&name_key(resource, namespace, name))?;
        let node = self.nodes.get(&uid)?;
        (node.resource == resource && node.namespace == namespace && &*node.name == name).then_some(uid)
    }

    pub(crate) fn actor(&self, id: ActorId) -> &str {
        &self.actors[id as usize]
    }

    /// The interned ID of `user`, if it ever wrote.
    pub(crate) fn actor_id(&self, user: &str) -> Option<ActorId> {
        self.actor_ids.get(user).copied()
    }

    pub(crate) fn intern_actor(&mut self, user: &str) -> ActorId {
        if let Some(&id) = self.actor_ids.get(user) {
            return id;
        }
        let id = self.actors.len() as ActorId;
        self.actors.push(user.into());
        self.actor_ids.insert(user.into(), id);
        id
    }

    /// The node for `uid`, created if needed; its identity fields are refreshed
    /// from what the latest record says.
    pub(crate) fn upsert(&mut self, uid: Uid, resource: &str, namespace: &str, name: &str, time: Micros) -> &mut Node {
        let (resource, namespace) = (self.intern(resource), self.intern(namespace));
        if !name.is_empty() {
            self.names.insert(name_key(resource, namespace, name), uid);
        }
        let node =
            self.nodes.entry(uid).or_insert_with(|| Node { resource, namespace, name: name.into(), ..Node::default() });
        if node.name.is_empty() && !name.is_empty() {
            node.name = name.into();
        }
        node.touch(time);
        node
    }

    pub(crate) fn node_mut(&mut self, uid: &Uid) -> Option<&mut Node> {
        self.nodes.get_mut(uid)
    }

    /// Moves a node to another UID: an object first seen without its UID (a
    /// create logged at Metadata level, keyed by name) once a write names it.
    /// Nothing moves when the target UID is already known.
    pub(crate) fn rekey(&mut self, from: Uid, to: Uid) {
        if self.nodes.contains_key(&to) {
            return;
        }
        let Some(node) = self.nodes.remove(&from) else { return };
        let key = name_key(node.resource, node.namespace, &node.name);
        if self.names.get(&key) == Some(&from) {
            self.names.insert(key, to);
        }
        if let Some(services) = self.selecting.get_mut(&node.namespace) {
            services.iter_mut().filter(|s| **s == from).for_each(|s| *s = to);
        }
        self.nodes.insert(to, node);
    }

    /// Records a Service's selector and indexes the Service by namespace.
    pub(crate) fn set_selector(&mut self, service: Uid, selector: Vec<u64>) {
        let Some(node) = self.nodes.get_mut(&service) else { return };
        let namespace = node.namespace;
        node.extra_mut().selector = selector;
        let services = self.selecting.entry(namespace).or_default();
        if !services.contains(&service) {
            services.push(service);
        }
    }

    /// The Services in `namespace` whose selector matches `labels`.
    pub(crate) fn services_selecting(&self, namespace: &str, labels: &[u64]) -> Vec<Uid> {
        let Some(namespace) = self.symbol_ids.get(namespace) else { return Vec::new() };
        let Some(services) = self.selecting.get(namespace) else { return Vec::new() };
        services
            .iter()
            .copied()
            .filter(|uid| self.nodes.get(uid).is_some_and(|n| super::record::selects(n.selector(), labels)))
            .collect()
    }

    /// Records that an object is gone, so it is forgotten after the TTL.
    /// `removed_by` is the delete that removed it.
    pub(crate) fn mark_gone(&mut self, uid: Uid, removed_by: Mark) {
        let time = removed_by.time;
        if let Some(node) = self.nodes.get_mut(&uid) {
            let extra = node.extra_mut();
            extra.gone_at = Some(time);
            extra.deleting = None;
            extra.removed = Some(removed_by);
            self.gone_queue.push_back((time, uid));
        }
    }

    /// Forgets deleted objects older than the TTL and, over the cap, the least
    /// recently touched objects. Cap eviction removes a tenth at once, so its
    /// cost is amortised and never paid per record.
    pub(crate) fn evict(&mut self, now: Micros) {
        while let Some(&(gone_at, uid)) = self.gone_queue.front() {
            if gone_at > now - self.limits.gone_ttl {
                break;
            }
            self.gone_queue.pop_front();
            let still_gone = self.nodes.get(&uid).is_some_and(|n| n.gone_at() == Some(gone_at));
            if still_gone {
                self.remove(uid);
                self.stats.evicted_ttl += 1;
            }
        }
        if self.nodes.len() > self.limits.max_objects {
            let excess = self.nodes.len() - self.limits.max_objects;
            let batch = (self.limits.max_objects / 10).max(1) + excess;
            let mut by_age: Vec<(u32, Uid)> = self.nodes.iter().map(|(u, n)| (n.last_touched_secs, *u)).collect();
            by_age.sort_unstable();
            for (_, uid) in by_age.into_iter().take(batch) {
                self.remove(uid);
                self.stats.evicted_cap += 1;
            }
        }
    }

    fn remove(&mut self, uid: Uid) {
        if let Some(node) = self.nodes.remove(&uid) {
            let key = name_key(node.resource, node.namespace, &node.name);
            if self.names.get(&key) == Some(&uid) {
                self.names.remove(&key);
            }
            if !node.selector().is_empty()
                && let Some(services) = self.selecting.get_mut(&node.namespace)
            {
                services.retain(|s| *s != uid);
            }
        }
    }

    pub(crate) fn limits(&self) -> GraphLimits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(t: Micros) -> Mark {
        Mark { time: t, span: SpanRef { trace_id: [1; 16], span_id: [t as u8; 8] }, received: t }
    }

    fn limits() -> GraphLimits {
        GraphLimits { gone_ttl: 100, deleting_ttl: 1000, max_objects: 10 }
    }

    #[test]
    fn a_trigger_keeps_what_it_left_and_who_made_it() {
        let mut node = Node::default();
        let scale = Mark { time: 50, span: mark(50).span, received: 40 };
        node.push_write(WriteMark { actor: 7, ..write(50, false) });
        node.push_trigger(scale, TriggerFacts { version: Some(406), desired: Some(5) });
        node.push_trigger(mark(60), TriggerFacts::default());
        let marks: Vec<TriggerMark> = node.trigger_marks().collect();
        assert_eq!(marks.len(), 2);
        assert_eq!(marks[0].mark.received, 40, "the request time survives as a lead on the completion");
        assert_eq!(marks[0].facts, TriggerFacts { version: Some(406), desired: Some(5) });
        assert_eq!(marks[1].facts, TriggerFacts::default(), "nothing known stays unknown");
        assert_eq!(marks[1].actor, None, "a trigger whose write the node did not record has no known writer");
    }

    #[test]
    fn a_request_over_71_minutes_before_its_completion_saturates() {
        let mut node = Node::default();
        let hours = 3 * 3600 * 1_000_000;
        node.push_trigger(Mark { time: hours + 10, span: mark(1).span, received: 10 }, TriggerFacts::default());
        let received = node.triggers().next().unwrap().received;
        assert_eq!(received, hours + 10 - Micros::from(u32::MAX));
    }

    #[test]
    fn resource_versions_compare_across_the_32_bit_wrap() {
        assert!(version_after(407, 406));
        assert!(!version_after(406, 407));
        assert!(!version_after(406, 406));
        assert!(version_after(3, u32::MAX - 2), "a revision just past the wrap is newer");
    }

    fn write(t: Micros, status: bool) -> WriteMark {
        WriteMark {
            time: t,
            received: t,
            span: SpanRef { trace_id: [2; 16], span_id: [t as u8; 8] },
            actor: 0,
            is_status: status,
            succeeded: true,
        }
    }

    #[test]
    fn marks_stay_sorted_and_bounded_even_when_late() {
        let mut node = Node::default();
        for t in [5, 1, 3, 9, 7, 2, 8, 6, 4, 10] {
            node.push_trigger(mark(t), TriggerFacts::default());
        }
        let times: Vec<_> = node.triggers().map(|m| m.time).collect();
        assert_eq!(times, (1..=10).collect::<Vec<_>>());
        // Status writes pile up after the triggers: the cap drops the oldest
        // non-trigger marks, never the triggers later writes hang under.
        for t in 100..140 {
            node.push_write(write(t, true));
        }
        assert_eq!(node.marks.len(), MAX_MARKS);
        assert_eq!(node.triggers().count(), 10);
        let writes: Vec<_> = node.writes().map(|w| w.time).collect();
        assert_eq!(writes, (140 - (MAX_MARKS as Micros - 10)..140).collect::<Vec<_>>());
    }

    #[test]
    fn a_create_is_one_mark_with_two_roles() {
        let mut node = Node::default();
        let create = mark(1);
        node.push_write(WriteMark {
            time: 1,
            received: 1,
            span: create.span,
            actor: 7,
            is_status: false,
            succeeded: true,
        });
        node.push_trigger(create, TriggerFacts::default());
        node.push_child_create(mark(2), true);
        assert_eq!(node.marks.len(), 2);
        assert_eq!(node.triggers().collect::<Vec<_>>(), vec![create]);
        assert_eq!(node.writes().map(|w| (w.time, w.actor)).collect::<Vec<_>>(), vec![(1, 7)]);
        assert_eq!(node.child_creates().map(|m| m.time).collect::<Vec<_>>(), vec![2]);
        assert_eq!(node.child_deletes().count(), 0);
    }

    #[test]
    fn names_point_at_the_newest_uid() {
        let mut g = Graph::new(limits());
        g.upsert(Uid([1; 16]), "pods", "default", "web", 1);
        g.upsert(Uid([2; 16]), "pods", "default", "web", 2);
        assert_eq!(g.lookup_name("pods", "default", "web"), Some(Uid([2; 16])));
    }

    #[test]
    fn gone_objects_are_forgotten_after_the_ttl() {
        let mut g = Graph::new(limits());
        g.upsert(Uid([1; 16]), "pods", "default", "a", 0);
        g.upsert(Uid([2; 16]), "pods", "default", "b", 0);
        g.mark_gone(Uid([1; 16]), mark(10));
        g.evict(50);
        assert_eq!(g.stats().objects, 2);
        g.evict(110);
        assert_eq!(g.stats().objects, 1);
        assert_eq!(g.stats().evicted_ttl, 1);
        assert_eq!(g.lookup_name("pods", "default", "a"), None);
    }

    #[test]
    fn the_cap_evicts_least_recently_touched() {
        let mut g = Graph::new(limits());
        for i in 0..15u8 {
            // Recency is kept in whole seconds.
            g.upsert(Uid([i; 16]), "pods", "default", &format!("p{i}"), i as Micros * 1_000_000);
        }
        g.evict(20_000_000);
        assert!(g.stats().objects <= 10);
        assert!(g.node(&Uid([14; 16])).is_some(), "newest survives");
        assert!(g.node(&Uid([0; 16])).is_none(), "oldest is evicted");
    }
    #[test]
    fn a_node_keyed_by_name_moves_to_its_uid_once_and_keeps_its_marks() {
        let mut g = Graph::new(limits());
        let by_name = Uid::from_name("clusterroles", "", "edit");
        g.upsert(by_name, "clusterroles", "", "edit", 0).push_trigger(mark(1), TriggerFacts::default());
        let real = Uid([7; 16]);
        g.rekey(by_name, real);
        assert!(g.node(&by_name).is_none());
        assert_eq!(g.node(&real).unwrap().triggers().count(), 1, "the create's trigger moved along");
        assert_eq!(g.lookup_name("clusterroles", "", "edit"), Some(real));
        // A UID already known is never overwritten.
        g.upsert(by_name, "clusterroles", "", "edit", 0);
        g.rekey(by_name, real);
        assert!(g.node(&by_name).is_some() && g.node(&real).unwrap().triggers().count() == 1);
    }

    #[test]
    fn child_counts_follow_creates_deletes_and_the_childrens_reports() {
        let mut node = Node::default();
        node.extra_mut().live_children = Some(0);
        node.push_child_create(mark(1), true);
        node.push_child_create(mark(2), false); // a ControllerRevision: not counted
        node.push_child_create(mark(3), true);
        node.push_child_delete(mark(4), false); // terminating, still counted (a StatefulSet)
        node.push_child_delete(mark(5), true);
        assert_eq!(
            node.child_changes().map(|(m, c)| (m.time, c)).collect::<Vec<_>>(),
            [(1, 1), (2, 1), (3, 2), (4, 2), (5, 1)]
        );

        let mut deployment = Node::default();
        deployment.extra_mut().child_replicas = Some(Vec::new());
        deployment.push_child_count(Uid([1; 16]), 3, mark(10));
        deployment.push_child_count(Uid([2; 16]), 1, mark(11));
        deployment.push_child_count(Uid([1; 16]), 2, mark(12));
        assert_eq!(
            deployment.child_count_sums().map(|(m, s)| (m.time, s)).collect::<Vec<_>>(),
            [(10, 3), (11, 4), (12, 3)]
        );
    }
}
