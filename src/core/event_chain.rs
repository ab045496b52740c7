//! The Events-only linker: on a cluster without an audit webhook, Events are
//! joined by the relations the Events themselves name.
//!
//! Without writes there is no graph of causes, but the controllers say what
//! they did in their messages: "Scaled up replica set web-5d894c86f5 to 2"
//! (about the Deployment) announces the ReplicaSet's next Events, "Created
//! pod: web-5d894c86f5-2znrl" (about the ReplicaSet) the pod's, and the
//! scheduler's "Successfully assigned default/web-…-2znrl to node-1" the
//! kubelet's. An Event whose object was announced this way hangs under the
//! announcement; one whose object was not is a root, and the root-level
//! Events of one object share the first one's trace while they belong to one
//! cause: a Deployment's scale Events while its rollout is in progress (one
//! trace per rollout rather than one per step), a workload controller's
//! while they come in one burst, anything else's within the window. Where
//! nothing announced an object, its owner (from the API's metadata or an
//! object dump) or, as a marked guess, its name says whose it is. The engine
//! asks only when no audit write has been seen: with writes, the audit rules
//! decide.

use std::collections::VecDeque;

use foldhash::HashMap;

use super::graph::SpanRef;
use super::ids::TraceId;
use super::record::EventRecord;
use super::time::{MICROS_PER_SECOND, Micros};

/// How long a workload controller's own Events keep one trace when nothing
/// announced them. A controller acts on one cause in one sync, so its Events
/// (and its children's) come within a second of each other, whole-second
/// times included; the next cause, such as a person's `kubectl scale`, comes
/// after a pause. Measured on the e2e scenarios' recordings
/// (`tests/fixtures/e2e/events-only`): bursts span under 0.4 s (1 s apart
/// at most in whole seconds), and the closest next intent came 2.6 s after
/// the last Event of the one before (the StatefulSet's scale-down).
const BURST_GAP: Micros = 3 * MICROS_PER_SECOND / 2;

/// What an Event's message says its controller did to another object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Announcement {
    /// It acted on the object (created it, scaled it): the object's next
    /// Events follow from it. `target` is a scale's new size.
    Drives { object: ObjectKey, target: Option<Scale> },
    /// It deleted the object: the object's `Killing` follows from it.
    Deletes { object: ObjectKey },
    /// The scheduler bound the pod: the kubelet's Events for it follow.
    Schedules { object: ObjectKey },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Scale {
    up: bool,
    to: i64,
}

/// Kind, namespace and name, as Events name objects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ObjectKey(Box<str>);

impl ObjectKey {
    pub(super) fn new(kind: &str, namespace: &str, name: &str) -> ObjectKey {
        ObjectKey(format!("{kind}/{namespace}/{name}").into_boxed_str())
    }

    /// The object an Event is about.
    fn of(e: &EventRecord) -> Option<ObjectKey> {
        let r = &e.regarding;
        let namespace = r.namespace.as_deref().unwrap_or(&e.namespace);
        Some(ObjectKey::new(r.kind.as_deref()?, namespace, r.name.as_deref()?))
    }
}

/// Where an Event about an object of `kind` goes among Events of the same
/// time: owners first, as announcements come before what they announce.
pub(super) fn announcement_rank(kind: Option<&str>) -> u8 {
    match kind {
        Some("Deployment" | "CronJob" | "StatefulSet" | "DaemonSet" | "ReplicationController") => 0,
        Some("ReplicaSet" | "Job") => 1,
        Some("Pod" | "PersistentVolumeClaim") => 2,
        _ => 3,
    }
}

/// Kinds whose controllers announce what they do to their children: their
/// own root-level Events keep one trace while they come in one burst.
fn announces_children(kind: &str) -> bool {
    announcement_rank(Some(kind)) <= 1
}

