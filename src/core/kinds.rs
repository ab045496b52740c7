//! Resource names ↔ kinds, and the OpenTelemetry semantic-convention attribute
//! names for the kinds that have them.

/// The semantic-convention `(name, uid)` attribute keys of a kind, if it has them.
type SemconvKeys = Option<(&'static str, &'static str)>;

/// `(resource, Kind, semconv name and uid attributes)`.
const KINDS: &[(&str, &str, SemconvKeys)] = &[
    ("pods", "Pod", Some(("k8s.pod.name", "k8s.pod.uid"))),
    ("deployments", "Deployment", Some(("k8s.deployment.name", "k8s.deployment.uid"))),
    ("replicasets", "ReplicaSet", Some(("k8s.replicaset.name", "k8s.replicaset.uid"))),
    ("statefulsets", "StatefulSet", Some(("k8s.statefulset.name", "k8s.statefulset.uid"))),
    ("daemonsets", "DaemonSet", Some(("k8s.daemonset.name", "k8s.daemonset.uid"))),
    ("jobs", "Job", Some(("k8s.job.name", "k8s.job.uid"))),
    ("cronjobs", "CronJob", Some(("k8s.cronjob.name", "k8s.cronjob.uid"))),
    ("nodes", "Node", Some(("k8s.node.name", "k8s.node.uid"))),
    ("namespaces", "Namespace", None),
    ("services", "Service", None),
    ("endpoints", "Endpoints", None),
    ("endpointslices", "EndpointSlice", None),
    ("configmaps", "ConfigMap", None),
    ("secrets", "Secret", None),
    ("serviceaccounts", "ServiceAccount", None),
    ("persistentvolumeclaims", "PersistentVolumeClaim", None),
    ("persistentvolumes", "PersistentVolume", None),
    ("horizontalpodautoscalers", "HorizontalPodAutoscaler", None),
    ("controllerrevisions", "ControllerRevision", None),
    ("poddisruptionbudgets", "PodDisruptionBudget", None),
    ("ingresses", "Ingress", None),
    ("networkpolicies", "NetworkPolicy", None),
    ("csinodes", "CSINode", None),
    ("replicationcontrollers", "ReplicationController", None),
    ("events", "Event", None),
    ("leases", "Lease", None),
    ("roles", "Role", None),
    ("rolebindings", "RoleBinding", None),
    ("clusterroles", "ClusterRole", None),
    ("clusterrolebindings", "ClusterRoleBinding", None),
    ("customresourcedefinitions", "CustomResourceDefinition", None),
];

/// Built-in kinds that live outside namespaces: an Event about one still has
/// a namespace of its own (`default`), which is not the object's.
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Node"
            | "Namespace"
            | "PersistentVolume"
            | "StorageClass"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "PriorityClass"
            | "CSINode"
            | "CertificateSigningRequest"
    )
}

pub fn kind_for_resource(resource: &str) -> Option<&'static str> {
    KINDS.iter().find(|(r, _, _)| *r == resource).map(|(_, k, _)| *k)
}

/// The resource (plural, lower case) for a kind: the table, else the API's
/// own pluralisation rule (`-y` → `-ies`, `-s`/`-x`/`-ch`/`-sh` → `-es`).
pub fn resource_for_kind(kind: &str) -> String {
    if let Some((r, _, _)) = KINDS.iter().find(|(_, k, _)| *k == kind) {
        return (*r).to_owned();
    }
    let lower = kind.to_ascii_lowercase();
    if let Some(stem) = lower.strip_suffix('y') {
        format!("{stem}ies")
    } else if lower.ends_with('s') || lower.ends_with('x') || lower.ends_with("ch") || lower.ends_with("sh") {
        format!("{lower}es")
    } else {
        format!("{lower}s")
    }
}

/// Semantic-convention attribute names (`k8s.pod.name`, `k8s.pod.uid`) for a kind.
pub fn semconv_keys(kind: &str) -> Option<(&'static str, &'static str)> {
    KINDS.iter().find(|(_, k, _)| *k == kind).and_then(|(_, _, keys)| *keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_resources_round_trip() {
        assert_eq!(kind_for_resource("replicasets"), Some("ReplicaSet"));
        assert_eq!(resource_for_kind("ReplicaSet"), "replicasets");
        assert_eq!(resource_for_kind("NetworkPolicy"), "networkpolicies");
        assert_eq!(resource_for_kind("Ingress"), "ingresses");
        assert_eq!(resource_for_kind("Widget"), "widgets");
        assert_eq!(semconv_keys("Pod"), Some(("k8s.pod.name", "k8s.pod.uid")));
        assert_eq!(semconv_keys("ConfigMap"), None);
    }
}
