//! The causal rules: which earlier write caused a write or an Event.
//!
//! Each rule is a small function over the [`Graph`]; none of them mutates it.
//! The engine applies them in timestamp order and then records the write.

use super::actors::{self, ReporterUsers};
use super::graph::{ActorId, Graph, GraphLimits, Mark, Node, TriggerMark, WriteMark, version_after};
use super::ids::Uid;
use super::record::{COMMIT_TO_ANSWER, EventRecord, Verb, WriteRecord};
use crate::core::time::Micros;

/// The outcome of linking: the chosen cause and, when there was a choice, the
/// runner-up (recorded as a span link, never dropped silently).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Link {
    pub parent: Option<Mark>,
    pub runner_up: Option<Mark>,
}

/// Time bounds for candidate causes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    /// Candidates must be at or after this time...
    pub from: Micros,
    /// ...and at or before this one (the effect's own time)...
    pub until: Micros,
    /// ...and their requests must have arrived before this: the effect's own
    /// request.
    pub requested_before: Micros,
    /// A trigger (a spec change, a create) may be answered later than
    /// `until`, up to this: it is committed before its effect is requested,
    /// and watchers act on the commit before the apiserver answers the
    /// writer, so its `stageTimestamp` may come after the effect's (a scale
    /// answered a few ms after the ReplicaSet update it caused). Other writes
    /// (a pod's status, its binding) count only once answered.
    pub triggers_answered_by: Micros,
}

impl Window {
    /// For an Event or anything without a request of its own.
    pub(crate) fn before(until: Micros, length: Micros) -> Window {
        Window { from: until.saturating_sub(length), until, requested_before: Micros::MAX, triggers_answered_by: until }
    }

    /// For a write requested at `received` and completed at `completed`.
    pub(crate) fn for_write(received: Micros, completed: Micros, length: Micros) -> Window {
        let requested = received.min(completed);
        Window {
            from: completed.saturating_sub(length),
            until: completed,
            requested_before: requested,
            triggers_answered_by: completed.max(requested.saturating_add(COMMIT_TO_ANSWER)),
        }
    }

    /// The window for what counts only once answered before the effect was
    /// requested (what a controller read from its cache before it wrote).
    fn answered_before_request(self) -> Window {
        Window { until: self.until.min(self.requested_before.saturating_sub(1)), ..self }
    }

    /// The window for triggers (see `triggers_answered_by`).
    fn for_triggers(self) -> Window {
        Window { until: self.triggers_answered_by, ..self }
    }

    fn contains(&self, t: Micros) -> bool {
        t >= self.from && t <= self.until
    }

    fn admits(&self, m: &Mark) -> bool {
        self.contains(m.time) && m.received < self.requested_before
    }
}

/// A write is a trigger when it can make a controller act: a successful create,
/// a delete, a `scale` write, or a spec change (a new `metadata.generation`).
/// Status writes, failed writes and dry runs never are.
///
/// Objects without a generation (pods, nodes, config maps) and objects first
/// seen in this write leave the spec question open: a person's write is then
/// taken as a trigger (people write to change things), a controller's is not.
pub(crate) fn is_trigger(write: &WriteRecord, previous_generation: Option<i64>, by_controller: bool) -> bool {
    if !write.succeeded() || write.dry_run || write.is_status_write() || is_infrastructure(write) {
        return false;
    }
    if matches!(write.verb, Verb::Create | Verb::Delete | Verb::DeleteCollection) {
        return true;
    }
    match write.subresource.as_deref() {
        Some("scale") => return true,
        Some(_) => return !by_controller,
        None => {}
    }
    match (write.generation, previous_generation.or(write.request_generation)) {
        (Some(now), Some(before)) => now != before,
        _ => !by_controller,
    }
}

/// Keeps the two most recent marks seen so far.
#[derive(Default)]
struct TopTwo {
    best: Option<Mark>,
    second: Option<Mark>,
}

impl TopTwo {
    fn offer(&mut self, mark: Mark) {
        if self.best.is_some_and(|b| b.span == mark.span) || self.second.is_some_and(|s| s.span == mark.span) {
            return;
        }
        // Later wins; equal times are broken by span ID so the choice is stable.
        let newer = |a: &Mark, b: &Mark| (a.time, a.span.span_id) > (b.time, b.span.span_id);
        match self.best {
            Some(best) if !newer(&mark, &best) => {
                if self.second.is_none_or(|s| newer(&mark, &s)) {
                    self.second = Some(mark);
                }
            }
            _ => {
                self.second = self.best;
                self.best = Some(mark);
            }
        }
    }

