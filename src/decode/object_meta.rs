//! Objects beside the Events: a `kubectl get pods,rs,deploy -A -o json` dump,
//! a must-gather's object files, or what `--watch-owners` recorded. Only
//! their metadata matters: which object (kind, namespace, name, UID) and its
//! controller owner, the owner chains the Events-only linker follows when no
//! Event announced an object.

use serde::Deserialize;

use crate::core::ids::Uid;
use crate::core::kinds;
use crate::core::record::{ObservedObject, Owner};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Object<'a> {
    #[serde(borrow, default)]
    kind: Option<&'a str>,
    #[serde(default)]
    metadata: Option<Metadata<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    #[serde(borrow, default)]
    name: Option<&'a str>,
    #[serde(borrow, default)]
    namespace: Option<&'a str>,
    #[serde(borrow, default)]
    uid: Option<&'a str>,
    #[serde(borrow, default)]
    owner_references: Option<Vec<OwnerReference<'a>>>,
}

#[derive(Deserialize)]
struct OwnerReference<'a> {
    #[serde(borrow)]
    kind: &'a str,
    #[serde(borrow)]
    name: &'a str,
    #[serde(borrow)]
    uid: &'a str,
    #[serde(default)]
    controller: Option<bool>,
}

/// The object's identity and controller owner; `None` when it lacks a kind,
/// name or UID (a `Status`, an object written without its server fields).
/// `implied_kind` is the kind a typed list (`PodList`) gives its items.
pub(super) fn observed(text: &str, implied_kind: Option<&str>) -> Option<ObservedObject> {
    let object: Object = serde_json::from_str(text).ok()?;
    let kind = object.kind.filter(|k| !k.is_empty()).or(implied_kind)?;
    let meta = object.metadata?;
    let (name, uid) = (meta.name.filter(|n| !n.is_empty())?, meta.uid.filter(|u| !u.is_empty())?);
    let controller_owner = meta.owner_references.iter().flatten().find(|o| o.controller == Some(true)).map(|o| Owner {
        kind: o.kind.into(),
        name: o.name.into(),
        uid: Uid::from_text(o.uid),
        controller: true,
    });
    Some(ObservedObject {
        uid: uid.into(),
        resource: kinds::resource_for_kind(kind).into(),
        kind: Some(kind.into()),
        namespace: meta.namespace.unwrap_or("").into(),
        name: name.into(),
        controller_owner,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
