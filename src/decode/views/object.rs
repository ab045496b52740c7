//! A lazy view of a Kubernetes object inside an audit record: only `kind`,
//! `metadata` and, for `Status` responses, `details`. Everything else in the
//! object (spec, status, managedFields) is skipped by the parser, not copied.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectHead<'a> {
    #[serde(borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub metadata: Option<ObjectMeta<'a>>,
    /// Present when the object is a `meta/v1 Status`, e.g. the response to a
    /// delete of a Deployment, ReplicaSet or Node: the UID is in `details.uid`.
    #[serde(borrow, default)]
    pub details: Option<StatusDetails<'a>>,
}

impl<'a> ObjectHead<'a> {
    /// Parses the head of a raw object. A malformed object yields `None`; the
    /// caller decides whether that is an error (it is not, for partial patches).
    pub(crate) fn parse(raw: &'a RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }

    pub(crate) fn is_status(&self) -> bool {
        self.kind.as_deref() == Some("Status")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectMeta<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    // Never read, but typed: a mistyped value rejects the record, as it always has.
    #[allow(dead_code)]
    #[serde(borrow, default)]
    pub generate_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uid: Option<Cow<'a, str>>,
    #[serde(default)]
    pub generation: Option<i64>,
    #[serde(borrow, default)]
    pub resource_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub creation_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub deletion_timestamp: Option<Cow<'a, str>>,
    #[serde(default)]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(borrow, default)]
    pub finalizers: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default)]
    pub owner_references: Option<Vec<OwnerReference<'a>>>,
    #[serde(borrow, default)]
    pub labels: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub annotations: Option<&'a RawValue>,
}

impl ObjectMeta<'_> {
    /// A label's value, read only when asked for.
    pub(crate) fn label(&self, key: &str) -> Option<String> {
        string_map_value(self.labels?, key)
    }

    /// An annotation's value, read only when asked for.
    pub(crate) fn annotation(&self, key: &str) -> Option<String> {
        string_map_value(self.annotations?, key)
    }

    /// The first of `keys` the annotations hold, with its value: one parse of
    /// the map for all of them.
    pub(crate) fn first_annotation(&self, keys: &[&'static str]) -> Option<(&'static str, String)> {
        let raw = self.annotations?.get();
        // Every write of an annotated object comes here (last-applied
        // configurations included): a scan for the keys is much cheaper than
        // parsing the map, and almost always finds none.
        if !keys.iter().any(|k| raw.contains(k)) {
            return None;
        }
        let map: std::collections::HashMap<Cow<'_, str>, Cow<'_, str>> = serde_json::from_str(raw).ok()?;
        keys.iter().find_map(|k| map.get(*k).map(|v| (*k, v.to_string())))
    }

    /// Whether an annotation key is present, read only when asked for.
    pub(crate) fn has_annotation(&self, key: &str) -> bool {
        self.annotations
            .and_then(|raw| serde_json::from_str::<std::collections::HashMap<Cow<'_, str>, &RawValue>>(raw.get()).ok())
            .is_some_and(|map| map.contains_key(key))
    }
}

/// One value of a flat string map (`metadata.labels`, `metadata.annotations`).
fn string_map_value(raw: &RawValue, key: &str) -> Option<String> {
    let map: std::collections::HashMap<Cow<'_, str>, Cow<'_, str>> = serde_json::from_str(raw.get()).ok()?;
    map.get(key).map(|v| v.to_string())
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OwnerReference<'a> {
    // Never read, but typed: a mistyped value rejects the record, as it always has.
    #[allow(dead_code)]
    #[serde(borrow, default)]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub kind: Cow<'a, str>,
    #[serde(borrow, default)]
    pub name: Cow<'a, str>,
    #[serde(borrow, default)]
    pub uid: Cow<'a, str>,
    #[serde(default)]
    pub controller: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct StatusDetails<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uid: Option<Cow<'a, str>>,
}

/// The parts of an object that name related objects other than by
/// ownerReferences: a pod's node, a binding's target, and the pods an
/// Endpoints or EndpointSlice lists. Parsed only for those resources.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct RelationView<'a> {
    #[serde(borrow, default)]
    pub spec: Option<PodSpecView<'a>>,
    /// A `Binding`'s target node.
    #[serde(borrow, default)]
    pub target: Option<NamedRef<'a>>,
    /// `core/v1 Endpoints`.
    #[serde(borrow, default)]
    pub subsets: Option<Vec<EndpointSubsetView<'a>>>,
    /// `discovery.k8s.io EndpointSlice`.
    #[serde(borrow, default)]
    pub endpoints: Option<Vec<SliceEndpointView<'a>>>,
}

