//! The Event shape: core/v1 and events.k8s.io/v1 Events, read as objects
//! (watch lines, lists, dumps) or from the audit record of an `events` write,
//! normalised into the core's [`EventRecord`].

use std::borrow::Cow;

use super::normalize::WriteInput;
use super::outcome::BadReason;
use super::shape::Decoder;
use super::views::kube_event::WireEvent;
use crate::core::record::{EventOrigin, EventRecord, Record, Regarding};
use crate::core::time::{Micros, has_fraction, parse_rfc3339_micros};

impl Decoder<'_, '_> {
    /// A create, update or patch of the `events` resource: an Event span, not a write.
    pub(super) fn audit_kube_event(&mut self, w: &WriteInput<'_>, line: usize) {
        if w.verb.is_delete() {
            self.out.skip("event_deleted");
            return;
        }
        if !(200..300).contains(&w.status_code.unwrap_or(0)) {
            self.out.skip("event_write_failed");
            return;
        }
        let Some(object) = w.response_object.or(w.request_object) else {
            self.out.skip("event_without_object");
            return;
        };
        let origin = EventOrigin::Audit { audit_id: w.audit_id.into(), verb: w.verb };
        let context = AuditEventContext { namespace: w.namespace, name: w.name, time: w.completed };
        self.kube_event_with(object.get(), Some(context), origin, line);
    }

    pub(super) fn kube_event(&mut self, text: &str, context: Option<AuditEventContext<'_>>, line: usize) {
        self.out.stats.kube_events += 1;
        self.kube_event_with(text, context, EventOrigin::Object, line);
    }

    fn kube_event_with(
        &mut self,
        text: &str,
        context: Option<AuditEventContext<'_>>,
        origin: EventOrigin,
        line: usize,
    ) {
        let event: WireEvent = match serde_json::from_str(text) {
            Ok(e) => e,
            Err(e) => {
                self.out.reject(BadReason::InvalidKubeEvent, line, e.to_string());
                return;
            }
        };
        let name = event.metadata.name.as_deref().filter(|s| !s.is_empty()).or(context.as_ref().and_then(|c| c.name));
        let namespace = event
            .metadata
            .namespace
            .as_deref()
            .filter(|s| !s.is_empty())
            .or(context.as_ref().and_then(|c| c.namespace))
            .unwrap_or("default");
        let Some(name) = name else {
            self.out.reject(BadReason::InvalidKubeEvent, line, "Event without metadata.name");
            return;
        };
        let count = event.observed_count();
        let (time, coarse_time) = match &context {
            Some(c) => (c.time, false),
            None => {
                let text = if count > 1 { event.last_time_text() } else { event.first_time_text() };
                match text.and_then(|t| parse_rfc3339_micros(t).map(|m| (m, !has_fraction(t)))) {
                    Some(found) => found,
                    None => {
                        self.out.reject(
                            BadReason::InvalidTimestamp,
                            line,
                            format!("Event {namespace}/{name}: no eventTime, firstTimestamp or lastTimestamp"),
                        );
                        return;
                    }
                }
            }
        };
        let regarding = event.regarding().map_or_else(Regarding::default, |r| Regarding {
            kind: owned(&r.kind),
            api_version: owned(&r.api_version),
            namespace: owned(&r.namespace),
            name: owned(&r.name),
            uid: owned(&r.uid),
            field_path: owned(&r.field_path),
        });
        self.out.records.push(Record::Event(EventRecord {
            uid: owned(&event.metadata.uid),
            namespace: namespace.into(),
            name: name.into(),
            reason: owned(&event.reason),
            message: event.text().map(Into::into),
            event_type: owned(&event.event_type),
            action: owned(&event.action),
            reporter: event.reporter().map(Into::into),
            reporter_host: event.reporter_host().map(Into::into),
            regarding,
            time,
            coarse_time,
            count,
            origin,
        }));
    }
}

fn owned(v: &Option<Cow<'_, str>>) -> Option<Box<str>> {
    v.as_deref().filter(|s| !s.is_empty()).map(Into::into)
}

/// What an audit record of an `events` write adds to the Event object inside it.
pub(super) struct AuditEventContext<'a> {
    namespace: Option<&'a str>,
    name: Option<&'a str>,
    time: Micros,
}
