//! The core's input: owned, normalised records.
//!
//! Sources parse borrowed wire formats and convert each accepted record into one
//! of these. They hold only the fields the linker and the span builder use, so
//! the settle buffer stays small.

use super::ids::{SpanId, TraceId, Uid};
use crate::core::time::Micros;

/// A mutating verb. Reads never reach the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verb {
    Create,
    Update,
    Patch,
    Delete,
    DeleteCollection,
}

impl Verb {
    pub fn parse(verb: &str) -> Option<Verb> {
        Some(match verb {
            "create" => Verb::Create,
            "update" => Verb::Update,
            "patch" => Verb::Patch,
            "delete" => Verb::Delete,
            "deletecollection" => Verb::DeleteCollection,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Create => "create",
            Verb::Update => "update",
            Verb::Patch => "patch",
            Verb::Delete => "delete",
            Verb::DeleteCollection => "deletecollection",
        }
    }

    pub fn is_delete(self) -> bool {
        matches!(self, Verb::Delete | Verb::DeleteCollection)
    }
}

/// An owner reference, as far as linking needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub kind: Box<str>,
    pub name: Box<str>,
    pub uid: Uid,
    pub controller: bool,
}

/// What a write's response says about the object's deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deletion {
    /// No deletion involved, or nothing known.
    #[default]
    None,
    /// `deletionTimestamp` is set and finalizers or a grace period are pending:
    /// the object is still there and its delete stays an active trigger.
    InProgress,
    /// The delete removed the object.
    Gone,
}

/// A completed mutating request from the audit log.
#[derive(Debug, Clone)]
pub struct WriteRecord {
    pub audit_id: Box<str>,
    pub verb: Verb,
    pub api_group: Box<str>,
    pub api_version: Box<str>,
    pub resource: Box<str>,
    pub subresource: Option<Box<str>>,
    pub namespace: Option<Box<str>>,
    pub name: Option<Box<str>>,
    /// The object's UID as written in the input, when known.
    pub uid: Option<Box<str>>,
    /// The object's kind (`Deployment`), when the object says so.
    pub kind: Option<Box<str>>,
    /// The effective user (impersonated user, if any).
    pub user: Box<str>,
    pub user_agent: Option<Box<str>>,
    pub status_code: u16,
    pub status_message: Option<Box<str>>,
    pub received: Micros,
    pub completed: Micros,
    /// `metadata.generation` after the write.
    pub generation: Option<i64>,
    /// `metadata.generation` sent in the request, for spec-change detection
    /// when the graph has not seen the object before.
    pub request_generation: Option<i64>,
    /// An update that changed nothing: the response's `resourceVersion` is
    /// the one the request was made against.
    pub no_op: bool,
    /// The object's `resourceVersion` after the write (etcd's commit order;
    /// a scale's is its workload's).
    pub resource_version: Option<u64>,
    /// The `resourceVersion` the request was made against: the version of
    /// the object the writer had read, so changes committed after it were
    /// not what it acted on.
    pub observed_version: Option<u64>,
    pub deletion: Deletion,
    pub owners: Vec<Owner>,
    pub dry_run: bool,
    /// Relations other than ownerReferences, for the kinds that have them
    /// (pods, bindings, Endpoints, EndpointSlices); `None` for the rest.
    pub relations: Option<Box<Relations>>,
    /// A trace context an annotation of the object carries.
    pub trace_context: Option<Box<CarriedContext>>,
    /// The GitOps object (Argo CD Application, Flux Kustomization or
    /// HelmRelease) that the object's metadata says applied it.
    pub gitops: Option<Box<GitOpsOrigin>>,
}

/// Attributes naming the GitOps object that applied a write
/// (`argocd.application`, `flux.kustomization.name`, ...), for its intent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitOpsOrigin {
    pub attributes: Vec<(&'static str, Box<str>)>,
}

/// A trace context read from one of the object's annotations (a CI run's or
/// an operator's span that made the write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarriedContext {
    /// The annotation it was read from.
    pub annotation: Box<str>,
    pub trace_id: TraceId,
    pub span_id: SpanId,
    /// The write's own request carried the annotation with this value: the
    /// writer set it (a create, a patch), rather than the object having kept
    /// it from an earlier write.
    pub in_request: bool,
    /// A fingerprint of the value, to tell a changed annotation from a kept one.
    pub fingerprint: u64,
}