    fn offer_all(&mut self, marks: impl IntoIterator<Item = Mark>, window: Window) {
        for m in marks {
            if window.admits(&m) {
                self.offer(m);
            }
        }
    }

    /// A delete in progress is a candidate however old it is.
    fn offer_deleting(&mut self, node: &Node, until: Micros, deleting_ttl: Micros) {
        if let Some(d) = node.deleting()
            && d.time <= until
            && d.time >= until.saturating_sub(deleting_ttl)
        {
            self.offer(d);
        }
    }

    /// Like [`offer_deleting`](Self::offer_deleting), for a write's window.
    fn offer_deleting_before(&mut self, node: &Node, window: Window, deleting_ttl: Micros) {
        if node.deleting().is_some_and(|d| d.received < window.requested_before) {
            self.offer_deleting(node, window.until, deleting_ttl);
        }
    }

    /// The delete that removed an object, within the window.
    fn offer_removed(&mut self, node: &Node, window: Window) {
        if let Some(r) = node.removed()
            && window.admits(&r)
        {
            self.offer(r);
        }
    }

    fn into_link(self) -> Link {
        Link { parent: self.best, runner_up: self.second }
    }
}

/// The objects a write relates to, resolved by the engine from the write and
/// the graph before linking.
#[derive(Debug, Clone, Default)]
pub(crate) struct Related {
    /// The object written (Y).
    pub object: Option<Uid>,
    /// Y's controller owner.
    pub owner: Option<Uid>,
    /// The Service an Endpoints (same name) or EndpointSlice (label or owner) serves.
    pub service: Option<Uid>,
    /// The node a pod being created is placed on (a DaemonSet's pod for a node).
    pub node: Option<Uid>,
    /// Pods whose listing in an Endpoints or EndpointSlice this write changes:
    /// added, removed, or with new addresses or readiness.
    pub changed_members: Vec<Uid>,
    /// Who writes (the acting user), if it wrote before.
    pub writer: Option<ActorId>,
    /// The writer is the pod garbage collector, which deletes pods whose node is gone.
    pub by_pod_gc: bool,
    /// The writer is the node lifecycle controller, which taints and
    /// untaints a node by the conditions its kubelet reports.
    pub by_node_lifecycle: bool,
    /// The writer is the garbage collector, which deletes dependents because
    /// of their owner's delete (and retries: a second delete of a terminating
    /// pod is still the owner's doing, not the first delete's).
    pub by_garbage_collector: bool,
    /// The namespace of a namespaced object: controllers that watch
    /// namespaces (the serviceaccount controller, the root CA publisher)
    /// create objects in a new one.
    pub namespace: Option<Uid>,
}

/// Writes that are not caused by the object they name (CAUSALITY.md,
/// "Infrastructure writes"): a TokenRequest is a controller's client fetching
/// credentials, the apiserver reconciles `endpoints default/kubernetes` on
/// its own clock, and a kubelet reports its node's status (heartbeats, also
/// the first ones right after it registered the node) and renews Leases on
/// its own clock. They start traces of their own.
pub(crate) fn is_infrastructure(write: &WriteRecord) -> bool {
    let resource = write.resource.as_ref();
    let named = |n: &str| write.name.as_deref() == Some(n);
    let own_node_status = resource == "nodes"
        && write.subresource.as_deref() == Some("status")
        && write.name.as_deref().is_some_and(|n| actors::kubelet_node(&write.user) == Some(n));
    (resource == "serviceaccounts" && write.subresource.as_deref() == Some("token"))
        || own_node_status
        || resource == "leases"
        || (is_endpoints_like(resource)
            && write.namespace.as_deref() == Some("default")
            && (named("kubernetes")
                || write.relations.as_ref().and_then(|r| r.service_name.as_deref()) == Some("kubernetes"))
            && write.user.as_ref() == "system:apiserver")
}

/// Resources whose writes follow a Service and the pods it selects, not an owner.
pub(crate) fn is_endpoints_like(resource: &str) -> bool {
    matches!(resource, "endpoints" | "endpointslices")
}