/// Only a workload's status counts: parsed for its status writes alone.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WorkloadCounts {
    #[serde(default)]
    pub spec: WorkloadSpecView,
    #[serde(default)]
    pub status: WorkloadStatusView,
}

/// The desired count of a workload (or of a `Scale`).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WorkloadSpecView {
    #[serde(default)]
    pub replicas: Option<i64>,
}

impl WorkloadCounts {
    pub(crate) fn parse(raw: &RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }
}

/// The count of children a workload's status reports.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkloadStatusView {
    #[serde(default)]
    pub replicas: Option<i64>,
    /// A DaemonSet's: nodes that run a daemon pod.
    #[serde(default)]
    pub current_number_scheduled: Option<i64>,
}

/// A pod's containers as a status write reports them: parsed only for pod
/// status writes (a kubelet's patch carries `containerStatuses` whenever a
/// container changed).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PodContainersView {
    #[serde(default)]
    status: PodContainersStatus,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodContainersStatus {
    #[serde(default)]
    container_statuses: Option<Vec<ContainerStatusView>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerStatusView {
    #[serde(default)]
    restart_count: i64,
    #[serde(default)]
    state: ContainerStateView,
}

#[derive(Debug, Default, Deserialize)]
struct ContainerStateView {
    #[serde(default)]
    terminated: Option<serde::de::IgnoredAny>,
}

impl PodContainersView {
    /// `(restarts of all containers, whether one is reported terminated)`,
    /// when the write reports the containers at all.
    pub(crate) fn parse(raw: &RawValue) -> Option<(i64, bool)> {
        // Most kubelet patches report conditions or the phase alone: a byte
        // search skips the parse for them (it cost 5 % of decoding a
        // kubelet's stream when every patch was parsed).
        memchr::memmem::find(raw.get().as_bytes(), b"\"containerStatuses\"")?;
        let view: PodContainersView = serde_json::from_str(raw.get()).ok()?;
        let containers = view.status.container_statuses?;
        let restarts = containers.iter().map(|c| c.restart_count.max(0)).sum();
        Some((restarts, containers.iter().any(|c| c.state.terminated.is_some())))
    }
}

/// A node status write's conditions: parsed only for node status writes.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct NodeConditionsView {
    #[serde(default)]
    status: NodeConditionsStatus,
}

