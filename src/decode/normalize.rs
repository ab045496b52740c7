//! Normalisation: one mutating request, from whichever audit format it came
//! in, into the core's [`WriteRecord`]. Only the fields the linker uses are
//! read from the request and response objects.

use serde_json::value::RawValue;

use super::shape::Decoder;
use super::trace_context;
use super::views::object::{
    NodeConditionsView, ObjectHead, ObjectMeta, PodContainersView, RelationView, WorkloadCounts, pair_fingerprints,
};
use crate::core::ids::{self, Uid};
use crate::core::kinds;
use crate::core::record::{
    CarriedContext, ContainersReport, Deletion, EndpointMember, Owner, Record, Relations, Verb, WriteRecord,
};
use crate::core::time::Micros;

impl Decoder<'_, '_> {
    /// The trace context the object's annotations carry, if any: the
    /// response's (the object as stored), else the request's. A value that
    /// parses in no format is counted and skipped, never fatal.
    fn trace_context(
        &mut self,
        request: Option<&ObjectMeta<'_>>,
        response: Option<&ObjectMeta<'_>>,
    ) -> Option<Box<CarriedContext>> {
        let keys = self.options.trace_context_keys();
        let requested = request.and_then(|m| m.first_annotation(keys));
        let (annotation, value) = response.and_then(|m| m.first_annotation(keys)).or_else(|| requested.clone())?;
        let Some((trace_id, span_id)) = trace_context::parse(&value) else {
            self.out.stats.trace_contexts_invalid += 1;
            return None;
        };
        let in_request = requested.as_ref().is_some_and(|(k, v)| *k == annotation && *v == value);
        Some(Box::new(CarriedContext {
            annotation: annotation.into(),
            trace_id,
            span_id,
            in_request,
            fingerprint: ids::fingerprint(&value),
        }))
    }

    /// The common path for a mutating request from any audit source.
    pub(super) fn write(&mut self, w: WriteInput<'_>, line: usize) {
        if !self.options.keep_leader_election && w.resource == "leases" {
            self.out.skip("lease");
            return;
        }
        // Questions asked of the apiserver (may I? who is this?), not changes
        // of the cluster: counted with the reads, never traced.
        if ACCESS_REVIEWS.contains(&w.resource) {
            self.out.skip("access_review");
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
        let relations = relations(&w, response_meta.or(request_meta), request_meta);
        let trace_context = self.trace_context(request_meta, response_meta);
        // What the writer sent, not what the object kept: a person's patch of
        // an object Argo CD manages is the person's, not the Application's.
        let gitops = request_meta.and_then(super::gitops::origin);
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
            no_op: matches!(w.verb, Verb::Update | Verb::Patch)
                && response_meta
                    .and_then(|m| m.resource_version.as_deref())
                    .is_some_and(|rv| request_meta.and_then(|m| m.resource_version.as_deref()) == Some(rv)),
            resource_version: response_meta.and_then(|m| m.resource_version.as_deref()).and_then(|v| v.parse().ok()),
            observed_version: request_meta
                .filter(|_| matches!(w.verb, Verb::Update | Verb::Patch))
                .and_then(|m| m.resource_version.as_deref())
                .and_then(|v| v.parse().ok()),
            deletion,
            owners,
            dry_run: w.dry_run,
            relations,
            trace_context,
            gitops,
        }));
    }
}

const LEADER_ANNOTATION: &str = "control-plane.alpha.kubernetes.io/leader";

/// `create` requests that only ask the apiserver a question.
const ACCESS_REVIEWS: &[&str] = &[
    "tokenreviews",
    "subjectaccessreviews",
    "selfsubjectaccessreviews",
    "localsubjectaccessreviews",
    "selfsubjectrulesreviews",
];

/// What the deployment controller writes on a ReplicaSet: its Deployment's
/// `spec.replicas`, as the writing sync read it.
const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";

