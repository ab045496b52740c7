//! Indented trace trees for a terminal: time offset, actor, span name.
//!
//! ```text
//! trace 4ca7c5925ef64d6baaff952f630775d3  intent by admin  (12 spans)
//!   +0.000s  admin  create deployments default/web
//!   +0.011s  ├─ deployment-controller  create replicasets default/web-5d894c86f5
//!   +0.024s  │  ├─ deployment-controller  event ScalingReplicaSet "Scaled up replica set web-5d894c86f5 to 2"
//! ```

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::core::ids::{SpanId, TraceId, hex};
use crate::core::kinds;
use crate::core::span::{AttrValue, RootKind, Span, SpanKind, SpanStatus};

#[derive(Debug, Clone, Copy, Default)]
pub struct TreeOptions {
    /// Also print the traces started by controllers (start-up, polls,
    /// objects created before the recording) and lone Events: most of a
    /// cluster's background, printed after the intents.
    pub show_all: bool,
}

/// One trace: its spans in emission order.
pub struct Trace<'s> {
    pub trace_id: TraceId,
    pub spans: Vec<&'s Span>,
}

/// Groups spans into traces, ordered by their earliest start (then trace ID).
pub fn group_traces(spans: &[Span]) -> Vec<Trace<'_>> {
    let mut index: HashMap<TraceId, usize> = HashMap::new();
    let mut traces: Vec<Trace<'_>> = Vec::new();
    for span in spans {
        let i = *index.entry(span.trace_id).or_insert_with(|| {
            traces.push(Trace { trace_id: span.trace_id, spans: Vec::new() });
            traces.len() - 1
        });
        traces[i].spans.push(span);
    }
    traces.sort_by_key(|t| (t.spans.iter().map(|s| s.start).min().unwrap_or(0), t.trace_id));
    traces
}

/// Renders the traces people and automation started, in time order, then
/// (with `show_all`) the background ones, and a line counting what was left out.
pub fn render(spans: &[Span], options: TreeOptions) -> String {
    let mut out = String::new();
    let (mut started_by_controllers, mut lone_events) = (Vec::new(), Vec::new());
    for trace in group_traces(spans) {
        match root_of(&trace).root {
            Some(RootKind::ControllerInitiated) => started_by_controllers.push(trace),
            // A lone Event is background; a chain of Events joined by what
            // they announce (a cluster without audit records) is a story.
            Some(RootKind::OrphanEvent) if trace.spans.len() == 1 => lone_events.push(trace),
            _ => {
                render_trace(&trace, &mut out);
                out.push('\n');
            }
        }
    }
    let background = started_by_controllers.len() + lone_events.len();
    if background == 0 {
        return out;
    }
    if options.show_all {
        let _ = writeln!(out, "-- started by controllers, and Events with no known cause --\n");
        for trace in started_by_controllers.iter().chain(&lone_events) {
            render_trace(trace, &mut out);
            out.push('\n');
        }
    } else {
        let _ = writeln!(
            out,
            "({} trace{} started by controllers and {} Event{} with no known cause not shown; --all shows them)",
            started_by_controllers.len(),
            if started_by_controllers.len() == 1 { "" } else { "s" },
            lone_events.len(),
            if lone_events.len() == 1 { "" } else { "s" },
        );
    }
    out
}

/// The span a trace is described by: its earliest root.
fn root_of<'s>(trace: &Trace<'s>) -> &'s Span {
    let ids: std::collections::HashSet<SpanId> = trace.spans.iter().map(|s| s.span_id).collect();
    trace
        .spans
        .iter()
        .filter(|s| s.parent_span_id.is_none_or(|p| !ids.contains(&p)))
        .min_by_key(|s| (s.start, s.end, s.span_id))
        .copied()
        .unwrap_or(trace.spans[0])
}

/// The trace's title; `spans` is how many it holds.
fn describe_root(root: &Span, spans: usize) -> String {
    match root.root {
        Some(RootKind::Intent) => format!("intent by {}", root.actor),
        Some(RootKind::ControllerInitiated) => format!("started by controller {}", root.actor),
        Some(RootKind::OrphanEvent) => match root.attr_str("k8s.object.kind").zip(root.attr_str("k8s.object.name")) {
            Some((kind, name)) if spans > 1 => {
                format!("Events of {kind} {name}, joined by what they announce (no audit record)")
            }
            _ => format!("event from {} with no known cause", root.actor),
        },
        Some(RootKind::Automation) => format!("automation by {}", root.actor),
        None => format!("partial trace under {}", root.actor),
    }
}