/// A Deployment's scale of one of its ReplicaSets, read from its Event.
fn rollout_step(e: &EventRecord) -> Option<(ObjectKey, Scale)> {
    if e.regarding.kind.as_deref() != Some("Deployment") {
        return None;
    }
    match announcement(e)? {
        Announcement::Drives { object, target: Some(scale) } => Some((object, scale)),
        _ => None,
    }
}

/// Reads the announcement in an Event's message, in the forms the 1.20
/// controllers and scheduler write.
pub(super) fn announcement(e: &EventRecord) -> Option<Announcement> {
    let message = e.message.as_deref()?.trim();
    let namespace = e.regarding.namespace.as_deref().unwrap_or(&e.namespace);
    let key = |kind: &str, name: &str| ObjectKey::new(kind, namespace, name.trim());
    match e.reason.as_deref()? {
        "ScalingReplicaSet" => {
            let (up, rest) = match message.strip_prefix("Scaled up replica set ") {
                Some(rest) => (true, rest),
                None => (false, message.strip_prefix("Scaled down replica set ")?),
            };
            let (name, to) = rest.rsplit_once(" to ")?;
            Some(Announcement::Drives {
                object: key("ReplicaSet", name),
                target: to.parse().ok().map(|to| Scale { up, to }),
            })
        }
        "SuccessfulCreate" => {
            let (kind, name) = named_in(message, CREATED)?;
            Some(Announcement::Drives { object: key(kind, name), target: None })
        }
        "SuccessfulDelete" => {
            let (kind, name) = named_in(message, DELETED)?;
            Some(Announcement::Deletes { object: key(kind, name) })
        }
        "Scheduled" => {
            let (pod, _node) = message.strip_prefix("Successfully assigned ")?.rsplit_once(" to ")?;
            let (pod_namespace, name) = pod.split_once('/')?;
            Some(Announcement::Schedules { object: ObjectKey::new("Pod", pod_namespace, name) })
        }
        _ => None,
    }
}

/// How a message names an object: its prefix, the object's kind, and whether
/// the name is the first word after the prefix (the StatefulSet forms go
/// on: "create Pod db-0 in StatefulSet db successful") or all of the rest.
type Form = (&'static str, &'static str, bool);

const CREATED: &[Form] = &[
    ("Created pod: ", "Pod", false),
    ("Created job ", "Job", false),
    ("create Pod ", "Pod", true),
    ("create Claim ", "PersistentVolumeClaim", true),
];

const DELETED: &[Form] =
    &[("Deleted pod: ", "Pod", false), ("Deleted job ", "Job", false), ("delete Pod ", "Pod", true)];

/// The kind and name the first matching form reads from `message`.
fn named_in<'m>(message: &'m str, forms: &[Form]) -> Option<(&'static str, &'m str)> {
    forms.iter().find_map(|&(prefix, kind, first_word)| {
        let rest = message.strip_prefix(prefix)?.trim_start_matches(':');
        let name = if first_word { rest.split(' ').next()? } else { rest };
        Some((kind, name))
    })
}

/// One announcement remembered: when, by which span, and (for a scale) how
/// many of its children's Events it accounts for.
#[derive(Debug, Clone, Copy)]
struct Announced {
    time: Micros,
    span: SpanRef,
    scale: Option<Scale>,
    /// For a scale, the ReplicaSet's size before it, where earlier Events
    /// gave it (and it fits the direction: Events of one second may come
    /// out of order).
    before: Option<i64>,
    /// Child Events already placed under it.
    taken: i64,
}

/// An Event an announcement ordered after it may still adopt: a root, or
/// one whose parent was only a fallback guess (its owner's latest Event).
#[derive(Debug, Clone, Copy)]
struct Adoptable {
    time: Micros,
    span: SpanRef,
    guessed: bool,
}

/// An Event that an announcement took as its child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Adopted {
    pub span: SpanRef,
    /// It had a fallback parent (not a root): only it moves, not its trace.
    pub guessed: bool,
}

