//! The audit shape: `audit.k8s.io` `Event`s, alone or in an `EventList`.
//!
//! Only `ResponseComplete` (and `Panic`) records of mutating verbs become
//! writes; the other stages and reads are counted as skipped.

use std::borrow::Cow;

use serde::Deserialize;

use super::normalize::WriteInput;
use super::outcome::BadReason;
use super::shape::Decoder;
use super::views::audit::AuditEvent;
use crate::core::record::Verb;
use crate::core::time::parse_rfc3339_micros;

/// An audit `EventList` with every item typed: the shape of every webhook body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditEventList<'a> {
    #[serde(borrow, default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    api_version: Option<Cow<'a, str>>,
    #[serde(borrow)]
    items: Vec<AuditEvent<'a>>,
}

impl Decoder<'_, '_> {
    /// The fast path for the apiserver's webhook body (and audit `EventList`
    /// files): the whole list typed in one pass, without first locating each
    /// item. Any item that does not parse sends the document down the general
    /// path instead, which isolates bad items one by one; so this only ever
    /// changes speed, never results.
    pub(super) fn audit_event_list_in_one_pass(&mut self) -> bool {
        if !self.text.trim_start().starts_with('{') {
            return false;
        }
        let Ok(list) = serde_json::from_str::<AuditEventList>(self.text) else {
            return false;
        };
        let is_audit_list = list.kind.as_deref() == Some("EventList")
            && list.api_version.as_deref().is_some_and(|v| v.contains("audit.k8s.io"));
        if !is_audit_list {
            return false;
        }
        for event in list.items {
            self.out.stats.audit_events += 1;
            let line = self.locate_str(&event.audit_id);
            self.audit_event_parsed(event, line);
        }
        true
    }

    /// The line a borrowed string lies on (1 when it is not in the document).
    pub(super) fn locate_str(&self, s: &str) -> usize {
        self.offset_in_text(s).map_or(1, |at| self.lines.line_of(at))
    }

    pub(super) fn audit_event(&mut self, text: &str, line: usize) {
        self.out.stats.audit_events += 1;
        match serde_json::from_str::<AuditEvent>(text) {
            Ok(event) => self.audit_event_parsed(event, line),
            Err(e) => self.out.reject(BadReason::InvalidAuditEvent, line, e.to_string()),
        }
    }

    fn audit_event_parsed(&mut self, event: AuditEvent<'_>, line: usize) {
        self.out.stats.count_verb_stage(&event.verb, &event.stage);
        if !matches!(&*event.stage, "ResponseComplete" | "Panic") {
            self.out.skip(match &*event.stage {
                "RequestReceived" => "stage_request_received",
                "ResponseStarted" => "stage_response_started",
                _ => "stage_other",
            });
            return;
        }
        let Some(verb) = Verb::parse(&event.verb) else {
            self.out.skip("read");
            return;
        };
        let Some(object_ref) = event.object_ref.as_ref() else {
            self.out.skip("non_resource");
            return;
        };
        let Some(completed) =
            event.stage_timestamp.as_deref().or(event.timestamp.as_deref()).and_then(parse_rfc3339_micros)
        else {
            self.out.reject(
                BadReason::InvalidTimestamp,
                line,
                format!("auditID {}: stageTimestamp (or v1beta1 timestamp) missing or not RFC 3339", event.audit_id),
            );
            return;
        };
        let received = event.request_received_timestamp.as_deref().and_then(parse_rfc3339_micros).unwrap_or(completed);
        let status = event.response_status.as_ref();
        let write = WriteInput {
            audit_id: &event.audit_id,
            verb,
            api_group: object_ref.api_group.as_deref().unwrap_or(""),
            api_version: object_ref.api_version.as_deref().unwrap_or(""),
            resource: object_ref.resource.as_deref().unwrap_or(""),
            subresource: object_ref.subresource.as_deref().filter(|s| !s.is_empty()),
            namespace: object_ref.namespace.as_deref().filter(|s| !s.is_empty()),
            name: object_ref.name.as_deref().filter(|s| !s.is_empty()),
            uid: object_ref.uid.as_deref().filter(|s| !s.is_empty()),
            user: event.effective_user(),
            user_agent: event.user_agent.as_deref(),
            status_code: status.and_then(|s| s.code),
            status_message: status.and_then(|s| s.message.as_deref().or(s.reason.as_deref())),
            received,
            completed,
            request_object: event.request_object,
            response_object: event.response_object,
            dry_run: event.is_dry_run(),
        };
        self.write(write, line);
    }
}
