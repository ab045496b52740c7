//! Span building: a processed write or Event, with its placement (IDs,
//! parent, root kind), becomes a [`Span`] with its attributes.
//!
//! The attribute names follow the OpenTelemetry semantic conventions where
//! one exists (`k8s.namespace.name`, `k8s.pod.name`, `user.name`...) and
//! `k8s.*`/`kausal.*` otherwise; the README lists them.

use super::graph::SpanRef;
use super::ids;
use super::kinds;
use super::linker::Link;
use super::record::{EventOrigin, EventRecord, WriteRecord};
use super::span::{AttrValue, Attributes, LinkReason, RootKind, Span, SpanKind, SpanLink, SpanStatus};

/// Where a new span goes: its own IDs, its parent, and what kind of root it
/// is when it has none.
pub(super) struct Placement {
    pub(super) span: SpanRef,
    pub(super) parent: Option<ids::SpanId>,
    pub(super) root: Option<RootKind>,
}

pub(super) fn set_attr(attrs: &mut Attributes, key: &'static str, value: AttrValue) {
    match attrs.iter_mut().find(|(k, _)| *k == key) {
        Some((_, v)) => *v = value,
        None => attrs.push((key, value)),
    }
}

fn push_opt(attrs: &mut Attributes, key: &'static str, value: Option<&str>) {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        attrs.push((key, AttrValue::Str(v.to_owned())));
    }
}

/// The runner-up cause, when there was one, as a span link.
fn runner_up_links(link: &Link) -> Vec<SpanLink> {
    link.runner_up
        .map(|r| SpanLink { trace_id: r.span.trace_id, span_id: r.span.span_id, reason: LinkReason::RunnerUp })
        .into_iter()
        .collect()
}

/// `"<verb> <resource>[/<subresource>] <namespace>/<name>"`.
pub fn write_span_name(w: &WriteRecord) -> String {
    let mut name = String::with_capacity(64);
    name.push_str(w.verb.as_str());
    name.push(' ');
    name.push_str(&w.resource);
    if let Some(sub) = &w.subresource {
        name.push('/');
        name.push_str(sub);
    }
    match (w.namespace.as_deref().filter(|n| !n.is_empty()), w.name.as_deref()) {
        (Some(ns), Some(n)) => {
            name.push(' ');
            name.push_str(ns);
            name.push('/');
            name.push_str(n);
        }
        (None, Some(n)) => {
            name.push(' ');
            name.push_str(n);
        }
        (Some(ns), None) => {
            name.push(' ');
            name.push_str(ns);
        }
        (None, None) => {}
    }
    name
}

pub(super) fn build_write_span(
    w: &WriteRecord,
    actor: String,
    Placement { span, parent, root }: Placement,
    link: &Link,
    known_kind: Option<&str>,
    trigger: bool,
) -> Span {
    let kind = known_kind
        .or(if w.subresource.is_none() { w.kind.as_deref() } else { None })
        .or_else(|| kinds::kind_for_resource(&w.resource));
    let mut attrs: Attributes = Vec::with_capacity(20);
    attrs.push(("kausal.span.kind", "write".into()));
    attrs.push(("k8s.audit.id", AttrValue::Str(w.audit_id.to_string())));
    attrs.push(("k8s.verb", w.verb.as_str().into()));
    attrs.push(("k8s.resource", AttrValue::Str(w.resource.to_string())));
    push_opt(&mut attrs, "k8s.subresource", w.subresource.as_deref());
    push_opt(&mut attrs, "k8s.api.group", Some(&w.api_group));
    push_opt(&mut attrs, "k8s.namespace.name", w.namespace.as_deref());
    push_opt(&mut attrs, "k8s.object.name", w.name.as_deref());
    push_opt(&mut attrs, "k8s.object.uid", w.uid.as_deref());
    push_opt(&mut attrs, "k8s.object.kind", kind);
    if let Some((name_key, uid_key)) = kind.and_then(kinds::semconv_keys) {
        push_opt(&mut attrs, name_key, w.name.as_deref());
        push_opt(&mut attrs, uid_key, w.uid.as_deref());
    }
    attrs.push(("user.name", AttrValue::Str(w.user.to_string())));
    push_opt(&mut attrs, "user_agent.original", w.user_agent.as_deref());
    attrs.push(("http.response.status_code", AttrValue::Int(i64::from(w.status_code))));
    if let Some(g) = w.generation {
        attrs.push(("k8s.object.generation", AttrValue::Int(g)));
    }
    attrs.push(("kausal.trigger", AttrValue::Bool(trigger)));
    if w.dry_run {
        attrs.push(("k8s.dry_run", AttrValue::Bool(true)));
    }
    if let Some(r) = root {
        attrs.push(("kausal.root", r.as_str().into()));
    }
    let status = if w.succeeded() {
        SpanStatus::Unset
    } else {
        SpanStatus::Error(
            w.status_message.as_deref().map_or_else(|| format!("HTTP {}", w.status_code), |m| m.to_owned()),
        )
    };
    Span {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: parent,
        name: write_span_name(w),
        kind: SpanKind::Write,
        actor,
        start: w.received.min(w.completed),
        end: w.completed,
        attributes: attrs,
        links: runner_up_links(link),
        events: Vec::new(),
        status,
        root,
    }
}

