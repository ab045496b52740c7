//! The object-relation graph: what the linker remembers about each object.
//!
//! Keyed by 16-byte UID. Each node remembers its controller owner, its last
//! generation, and short time-sorted lists of recent triggers, child deletes and
//! writes. Memory is bounded three ways: per-node lists are capped, deleted
//! objects are forgotten after a TTL, and the whole graph has an object cap.

use std::collections::VecDeque;

use foldhash::HashMap;

use super::ids::{SpanId, TraceId, Uid};
use super::record::EndpointMember;
use crate::model::time::Micros;

/// Where a span lives, so a later span can name it as parent or link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanRef {
    pub trace_id: TraceId,
    pub span_id: SpanId,
}

/// A past trigger (a write that can cause controllers to act).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    pub time: Micros,
    pub span: SpanRef,
}

/// Interned actor (audit user) name.
pub type ActorId = u32;

/// A past write on a node, by anyone; Events look these up by reporter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteMark {
    pub time: Micros,
    pub span: SpanRef,
    pub actor: ActorId,
    pub is_status: bool,
    pub succeeded: bool,
}

/// How many marks of each list a node keeps. Older ones fall outside any
/// sensible window long before eight newer ones arrive.
const MAX_TRIGGERS: usize = 8;
const MAX_CHILD_DELETES: usize = 8;
const MAX_CHILD_CREATES: usize = 8;
const MAX_WRITES: usize = 16;

#[derive(Debug, Clone, Default)]
pub struct Node {
    pub resource: Box<str>,
    pub kind: Option<Box<str>>,
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub controller_owner: Option<Uid>,
    pub generation: Option<i64>,
    pub triggers: Vec<Mark>,
    pub child_deletes: Vec<Mark>,
    /// Creates of objects this one controls: with child deletes, what a
    /// controller's status write on this object reports on.
    pub child_creates: Vec<Mark>,
    pub writes: Vec<WriteMark>,
    /// The delete of an object whose deletion is still in progress: it stays an
    /// active trigger beyond the window, until the object is gone.
    pub deleting: Option<Mark>,
    pub gone_at: Option<Micros>,
    pub last_touched: Micros,
    /// Relations that only some kinds have, boxed so that the common node
    /// does not pay for them.
    pub extra: Option<Box<NodeExtra>>,
}

/// Per-node state for relations other than ownerReferences.
#[derive(Debug, Clone, Default)]
pub struct NodeExtra {
    /// A pod's node, from its spec or its binding.
    pub bound_node: Option<Uid>,
    /// The delete that removed the object, kept as long as the node is
    /// remembered: a node's delete causes pod-GC deletes much later.
    pub removed: Option<Mark>,
    /// The pods an Endpoints or EndpointSlice listed at its last write.
    pub endpoint_members: Vec<EndpointMember>,
}

fn insert_sorted<T: Copy>(list: &mut Vec<T>, item: T, time: impl Fn(&T) -> Micros, cap: usize) {
    let t = time(&item);
    let at = list.partition_point(|m| time(m) <= t);
    list.insert(at, item);
    if list.len() > cap {
        list.remove(0);
    }
}

impl Node {
    pub fn push_trigger(&mut self, mark: Mark) {
        insert_sorted(&mut self.triggers, mark, |m| m.time, MAX_TRIGGERS);
    }

    pub fn push_child_delete(&mut self, mark: Mark) {
        insert_sorted(&mut self.child_deletes, mark, |m| m.time, MAX_CHILD_DELETES);
    }

    pub fn push_child_create(&mut self, mark: Mark) {
        insert_sorted(&mut self.child_creates, mark, |m| m.time, MAX_CHILD_CREATES);
    }

    pub fn extra_mut(&mut self) -> &mut NodeExtra {
        self.extra.get_or_insert_with(Default::default)
    }

    pub fn bound_node(&self) -> Option<Uid> {
        self.extra.as_ref().and_then(|e| e.bound_node)
    }

    pub fn removed(&self) -> Option<Mark> {
        self.extra.as_ref().and_then(|e| e.removed)
    }

    pub fn endpoint_members(&self) -> &[EndpointMember] {
        self.extra.as_ref().map_or(&[], |e| &e.endpoint_members)
    }

