//! What decoding returns: the records, the rejected records with their
//! reasons, and the counts a source reports as metrics.

use std::collections::BTreeMap;

use crate::core::record::{ObservedObject, Record};
use crate::core::time::{self, Micros};

/// Why a record was rejected. The label is the metrics and summary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadReason {
    /// Not valid JSON.
    InvalidJson,
    /// A JSON value that is not an object or array where a record should be.
    NotAnObject,
    /// A JSON object whose keys match no known record or wrapper.
    UnknownShape,
    /// An audit event that does not fit `audit.k8s.io` (wrong field types, missing `verb`...).
    InvalidAuditEvent,
    /// A Kubernetes Event without the fields that identify it.
    InvalidKubeEvent,
    /// A cloud wrapper (AKS, GKE) whose payload cannot be read.
    InvalidWrapper,
    /// A timestamp that is missing or not RFC 3339.
    InvalidTimestamp,
    /// Bytes that are not UTF-8 (the line is rejected, the rest is read).
    InvalidUtf8,
    /// The input could not be read at all (I/O, gzip).
    Unreadable,
}

impl BadReason {
    /// Every reason, for series that must exist before the first bad record.
    pub const ALL: [BadReason; 9] = [
        BadReason::InvalidJson,
        BadReason::NotAnObject,
        BadReason::UnknownShape,
        BadReason::InvalidAuditEvent,
        BadReason::InvalidKubeEvent,
        BadReason::InvalidWrapper,
        BadReason::InvalidTimestamp,
        BadReason::InvalidUtf8,
        BadReason::Unreadable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BadReason::InvalidJson => "invalid_json",
            BadReason::NotAnObject => "not_an_object",
            BadReason::UnknownShape => "unknown_shape",
            BadReason::InvalidAuditEvent => "invalid_audit_event",
            BadReason::InvalidKubeEvent => "invalid_kube_event",
            BadReason::InvalidWrapper => "invalid_wrapper",
            BadReason::InvalidTimestamp => "invalid_timestamp",
            BadReason::InvalidUtf8 => "invalid_utf8",
            BadReason::Unreadable => "unreadable",
        }
    }
}

/// A rejected record: why, where (1-based line in its document), and the detail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRecord {
    pub reason: BadReason,
    pub line: usize,
    pub detail: String,
}

/// What decoding saw, beyond the records it produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Audit events read (any stage or verb).
    pub audit_events: u64,
    /// Kubernetes Event objects read (watch, list, or file).
    pub kube_events: u64,
    /// Well-formed records that kausal does not turn into spans, by reason
    /// (`read`, `stage_request_received`, `lease`, ...).
    pub skipped: BTreeMap<&'static str, u64>,
    pub bad: BTreeMap<BadReason, u64>,
    /// Well-formed audit events by `(verb, stage)`; unusual values are `other`,
    /// so the label set stays small whatever the input.
    pub audit_by_verb_stage: BTreeMap<(&'static str, &'static str), u64>,
    /// Trace-context annotations that parsed in no format (ignored; the
    /// record is kept).
    pub trace_contexts_invalid: u64,
    /// Objects other than Events read (an object dump), for owner chains.
    pub objects: u64,
}

impl DecodeStats {
    pub fn merge(&mut self, other: &DecodeStats) {
        self.audit_events += other.audit_events;
        self.kube_events += other.kube_events;
        self.objects += other.objects;
        self.trace_contexts_invalid += other.trace_contexts_invalid;
        for (k, v) in &other.skipped {
            *self.skipped.entry(k).or_default() += v;
        }
        for (k, v) in &other.bad {
            *self.bad.entry(*k).or_default() += v;
        }
        for (k, v) in &other.audit_by_verb_stage {
            *self.audit_by_verb_stage.entry(*k).or_default() += v;
        }
    }

    pub(super) fn count_verb_stage(&mut self, verb: &str, stage: &str) {
        const VERBS: &[&str] =
            &["get", "list", "watch", "create", "update", "patch", "delete", "deletecollection", "proxy"];
        const STAGES: &[&str] = &["RequestReceived", "ResponseStarted", "ResponseComplete", "Panic"];
        let verb = VERBS.iter().find(|v| **v == verb).copied().unwrap_or("other");
        let stage = STAGES.iter().find(|s| **s == stage).copied().unwrap_or("other");
        *self.audit_by_verb_stage.entry((verb, stage)).or_default() += 1;
    }

    pub fn bad_total(&self) -> u64 {
        self.bad.values().sum()
    }
}

/// The result of decoding one document.
#[derive(Debug, Clone, Default)]
pub struct Decoded {
    pub records: Vec<Record>,
    /// Objects that are not Events (an object dump beside them): their
    /// metadata, for the owner chains of the Events-only linker.
    pub observed: Vec<ObservedObject>,
    pub bad: Vec<BadRecord>,
    pub stats: DecodeStats,
}

impl Decoded {
    /// Rejects records stamped later than `latest`. A live source passes its
    /// clock plus a tolerance: one record from the year 9000 would otherwise
    /// move its cluster's event-time clock so far ahead that every later
    /// record skips the settle delay.
    pub fn reject_records_after(&mut self, latest: Micros, tolerance: std::time::Duration) {
        let mut rejected = Vec::new();
        self.records.retain(|r| {
            let ahead = r.order_time() > latest;
            if ahead {
                rejected.push(match r {
                    Record::Write(w) => {
                        format!("auditID {}: stageTimestamp {}", w.audit_id, time::format_micros(w.completed))
                    }
                    Record::Event(e) => {
                        format!("Event {}/{}: time {}", e.namespace, e.name, time::format_micros(e.time))
                    }
                });
            }
            !ahead
        });
        let tolerance = tolerance.as_secs();
        for what in rejected {
            self.reject(
                BadReason::InvalidTimestamp,
                0,
                format!("{what} is more than {tolerance} s ahead of kausal's clock"),
            );
        }
    }

    /// The result for an input that could not be read at all (I/O, gzip).
    pub fn unreadable(detail: String) -> Decoded {
        let mut decoded = Decoded::default();
        decoded.reject(BadReason::Unreadable, 0, detail);
        decoded
    }

    pub(super) fn reject(&mut self, reason: BadReason, line: usize, detail: impl Into<String>) {
        *self.stats.bad.entry(reason).or_default() += 1;
        self.bad.push(BadRecord { reason, line, detail: detail.into() });
    }

    pub(super) fn skip(&mut self, why: &'static str) {
        *self.stats.skipped.entry(why).or_default() += 1;
    }
}