pub(super) fn build_event_span(
    e: &EventRecord,
    Placement { span, parent, root }: Placement,
    link: &Link,
    actor: String,
) -> Span {
    let reason = e.reason.as_deref().unwrap_or("Unknown");
    let mut attrs: Attributes = Vec::with_capacity(16);
    attrs.push(("kausal.span.kind", "event".into()));
    attrs.push(("k8s.event.reason", reason.into()));
    push_opt(&mut attrs, "k8s.event.uid", e.uid.as_deref());
    attrs.push(("k8s.event.name", AttrValue::Str(e.name.to_string())));
    push_opt(&mut attrs, "k8s.event.type", e.event_type.as_deref());
    push_opt(&mut attrs, "k8s.event.message", e.message.as_deref());
    push_opt(&mut attrs, "k8s.event.reporting_controller", e.reporter.as_deref());
    push_opt(&mut attrs, "k8s.event.reporting_instance", e.reporter_host.as_deref());
    push_opt(&mut attrs, "k8s.event.action", e.action.as_deref());
    attrs.push(("k8s.event.count", AttrValue::Int(e.count)));
    push_opt(&mut attrs, "k8s.object.kind", e.regarding.kind.as_deref());
    push_opt(&mut attrs, "k8s.object.name", e.regarding.name.as_deref());
    push_opt(&mut attrs, "k8s.object.uid", e.regarding.uid.as_deref());
    push_opt(&mut attrs, "k8s.object.field_path", e.regarding.field_path.as_deref());
    push_opt(&mut attrs, "k8s.namespace.name", e.regarding.namespace.as_deref().or(Some(&e.namespace)));
    // A kubelet names its node as the Event's source host: where it happened.
    // (An Event about the node itself gets the key from its object, below.)
    if e.reporter.as_deref() == Some("kubelet") && e.regarding.kind.as_deref() != Some("Node") {
        push_opt(&mut attrs, "k8s.node.name", e.reporter_host.as_deref());
    }
    if let Some((name_key, uid_key)) = e.regarding.kind.as_deref().and_then(kinds::semconv_keys) {
        push_opt(&mut attrs, name_key, e.regarding.name.as_deref());
        push_opt(&mut attrs, uid_key, e.regarding.uid.as_deref());
    }
    if let EventOrigin::Audit { audit_id, .. } = &e.origin {
        attrs.push(("k8s.audit.id", AttrValue::Str(audit_id.to_string())));
    }
    if let Some(r) = root {
        attrs.push(("kausal.root", r.as_str().into()));
    }
    let status = if e.event_type.as_deref() == Some("Warning") {
        SpanStatus::Error(e.message.as_deref().unwrap_or(reason).to_owned())
    } else {
        SpanStatus::Unset
    };
    Span {
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: parent,
        name: format!("event {reason}"),
        kind: SpanKind::Event,
        actor,
        start: e.time,
        end: e.time,
        attributes: attrs,
        links: runner_up_links(link),
        events: Vec::new(),
        status,
        root,
    }
}