    pub fn push_write(&mut self, mark: WriteMark) {
        insert_sorted(&mut self.writes, mark, |m| m.time, MAX_WRITES);
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
pub struct Graph {
    nodes: HashMap<Uid, Node>,
    /// `resource/namespace/name` → the latest UID with that name. Names are
    /// reused after a delete, so the newest object wins.
    names: HashMap<Box<str>, Uid>,
    actors: Vec<Box<str>>,
    actor_ids: HashMap<Box<str>, ActorId>,
    gone_queue: VecDeque<(Micros, Uid)>,
    limits: GraphLimits,
    stats: GraphStats,
}

pub fn name_key(resource: &str, namespace: &str, name: &str) -> Box<str> {
    let mut key = String::with_capacity(resource.len() + namespace.len() + name.len() + 2);
    key.push_str(resource);
    key.push('/');
    key.push_str(namespace);
    key.push('/');
    key.push_str(name);
    key.into_boxed_str()
}

impl Graph {
    pub fn new(limits: GraphLimits) -> Graph {
        Graph {
            nodes: HashMap::default(),
            names: HashMap::default(),
            actors: Vec::new(),
            actor_ids: HashMap::default(),
            gone_queue: VecDeque::new(),
            limits,
            stats: GraphStats::default(),
        }
    }

    pub fn stats(&self) -> GraphStats {
        GraphStats { objects: self.nodes.len(), ..self.stats }
    }

    pub fn node(&self, uid: &Uid) -> Option<&Node> {
        self.nodes.get(uid)
    }

    pub fn lookup_name(&self, resource: &str, namespace: &str, name: &str) -> Option<Uid> {
        self.names.get(&*name_key(resource, namespace, name)).copied()
    }

    pub fn actor(&self, id: ActorId) -> &str {
        &self.actors[id as usize]
    }

    pub fn intern_actor(&mut self, user: &str) -> ActorId {
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
    pub fn upsert(&mut self, uid: Uid, resource: &str, namespace: &str, name: &str, time: Micros) -> &mut Node {
        let key = name_key(resource, namespace, name);
        if !name.is_empty() {
            self.names.insert(key, uid);
        }
        let node = self.nodes.entry(uid).or_insert_with(|| Node {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            ..Node::default()
        });
        if node.name.is_empty() && !name.is_empty() {
            node.name = name.into();
        }
        node.last_touched = node.last_touched.max(time);
        node
    }

    pub fn node_mut(&mut self, uid: &Uid) -> Option<&mut Node> {
        self.nodes.get_mut(uid)
    }

    /// Records that an object is gone, so it is forgotten after the TTL.
    /// `removed_by` is the delete that removed it.
    pub fn mark_gone(&mut self, uid: Uid, removed_by: Mark) {
        let time = removed_by.time;
        if let Some(node) = self.nodes.get_mut(&uid) {
            node.gone_at = Some(time);
            node.deleting = None;
            node.extra_mut().removed = Some(removed_by);
            self.gone_queue.push_back((time, uid));
        }
    }

    /// Forgets deleted objects older than the TTL and, over the cap, the least
    /// recently touched objects. Cap eviction removes a tenth at once, so its
    /// cost is amortised and never paid per record.
    pub fn evict(&mut self, now: Micros) {
        while let Some(&(gone_at, uid)) = self.gone_queue.front() {
            if gone_at > now - self.limits.gone_ttl {
                break;
            }
            self.gone_queue.pop_front();
            let still_gone = self.nodes.get(&uid).is_some_and(|n| n.gone_at == Some(gone_at));
            if still_gone {
                self.remove(uid);
                self.stats.evicted_ttl += 1;
            }
        }
        if self.nodes.len() > self.limits.max_objects {
            let excess = self.nodes.len() - self.limits.max_objects;
            let batch = (self.limits.max_objects / 10).max(1) + excess;
            let mut by_age: Vec<(Micros, Uid)> = self.nodes.iter().map(|(u, n)| (n.last_touched, *u)).collect();
            by_age.sort_unstable();
            for (_, uid) in by_age.into_iter().take(batch) {
                self.remove(uid);
                self.stats.evicted_cap += 1;
            }
        }
    }

    fn remove(&mut self, uid: Uid) {
        if let Some(node) = self.nodes.remove(&uid) {
            let key = name_key(&node.resource, &node.namespace, &node.name);
            if self.names.get(&key) == Some(&uid) {
                self.names.remove(&key);
            }
        }
    }

    pub fn limits(&self) -> GraphLimits {
        self.limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(t: Micros) -> Mark {
        Mark { time: t, span: SpanRef { trace_id: [1; 16], span_id: [t as u8; 8] } }
    }

    fn limits() -> GraphLimits {
        GraphLimits { gone_ttl: 100, deleting_ttl: 1000, max_objects: 10 }
    }

    #[test]
    fn marks_stay_sorted_and_bounded_even_when_late() {
        let mut node = Node::default();
        for t in [5, 1, 3, 9, 7, 2, 8, 6, 4, 10] {
            node.push_trigger(mark(t));
        }
        let times: Vec<_> = node.triggers.iter().map(|m| m.time).collect();
        assert_eq!(times, vec![3, 4, 5, 6, 7, 8, 9, 10]);
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
            g.upsert(Uid([i; 16]), "pods", "default", &format!("p{i}"), i as Micros);
        }
        g.evict(20);
        assert!(g.stats().objects <= 10);
        assert!(g.node(&Uid([14; 16])).is_some(), "newest survives");
        assert!(g.node(&Uid([0; 16])).is_none(), "oldest is evicted");
    }
}