/// Where an Event was placed, as the chains remember it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Placed {
    Root,
    /// Under a fallback guess (owner reference, naming convention).
    Guessed,
    Linked,
}

/// A root-level Event of an object, and when its run of root-level Events
/// last grew: later ones within the window join its trace.
#[derive(Debug, Clone, Copy)]
struct Run {
    first: SpanRef,
    last: Micros,
}

#[derive(Default)]
pub(super) struct EventChains {
    /// Root-level Events by their object, for an announcement ordered after
    /// them to adopt.
    roots: HashMap<ObjectKey, Vec<Adoptable>>,
    drives: HashMap<ObjectKey, Vec<Announced>>,
    deletes: HashMap<ObjectKey, Vec<Announced>>,
    schedules: HashMap<ObjectKey, Announced>,
    runs: HashMap<ObjectKey, Run>,
    /// The latest Event about each object, for the owner-reference and
    /// naming-convention fallbacks.
    last_about: HashMap<ObjectKey, (Micros, SpanRef)>,
    /// Each Deployment's ReplicaSets with the size its Events last gave them:
    /// whether a rollout is in progress.
    replica_sets: HashMap<ObjectKey, Vec<(ObjectKey, i64)>>,
    /// When each trace last got an Event: whether a burst is still going.
    activity: HashMap<TraceId, Micros>,
    /// Everything noted, oldest first, to forget it in order.
    noted: VecDeque<(Micros, ObjectKey)>,
    activity_noted: VecDeque<(Micros, TraceId)>,
}

/// How an Event's parent was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FoundBy {
    /// Another Event named its object.
    Announcement,
    /// An earlier root-level Event of the same object, of the same cause
    /// (the same rollout, the same burst, or within the window).
    Run,
    /// The object's owner, known from the API's metadata or an object dump:
    /// the owner's latest Event.
    OwnerReference,
    /// Only the object's name says who owns it (`web-5d894c86f5-2znrl` is a
    /// pod of ReplicaSet `web-5d894c86f5`, itself of Deployment `web`): a
    /// guess, marked as one on the span.
    NamingConvention,
}

impl FoundBy {
    /// The value of the span's `kausal.parent.found_by`.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            FoundBy::Announcement => "announcement",
            FoundBy::Run => "run",
            FoundBy::OwnerReference => "owner-reference",
            FoundBy::NamingConvention => "naming-convention",
        }
    }
}

impl EventChains {
    /// The span an Event hangs under, from what earlier Events announced;
    /// `None` when nothing announced its object (a root). `owners` is the
    /// object's chain of controller owners where the API or a dump told it,
    /// nearest first.
    pub(super) fn parent_of(
        &mut self,
        e: &EventRecord,
        window: Micros,
        owners: &[ObjectKey],
    ) -> Option<(SpanRef, FoundBy)> {
        let object = ObjectKey::of(e)?;
        if let Some(span) = self.announced_parent(e, &object, window) {
            return Some((span, FoundBy::Announcement));
        }
        // Nothing announced the object: a root, unless a run of the
        // object's root-level Events of the same cause is still going...
        if let Some(span) = self.continued_run(e, &object, window) {
            return Some((span, FoundBy::Run));
        }
        // ...or its owner is known and has Events...
        let upper = e.time_upper_bound();
        if let Some(span) = owners.iter().find_map(|o| self.last_about.get(o).filter(|(t, _)| *t <= upper)) {
            return Some((span.1, FoundBy::OwnerReference));
        }
        // ...or its name names an owner whose Events were seen.
        self.owner_by_name(e, &object).map(|span| (span, FoundBy::NamingConvention))
    }