/// What an object says about related objects other than by ownerReferences.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Relations {
    /// The node a pod is placed on (`spec.nodeName`, a DaemonSet's node
    /// affinity, or a binding's target).
    pub node_name: Option<Box<str>>,
    /// The Service an EndpointSlice serves (label `kubernetes.io/service-name`).
    pub service_name: Option<Box<str>>,
    /// The pods an Endpoints or EndpointSlice lists, sorted, each with a
    /// fingerprint of its published addresses and readiness.
    pub endpoint_members: Option<Vec<EndpointMember>>,
    /// A pod's labels, as sorted fingerprints of `key=value` (from a write
    /// that carries the pod object).
    pub labels: Option<Vec<u64>>,
    /// A Service's label selector, as sorted fingerprints of `key=value`;
    /// empty when it selects nothing (a Service without a selector).
    pub selector: Option<Vec<u64>>,
    /// How many pods a ReplicaSet's, ReplicationController's, StatefulSet's
    /// or Deployment's status write counts (`status.replicas`), or a
    /// DaemonSet's (`currentNumberScheduled`): what the writing sync had
    /// observed.
    pub child_count: Option<i64>,
    /// A workload's `spec.replicas` after a write of it or of its `scale`.
    pub desired_replicas: Option<i64>,
    /// On a ReplicaSet the deployment controller writes: its Deployment's
    /// `spec.replicas` as that sync read it (the annotation
    /// `deployment.kubernetes.io/desired-replicas`).
    pub owner_desired_replicas: Option<i64>,
    /// A pod status write that reports the pod's containers: their restarts,
    /// summed, and whether one is reported terminated. A restart is caused
    /// by the failure reported before it (CAUSALITY.md, the kubelet).
    pub containers: Option<ContainersReport>,
    /// A node status write that reports a condition's transition (a
    /// `lastTransitionTime` in what it sent: Ready turning True), not only a
    /// heartbeat: what the node lifecycle controller taints and untaints by.
    pub condition_transition: bool,
}

/// What a pod status write says of the pod's containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContainersReport {
    pub restarts: i64,
    pub terminated: bool,
}

/// The fingerprint of one label or selector pair (no allocation: pods'
/// labels are read on every pod write).
pub fn label_pair(key: &str, value: &str) -> u64 {
    let (k, v) = (super::ids::fingerprint(key), super::ids::fingerprint(value));
    k.rotate_left(17).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ v
}

/// Whether every pair of `selector` is among `labels` (both sorted). An
/// empty selector selects nothing, as a Service without one does.
pub fn selects(selector: &[u64], labels: &[u64]) -> bool {
    !selector.is_empty() && selector.iter().all(|s| labels.binary_search(s).is_ok())
}

/// One pod in an Endpoints or EndpointSlice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct EndpointMember {
    pub pod: Uid,
    /// Changes when the pod's addresses or readiness change.
    pub state: u64,
}

/// How much later than its commit the apiserver answers a write, at most,
/// as kausal assumes: watchers see a commit before the writer's answer, so a
/// controller's write can be answered before the write it acts on (3 ms
/// before, seen in the e2e runs). Larger would order a slow request's record
/// further before the records that arrive with it, and make it late for a
/// short `--settle`; an answer later than this after the commit can cost
/// that write its effects.
pub(crate) const COMMIT_TO_ANSWER: Micros = 250_000;

impl WriteRecord {
    /// The earliest the write can have been committed: when it was requested,
    /// or at most [`COMMIT_TO_ANSWER`] before its answer. A cause commits
    /// before its effect is requested, so ordering by this puts every cause
    /// before its effects, which ordering by the answer does not (a scale
    /// answered a few ms after the ReplicaSet update it caused).
    pub fn earliest_commit(&self) -> Micros {
        self.received.clamp(self.completed.saturating_sub(COMMIT_TO_ANSWER), self.completed)
    }

    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status_code)
    }

    pub fn is_status_write(&self) -> bool {
        self.subresource.as_deref() == Some("status")
    }

    pub fn controller_owner(&self) -> Option<&Owner> {
        self.owners.iter().find(|o| o.controller)
    }

    /// The owner whose changes the writer acts on: the controller owner, or
    /// else the only owner reference (the kubelet's CSINode names its Node
    /// as owner without `controller: true`).
    pub fn acting_owner(&self) -> Option<&Owner> {
        self.controller_owner().or(match self.owners.as_slice() {
            [only] => Some(only),
            _ => None,
        })
    }
}