/// Label by which an EndpointSlice names its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Relations other than ownerReferences, for the few resources that carry
/// them; everything else skips this second, narrow parse of the object.
fn relations(
    w: &WriteInput<'_>,
    meta: Option<&ObjectMeta<'_>>,
    request_meta: Option<&ObjectMeta<'_>>,
) -> Option<Box<Relations>> {
    let endpoints_like = matches!(w.resource, "endpoints" | "endpointslices") && w.subresource.is_none();
    let placed = w.resource == "pods"
        && ((w.verb == Verb::Create && w.subresource.is_none()) || w.subresource == Some("binding"));
    // A pod's labels decide which Services select it; they can change only
    // through a write of the pod itself.
    let labelled = w.resource == "pods" && w.subresource.is_none() && !w.verb.is_delete();
    let selecting = w.resource == "services" && w.subresource.is_none() && !w.verb.is_delete();
    let counted = w.subresource == Some("status")
        && matches!(
            w.resource,
            "replicasets" | "statefulsets" | "replicationcontrollers" | "daemonsets" | "deployments"
        );
    let pod_status = w.resource == "pods" && w.subresource == Some("status");
    let node_status = w.resource == "nodes" && w.subresource == Some("status");
    let scalable = matches!(w.resource, "replicasets" | "statefulsets" | "replicationcontrollers" | "deployments");
    // The desired count a spec change or scale leaves: a later write shows
    // which of several near-simultaneous scales it acted on.
    let desiring = scalable && !w.verb.is_delete() && matches!(w.subresource, None | Some("scale"));
    if !endpoints_like && !placed && !labelled && !selecting && !counted && !desiring && !pod_status && !node_status {
        return None;
    }
    let mut relations = Relations::default();
    if labelled {
        relations.labels = meta.map(|m| m.labels.and_then(pair_fingerprints).unwrap_or_default());
    }
    // A status write's counts are what the writing sync computed: its
    // request (the response of a failed write is a Status).
    if counted {
        relations.child_count =
            w.request_object.or(w.response_object).and_then(WorkloadCounts::parse).map(|c| match w.resource {
                "daemonsets" => c.status.current_number_scheduled.unwrap_or(0),
                _ => c.status.replicas.unwrap_or(0),
            });
    }
    // What the kubelet reports is in its request (at `Request` level, the
    // shipped policy's for kubelets, there is nothing else).
    if pod_status {
        relations.containers = w
            .request_object
            .or(w.response_object)
            .and_then(PodContainersView::parse)
            .map(|(restarts, terminated)| ContainersReport { restarts, terminated });
    }
    // A node's status write: a create carries the whole status, so only the
    // request (the kubelet's patch) says what changed.
    if node_status {
        relations.condition_transition =
            w.request_object.is_some_and(NodeConditionsView::reports_transition) && w.verb != Verb::Create;
    }
    if desiring {
        relations.desired_replicas =
            w.response_object.or(w.request_object).and_then(WorkloadCounts::parse).and_then(|c| c.spec.replicas);
        if w.resource == "replicasets" {
            relations.owner_desired_replicas =
                request_meta.and_then(|m| m.annotation(DESIRED_REPLICAS_ANNOTATION)).and_then(|v| v.parse().ok());
        }
    }
    if !(placed || selecting || endpoints_like) {
        return (relations != Relations::default()).then(|| Box::new(relations));
    }
    // A binding's response is a Status: its target is in the request.
    let object =
        if w.subresource == Some("binding") { w.request_object } else { w.response_object.or(w.request_object) };
    if let Some(view) = object.and_then(RelationView::parse) {
        if placed {
            relations.node_name = view.node_name().map(Into::into);
        }
        if selecting {
            let selector = view.spec.as_ref().and_then(|s| s.selector);
            relations.selector = Some(selector.and_then(pair_fingerprints).unwrap_or_default());
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
    }
    (relations != Relations::default()).then(|| Box::new(relations))
}

/// A mutating request, from whichever audit format it came in.
pub(super) struct WriteInput<'a> {
    pub(super) audit_id: &'a str,
    pub(super) verb: Verb,
    pub(super) api_group: &'a str,
    pub(super) api_version: &'a str,
    pub(super) resource: &'a str,
    pub(super) subresource: Option<&'a str>,
    pub(super) namespace: Option<&'a str>,
    pub(super) name: Option<&'a str>,
    pub(super) uid: Option<&'a str>,
    pub(super) user: &'a str,
    pub(super) user_agent: Option<&'a str>,
    pub(super) status_code: Option<i64>,
    pub(super) status_message: Option<&'a str>,
    pub(super) received: Micros,
    pub(super) completed: Micros,
    pub(super) request_object: Option<&'a RawValue>,
    pub(super) response_object: Option<&'a RawValue>,
    pub(super) dry_run: bool,
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
