//! The AKS shape: an Azure diagnostic record whose `properties.log` holds an
//! audit event, as a JSON string or as an object.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::outcome::BadReason;
use super::shape::Decoder;

impl Decoder<'_, '_> {
    /// AKS diagnostic record: `properties.log` holds the audit event, as a JSON
    /// string or as an object.
    pub(super) fn aks_record(&mut self, properties: &RawValue, line: usize, depth: usize) {
        #[derive(Deserialize)]
        struct Properties<'a> {
            #[serde(borrow, default)]
            log: Option<&'a RawValue>,
        }
        let log = match serde_json::from_str::<Properties>(properties.get()) {
            Ok(Properties { log: Some(log) }) => log,
            Ok(_) => {
                self.out.reject(BadReason::InvalidWrapper, line, "AKS record without properties.log");
                return;
            }
            Err(e) => {
                self.out.reject(BadReason::InvalidWrapper, line, format!("AKS properties: {e}"));
                return;
            }
        };
        if log.get().starts_with('"') {
            match serde_json::from_str::<Cow<str>>(log.get()) {
                Ok(inner) => match serde_json::from_str::<&RawValue>(&inner) {
                    Ok(raw) => self.value(raw, line, depth + 1, None),
                    Err(e) => {
                        self.out.reject(BadReason::InvalidWrapper, line, format!("AKS properties.log is not JSON: {e}"))
                    }
                },
                Err(e) => self.out.reject(BadReason::InvalidWrapper, line, format!("AKS properties.log: {e}")),
            }
        } else {
            self.value(log, line, depth + 1, None);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::Record;
    use crate::decode::{BadReason, DecodeOptions, decode};

    fn audit_event() -> serde_json::Value {
        serde_json::json!({
            "kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": "7c2b4f9e-1111-4a2b-8c3d-000000000001", "stage": "ResponseComplete",
            "verb": "delete", "user": {"username": "aks-admin"},
            "objectRef": {"resource": "pods", "namespace": "default", "name": "web-1", "apiVersion": "v1"},
            "responseStatus": {"code": 200},
            "requestReceivedTimestamp": "2026-11-21T22:17:46.100000Z",
            "stageTimestamp": "2026-11-21T22:17:46.161151Z"
        })
    }

    fn wrapped(log: serde_json::Value) -> String {
        serde_json::json!({"records": [{"category": "kube-audit", "operationName": "Microsoft.ContainerService/managedClusters/diagnosticLogs/Read", "properties": {"log": log, "pod": "kube-apiserver-1"}}]}).to_string()
    }

    fn users(text: &str) -> Vec<String> {
        let decoded = decode(text.as_bytes(), &DecodeOptions::default());
        assert!(decoded.bad.is_empty(), "{:?}", decoded.bad);
        decoded
            .records
            .iter()
            .map(|r| match r {
                Record::Write(w) => w.user.to_string(),
                Record::Event(e) => e.name.to_string(),
            })
            .collect()
    }

    #[test]
    fn the_audit_event_is_read_from_properties_log_as_a_string_or_an_object() {
        assert_eq!(users(&wrapped(serde_json::Value::String(audit_event().to_string()))), ["aks-admin"]);
        assert_eq!(users(&wrapped(audit_event())), ["aks-admin"]);
    }

    #[test]
    fn a_record_without_a_readable_log_is_one_bad_record() {
        for log in [serde_json::json!(null), serde_json::json!("not json {"), serde_json::json!(42)] {
            let decoded = decode(wrapped(log.clone()).as_bytes(), &DecodeOptions::default());
            assert_eq!(decoded.records.len(), 0, "{log}");
            assert_eq!(decoded.bad.len(), 1, "{log}: {:?}", decoded.bad);
        }
        let missing = r#"{"records": [{"properties": {"pod": "x"}}]}"#;
        let decoded = decode(missing.as_bytes(), &DecodeOptions::default());
        assert_eq!(decoded.bad.iter().map(|b| b.reason).collect::<Vec<_>>(), [BadReason::InvalidWrapper]);
    }
}
