//! Operators that copy a trace context from a parent resource onto the
//! objects they create (the kubevirt operator-tracing convention: a `Head`'s
//! context copied onto its `ChildA`, then onto ChildA's Deployment) leave
//! evidence of causality on every copy: the write that set a context on one
//! object was caused by the write that set the same context on another
//! object before it. This remembers, per context, the latest write that set
//! it on each object, so the next copy hangs under it.
//!
//! One context is often set on several objects by one writer: a CI run that
//! annotates every object it applies. The deployment controller then copies
//! the Deployment's annotations onto its ReplicaSet, and the latest object to
//! get the context may be the run's Service. So the write's own owner, when
//! it set the context, is the evidence; only otherwise the latest setter.

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

/// Objects remembered per context, latest first: a CI run's fan-out beyond
/// this is still linked through the owner while its write is among them.
const OBJECTS_PER_CONTEXT: usize = 16;

#[derive(Default)]
pub(super) struct ContextOrigins {
    /// By the context's fingerprint: the latest write that set it on each
    /// object, latest first.
    latest: HashMap<u64, Vec<Origin>>,
    /// Every write noted, oldest first, to forget them in order.
    noted: VecDeque<(Micros, u64)>,
}

impl ContextOrigins {
    /// The cause a copy's evidence names: the write that set `context` on
    /// the copy's `owner`, else the latest that set it on another object
    /// than the copy's own, before `time`.
    pub(super) fn origin(
        &self,
        context: u64,
        object: Option<Uid>,
        owner: Option<Uid>,
        time: Micros,
    ) -> Option<SpanRef> {
        let origins = self.latest.get(&context)?;
        let before = |o: &&Origin| o.time <= time && Some(o.object) != object;
        let on_owner = origins.iter().filter(before).find(|o| owner.is_some_and(|u| o.object == u));
        on_owner.or_else(|| origins.iter().find(before)).map(|o| o.span)
    }

    /// A write set `context` on `object`.
    pub(super) fn note(&mut self, context: u64, object: Uid, span: SpanRef, time: Micros) {
        let origins = self.latest.entry(context).or_default();
        origins.retain(|o| o.object != object);
        origins.insert(0, Origin { object, span, time });
        origins.truncate(OBJECTS_PER_CONTEXT);
        self.noted.push_back((time, context));
    }

    /// Forgets contexts last set before `cutoff`.
    pub(super) fn expire(&mut self, cutoff: Micros) {
        while self.noted.front().is_some_and(|(t, _)| *t < cutoff) {
            let (_, context) = self.noted.pop_front().expect("checked");
            if let Some(origins) = self.latest.get_mut(&context) {
                origins.retain(|o| o.time >= cutoff);
                if origins.is_empty() {
                    self.latest.remove(&context);
                }
            }
        }
    }
}
