//! Compares where Events land in two runs of one scenario: one linked by the
//! audit rules (with the webhook), one by the Events-only linker (without
//! it). Issue 19's proof: every Event in the same trace grouping, and in the
//! same order of nesting.
//!
//! The audit tree has writes between the Events: `ScalingReplicaSet` hangs
//! under the ReplicaSet's create, `SuccessfulCreate` under the pod's create,
//! below it. Event A comes before Event B there when the write A hangs under
//! is above B. In the Events-only tree there are only Events, and A comes
//! before B when A is above B by announcements (`run` edges join a trace but
//! say nothing about order: a rollout's scale-down step is not caused by its
//! scale-up Event). The two relations must be the same.

use std::collections::{BTreeMap, BTreeSet};

/// A span as the comparison sees it, whichever way it arrived.
#[derive(Debug, Clone)]
pub struct TreeSpan {
    pub trace: String,
    pub span: String,
    pub parent: Option<String>,
    /// `namespace/name` of the Event object, for Event spans.
    pub event: Option<String>,
    /// A one-line description for failure messages.
    pub label: String,
    /// `kausal.parent.found_by`.
    pub found_by: Option<String>,
}

struct Tree<'a> {
    by_id: BTreeMap<(&'a str, &'a str), &'a TreeSpan>,
    events: BTreeMap<&'a str, &'a TreeSpan>,
}

impl<'a> Tree<'a> {
    fn new(spans: &'a [TreeSpan]) -> Tree<'a> {
        let by_id = spans.iter().map(|s| ((s.trace.as_str(), s.span.as_str()), s)).collect();
        let events = spans.iter().filter_map(|s| Some((s.event.as_deref()?, s))).collect();
        Tree { by_id, events }
    }

    fn parent(&self, s: &TreeSpan) -> Option<&'a TreeSpan> {
        self.by_id.get(&(s.trace.as_str(), s.parent.as_deref()?)).copied()
    }

    /// Whether `ancestor` is strictly above `s`, following only edges `keep` accepts.
    fn above(&self, ancestor: &TreeSpan, s: &TreeSpan, keep: impl Fn(&TreeSpan) -> bool) -> bool {
        let mut at = s;
        while keep(at)
            && let Some(p) = self.parent(at)
        {
            if p.span == ancestor.span && p.trace == ancestor.trace {
                return true;
            }
            at = p;
        }
        false
    }

    /// Events grouped by trace, each group sorted, the groups sorted.
    fn grouping(&self) -> BTreeSet<Vec<&'a str>> {
        let mut by_trace: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (key, s) in &self.events {
            by_trace.entry(s.trace.as_str()).or_default().push(key);
        }
        by_trace.into_values().collect()
    }
}

/// Checks the Events-only run against the audit run; returns how many
/// Events were compared, or every difference found.
pub fn compare(audit: &[TreeSpan], events_only: &[TreeSpan]) -> Result<usize, String> {
    let (a, e) = (Tree::new(audit), Tree::new(events_only));
    let mut problems = Vec::new();
    let keys_a: BTreeSet<&str> = a.events.keys().copied().collect();
    let keys_e: BTreeSet<&str> = e.events.keys().copied().collect();
    for missing in keys_a.difference(&keys_e) {
        problems.push(format!("only with the webhook: {}", a.events[missing].label));
    }
    for missing in keys_e.difference(&keys_a) {
        problems.push(format!("only without it: {}", e.events[missing].label));
    }
    if !problems.is_empty() {
        return Err(problems.join("\n"));
    }
    let label = |k: &str| a.events[k].label.clone();
    let (ga, ge) = (a.grouping(), e.grouping());
    for group in ga.difference(&ge) {
        problems.push(format!(
            "one trace with the webhook, not without it:\n    {}",
            group.iter().map(|k| label(k)).collect::<Vec<_>>().join("\n    ")
        ));
    }
    for group in ge.difference(&ga) {
        problems.push(format!(
            "one trace without the webhook, not with it:\n    {}",
            group.iter().map(|k| label(k)).collect::<Vec<_>>().join("\n    ")
        ));
    }
    let causal = |s: &TreeSpan| s.found_by.as_deref() != Some("run");
    for (ka, sa) in &a.events {
        for (kb, sb) in &a.events {
            if ka == kb || sa.trace != sb.trace {
                continue;
            }
            let with = a.parent(sa).is_some_and(|write| a.above(write, sb, |_| true));
            let without = e.above(e.events[ka], e.events[kb], causal);
            if with != without {
                problems.push(format!(
                    "{} {} above {} with the webhook, {} without it",
                    label(ka),
                    if with { "is" } else { "is not" },
                    label(kb),
                    if without { "is" } else { "is not" },
                ));
            }
        }
    }
    if problems.is_empty() { Ok(keys_a.len()) } else { Err(problems.join("\n")) }
}

/// A span as a source gives it, before its Event is keyed.
pub struct Seen {
    /// With `event` still `None`.
    pub tree: TreeSpan,
    pub start: i64,
    /// The Event object's name, for an Event span of the compared namespace.
    pub event_name: Option<String>,
}

/// Keys each Event of namespace `ns` by its object's name, on the first
/// span of it (a repeat span is not the Event's span).
pub fn keyed(ns: &str, seen: Vec<Seen>) -> Vec<TreeSpan> {
    let mut first: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for s in &seen {
        if let Some(name) = &s.event_name {
            let entry = first.entry(format!("{ns}/{name}")).or_insert((s.start, s.tree.span.clone()));
            if s.start < entry.0 {
                *entry = (s.start, s.tree.span.clone());
            }
        }
    }
    let keys: BTreeMap<String, String> = first.into_iter().map(|(k, (_, span))| (span, k)).collect();
    seen.into_iter().map(|s| TreeSpan { event: keys.get(&s.tree.span).cloned(), ..s.tree }).collect()
}

/// The spans of a replay for the comparison.
pub fn from_spans(spans: &[kausal::core::Span], ns: &str) -> Vec<TreeSpan> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let seen = spans
        .iter()
        .map(|s| Seen {
            tree: TreeSpan {
                trace: hex(&s.trace_id),
                span: hex(&s.span_id),
                parent: s.parent_span_id.map(|p| hex(&p)),
                event: None,
                label: format!("`{} {}` {:?}", s.actor, s.name, s.attr_str("k8s.event.message").unwrap_or("")),
                found_by: s.attr_str("kausal.parent.found_by").map(str::to_owned),
            },
            start: s.start,
            event_name: (s.attr_str("kausal.span.kind") == Some("event")
                && s.attr_str("k8s.namespace.name") == Some(ns))
            .then(|| s.attr_str("k8s.event.name").unwrap_or("").to_owned()),
        })
        .collect();
    keyed(ns, seen)
}