/// Owner kinds whose controllers act on a clock: their creates are
/// controller-initiated roots, linked to the owner's last spec write.
const TIME_TRIGGERED_OWNER_KINDS: &[&str] = &["CronJob"];

pub(crate) fn is_time_triggered(write: &WriteRecord, owner_kind: Option<&str>) -> bool {
    write.verb == Verb::Create && owner_kind.is_some_and(|k| TIME_TRIGGERED_OWNER_KINDS.contains(&k))
}

/// A CronJob status write that changed nothing: the cronjob controller's
/// periodic poll (every 10 s in 1.20), caused by its clock, not by a write.
pub(crate) fn is_poll(write: &WriteRecord) -> bool {
    write.resource.as_ref() == "cronjobs" && write.is_status_write() && write.no_op
}

/// The spec write a time-triggered create runs on behalf of: the owner's
/// latest trigger, however old (the schedule fires long after the write).
pub(crate) fn schedule_for_write(graph: &Graph, owner: Option<Uid>, until: Micros) -> Option<Mark> {
    let node = graph.node(&owner?)?;
    node.triggers().rev().find(|m| m.time <= until)
}

/// The cause of a controller's write on object Y: the most recent candidate
/// in the window. Which writes are candidates depends on the write:
///
/// - a **status write** reports on Y: a pod's container restart follows the
///   report of the failure it restarts from (see `failure_before_restart`);
///   else triggers on Y, creates and deletes of
///   Y's children (a person's pod delete, then the ReplicaSet's status), and
///   its children's status writes (a Deployment's counts are read from its
///   ReplicaSets' status); where the status counts Y's pods, the newest
///   candidate its count reflects (see `status_by_content`);
/// - an **Endpoints or EndpointSlice** write follows its Service and pods:
///   triggers on the Service, and the latest write on each pod whose listing
///   changed (a create, a delete, a new address or readiness). The object's
///   own create is not a cause of its later updates;
/// - **any other write**: triggers on Y and on Y's controller owner; for a
///   create, deletions of Y's siblings (a ReplicaSet replacing a pod); for a
///   pod placed on a node, triggers on that node (a DaemonSet's pod for a new
///   node). Applied to other verbs, the sibling rule would chain unrelated deletes.
///
/// What the writer read narrows the candidates: triggers on Y committed after
/// the `resourceVersion` its request was made against, the writer's own
/// earlier writes of Y, owner triggers whose desired count differs from the
/// one the write carries (see `owner_triggers_acted_on`); a binding never
/// follows the pod's owner, and an owner's controller's delete of a child
/// follows the owner before the child's own writes.
///
/// One rule overrides recency: a pod the pod garbage collector deletes after
/// its node was removed is deleted because of that removal, however long
/// after. (Another controller's delete, a garbage collector's after a person
/// deleted the owner, keeps its own cause.)
pub(crate) fn trigger_for_write(graph: &Graph, write: &WriteRecord, related: &Related, window: Window) -> Link {
    let object = related.object.and_then(|uid| graph.node(&uid));
    if write.is_status_write() {
        return object.map_or_else(Link::default, |node| cause_of_status_write(node, write, window, graph.limits()));
    }
    if is_endpoints_like(&write.resource) {
        return cause_of_listing_write(graph, write, related, object, window);
    }
    cause_of_object_write(graph, write, related, object, window)
}

/// A status write: see [`trigger_for_write`].
fn cause_of_status_write(node: &Node, write: &WriteRecord, window: Window, limits: GraphLimits) -> Link {
    let mut top = TopTwo::default();
    if write.resource.as_ref() == "cronjobs" {
        // The cronjob controller polls; a status write that changed
        // something records the Jobs it fired or saw go.
        top.offer_all(node.child_creates(), window);
        top.offer_all(node.child_deletes(), window);
        return top.into_link();
    }
    if let Some(failure) = failure_before_restart(node, write, window) {
        return Link { parent: Some(failure), runner_up: None };
    }
    let counted = write.relations.as_ref().and_then(|r| r.child_count);
    let observed = observed_version(write);
    if let Some(link) = counted.and_then(|count| status_by_content(node, count, observed, window, limits.deleting_ttl))
    {
        return link;
    }
    top.offer_all(node.trigger_marks().filter(|t| seen_by(t, observed)).map(|t| t.mark), window);
    top.offer_deleting_before(node, window, limits.deleting_ttl);
    top.offer_all(node.child_creates(), window);
    top.offer_all(node.child_deletes(), window);
    // A child's status write is read from the writer's cache: it counts
    // only if it was answered before this write was requested (a
    // ReplicaSet status answered 2 ms after the Deployment status write a
    // sync had already sent is not what that sync read).
    top.offer_all(node.child_statuses(), window.answered_before_request());
    top.into_link()
}