    /// The first Event of the object's run, if this Event is of the same
    /// cause as the run.
    fn continued_run(&mut self, e: &EventRecord, object: &ObjectKey, window: Micros) -> Option<SpanRef> {
        let run = *self.runs.get(object)?;
        let kind = e.regarding.kind.as_deref().unwrap_or("");
        let continues = match rollout_step(e) {
            Some((replica_set, scale)) => self.continues_rollout(object, &replica_set, scale),
            None if announces_children(kind) => {
                self.activity.get(&run.first.trace_id).is_some_and(|t| *t >= e.time.saturating_sub(BURST_GAP))
            }
            None => run.last >= e.time.saturating_sub(window),
        };
        if !continues {
            return None;
        }
        let run = self.runs.get_mut(object).expect("read above");
        run.last = run.last.max(e.time);
        Some(run.first)
    }

    /// Whether a Deployment's scale of `replica_set` is a step of a rollout
    /// in progress. A rollout moves replicas from old ReplicaSets to a new
    /// one: it starts when a ReplicaSet is scaled up from nothing, and goes on
    /// while another ReplicaSet still has replicas. A scale of the only
    /// ReplicaSet with replicas is a new cause (a `kubectl scale`), however
    /// soon it comes. Steps of a rollout may be minutes apart (each waits for
    /// pods to become available), so no window applies.
    fn continues_rollout(&self, deployment: &ObjectKey, replica_set: &ObjectKey, scale: Scale) -> bool {
        let Some(sizes) = self.replica_sets.get(deployment) else {
            return false;
        };
        let before = sizes.iter().find(|(rs, _)| rs == replica_set).map(|(_, n)| *n);
        if scale.up && before.is_none_or(|n| n == 0) {
            return false;
        }
        sizes.iter().any(|(rs, n)| rs != replica_set && *n > 0)
    }

    /// The latest Event about the owner the object's name implies (or that
    /// owner's own owner), at or before the Event.
    fn owner_by_name(&self, e: &EventRecord, object: &ObjectKey) -> Option<SpanRef> {
        let upper = e.time_upper_bound();
        let mut candidates = owners_by_name(object);
        let mut depth = 0;
        while !candidates.is_empty() && depth < 2 {
            let mut next = Vec::new();
            for owner in &candidates {
                if let Some((_, span)) = self.last_about.get(owner).filter(|(t, _)| *t <= upper) {
                    return Some(*span);
                }
                next.extend(owners_by_name(owner));
            }
            candidates = next;
            depth += 1;
        }
        None
    }

    fn announced_parent(&mut self, e: &EventRecord, object: &ObjectKey, window: Micros) -> Option<SpanRef> {
        let object = object.clone();
        let (upper, from) = (e.time_upper_bound(), e.time.saturating_sub(window));
        let reason = e.reason.as_deref().unwrap_or("");
        if reason == "Killing" {
            return self.deletes.get_mut(&object).and_then(|list| pick(list, upper, from, None));
        }
        // The kubelet reports on a pod for as long as it runs: its Events
        // follow the binding, or (a DaemonSet's pods before 1.12 were not
        // scheduled) the creation, however long ago.
        if e.reporter.as_deref() == Some("kubelet") {
            if let Some(scheduled) = self.schedules.get(&object).filter(|a| a.time <= upper) {
                return Some(scheduled.span);
            }
            if let Some(span) = self.drives.get_mut(&object).and_then(|list| pick(list, upper, Micros::MIN, None)) {
                return Some(span);
            }
        }
        let wants = match reason {
            "SuccessfulCreate" => Some(true),
            "SuccessfulDelete" => Some(false),
            _ => None,
        };
        self.drives.get_mut(&object).and_then(|list| pick(list, upper, from, wants))
    }