/// How an Event reached kausal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOrigin {
    /// A create/update/patch of the `events` resource in the audit stream.
    Audit { audit_id: Box<str>, verb: Verb },
    /// A watch, list, or a file of Event objects.
    Object,
}

/// The object an Event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Regarding {
    pub kind: Option<Box<str>>,
    pub api_version: Option<Box<str>>,
    pub namespace: Option<Box<str>>,
    pub name: Option<Box<str>>,
    pub uid: Option<Box<str>>,
    pub field_path: Option<Box<str>>,
}

/// A Kubernetes Event, normalised over core/v1 and events.k8s.io/v1.
///
/// Fields other than the identity may be missing: a `patch` of an existing
/// Event logged at `Request` level carries only what changed.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub uid: Option<Box<str>>,
    pub namespace: Box<str>,
    pub name: Box<str>,
    pub reason: Option<Box<str>>,
    pub message: Option<Box<str>>,
    pub event_type: Option<Box<str>>,
    pub action: Option<Box<str>>,
    pub reporter: Option<Box<str>>,
    pub reporter_host: Option<Box<str>>,
    pub regarding: Regarding,
    /// When the observation this record reports happened.
    pub time: Micros,
    /// `time` has whole-second precision: compare as `[time, time + 1 s)`.
    pub coarse_time: bool,
    pub count: i64,
    pub origin: EventOrigin,
}

impl EventRecord {
    /// The identity used for de-duplication and span IDs: the UID when known,
    /// else namespace/name (unique per namespace while the Event exists).
    pub fn key_by_name(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The latest instant the observation could have happened at.
    pub fn time_upper_bound(&self) -> Micros {
        if self.coarse_time { self.time + crate::core::time::MICROS_PER_SECOND - 1 } else { self.time }
    }
}

/// An object's metadata as read from the apiserver, not from a write: what a
/// live source learns about objects created before kausal started. It fills
/// the graph (name, kind, controller owner) but is not a cause of anything.
#[derive(Debug, Clone)]
pub struct ObservedObject {
    pub uid: Box<str>,
    pub resource: Box<str>,
    pub kind: Option<Box<str>>,
    pub namespace: Box<str>,
    pub name: Box<str>,
    // No generation: a lookup reads the present, which may already include a
    // write still waiting in the settle buffer. Taking its generation as the
    // "previous" one would hide that write's spec change (seen in e2e, after a
    // restart: a ReplicaSet scale-up stopped being a trigger).
    pub controller_owner: Option<Owner>,
}

/// An object that an Event was about but the graph had never seen: a live
/// source may look up its metadata and hand it back as an [`ObservedObject`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownObject {
    pub uid: Box<str>,
    pub api_version: Option<Box<str>>,
    pub kind: Box<str>,
    pub namespace: Box<str>,
    pub name: Box<str>,
}

/// One unit of input for the core.
#[derive(Debug, Clone)]
pub enum Record {
    Write(WriteRecord),
    Event(EventRecord),
}

impl Record {
    /// The time the record is ordered by: the earliest a write can have taken
    /// effect (see [`WriteRecord::earliest_commit`]), or the latest instant an
    /// Event could have happened.
    pub fn order_time(&self) -> Micros {
        match self {
            Record::Write(w) => w.earliest_commit(),
            Record::Event(e) => e.time_upper_bound(),
        }
    }

    /// A deterministic tie-breaker for records with the same order time, so any
    /// arrival order yields the same processing order.
    pub fn order_key(&self) -> (u8, &str, &str) {
        match self {
            Record::Write(w) => (0, &w.audit_id, ""),
            Record::Event(e) => (1, &e.namespace, &e.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selector_selects_the_labels_that_hold_all_its_pairs() {
        let labels = |pairs: &[(&str, &str)]| {
            let mut v: Vec<u64> = pairs.iter().map(|(k, v)| label_pair(k, v)).collect();
            v.sort_unstable();
            v
        };
        let pod = labels(&[("app", "web"), ("tier", "front"), ("pod-template-hash", "5d894c86f5")]);
        assert!(selects(&labels(&[("app", "web")]), &pod));
        assert!(selects(&labels(&[("app", "web"), ("tier", "front")]), &pod));
        assert!(!selects(&labels(&[("app", "api")]), &pod));
        assert!(!selects(&labels(&[("app", "web"), ("tier", "back")]), &pod));
        assert!(!selects(&[], &pod), "a Service without a selector selects nothing");
        assert_ne!(label_pair("a", "bc"), label_pair("ab", "c"), "the pair's boundary matters");
    }
}