/// The longest the kubelet waits before it restarts a failed container (its
/// back-off doubles from 10 s up to 5 min), and a little more.
const MAX_RESTART_BACK_OFF: Micros = 310 * crate::core::time::MICROS_PER_SECOND;

/// A pod status write that reports a container restarted (the restarts
/// grew) follows the status write that reported the failure it restarts
/// from (CAUSALITY.md, the kubelet): the last one that reported a container
/// terminated, at the restarts reported just before, within the back-off.
/// None when no status write reported the failure first: a liveness kill and
/// its restart are reported in one write, which stays under what started
/// the pod.
fn failure_before_restart(node: &Node, write: &WriteRecord, window: Window) -> Option<Mark> {
    let now = write.relations.as_ref()?.containers?;
    let extra = node.extra.as_ref()?;
    let (before, (failure, failed_at)) = (extra.containers?, extra.failure_report?);
    let restarted = now.restarts > before.restarts && failed_at == before.restarts;
    let recent = failure.time <= window.until && failure.time >= window.until.saturating_sub(MAX_RESTART_BACK_OFF);
    (restarted && recent && failure.received < window.requested_before).then_some(failure)
}

/// An Endpoints or EndpointSlice write: see [`trigger_for_write`].
fn cause_of_listing_write(
    graph: &Graph,
    write: &WriteRecord,
    related: &Related,
    object: Option<&Node>,
    window: Window,
) -> Link {
    let deleting_ttl = graph.limits().deleting_ttl;
    let mut top = TopTwo::default();
    if let Some(node) = object {
        top.offer_deleting_before(node, window, deleting_ttl);
    }
    let service = related.service.and_then(|uid| graph.node(&uid));
    if let Some(service) = service {
        top.offer_all(service.triggers(), window.for_triggers());
        top.offer_deleting_before(service, window, deleting_ttl);
        top.offer_removed(service, window);
    }
    if write.verb == Verb::Create {
        // A new listing follows its Service's create, not the pods it lists.
        return top.into_link();
    }
    // Every later update follows a write on a pod the Service selects (or,
    // for a Service whose selector kausal never saw, on a pod it lists).
    if let Some(service) = service {
        top.offer_all(service.selected_pod_writes(), window);
        // A pod's delete is seen, like a trigger, at its commit: the sync it
        // starts may be requested before the delete is answered.
        top.offer_all(service.selected_pod_deletes(), window.for_triggers());
    }
    for pod in related.changed_members.iter().filter_map(|uid| graph.node(uid)) {
        if let Some(w) =
            pod.writes().rev().find(|w| w.succeeded && window.contains(w.time) && w.received < window.requested_before)
        {
            top.offer(Mark { time: w.time, span: w.span, received: w.received });
        }
        top.offer_deleting_before(pod, window, deleting_ttl);
        top.offer_removed(pod, window.for_triggers());
    }
    top.into_link()
}

