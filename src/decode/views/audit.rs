//! `audit.k8s.io/v1` (and `v1beta1`) `Event`, borrowed from the input buffer.
//!
//! Strings are `Cow` so that escaped JSON strings still parse; request and
//! response objects stay raw until the linker asks for a field.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEvent<'a> {
    // Never read, but typed: a mistyped value rejects the record, as it always has.
    #[allow(dead_code)]
    #[serde(borrow, default)]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow, rename = "auditID")]
    pub audit_id: Cow<'a, str>,
    #[serde(borrow)]
    pub stage: Cow<'a, str>,
    #[serde(borrow, default, rename = "requestURI")]
    pub request_uri: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub verb: Cow<'a, str>,
    #[serde(borrow, default)]
    pub user: UserInfo<'a>,
    #[serde(borrow, default)]
    pub impersonated_user: Option<UserInfo<'a>>,
    #[serde(borrow, default)]
    pub user_agent: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub object_ref: Option<ObjectReference<'a>>,
    #[serde(borrow, default)]
    pub response_status: Option<ResponseStatus<'a>>,
    #[serde(borrow, default)]
    pub request_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub response_object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    pub request_received_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub stage_timestamp: Option<Cow<'a, str>>,
    /// `audit.k8s.io/v1beta1` before Kubernetes 1.8 had one `timestamp` instead
    /// of `requestReceivedTimestamp`/`stageTimestamp`.
    #[serde(borrow, default)]
    pub timestamp: Option<Cow<'a, str>>,
}

impl AuditEvent<'_> {
    /// The user the request acted as: the impersonated user when there is one.
    pub(crate) fn effective_user(&self) -> &str {
        match &self.impersonated_user {
            Some(u) if !u.username.is_empty() => &u.username,
            _ => &self.user.username,
        }
    }

    /// `dryRun=All` in the request URI: the write was validated, never persisted.
    pub(crate) fn is_dry_run(&self) -> bool {
        self.request_uri
            .as_deref()
            .and_then(|uri| uri.split_once('?'))
            .is_some_and(|(_, query)| query.split('&').any(|kv| kv == "dryRun=All"))
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct UserInfo<'a> {
    #[serde(borrow, default)]
    pub username: Cow<'a, str>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectReference<'a> {
    #[serde(borrow, default)]
    pub resource: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub api_group: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub subresource: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ResponseStatus<'a> {
    #[serde(default)]
    pub code: Option<i64>,
    #[serde(borrow, default)]
    pub message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub reason: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_captured_record_borrowed() {
        let text = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"RequestResponse","auditID":"4ca7c592-5ef6-4d6b-aaff-952f630775d3","stage":"ResponseComplete","requestURI":"/apis/apps/v1/namespaces/default/deployments?fieldManager=kubectl-client-side-apply","verb":"create","user":{"username":"admin","groups":["system:masters"]},"objectRef":{"resource":"deployments","namespace":"default","name":"web","apiGroup":"apps","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":201},"requestObject":{"kind":"Deployment"},"responseObject":null,"requestReceivedTimestamp":"2026-11-21T22:17:46.433036Z","stageTimestamp":"2026-11-21T22:17:46.439875Z"}"#;
        let ev: AuditEvent = serde_json::from_str(text).unwrap();
        assert_eq!(ev.verb, "create");
        assert!(matches!(ev.audit_id, Cow::Borrowed(_)));
        assert_eq!(ev.object_ref.as_ref().unwrap().name.as_deref(), Some("web"));
        assert!(!ev.is_dry_run());
        assert!(ev.request_object.is_some());
        assert!(ev.response_object.is_none(), "null object reads as absent");
        assert_eq!(ev.response_status.unwrap().code, Some(201));
    }

    #[test]
    fn dry_run_is_read_from_the_query() {
        let text = r#"{"auditID":"a","stage":"ResponseComplete","verb":"create","requestURI":"/api/v1/namespaces/x/pods?dryRun=All&fieldManager=kubectl"}"#;
        let ev: AuditEvent = serde_json::from_str(text).unwrap();
        assert!(ev.is_dry_run());
    }
}