#[derive(Debug, Default, Deserialize)]
struct NodeConditionsStatus {
    #[serde(default)]
    conditions: Option<Vec<NodeConditionView>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NodeConditionView {
    #[serde(default)]
    last_transition_time: Option<serde::de::IgnoredAny>,
}

impl NodeConditionsView {
    /// Whether the write reports a condition's transition: the kubelet sends
    /// `lastTransitionTime` only for a condition whose status changed (a
    /// heartbeat sends `lastHeartbeatTime` alone).
    pub(crate) fn reports_transition(raw: &RawValue) -> bool {
        // A heartbeat carries no `lastTransitionTime` at all: no parse for it.
        memchr::memmem::find(raw.get().as_bytes(), b"\"lastTransitionTime\"").is_some()
            && serde_json::from_str::<NodeConditionsView>(raw.get())
                .ok()
                .and_then(|v| v.status.conditions)
                .is_some_and(|c| c.iter().any(|c| c.last_transition_time.is_some()))
    }
}

/// A flat string map (`metadata.labels`, a Service's `spec.selector`) as
/// sorted fingerprints of its pairs; `None` when it is not such a map.
pub(crate) fn pair_fingerprints(raw: &RawValue) -> Option<Vec<u64>> {
    let map: std::collections::HashMap<Cow<'_, str>, Cow<'_, str>> = serde_json::from_str(raw.get()).ok()?;
    let mut pairs: Vec<u64> = map.iter().map(|(k, v)| crate::core::record::label_pair(k, v)).collect();
    pairs.sort_unstable();
    pairs.dedup();
    Some(pairs)
}

impl<'a> RelationView<'a> {
    pub(crate) fn parse(raw: &'a RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }

    /// The node the object is placed on: `spec.nodeName`, else the node a
    /// DaemonSet pins its pod to (a required node-affinity term matching the
    /// field `metadata.name`), else a binding's target.
    pub(crate) fn node_name(&self) -> Option<&str> {
        let spec = self.spec.as_ref();
        spec.and_then(|s| s.node_name.as_deref())
            .filter(|n| !n.is_empty())
            .or_else(|| spec.and_then(PodSpecView::affinity_node))
            .or_else(|| self.target.as_ref().and_then(|t| t.name.as_deref()).filter(|n| !n.is_empty()))
    }

    /// The pods listed with what the endpoint controllers publish about each
    /// (addresses and readiness), as `(pod UID text, fingerprint input)`.
    /// `None` when the object is neither an Endpoints nor an EndpointSlice.
    pub(crate) fn endpoint_members(&self) -> Option<Vec<(&str, String)>> {
        if self.subsets.is_none() && self.endpoints.is_none() {
            return None;
        }
        let mut members = Vec::new();
        for subset in self.subsets.iter().flatten() {
            for (ready, addresses) in [(true, &subset.addresses), (false, &subset.not_ready_addresses)] {
                for a in addresses.iter().flatten() {
                    if let Some(uid) = a.target_ref.as_ref().and_then(|t| t.uid.as_deref()).filter(|u| !u.is_empty()) {
                        members.push((uid, format!("{ready}/{}", a.ip.as_deref().unwrap_or(""))));
                    }
                }
            }
        }
        for e in self.endpoints.iter().flatten() {
            if let Some(uid) = e.target_ref.as_ref().and_then(|t| t.uid.as_deref()).filter(|u| !u.is_empty()) {
                let ready = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                let addresses: Vec<&str> = e.addresses.iter().flatten().map(|a| a.as_ref()).collect();
                members.push((uid, format!("{ready}/{}", addresses.join(","))));
            }
        }
        Some(members)
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSpecView<'a> {
    #[serde(borrow, default)]
    pub node_name: Option<Cow<'a, str>>,
    /// A Service's selector (a flat map; workloads' `{matchLabels}` are not read).
    #[serde(borrow, default)]
    pub selector: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub affinity: Option<AffinityView<'a>>,
}

impl PodSpecView<'_> {
    fn affinity_node(&self) -> Option<&str> {
        let required = self
            .affinity
            .as_ref()?
            .node_affinity
            .as_ref()?
            .required_during_scheduling_ignored_during_execution
            .as_ref()?;
        required.node_selector_terms.iter().flatten().flat_map(|t| t.match_fields.iter().flatten()).find_map(|f| {
            let pinned = f.key.as_deref() == Some("metadata.name") && f.operator.as_deref() == Some("In");
            match f.values.as_deref() {
                Some([one]) if pinned => Some(one.as_ref()),
                _ => None,
            }
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AffinityView<'a> {
    #[serde(borrow, default)]
    pub node_affinity: Option<NodeAffinityView<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeAffinityView<'a> {
    #[serde(borrow, default)]
    pub required_during_scheduling_ignored_during_execution: Option<NodeSelectorView<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeSelectorView<'a> {
    #[serde(borrow, default)]
    pub node_selector_terms: Option<Vec<NodeSelectorTermView<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeSelectorTermView<'a> {
    #[serde(borrow, default)]
    pub match_fields: Option<Vec<SelectorRequirementView<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SelectorRequirementView<'a> {
    #[serde(borrow, default)]
    pub key: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub operator: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub values: Option<Vec<Cow<'a, str>>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NamedRef<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uid: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointSubsetView<'a> {
    #[serde(borrow, default)]
    pub addresses: Option<Vec<EndpointAddressView<'a>>>,
    #[serde(borrow, default)]
    pub not_ready_addresses: Option<Vec<EndpointAddressView<'a>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EndpointAddressView<'a> {
    #[serde(borrow, default)]
    pub ip: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub target_ref: Option<NamedRef<'a>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SliceEndpointView<'a> {
    #[serde(borrow, default)]
    pub addresses: Option<Vec<Cow<'a, str>>>,
    #[serde(default)]
    pub conditions: Option<SliceConditionsView>,
    #[serde(borrow, default)]
    pub target_ref: Option<NamedRef<'a>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SliceConditionsView {
    #[serde(default)]
    pub ready: Option<bool>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_metadata_and_skips_the_rest() {
        let raw: &RawValue = serde_json::from_str(
            r#"{"kind":"Pod","metadata":{"name":"web-1","generateName":"web-","uid":"bb758515-5602-45da-b0f1-94a460661126","ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web","uid":"a1a46cc1-b2f2-4a0c-a1f8-dfaf88c8132c","controller":true}],"annotations":{"x":"y"}},"spec":{"containers":[{"name":"c"}]}}"#,
        )
        .unwrap();
        let head = ObjectHead::parse(raw).unwrap();
        let meta = head.metadata.unwrap();
        assert_eq!(meta.owner_references.as_ref().unwrap()[0].kind, "ReplicaSet");
        assert!(meta.has_annotation("x"));
        assert!(!meta.has_annotation("z"));
    }

    /// The kubelet's patches, as recorded (tests/fixtures/e2e/kubelet-crash-loop, kubelet-node).
    #[test]
    fn reads_what_the_kubelet_reports_of_containers_and_conditions() {
        let raw = |s: &'static str| -> &'static RawValue { serde_json::from_str(s).unwrap() };
        let crashed = raw(
            r#"{"metadata":{"uid":"u"},"status":{"containerStatuses":[{"name":"main","ready":false,"restartCount":1,"lastState":{"terminated":{"exitCode":3}},"state":{"terminated":{"exitCode":3,"reason":"Error"}}},{"name":"side","restartCount":2,"state":{"running":{}}}]}}"#,
        );
        assert_eq!(PodContainersView::parse(crashed), Some((3, true)));
        let waiting = raw(
            r#"{"status":{"containerStatuses":[{"restartCount":1,"lastState":{"terminated":{}},"state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}"#,
        );
        assert_eq!(PodContainersView::parse(waiting), Some((1, false)), "a past termination is not a new failure");
        assert_eq!(PodContainersView::parse(raw(r#"{"status":{"phase":"Running"}}"#)), None, "no containers reported");
        let ready = raw(
            r#"{"status":{"conditions":[{"lastHeartbeatTime":"2026-12-07T18:23:45Z","type":"MemoryPressure"},{"lastHeartbeatTime":"2026-12-07T18:23:45Z","lastTransitionTime":"2026-12-07T18:23:45Z","status":"True","type":"Ready"}]}}"#,
        );
        assert!(NodeConditionsView::reports_transition(ready));
        let heartbeat =
            raw(r#"{"status":{"conditions":[{"lastHeartbeatTime":"2026-12-07T18:23:55Z","type":"Ready"}]}}"#);
        assert!(!NodeConditionsView::reports_transition(heartbeat));
        assert!(!NodeConditionsView::reports_transition(raw("{}")));
    }

    #[test]
    fn reads_uid_from_a_delete_status() {
        let raw: &RawValue = serde_json::from_str(
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"web","group":"apps","kind":"deployments","uid":"2fb028b3-cf59-4505-afd6-c66d1ac6964d"}}"#,
        )
        .unwrap();
        let head = ObjectHead::parse(raw).unwrap();
        assert!(head.is_status());
        assert_eq!(head.details.unwrap().uid.as_deref(), Some("2fb028b3-cf59-4505-afd6-c66d1ac6964d"));
    }

    #[test]
    fn reads_a_daemonset_pods_node_from_its_affinity() {
        let raw: &RawValue = serde_json::from_str(
            r#"{"kind":"Pod","metadata":{"name":"agent-x"},"spec":{"containers":[{"name":"c"}],"affinity":{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchFields":[{"key":"metadata.name","operator":"In","values":["node-c"]}]}]}}}}}"#,
        )
        .unwrap();
        assert_eq!(RelationView::parse(raw).unwrap().node_name(), Some("node-c"));
        let bound: &RawValue = serde_json::from_str(r#"{"kind":"Pod","spec":{"nodeName":"node-a"}}"#).unwrap();
        assert_eq!(RelationView::parse(bound).unwrap().node_name(), Some("node-a"));
        let binding: &RawValue = serde_json::from_str(
            r#"{"kind":"Binding","metadata":{"name":"p"},"target":{"kind":"Node","name":"node-b"}}"#,
        )
        .unwrap();
        assert_eq!(RelationView::parse(binding).unwrap().node_name(), Some("node-b"));
        let unplaced: &RawValue = serde_json::from_str(r#"{"kind":"Pod","spec":{"containers":[]}}"#).unwrap();
        assert_eq!(RelationView::parse(unplaced).unwrap().node_name(), None);
    }

    #[test]
    fn reads_the_pods_endpoints_list() {
        let endpoints: &RawValue = serde_json::from_str(
            r#"{"kind":"Endpoints","subsets":[{"addresses":[{"ip":"10.0.0.1","targetRef":{"kind":"Pod","uid":"u1"}}],"notReadyAddresses":[{"ip":"10.0.0.2","targetRef":{"kind":"Pod","uid":"u2"}}],"ports":[{"port":80}]}]}"#,
        )
        .unwrap();
        let view = RelationView::parse(endpoints).unwrap();
        let members = view.endpoint_members().unwrap();
        assert_eq!(members, vec![("u1", "true/10.0.0.1".to_owned()), ("u2", "false/10.0.0.2".to_owned())]);
        let slice: &RawValue = serde_json::from_str(
            r#"{"kind":"EndpointSlice","metadata":{"labels":{"kubernetes.io/service-name":"web"}},"endpoints":[{"addresses":["10.0.0.1"],"conditions":{"ready":false},"targetRef":{"kind":"Pod","uid":"u1"}}]}"#,
        )
        .unwrap();
        assert_eq!(
            RelationView::parse(slice).unwrap().endpoint_members().unwrap(),
            vec![("u1", "false/10.0.0.1".to_owned())]
        );
        let empty_slice: &RawValue = serde_json::from_str(r#"{"kind":"EndpointSlice","endpoints":null}"#).unwrap();
        assert_eq!(
            RelationView::parse(empty_slice).unwrap().endpoint_members(),
            None,
            "no list: the decoder reads it as empty"
        );
        let pod: &RawValue = serde_json::from_str(r#"{"kind":"Pod"}"#).unwrap();
        assert_eq!(RelationView::parse(pod).unwrap().endpoint_members(), None);
        let head = ObjectHead::parse(slice).unwrap();
        assert_eq!(head.metadata.unwrap().label("kubernetes.io/service-name").as_deref(), Some("web"));
    }
}