/// Any other write (creates, deletes, spec changes): see [`trigger_for_write`].
fn cause_of_object_write(
    graph: &Graph,
    write: &WriteRecord,
    related: &Related,
    object: Option<&Node>,
    window: Window,
) -> Link {
    let deleting_ttl = graph.limits().deleting_ttl;
    let mut top = TopTwo::default();
    // The garbage collector deletes a dependent because its owner is being
    // deleted or is gone: that delete is the cause, also of a retried delete
    // of a pod still terminating from the first (not the first delete).
    let owner_node = related.owner.and_then(|uid| graph.node(&uid));
    if write.verb.is_delete()
        && related.by_garbage_collector
        && let Some(owner) = owner_node
    {
        top.offer_deleting_before(owner, window, deleting_ttl);
        top.offer_removed(owner, window);
        if top.best.is_some() {
            return top.into_link();
        }
    }
    // The scheduler binds a pod because it saw the pod, never because of a
    // change of the pod's owner (a ReplicaSet rescaled while the pod waited).
    let binding = write.subresource.as_deref() == Some("binding");
    if let Some(node) = owner_node.filter(|_| !binding) {
        let triggers = window.for_triggers();
        top.offer_all(owner_triggers_acted_on(node, write, triggers), triggers);
        top.offer_deleting_before(node, window, deleting_ttl);
        if write.verb == Verb::Create {
            top.offer_all(node.child_deletes(), window);
        }
    }
    if let Some(node) = object {
        // An owner's controller deletes a child because of a change of the
        // owner (a scale-down), not because of the child's own newer writes
        // (the scheduler binding a pod the ReplicaSet is about to delete);
        // those count only when the owner offers no cause. (The garbage
        // collectors are not the owner's controller: theirs follow the
        // owner's delete or the node's, above and below.)
        let owner_decides = write.verb.is_delete()
            && !related.by_garbage_collector
            && !related.by_pod_gc
            && owner_node.is_some()
            && top.best.is_some();
        if !owner_decides {
            let observed = observed_version(write);
            let candidates = node.trigger_marks().filter(|t| {
                // An actor acts on what others change: its own earlier spec
                // change of this object is not why it writes it again.
                t.actor.is_none_or(|a| Some(a) != related.writer) && seen_by(t, observed)
            });
            top.offer_all(candidates.map(|t| t.mark), window.for_triggers());
        }
        top.offer_deleting_before(node, window, deleting_ttl);
        // The node lifecycle controller acts on the conditions a kubelet
        // reports (Ready turning True lifts the not-ready taints): a status
        // write that reported a transition is its trigger, heartbeats are not.
        if related.by_node_lifecycle
            && let Some(transition) = node.extra.as_ref().and_then(|e| e.condition_transition)
            && window.admits(&transition)
        {
            top.offer(transition);
        }
    }
    if write.verb == Verb::Create
        && let Some(node) = related.node.and_then(|uid| graph.node(&uid))
    {
        top.offer_all(node.triggers(), window);
    }
    // An object nothing owns, created by a controller that watches namespaces
    // where nothing else caused it: the namespace's create (a new namespace's
    // `default` ServiceAccount and `kube-root-ca.crt`).
    if top.best.is_none()
        && write.verb == Verb::Create
        && related.owner.is_none()
        && let Some(namespace) = related.namespace.and_then(|uid| graph.node(&uid))
    {
        top.offer_all(namespace.triggers(), window);
    }
    let link = top.into_link();
    if write.verb.is_delete()
        && related.by_pod_gc
        && let Some(removal) = object.and_then(|pod| node_removal_before(graph, pod, window.until))
    {
        let runner_up = [link.parent, link.runner_up].into_iter().flatten().find(|m| m.span != removal.span);
        return Link { parent: Some(removal), runner_up };
    }
    link
}

/// The `resourceVersion` a write was made against, as triggers record theirs.
fn observed_version(write: &WriteRecord) -> Option<u32> {
    write.observed_version.map(|v| v as u32)
}

/// Whether a writer that read the object at `observed` can have seen
/// trigger `t`: a change committed after the version it read was not what
/// it acted on (the deployment controller's status write made against the
/// first of two scales 2 ms apart).
fn seen_by(t: &TriggerMark, observed: Option<u32>) -> bool {
    match (t.facts.version, observed) {
        (Some(version), Some(observed)) => !version_after(version, observed),
        _ => true,
    }
}

