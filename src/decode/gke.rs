//! The GKE shape: a Google Cloud Audit Logs `LogEntry`, whose `protoPayload`
//! holds the Kubernetes request (`methodName`, `resourceName`, `request`,
//! `response`) with gRPC status codes.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::normalize::WriteInput;
use super::outcome::BadReason;
use super::shape::Decoder;
use crate::core::record::Verb;
use crate::core::time::parse_rfc3339_micros;

impl Decoder<'_, '_> {
    /// Google Cloud Audit Logs `LogEntry` for GKE: the Kubernetes request is in
    /// `protoPayload` (`methodName`, `resourceName`, `request`, `response`).
    pub(super) fn gke_entry(&mut self, entry: &RawValue, payload: &RawValue, line: usize) {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Entry<'a> {
            #[serde(borrow, default)]
            insert_id: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            timestamp: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            operation: Option<Operation<'a>>,
        }
        #[derive(Deserialize)]
        struct Operation<'a> {
            #[serde(borrow, default)]
            id: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Payload<'a> {
            #[serde(borrow, default)]
            method_name: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            resource_name: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            authentication_info: Option<AuthInfo<'a>>,
            #[serde(borrow, default)]
            request_metadata: Option<RequestMetadata<'a>>,
            #[serde(borrow, default)]
            status: Option<GrpcStatus<'a>>,
            #[serde(borrow, default)]
            request: Option<&'a RawValue>,
            #[serde(borrow, default)]
            response: Option<&'a RawValue>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct AuthInfo<'a> {
            #[serde(borrow, default)]
            principal_email: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct RequestMetadata<'a> {
            #[serde(borrow, default)]
            caller_supplied_user_agent: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct GrpcStatus<'a> {
            #[serde(default)]
            code: Option<i64>,
            #[serde(borrow, default)]
            message: Option<Cow<'a, str>>,
        }
        self.out.stats.audit_events += 1;
        let (entry, payload): (Entry, Payload) =
            match (serde_json::from_str(entry.get()), serde_json::from_str(payload.get())) {
                (Ok(e), Ok(p)) => (e, p),
                (Err(e), _) | (_, Err(e)) => {
                    self.out.reject(BadReason::InvalidWrapper, line, format!("GKE LogEntry: {e}"));
                    return;
                }
            };
        let Some(method) = payload.method_name.as_deref() else {
            self.out.reject(BadReason::InvalidWrapper, line, "GKE LogEntry without protoPayload.methodName");
            return;
        };
        let Some(verb) = method.rsplit('.').next().and_then(Verb::parse) else {
            self.out.skip("read");
            return;
        };
        let Some(path) = payload.resource_name.as_deref().and_then(GkeResourceName::parse) else {
            self.out.reject(BadReason::InvalidWrapper, line, format!("GKE resourceName not understood for {method}"));
            return;
        };
        let Some(time) = entry.timestamp.as_deref().and_then(parse_rfc3339_micros) else {
            self.out.reject(BadReason::InvalidTimestamp, line, "GKE LogEntry timestamp missing or not RFC 3339");
            return;
        };
        let audit_id = entry.operation.as_ref().and_then(|o| o.id.as_deref()).or(entry.insert_id.as_deref());
        let Some(audit_id) = audit_id else {
            self.out.reject(BadReason::InvalidWrapper, line, "GKE LogEntry without operation.id or insertId");
            return;
        };
        let grpc = payload.status.as_ref().and_then(|s| s.code).unwrap_or(0);
        let write = WriteInput {
            audit_id,
            verb,
            api_group: path.group,
            api_version: path.version,
            resource: path.resource,
            subresource: path.subresource,
            namespace: path.namespace,
            name: path.name,
            uid: None,
            user: payload.authentication_info.as_ref().and_then(|a| a.principal_email.as_deref()).unwrap_or(""),
            user_agent: payload.request_metadata.as_ref().and_then(|m| m.caller_supplied_user_agent.as_deref()),
            status_code: Some(http_status_for_grpc(grpc, verb)),
            status_message: payload.status.as_ref().and_then(|s| s.message.as_deref()).filter(|m| !m.is_empty()),
            received: time,
            completed: time,
            request_object: payload.request,
            response_object: payload.response,
            dry_run: false,
        };
        self.write(write, line);
    }
}

/// `core/v1/namespaces/NS/pods/NAME[/SUB]`, `apps/v1/namespaces/NS/deployments/NAME`,
/// `core/v1/nodes/NAME`, `rbac.authorization.k8s.io/v1/clusterroles/NAME`.
struct GkeResourceName<'a> {
    group: &'a str,
    version: &'a str,
    namespace: Option<&'a str>,
    resource: &'a str,
    name: Option<&'a str>,
    subresource: Option<&'a str>,
}

impl<'a> GkeResourceName<'a> {
    fn parse(path: &'a str) -> Option<Self> {
        let segments: Vec<&str> = path.split('/').collect();
        let (group, version) = (*segments.first()?, *segments.get(1)?);
        let group = if group == "core" { "" } else { group };
        let rest = &segments[2..];
        let (namespace, rest) = match rest {
            ["namespaces", ns, resource, tail @ ..] => (Some(*ns), [&[*resource][..], tail].concat()),
            _ => (None, rest.to_vec()),
        };
        Some(GkeResourceName {
            group,
            version,
            namespace,
            resource: rest.first().copied().filter(|r| !r.is_empty())?,
            name: rest.get(1).copied(),
            subresource: rest.get(2).copied(),
        })
    }
}

