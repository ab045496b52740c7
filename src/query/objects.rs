//! The object questions: everything that happened to one object, and why it
//! exists (or is gone): the chain of causes from its create (or delete) up
//! to the intent at the root of its trace.

use serde::{Deserialize, Serialize};

use crate::store::{ObjectRef, Store, StoreError, StoredSpan, TraceSummary};

/// One span of an object's history, with the intent it belongs to.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryEntry {
    pub span: StoredSpan,
    /// The root of the span's trace, when it is stored.
    pub intent: Option<StoredSpan>,
}

#[derive(Debug, Clone, Serialize)]
pub struct History {
    pub object: ObjectRef,
    pub entries: Vec<HistoryEntry>,
}

/// Which end of an object's life a question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Question {
    /// Why does it exist: its create.
    Exists,
    /// Why is it gone: its delete.
    Gone,
}

/// The answer to "why": the write that created (or deleted) the object,
/// and its causes, each the parent of the one before, up to the root.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Why {
    pub object: ObjectRef,
    pub question: Question,
    /// `[the write, its parent, ..., the root]`; empty when no such write is stored.
    pub chain: Vec<StoredSpan>,
    /// The root's summary: who, how many spans.
    pub trace: Option<TraceSummary>,
    /// Why the chain stops early or is empty, in words.
    pub note: Option<String>,
}

/// The object `uid` as its first stored span names it; `None` when no span is about it.
pub fn object(store: &Store, uid: &str) -> Result<Option<ObjectRef>, StoreError> {
    // Only the first span: history and why read all of them themselves.
    Ok(store.first_object_span(uid)?.map(|first| ObjectRef {
        uid: uid.to_owned(),
        kind: first.attr_str("k8s.object.kind").map(str::to_owned),
        namespace: first.attr_str("k8s.namespace.name").map(str::to_owned),
        name: first.attr_str("k8s.object.name").map(str::to_owned),
    }))
}

/// The objects named so; the newest last.
pub fn find(store: &Store, kind: &str, namespace: Option<&str>, name: &str) -> Result<Vec<ObjectRef>, StoreError> {
    store.objects_named(kind, namespace, name)
}

pub fn history(store: &Store, object: ObjectRef) -> Result<History, StoreError> {
    let mut entries = Vec::new();
    let mut roots: std::collections::HashMap<String, Option<StoredSpan>> = Default::default();
    for span in store.object_spans(&object.uid)? {
        let intent = match roots.get(&span.trace_id) {
            Some(r) => r.clone(),
            None => {
                let r = store.summaries(std::slice::from_ref(&span.trace_id))?.into_iter().next().and_then(|s| s.root);
                roots.insert(span.trace_id.clone(), r.clone());
                r
            }
        };
        entries.push(HistoryEntry { span, intent });
    }
    Ok(History { object, entries })
}

/// No chain is longer than this: a loop in stored parents (which the core
/// never makes) cannot hang the answer.
const MAX_DEPTH: usize = 256;

pub fn why(store: &Store, object: ObjectRef, question: Question) -> Result<Why, StoreError> {
    let spans = store.object_spans(&object.uid)?;
    let is_subject = |s: &&StoredSpan| {
        let verb = s.attr_str("k8s.verb");
        s.attr_str("kausal.span.kind") == Some("write")
            && s.attr_str("k8s.subresource").is_none()
            && s.error.is_none()
            && match question {
                Question::Exists => verb == Some("create"),
                Question::Gone => verb == Some("delete"),
            }
    };
    // The first create; the last delete (a delete that only started a
    // graceful termination is followed by the final one).
    let subject = match question {
        Question::Exists => spans.iter().find(is_subject),
        Question::Gone => spans.iter().rev().find(is_subject),
    };
    let Some(subject) = subject.cloned() else {
        let note = match question {
            Question::Exists => {
                "no create of this object is stored: it was created before kausal saw the cluster, or the audit policy does not record it"
            }
            Question::Gone => {
                "no delete of this object is stored: it still exists, or the audit policy does not record its delete"
            }
        };
        return Ok(Why { object, question, chain: Vec::new(), trace: None, note: Some(note.to_owned()) });
    };
    let mut chain = vec![subject];
    let mut note = None;
    while let Some(parent) = chain.last().and_then(|s| s.parent_span_id.clone()) {
        if chain.len() >= MAX_DEPTH {
            note = Some(format!("stopped after {MAX_DEPTH} causes"));
            break;
        }
        let trace_id = chain.last().map(|s| s.trace_id.clone()).unwrap_or_default();
        match store.span(&trace_id, &parent)? {
            Some(p) => chain.push(p),
            None => {
                note = Some(format!("the cause {parent} is no longer stored (past --retention or the size bound)"));
                break;
            }
        }
    }
    let trace_id = chain[0].trace_id.clone();
    let trace = store.summaries(&[trace_id])?.into_iter().next();
    Ok(Why { object, question, chain, trace, note })
}