    /// Remembers what this Event announces, and, for a root, starts a run.
    /// Returns the roots already seen that the announcement names, at or
    /// after its time: Events with whole-second times are ordered by the end
    /// of their second, so "Created pod: X" can come after X's first Event.
    /// A guessed parent may be replaced the same way: the scheduler's
    /// `Scheduled` (exact time) comes before the `Created pod` (whole second)
    /// that names its pod.
    pub(super) fn note(&mut self, e: &EventRecord, span: SpanRef, placed: Placed, window: Micros) -> Vec<Adopted> {
        let adopted = self.note_announcement(e, span, window);
        if let Some((replica_set, scale)) = rollout_step(e)
            && let Some(deployment) = ObjectKey::of(e)
        {
            let sizes = self.replica_sets.entry(deployment).or_default();
            match sizes.iter_mut().find(|(rs, _)| *rs == replica_set) {
                Some((_, size)) => *size = scale.to,
                None => sizes.push((replica_set, scale.to)),
            }
        }
        // A guess is not yet the trace's activity: the announcement that
        // would replace it may still come, and decide whether a burst goes on.
        if placed != Placed::Guessed {
            let active = self.activity.entry(span.trace_id).or_insert(e.time);
            *active = (*active).max(e.time);
            self.activity_noted.push_back((e.time, span.trace_id));
        }
        if let Some(object) = ObjectKey::of(e) {
            let latest = self.last_about.entry(object.clone()).or_insert((e.time, span));
            if e.time >= latest.0 {
                *latest = (e.time, span);
            }
            // After the announcement: an Event never adopts itself.
            if placed == Placed::Root {
                self.runs.insert(object.clone(), Run { first: span, last: e.time });
            }
            if placed != Placed::Linked {
                let guessed = placed == Placed::Guessed;
                self.roots.entry(object.clone()).or_default().push(Adoptable { time: e.time, span, guessed });
            }
            // Every Event's object, so that what is kept about it expires.
            self.noted.push_back((e.time, object));
        }
        adopted
    }

    fn note_announcement(&mut self, e: &EventRecord, span: SpanRef, window: Micros) -> Vec<Adopted> {
        let remembered = |scale| Announced { time: e.time, span, scale, before: None, taken: 0 };
        let object = match announcement(e) {
            Some(Announcement::Drives { object, target }) => {
                let before = target.and_then(|scale| {
                    let sizes = self.replica_sets.get(&ObjectKey::of(e)?)?;
                    let (_, size) = sizes.iter().find(|(rs, _)| *rs == object)?;
                    (if scale.up { *size < scale.to } else { *size > scale.to }).then_some(*size)
                });
                let announced = Announced { before, ..remembered(target) };
                self.drives.entry(object.clone()).or_default().push(announced);
                object
            }
            Some(Announcement::Deletes { object }) => {
                self.deletes.entry(object.clone()).or_default().push(remembered(None));
                object
            }
            Some(Announcement::Schedules { object }) => {
                self.schedules.insert(object.clone(), remembered(None));
                object
            }
            None => return Vec::new(),
        };
        let adopted = match self.roots.get_mut(&object) {
            Some(roots) => {
                let (from, until) = (e.time, e.time_upper_bound().saturating_add(window));
                let (taken, kept): (Vec<_>, Vec<_>) = roots.drain(..).partition(|a| a.time >= from && a.time <= until);
                *roots = kept;
                taken.into_iter().map(|a| Adopted { span: a.span, guessed: a.guessed }).collect()
            }
            None => Vec::new(),
        };
        if !adopted.is_empty() {
            self.runs.remove(&object);
        }
        self.noted.push_back((e.time, object));
        adopted
    }

    /// A root adopted into another trace: what was remembered of its trace
    /// moves too.
    pub(super) fn retrace(&mut self, old: TraceId, new: TraceId) {
        let lists = self.drives.values_mut().chain(self.deletes.values_mut()).flatten();
        for a in lists.chain(self.schedules.values_mut()).filter(|a| a.span.trace_id == old) {
            a.span.trace_id = new;
        }
        for run in self.runs.values_mut().filter(|r| r.first.trace_id == old) {
            run.first.trace_id = new;
        }
        for root in self.roots.values_mut().flatten().filter(|a| a.span.trace_id == old) {
            root.span.trace_id = new;
        }
        for latest in self.last_about.values_mut().filter(|(_, s)| s.trace_id == old) {
            latest.1.trace_id = new;
        }
        if let Some(t) = self.activity.remove(&old) {
            let active = self.activity.entry(new).or_insert(t);
            *active = (*active).max(t);
            self.activity_noted.push_back((t, new));
        }
    }

