//! Objects beside the Events: a `kubectl get pods,rs,deploy -A -o json` dump,
//! a must-gather's object files, or what `--watch-owners` recorded. Only
//! their metadata matters: which object (kind, namespace, name, UID) and its
//! controller owner, the owner chains the Events-only linker follows when no
//! Event announced an object.

use serde_json::value::RawValue;

use super::views::object::ObjectHead;
use crate::core::ids::Uid;
use crate::core::kinds;
use crate::core::record::{ObservedObject, Owner};

/// The object's identity and controller owner; `None` when it lacks a kind,
/// name or UID (a `Status`, an object written without its server fields).
/// `implied_kind` is the kind a typed list (`PodList`) gives its items.
pub(super) fn observed(raw: &RawValue, implied_kind: Option<&str>) -> Option<ObservedObject> {
    let head = ObjectHead::parse(raw)?;
    let kind = head.kind.as_deref().filter(|k| !k.is_empty()).or(implied_kind)?;
    let meta = head.metadata?;
    let name = meta.name.as_deref().filter(|n| !n.is_empty())?;
    let uid = meta.uid.as_deref().filter(|u| !u.is_empty())?;
    let controller_owner =
        meta.owner_references.iter().flatten().find(|o| o.controller == Some(true) && !o.uid.is_empty()).map(|o| {
            Owner {
                kind: o.kind.as_ref().into(),
                name: o.name.as_ref().into(),
                uid: Uid::from_text(&o.uid),
                controller: true,
            }
        });
    Some(ObservedObject {
        uid: uid.into(),
        resource: kinds::resource_for_kind(kind).into(),
        kind: Some(kind.into()),
        namespace: meta.namespace.as_deref().unwrap_or("").into(),
        name: name.into(),
        controller_owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(text: &str, implied_kind: Option<&str>) -> Option<ObservedObject> {
        super::observed(serde_json::from_str(text).unwrap(), implied_kind)
    }

    #[test]
    fn a_dumped_pod_names_its_controller_owner() {
        let pod = r#"{"metadata": {"name": "web-1-abcde", "namespace": "prod", "uid": "u-pod",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "not-the-controller", "uid": "u-cm"},
                {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u-rs", "controller": true}]},
            "spec": {}}"#;
        let o = observed(pod, Some("Pod")).expect("a PodList item without its own kind");
        assert_eq!((&*o.uid, &*o.resource, &*o.namespace, &*o.name), ("u-pod", "pods", "prod", "web-1-abcde"));
        let owner = o.controller_owner.expect("the controller reference, not the first one");
        assert_eq!((&*owner.kind, &*owner.name, owner.uid), ("ReplicaSet", "web-1", Uid::from_text("u-rs")));
        // An owner (a Deployment) has none, written as null or left out.
        let top = observed(
            r#"{"kind": "Deployment", "metadata": {"name": "web", "uid": "u", "ownerReferences": null}}"#,
            None,
        );
        assert!(top.expect("an object without owners").controller_owner.is_none());
        // Without a UID or a kind there is nothing to join on.
        assert!(observed(r#"{"kind": "Pod", "metadata": {"name": "x"}}"#, None).is_none());
        assert!(observed(r#"{"metadata": {"name": "x", "uid": "u"}}"#, None).is_none());
    }
}
