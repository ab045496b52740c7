//! A lazy view of a Kubernetes object inside an audit record: only `kind`,
//! `metadata` and, for `Status` responses, `details`. Everything else in the
//! object (spec, status, managedFields) is skipped by the parser, not copied.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectHead<'a> {
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
    pub fn parse(raw: &'a RawValue) -> Option<Self> {
        serde_json::from_str(raw.get()).ok()
    }

    pub fn is_status(&self) -> bool {
        self.kind.as_deref() == Some("Status")
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub generate_name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uid: Option<Cow<'a, str>>,
    #[serde(default)]
    pub generation: Option<i64>,
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
    /// Whether an annotation key is present, read only when asked for.
    pub fn has_annotation(&self, key: &str) -> bool {
        self.annotations
            .and_then(|raw| {
                serde_json::from_str::<std::collections::HashMap<Cow<'_, str>, &RawValue>>(raw.get())
                    .ok()
            })
            .is_some_and(|map| map.contains_key(key))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerReference<'a> {
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
pub struct StatusDetails<'a> {
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uid: Option<Cow<'a, str>>,
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
}