/// The owner's triggers a controller's write on one of its children can
/// follow, by what the write shows it acted on:
/// - the Deployment's `spec.replicas` the deployment controller read (the
///   ReplicaSet's `desired-replicas` annotation): of two scales a few ms
///   apart, the one whose count it carries, even if the other committed first;
/// - a create cannot follow a trigger that left no more desired replicas
///   than the owner already had (a scale-down arriving while a scale-up's
///   pods are still being created).
///
/// Each narrows only when something is left: otherwise every trigger stays a candidate.
fn owner_triggers_acted_on<'a>(
    owner: &'a Node,
    write: &WriteRecord,
    window: Window,
) -> impl Iterator<Item = Mark> + 'a {
    let in_window: Vec<TriggerMark> = owner.trigger_marks().filter(|t| window.admits(&t.mark)).collect();
    let read_desired = write.relations.as_deref().and_then(|r| r.owner_desired_replicas);
    let mut chosen: Vec<TriggerMark> = match read_desired {
        Some(n) => {
            let matching: Vec<TriggerMark> =
                in_window.iter().copied().filter(|t| t.facts.desired.map(i64::from) == Some(n)).collect();
            if matching.is_empty() { in_window } else { matching }
        }
        None => in_window,
    };
    if write.verb == Verb::Create && write.subresource.is_none() && owner.counts_children() {
        let changes: Vec<(Mark, u16)> = owner.child_changes().collect();
        let growing: Vec<TriggerMark> = chosen
            .iter()
            .copied()
            .filter(|t| t.facts.desired.is_none_or(|d| d > count_at(&changes, t.mark.time)))
            .collect();
        if !growing.is_empty() {
            chosen = growing;
        }
    }
    chosen.into_iter().map(|t| t.mark)
}

/// The count right after the newest change at or before `t` (0 before any):
/// live children after each child create or delete, or a Deployment's
/// summed child counts.
fn count_at(changes: &[(Mark, u16)], t: Micros) -> u16 {
    changes.iter().rev().find(|(m, _)| m.time <= t).map_or(0, |(_, c)| *c)
}

/// The cause of a workload's status write, read from its content: the
/// newest candidate (a trigger on the workload, or a create or delete of one
/// of its children) after which the workload had as many live children as
/// the status counts. Writes the count does not reflect yet happened during
/// the sync, and are not its cause (a ReplicaSet's `replicas: 0` right after
/// its first pod creates belongs under the ReplicaSet's create). `None` when
/// the count is unknown (the workload was created before the graph saw it)
/// or no candidate matches it.
fn status_by_content(
    node: &Node,
    count: i64,
    observed: Option<u32>,
    window: Window,
    deleting_ttl: Micros,
) -> Option<Link> {
    // What the count is checked against: the live pods after each child
    // create or delete, or (a Deployment) the sum of the children's counts
    // after each child status write.
    let sums = node.sums_children();
    let changes: Vec<(Mark, u16)> = match (sums, node.counts_children()) {
        (true, _) => node.child_count_sums().collect(),
        (false, true) => node.child_changes().collect(),
        (false, false) => return None,
    };
    let live_at = |t: Micros| count_at(&changes, t);
    let mut candidates: Vec<(Mark, u16)> =
        node.trigger_marks().filter(|t| seen_by(t, observed)).map(|t| (t.mark, live_at(t.mark.time))).collect();
    if let Some(d) = node.deleting().filter(|d| d.time >= window.until.saturating_sub(deleting_ttl)) {
        candidates.push((d, live_at(d.time)));
    }
    candidates
        .retain(|(m, _)| window.admits(m) || (node.deleting() == Some(*m) && m.received < window.requested_before));
    // What the children wrote counts once answered before this write was
    // requested: the writer read it from its cache.
    let read = window.answered_before_request();
    candidates.extend(changes.iter().copied().filter(|(m, _)| read.admits(m)));
    if sums {
        candidates.extend(node.child_changes().filter(|(m, _)| read.admits(m)).map(|(m, _)| (m, live_at(m.time))));
    } else {
        candidates.extend(node.child_statuses().filter(|m| read.admits(m)).map(|m| (m, live_at(m.time))));
    }
    candidates.sort_by_key(|(m, _)| std::cmp::Reverse((m.time, m.span.span_id)));
    let parent = candidates.iter().find(|(_, live)| i64::from(*live) == count).map(|(m, _)| *m)?;
    let runner_up = candidates.first().map(|(m, _)| *m).filter(|m| *m != parent);
    Some(Link { parent: Some(parent), runner_up })
}

/// The delete that removed the node a pod was bound to, if it happened before `until`.
fn node_removal_before(graph: &Graph, pod: &Node, until: Micros) -> Option<Mark> {
    let removed = graph.node(&pod.bound_node()?)?.removed()?;
    (removed.time <= until).then_some(removed)
}