    /// One span moved to another trace (a guessed parent replaced): what
    /// was remembered of that span follows it.
    pub(super) fn respan(&mut self, span_id: super::ids::SpanId, new: TraceId) {
        let lists = self.drives.values_mut().chain(self.deletes.values_mut()).flatten();
        for a in lists.chain(self.schedules.values_mut()).filter(|a| a.span.span_id == span_id) {
            a.span.trace_id = new;
        }
        for latest in self.last_about.values_mut().filter(|(_, s)| s.span_id == span_id) {
            latest.1.trace_id = new;
        }
    }

    /// Forgets announcements made before `cutoff`.
    pub(super) fn expire(&mut self, cutoff: Micros) {
        while self.activity_noted.front().is_some_and(|(t, _)| *t < cutoff) {
            let (_, trace) = self.activity_noted.pop_front().expect("checked");
            if self.activity.get(&trace).is_some_and(|t| *t < cutoff) {
                self.activity.remove(&trace);
            }
        }
        while self.noted.front().is_some_and(|(t, _)| *t < cutoff) {
            let (_, object) = self.noted.pop_front().expect("checked");
            for map in [&mut self.drives, &mut self.deletes] {
                if let Some(list) = map.get_mut(&object) {
                    list.retain(|a| a.time >= cutoff);
                    if list.is_empty() {
                        map.remove(&object);
                    }
                }
            }
            if self.schedules.get(&object).is_some_and(|a| a.time < cutoff) {
                self.schedules.remove(&object);
            }
            if self.runs.get(&object).is_some_and(|r| r.last < cutoff) {
                self.runs.remove(&object);
            }
            if self.last_about.get(&object).is_some_and(|(t, _)| *t < cutoff) {
                self.last_about.remove(&object);
                // A Deployment with no Event since the cutoff: its sizes are stale.
                self.replica_sets.remove(&object);
            }
            if let Some(roots) = self.roots.get_mut(&object) {
                roots.retain(|a| a.time >= cutoff);
                if roots.is_empty() {
                    self.roots.remove(&object);
                }
            }
        }
    }
}

/// The owners an object's name implies, by the controllers' naming
/// conventions: a pod `<owner>-<5 characters>` (ReplicaSet, DaemonSet, Job)
/// or `<StatefulSet>-<ordinal>`, a ReplicaSet `<Deployment>-<pod-template-hash>`,
/// a Job `<CronJob>-<scheduled time>`.
fn owners_by_name(object: &ObjectKey) -> Vec<ObjectKey> {
    let mut parts = object.0.splitn(3, '/');
    let (Some(kind), Some(namespace), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return Vec::new();
    };
    let Some((stem, suffix)) = name.rsplit_once('-') else {
        return Vec::new();
    };
    let lower_alnum = |s: &str| s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let key = |kind: &str| ObjectKey::new(kind, namespace, stem);
    match kind {
        "Pod" if suffix.len() == 5 && lower_alnum(suffix) => vec![key("ReplicaSet"), key("DaemonSet"), key("Job")],
        "Pod" if digits(suffix) => vec![key("StatefulSet")],
        "ReplicaSet" if (6..=10).contains(&suffix.len()) && lower_alnum(suffix) => vec![key("Deployment")],
        "Job" if digits(suffix) => vec![key("CronJob")],
        _ => Vec::new(),
    }
}

