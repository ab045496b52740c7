//! Operators that copy a trace context from a parent resource onto the
//! objects they create (the kubevirt operator-tracing convention: a `Head`'s
//! context copied onto its `ChildA`, then onto ChildA's Deployment) leave
//! evidence of causality on every copy: the write that set a context on one
//! object was caused by the write that set the same context on another
//! object before it. This remembers, per context, the latest write that set
//! it, so the next copy hangs under it.

use std::collections::VecDeque;

use foldhash::HashMap;

use super::graph::SpanRef;
use super::ids::Uid;
use super::time::Micros;

#[derive(Debug, Clone, Copy)]
struct Origin {
    object: Uid,
    span: SpanRef,
    time: Micros,
}

#[derive(Default)]
pub(super) struct ContextOrigins {
    /// By the context's fingerprint: the latest write that set it.
    latest: HashMap<u64, Origin>,
    /// Every write noted, oldest first, to forget them in order.
    noted: VecDeque<(Micros, u64)>,
}

impl ContextOrigins {
    /// The write that set `context` last on another object than `object`,
    /// before `time`: the cause the copy's evidence names.
    pub(super) fn origin(&self, context: u64, object: Option<Uid>, time: Micros) -> Option<SpanRef> {
        self.latest.get(&context).filter(|o| Some(o.object) != object && o.time <= time).map(|o| o.span)
    }

    /// A write set `context` on `object`.
    pub(super) fn note(&mut self, context: u64, object: Uid, span: SpanRef, time: Micros) {
        self.latest.insert(context, Origin { object, span, time });
        self.noted.push_back((time, context));
    }

    /// Forgets contexts last set before `cutoff`.
    pub(super) fn expire(&mut self, cutoff: Micros) {
        while self.noted.front().is_some_and(|(t, _)| *t < cutoff) {
            let (_, context) = self.noted.pop_front().expect("checked");
            if self.latest.get(&context).is_some_and(|o| o.time < cutoff) {
                self.latest.remove(&context);
            }
        }
    }
}