/// Event messages that name the object the reporter acted on:
/// `(reason, message prefix, resource of the named object)`.
const NAMED_OBJECT_MESSAGES: &[(&str, &str, &str)] = &[
    // Deployment: "Scaled up replica set web-5d894c86f5 to 3" (newer: "... from 2 to 3")
    ("ScalingReplicaSet", "Scaled up replica set ", "replicasets"),
    ("ScalingReplicaSet", "Scaled down replica set ", "replicasets"),
    // ReplicaSet, Job, DaemonSet: "Created pod: web-5d894c86f5-2znrl"
    ("SuccessfulCreate", "Created pod: ", "pods"),
    ("SuccessfulDelete", "Deleted pod: ", "pods"),
    // StatefulSet: "create Pod web-0 in StatefulSet web successful"
    ("SuccessfulCreate", "create Pod ", "pods"),
    ("SuccessfulDelete", "delete Pod ", "pods"),
    ("SuccessfulCreate", "create Claim ", "persistentvolumeclaims"),
    // CronJob: "Created job hello-1567197780", "Saw completed job: hello-1567197780, status: Complete"
    ("SuccessfulCreate", "Created job ", "jobs"),
    ("SuccessfulDelete", "Deleted job ", "jobs"),
    ("SawCompletedJob", "Saw completed job: ", "jobs"),
];

/// The object an Event's message names, for the reasons whose messages do:
/// returns `(resource, name)`.
pub(crate) fn object_named_in_message<'m>(reason: &str, message: &'m str) -> Option<(&'static str, &'m str)> {
    NAMED_OBJECT_MESSAGES.iter().filter(|(r, _, _)| *r == reason).find_map(|(_, prefix, resource)| {
        let name = message.strip_prefix(prefix)?.split_whitespace().next()?;
        let name = name.trim_end_matches([',', ':']);
        (!name.is_empty()).then_some((*resource, name))
    })
}

/// C's most recent successful, non-status write on `uid` within the window.
fn reporter_write(graph: &Graph, uid: Uid, reporter: &ReporterUsers, window: Window) -> Option<WriteMark> {
    let node = graph.node(&uid)?;
    node.writes()
        .rev()
        .filter(|w| window.contains(w.time) && w.succeeded && !w.is_status)
        .find(|w| reporter.matches(graph.actor(w.actor)))
}

fn latest_trigger(graph: &Graph, uid: Uid, window: Window) -> Option<Mark> {
    let node = graph.node(&uid)?;
    let mut top = TopTwo::default();
    top.offer_all(node.triggers(), window);
    top.offer_deleting(node, window.until, graph.limits().deleting_ttl);
    top.best
}

/// Event reasons that report what the reporter observed, not a write of its
/// own (CAUSALITY.md, "observation Events"): their cause is what changed the
/// object, never the reporter's unrelated write on it just before.
const OBSERVATION_REASONS: &[&str] = &[
    "RegisteredNode",
    "RemovingNode",
    "NodeNotReady",
    "NodeReady",
    "NodeNotSchedulable",
    "NodeSchedulable",
    "FailedScheduling",
    // The kubelet's node conditions, read off the machine, and the kernel's
    // OOM kills it saw there: under the node's registration when they follow
    // it, never under an unrelated write of the kubelet's on the node.
    "NodeHasSufficientMemory",
    "NodeHasInsufficientMemory",
    "NodeHasNoDiskPressure",
    "NodeHasDiskPressure",
    "NodeHasSufficientPID",
    "NodeHasInsufficientPID",
    "SystemOOM",
];

/// Event reasons that report a component's own start (`Starting kubelet.`,
/// the kubelet's `NodeAllocatableEnforced` on its cgroups): nothing written
/// through the API caused them, whatever the reporter wrote just before
/// (the kubelet registers its node in the same instant). They start traces
/// of their own.
const START_REASONS: &[&str] = &["Starting", "NodeAllocatableEnforced"];