/// The announcement a child Event hangs under, among those in `[from, upper]`.
/// Scales account for as many creations (or deletions) as they changed the
/// size by, in size order within one time: Events that carry only whole
/// seconds ("Scaled up … to 2" and "… to 3" in the same second) are told
/// apart by counting, not by time. Otherwise the latest one.
fn pick(list: &mut [Announced], upper: Micros, from: Micros, wants: Option<bool>) -> Option<SpanRef> {
    let mut candidates: Vec<usize> =
        (0..list.len()).filter(|&i| list[i].time <= upper && list[i].time >= from).collect();
    let latest = *candidates.iter().max_by_key(|&&i| (list[i].time, i))?;
    if let Some(up) = wants {
        candidates.retain(|&i| list[i].scale.is_some_and(|s| s.up == up));
        candidates.sort_by_key(|&i| {
            let s = list[i].scale.expect("kept only scales");
            (list[i].time, if up { s.to } else { -s.to })
        });
        // The size before each scale: what the Deployment's earlier Events
        // said, or else the scale before it in the window; before the first,
        // none for a new ReplicaSet scaled up, and for a scale down unknown,
        // so it takes what comes.
        let mut before: Option<i64> = if up { Some(0) } else { None };
        for &i in &candidates {
            let to = list[i].scale.expect("kept only scales").to;
            let room = list[i].before.or(before).map_or(i64::MAX, |b| if up { to - b } else { b - to });
            before = Some(to);
            if list[i].taken < room {
                list[i].taken += 1;
                return Some(list[i].span);
            }
        }
        // More children than the scales account for: the last scale.
        if let Some(&last) = candidates.last() {
            return Some(list[last].span);
        }
    }
    Some(list[latest].span)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{EventOrigin, Regarding};

    fn event(reason: &str, kind: &str, name: &str, message: &str) -> EventRecord {
        EventRecord {
            uid: None,
            namespace: "default".into(),
            name: format!("{name}.1").into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            event_type: Some("Normal".into()),
            action: None,
            reporter: None,
            reporter_host: None,
            regarding: Regarding {
                kind: Some(kind.into()),
                namespace: Some("default".into()),
                name: Some(name.into()),
                ..Regarding::default()
            },
            time: 0,
            coarse_time: false,
            count: 1,
            origin: EventOrigin::Object,
        }
    }

    #[test]
    fn the_controllers_messages_name_the_objects_they_acted_on() {
        let drives = |kind: &str, name: &str| {
            Some(Announcement::Drives { object: ObjectKey::new(kind, "default", name), target: None })
        };
        let scale = event("ScalingReplicaSet", "Deployment", "web", "Scaled up replica set web-5d894c86f5 to 2");
        assert_eq!(
            announcement(&scale),
            Some(Announcement::Drives {
                object: ObjectKey::new("ReplicaSet", "default", "web-5d894c86f5"),
                target: Some(Scale { up: true, to: 2 })
            })
        );
        let created = event("SuccessfulCreate", "ReplicaSet", "web-5d894c86f5", "Created pod: web-5d894c86f5-2znrl");
        assert_eq!(announcement(&created), drives("Pod", "web-5d894c86f5-2znrl"));
        let stateful = event("SuccessfulCreate", "StatefulSet", "db", "create Pod db-0 in StatefulSet db successful");
        assert_eq!(announcement(&stateful), drives("Pod", "db-0"));
        let cron = event("SuccessfulCreate", "CronJob", "tick", "Created job tick-27830400");
        assert_eq!(announcement(&cron), drives("Job", "tick-27830400"));
        let deleted = event("SuccessfulDelete", "ReplicaSet", "web-1", "Deleted pod: web-1-abcde");
        assert_eq!(
            announcement(&deleted),
            Some(Announcement::Deletes { object: ObjectKey::new("Pod", "default", "web-1-abcde") })
        );
        let scheduled = event("Scheduled", "Pod", "web-1-abcde", "Successfully assigned prod/web-1-abcde to node-1");
        assert_eq!(
            announcement(&scheduled),
            Some(Announcement::Schedules { object: ObjectKey::new("Pod", "prod", "web-1-abcde") })
        );
        for unrelated in [
            event("ScalingReplicaSet", "Deployment", "web", "Scaled sideways"),
            event("SuccessfulCreate", "ReplicaSet", "web-1", "something else"),
            event("Pulled", "Pod", "web-1-abcde", "Created pod: not-an-announcement"),
        ] {
            assert_eq!(announcement(&unrelated), None, "{:?}", unrelated.message);
        }
    }

    #[test]
    fn without_an_announcement_the_names_say_whose_a_pod_is_as_a_marked_guess() {
        let span = |n: u8| SpanRef { trace_id: [n; 16], span_id: [n; 8] };
        let mut chains = EventChains::default();
        let scaled = event("ScalingReplicaSet", "Deployment", "web", "Scaled up replica set web-5d894c86f5 to 2");
        chains.note(&scaled, span(1), Placed::Root, 30_000_000);
        // The ReplicaSet's "Created pod" is not in the dump; the kubelet's
        // Event ten minutes later names only its pod.
        let mut pulled = event("Pulled", "Pod", "web-5d894c86f5-2znrl", "Successfully pulled image");
        pulled.reporter = Some("kubelet".into());
        pulled.time = 600_000_000;
        assert_eq!(chains.parent_of(&pulled, 30_000_000, &[]), Some((span(1), FoundBy::NamingConvention)));
        // A name that follows no convention guesses nothing.
        let mut bare = event("Pulled", "Pod", "standalone", "Successfully pulled image");
        bare.time = 600_000_000;
        assert_eq!(chains.parent_of(&bare, 30_000_000, &[]), None);
        assert_eq!(
            owners_by_name(&ObjectKey::new("Pod", "default", "db-0")),
            [ObjectKey::new("StatefulSet", "default", "db")]
        );
        assert_eq!(
            owners_by_name(&ObjectKey::new("Job", "default", "tick-27830400")),
            [ObjectKey::new("CronJob", "default", "tick")]
        );
    }

    #[test]
    fn what_is_kept_about_an_events_object_expires_with_it() {
        let span = SpanRef { trace_id: [1; 16], span_id: [1; 8] };
        let mut chains = EventChains::default();
        // Neither a root nor an announcement: only its latest-Event entry is kept.
        chains.note(
            &event("Pulled", "Pod", "web-1-abcde", "Successfully pulled image"),
            span,
            Placed::Linked,
            30_000_000,
        );
        assert_eq!(chains.last_about.len(), 1);
        chains.expire(1);
        assert!(chains.last_about.is_empty() && chains.noted.is_empty(), "kept past its expiry");
        assert!(chains.activity.is_empty() && chains.activity_noted.is_empty(), "activity kept past its expiry");
    }

    #[test]
    fn creations_in_one_second_are_shared_out_by_the_sizes_of_the_scales() {
        let span = |n: u8| SpanRef { trace_id: [n; 16], span_id: [n; 8] };
        let mut chains = EventChains::default();
        let scale = |to: i64| {
            let mut e =
                event("ScalingReplicaSet", "Deployment", "web", &format!("Scaled up replica set web-1 to {to}"));
            e.coarse_time = true;
            e
        };
        // The later scale is noted first: same second, no order to go by.
        chains.note(&scale(3), span(3), Placed::Root, 30_000_000);
        chains.note(&scale(2), span(2), Placed::Linked, 30_000_000);
        let mut created = event("SuccessfulCreate", "ReplicaSet", "web-1", "Created pod: web-1-a");
        created.coarse_time = true;
        let parents: Vec<SpanRef> = (0..4).map(|_| chains.parent_of(&created, 30_000_000, &[]).unwrap().0).collect();
        assert_eq!(
            parents,
            [span(2), span(2), span(3), span(3)],
            "2 for the first scale, 1 for the second, then the latest"
        );
    }
}