pub fn render_trace(trace: &Trace<'_>, out: &mut String) {
    let ids: HashMap<SpanId, &Span> = trace.spans.iter().map(|s| (s.span_id, *s)).collect();
    let mut children: HashMap<SpanId, Vec<&Span>> = HashMap::new();
    let mut roots: Vec<&Span> = Vec::new();
    for span in &trace.spans {
        match span.parent_span_id.filter(|p| ids.contains_key(p)) {
            Some(parent) => children.entry(parent).or_default().push(span),
            None => roots.push(span),
        }
    }
    let order = |list: &mut Vec<&Span>| list.sort_by_key(|s| (s.start, s.end, s.span_id));
    order(&mut roots);
    children.values_mut().for_each(order);

    let first = roots.first().copied().unwrap_or(trace.spans[0]);
    let _ = writeln!(
        out,
        "trace {}  {}  ({} span{})",
        hex(&trace.trace_id),
        describe_root(first, trace.spans.len()),
        trace.spans.len(),
        if trace.spans.len() == 1 { "" } else { "s" }
    );
    let origin = first.start;
    for root in roots {
        // A parent outside kausal's spans: the span a trace-context
        // annotation carried (`--adopt-trace-context`), drawn above its child.
        if let Some(parent) = root.parent_span_id {
            let carried = root
                .attr_str("kausal.trace_context.annotation")
                .filter(|_| root.attr("kausal.trace_context.adopted") == Some(&AttrValue::Bool(true)));
            let _ = match carried {
                Some(annotation) => {
                    writeln!(out, "  {:>9}  span {} (outside kausal, from {annotation})", "", hex(&parent))
                }
                None => writeln!(out, "  {:>9}  span {} (not in this output)", "", hex(&parent)),
            };
        }
        render_span(root, &children, origin, "", None, out);
    }
}

fn render_span(
    span: &Span,
    children: &HashMap<SpanId, Vec<&Span>>,
    origin: i64,
    prefix: &str,
    is_last: Option<bool>,
    out: &mut String,
) {
    let offset = (span.start - origin) as f64 / 1e6;
    let branch = match is_last {
        None => "",
        Some(true) => "└─ ",
        Some(false) => "├─ ",
    };
    let _ = write!(out, "  {offset:+8.3}s  {prefix}{branch}{}  {}", span.actor, span.name);
    if span.kind == SpanKind::Event {
        // An Event's line names the object it is about (`Pod default/web-…`).
        let kind = span.attr_str("k8s.object.kind").unwrap_or("object");
        let namespace =
            span.attr_str("k8s.namespace.name").filter(|ns| !ns.is_empty() && !kinds::is_cluster_scoped(kind));
        let _ = match (namespace, span.attr_str("k8s.object.name")) {
            (Some(ns), Some(name)) => write!(out, " {kind} {ns}/{name}"),
            (_, Some(name)) => write!(out, " {kind} {name}"),
            _ => Ok(()),
        };
        if let Some(message) = span.attr_str("k8s.event.message") {
            let _ = write!(out, " \"{}\"", one_line(message, 100));
        }
    }
    if let SpanStatus::Error(message) = &span.status {
        match span.attr("http.response.status_code") {
            Some(AttrValue::Int(code)) => {
                let _ = write!(out, "  ✗ {code} {}", one_line(message, 80));
            }
            _ => {
                let _ = write!(out, "  ✗ {}", one_line(message, 80));
            }
        }
    }
    if span.attr("k8s.dry_run").is_some() {
        out.push_str("  (dry run)");
    }
    if !span.links.is_empty() {
        let _ = write!(out, "  [{} link{}]", span.links.len(), if span.links.len() == 1 { "" } else { "s" });
    }
    out.push('\n');
    let Some(kids) = children.get(&span.span_id) else { return };
    let child_prefix = match is_last {
        None => prefix.to_owned(),
        Some(true) => format!("{prefix}   "),
        Some(false) => format!("{prefix}│  "),
    };
    for (i, child) in kids.iter().enumerate() {
        render_span(child, children, origin, &child_prefix, Some(i + 1 == kids.len()), out);
    }
}

fn one_line(text: &str, max: usize) -> String {
    let flat: String = text.chars().map(|c| if c == '\n' { ' ' } else { c }).collect();
    if flat.chars().count() > max {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}…")
    } else {
        flat
    }
}