/// The cause of an Event reported by C about object Y, first that exists
/// (none for a component's own start, [`START_REASONS`]):
/// 1. C's most recent write on the object the message names;
/// 2. C's most recent non-status write on Y, unless the reason is an
///    observation ([`OBSERVATION_REASONS`]);
/// 3. the latest trigger on Y.
///
/// Rule 2 yields to rule 3 when the trigger on Y is newer than C's write: C's
/// write then predates the change the Event reports on (a node-controller
/// "RemovingNode" belongs to the node's delete, not to its earlier patch). The
/// loser is kept as the runner-up link.
pub(crate) fn parent_for_event(
    graph: &Graph,
    event: &EventRecord,
    regarding: Option<Uid>,
    reporter: &ReporterUsers,
    window: Window,
) -> Link {
    if let (Some(reason), Some(message)) = (event.reason.as_deref(), event.message.as_deref())
        && let Some((resource, name)) = object_named_in_message(reason, message)
    {
        let namespace = event.regarding.namespace.as_deref().unwrap_or(&event.namespace);
        if let Some(uid) = graph.lookup_name(resource, namespace, name)
            && let Some(w) = reporter_write(graph, uid, reporter, window)
        {
            return Link { parent: Some(Mark { time: w.time, span: w.span, received: w.received }), runner_up: None };
        }
    }
    let Some(uid) = regarding else { return Link::default() };
    if event.reason.as_deref().is_some_and(|r| START_REASONS.contains(&r)) {
        return Link::default();
    }
    if event.reason.as_deref().is_some_and(|r| OBSERVATION_REASONS.contains(&r)) {
        return Link { parent: latest_trigger(graph, uid, window), runner_up: None };
    }
    let own =
        reporter_write(graph, uid, reporter, window).map(|w| Mark { time: w.time, span: w.span, received: w.received });
    let trigger = latest_trigger(graph, uid, window);
    match (own, trigger) {
        (Some(o), Some(t)) if t.time > o.time => Link { parent: Some(t), runner_up: Some(o) },
        (Some(o), Some(t)) if t.span != o.span => Link { parent: Some(o), runner_up: Some(t) },
        (Some(o), _) => Link { parent: Some(o), runner_up: None },
        (None, t) => Link { parent: t, runner_up: None },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_object_acted_on() {
        assert_eq!(
            object_named_in_message("ScalingReplicaSet", "Scaled up replica set web-5d894c86f5 to 2"),
            Some(("replicasets", "web-5d894c86f5"))
        );
        assert_eq!(
            object_named_in_message("ScalingReplicaSet", "Scaled down replica set web-5d894c86f5 from 3 to 2"),
            Some(("replicasets", "web-5d894c86f5"))
        );
        assert_eq!(
            object_named_in_message("SuccessfulCreate", "Created pod: web-5d894c86f5-2znrl"),
            Some(("pods", "web-5d894c86f5-2znrl"))
        );
        assert_eq!(
            object_named_in_message("SuccessfulDelete", "Deleted pod: web-5d894c86f5-2znrl"),
            Some(("pods", "web-5d894c86f5-2znrl"))
        );
        assert_eq!(
            object_named_in_message("SuccessfulCreate", "create Pod web-0 in StatefulSet web successful"),
            Some(("pods", "web-0"))
        );
        assert_eq!(
            object_named_in_message("SuccessfulDelete", "delete Pod web-1 in StatefulSet web successful"),
            Some(("pods", "web-1"))
        );
        assert_eq!(
            object_named_in_message("SuccessfulCreate", "create Claim data-web-0 Pod web-0 in StatefulSet web success"),
            Some(("persistentvolumeclaims", "data-web-0"))
        );
        // The CronJob controller's 1.20 formats: "Created job %v", "Deleted job %v",
        // "Saw completed job: %s, status: %v".
        assert_eq!(
            object_named_in_message("SuccessfulCreate", "Created job hello-1567197780"),
            Some(("jobs", "hello-1567197780"))
        );
        assert_eq!(
            object_named_in_message("SuccessfulDelete", "Deleted job hello-1567197780"),
            Some(("jobs", "hello-1567197780"))
        );
        // A failed delete names an error, not a job, and its reason is not in the table.
        assert_eq!(object_named_in_message("FailedDelete", "Deleted job: jobs.batch \"x\" not found"), None);
        assert_eq!(
            object_named_in_message("SawCompletedJob", "Saw completed job: hello-1567197780, status: Complete"),
            Some(("jobs", "hello-1567197780"))
        );
        assert_eq!(object_named_in_message("Scheduled", "Successfully assigned default/p to n"), None);
        assert_eq!(object_named_in_message("SuccessfulCreate", "Created pod: "), None);
    }
}
