//! Kubernetes Events in both schemas, borrowed.
//!
//! One struct reads `core/v1` (old style: `involvedObject`, `source`, `count`,
//! `firstTimestamp`; new style: `eventTime`, `series`, `reportingComponent`) and
//! `events.k8s.io/v1` (`regarding`, `note`, `reportingController`,
//! `deprecatedCount`). The accessors on [`WireEvent`] hide the split.

use std::borrow::Cow;

use serde::Deserialize;

use super::object::ObjectMeta;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireEvent<'a> {
    // Never read, but typed: a mistyped value rejects the record, as it always has.
    #[allow(dead_code)]
    #[serde(borrow, default)]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub metadata: ObjectMeta<'a>,
    #[serde(borrow, default)]
    pub reason: Option<Cow<'a, str>>,
    #[serde(borrow, default, rename = "type")]
    pub event_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub event_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub series: Option<EventSeries<'a>>,
    // core/v1
    #[serde(borrow, default)]
    pub involved_object: Option<InvolvedObject<'a>>,
    #[serde(borrow, default)]
    pub message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub source: Option<EventSource<'a>>,
    #[serde(default)]
    pub count: Option<i64>,
    #[serde(borrow, default)]
    pub first_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub last_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub reporting_component: Option<Cow<'a, str>>,
    // both (core/v1 new style and events.k8s.io)
    #[serde(borrow, default)]
    pub reporting_instance: Option<Cow<'a, str>>,
    // events.k8s.io/v1
    #[serde(borrow, default)]
    pub regarding: Option<InvolvedObject<'a>>,
    #[serde(borrow, default)]
    pub note: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub reporting_controller: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub deprecated_source: Option<EventSource<'a>>,
    #[serde(default)]
    pub deprecated_count: Option<i64>,
    #[serde(borrow, default)]
    pub deprecated_first_timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub deprecated_last_timestamp: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct InvolvedObject<'a> {
    #[serde(borrow, default)]
    pub api_version: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub uid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub field_path: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventSource<'a> {
    #[serde(borrow, default)]
    pub component: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    pub host: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventSeries<'a> {
    #[serde(default)]
    pub count: Option<i64>,
    #[serde(borrow, default)]
    pub last_observed_time: Option<Cow<'a, str>>,
}

fn non_empty<'s>(v: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    v.as_deref().filter(|s| !s.is_empty())
}

impl<'a> WireEvent<'a> {
    /// The object the Event is about (`involvedObject` or `regarding`).
    pub(crate) fn regarding(&self) -> Option<&InvolvedObject<'a>> {
        self.involved_object.as_ref().or(self.regarding.as_ref())
    }

    /// The human text (`message` or `note`).
    pub(crate) fn text(&self) -> Option<&str> {
        non_empty(&self.message).or_else(|| non_empty(&self.note))
    }

    /// The component that reported the Event, in the order the schemas prefer.
    pub(crate) fn reporter(&self) -> Option<&str> {
        non_empty(&self.reporting_controller)
            .or_else(|| non_empty(&self.reporting_component))
            .or_else(|| self.source.as_ref().and_then(|s| non_empty(&s.component)))
            .or_else(|| self.deprecated_source.as_ref().and_then(|s| non_empty(&s.component)))
    }

    /// The host of a node-local reporter (kubelet), for mapping to `system:node:<host>`.
    pub(crate) fn reporter_host(&self) -> Option<&str> {
        self.source
            .as_ref()
            .and_then(|s| non_empty(&s.host))
            .or_else(|| self.deprecated_source.as_ref().and_then(|s| non_empty(&s.host)))
            .or_else(|| non_empty(&self.reporting_instance))
    }

    /// How many times the Event has been observed (1 if nothing says otherwise).
    pub(crate) fn observed_count(&self) -> i64 {
        self.series.as_ref().and_then(|s| s.count).or(self.count).or(self.deprecated_count).unwrap_or(1).max(1)
    }

    /// The first-observed time as written: precise `eventTime` when set, else the
    /// whole-second `firstTimestamp`, else (some reporters leave every time
    /// null) the apiserver's `metadata.creationTimestamp`.
    pub(crate) fn first_time_text(&self) -> Option<&str> {
        non_empty(&self.event_time)
            .or_else(|| non_empty(&self.first_timestamp))
            .or_else(|| non_empty(&self.deprecated_first_timestamp))
            .or_else(|| non_empty(&self.last_timestamp))
            .or_else(|| non_empty(&self.metadata.creation_timestamp))
    }

    /// The most recent observation time, for repeats.
    pub(crate) fn last_time_text(&self) -> Option<&str> {
        self.series
            .as_ref()
            .and_then(|s| non_empty(&s.last_observed_time))
            .or_else(|| non_empty(&self.last_timestamp))
            .or_else(|| non_empty(&self.deprecated_last_timestamp))
            .or_else(|| self.first_time_text())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_v1_old_style() {
        let e: WireEvent = serde_json::from_str(
            r#"{"apiVersion":"v1","count":3,"eventTime":null,"firstTimestamp":"2026-11-21T22:17:46Z","lastTimestamp":"2026-11-21T22:17:50Z","involvedObject":{"kind":"Node","name":"fake-node-1","uid":"8f75dd2f-0c2f-456b-87a0-386539901b1b"},"kind":"Event","message":"Registered","metadata":{"name":"fake-node-1.1","namespace":"default","uid":"1a12144f-4beb-458b-a3b4-96a3778363f8"},"reason":"RegisteredNode","reportingComponent":"","reportingInstance":"","source":{"component":"node-controller"},"type":"Normal"}"#,
        )
        .unwrap();
        assert_eq!(e.reporter(), Some("node-controller"));
        assert_eq!(e.regarding().unwrap().kind.as_deref(), Some("Node"));
        assert_eq!(e.observed_count(), 3);
        assert_eq!(e.first_time_text(), Some("2026-11-21T22:17:46Z"));
        assert_eq!(e.last_time_text(), Some("2026-11-21T22:17:50Z"));
        assert_eq!(e.text(), Some("Registered"));
    }

    #[test]
    fn events_k8s_io_v1() {
        let e: WireEvent = serde_json::from_str(
            r#"{"apiVersion":"events.k8s.io/v1","kind":"Event","metadata":{"name":"p.1","namespace":"default"},"eventTime":"2026-11-21T22:17:46.482880Z","reportingController":"default-scheduler","reportingInstance":"default-scheduler-host","action":"Binding","reason":"Scheduled","regarding":{"kind":"Pod","namespace":"default","name":"p","uid":"bb758515-5602-45da-b0f1-94a460661126"},"note":"Successfully assigned default/p to fake-node-1","type":"Normal","series":{"count":4,"lastObservedTime":"2026-11-21T22:18:00.000001Z"}}"#,
        )
        .unwrap();
        assert_eq!(e.reporter(), Some("default-scheduler"));
        assert_eq!(e.text(), Some("Successfully assigned default/p to fake-node-1"));
        assert_eq!(e.observed_count(), 4);
        assert_eq!(e.first_time_text(), Some("2026-11-21T22:17:46.482880Z"));
        assert_eq!(e.last_time_text(), Some("2026-11-21T22:18:00.000001Z"));
    }
}