/// gRPC status codes as the HTTP codes the apiserver would have answered.
fn http_status_for_grpc(code: i64, verb: Verb) -> i64 {
    match code {
        0 if verb == Verb::Create => 201,
        0 => 200,
        3 | 9 | 11 => 400,
        5 => 404,
        6 | 10 => 409,
        7 => 403,
        8 => 429,
        16 => 401,
        4 => 504,
        _ => 500,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{BadReason, DecodeOptions, decode};

    #[test]
    fn resource_names_split_into_group_version_namespace_resource_name_and_subresource() {
        let pod = GkeResourceName::parse("core/v1/namespaces/default/pods/web-1/binding").unwrap();
        assert_eq!(
            (pod.group, pod.version, pod.namespace, pod.resource, pod.name, pod.subresource),
            ("", "v1", Some("default"), "pods", Some("web-1"), Some("binding"))
        );
        let node = GkeResourceName::parse("core/v1/nodes/gke-node-1").unwrap();
        assert_eq!((node.namespace, node.resource, node.name), (None, "nodes", Some("gke-node-1")));
        let role = GkeResourceName::parse("rbac.authorization.k8s.io/v1/clusterroles/admin").unwrap();
        assert_eq!((role.group, role.resource), ("rbac.authorization.k8s.io", "clusterroles"));
        let collection = GkeResourceName::parse("apps/v1/namespaces/prod/deployments").unwrap();
        assert_eq!((collection.resource, collection.name), ("deployments", None));
        assert!(GkeResourceName::parse("core").is_none());
        assert!(GkeResourceName::parse("core/v1/").is_none());
    }

    #[test]
    fn grpc_codes_become_the_http_status_the_apiserver_answered() {
        assert_eq!(http_status_for_grpc(0, Verb::Create), 201);
        assert_eq!(http_status_for_grpc(0, Verb::Patch), 200);
        assert_eq!(http_status_for_grpc(5, Verb::Delete), 404);
        assert_eq!(http_status_for_grpc(6, Verb::Create), 409);
        assert_eq!(http_status_for_grpc(7, Verb::Update), 403);
        assert_eq!(http_status_for_grpc(13, Verb::Update), 500);
    }

    fn entry(method: &str, resource: &str) -> String {
        serde_json::json!({
            "insertId": "abc123",
            "timestamp": "2026-11-21T22:17:46.161151Z",
            "operation": {"id": "2f0c8a54-7e1b-4b8e-9b3e-8f7c1d2e3a4b", "first": true, "last": true},
            "protoPayload": {
                "@type": "type.googleapis.com/google.cloud.audit.AuditLog",
                "methodName": method,
                "resourceName": resource,
                "authenticationInfo": {"principalEmail": "dev@example.com"},
                "requestMetadata": {"callerSuppliedUserAgent": "kubectl/v1.29.0"},
                "status": {"code": 6, "message": "deployments.apps \"web\" already exists"},
                "request": {"kind": "Deployment", "metadata": {"name": "web", "namespace": "default"}}
            }
        })
        .to_string()
    }

    #[test]
    fn a_log_entry_becomes_a_write_with_the_operation_id_user_and_status() {
        let text = entry("io.k8s.apps.v1.deployments.create", "apps/v1/namespaces/default/deployments/web");
        let decoded = decode(text.as_bytes(), &DecodeOptions::default());
        assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
        let [crate::core::Record::Write(w)] = &decoded.records[..] else { panic!("{:?}", decoded.records) };
        assert_eq!(&*w.audit_id, "2f0c8a54-7e1b-4b8e-9b3e-8f7c1d2e3a4b");
        assert_eq!((w.verb, &*w.api_group, &*w.resource), (Verb::Create, "apps", "deployments"));
        assert_eq!((w.namespace.as_deref(), w.name.as_deref()), (Some("default"), Some("web")));
        assert_eq!((&*w.user, w.user_agent.as_deref()), ("dev@example.com", Some("kubectl/v1.29.0")));
        assert_eq!(w.status_code, 409);
        assert_eq!(w.status_message.as_deref(), Some("deployments.apps \"web\" already exists"));
        assert_eq!(w.kind.as_deref(), Some("Deployment"));
    }

    #[test]
    fn reads_are_skipped_and_unreadable_entries_rejected() {
        let read = entry("io.k8s.core.v1.pods.get", "core/v1/namespaces/default/pods/web-1");
        let decoded = decode(read.as_bytes(), &DecodeOptions::default());
        assert_eq!((decoded.records.len(), decoded.stats.skipped.get("read")), (0, Some(&1)));

        let no_method = r#"{"protoPayload": {"resourceName": "core/v1/nodes/a"}, "timestamp": "2026-11-21T22:17:46Z"}"#;
        let decoded = decode(no_method.as_bytes(), &DecodeOptions::default());
        assert_eq!(decoded.bad.iter().map(|b| b.reason).collect::<Vec<_>>(), [BadReason::InvalidWrapper]);

        let odd_path = entry("io.k8s.core.v1.pods.create", "core");
        let decoded = decode(odd_path.as_bytes(), &DecodeOptions::default());
        assert_eq!(decoded.bad.iter().map(|b| b.reason).collect::<Vec<_>>(), [BadReason::InvalidWrapper]);
    }
}
