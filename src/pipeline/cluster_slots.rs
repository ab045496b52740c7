//! Which clusters kausal keeps a graph for: at most `--max-clusters`, each
//! slot taken by an accepted batch and given up when a new cluster needs it
//! and this one has been idle past the context period.
//!
//! A slot costs a graph in the worker, so the number is capped; but a cap
//! that only ever fills would turn a cluster renamed or retired into a
//! permanent 400 for the next one (the apiserver drops batches answered
//! 400). Idle slots are given up lazily, only when a new cluster asks: a
//! quiet cluster keeps its graph for as long as nobody needs the room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct ClusterSlots {
    max: usize,
    /// A slot unused this long may be given to a new cluster.
    idle_after: Duration,
    /// The cluster of `--cluster-name` (watched Events go there without
    /// asking for a slot): never given up.
    pinned: Arc<str>,
    state: Mutex<SlotState>,
}

#[derive(Default)]
struct SlotState {
    /// Each held cluster and when it last had a batch accepted.
    last_used: HashMap<Arc<str>, Instant>,
    /// Clusters whose slot was given up, for the worker to drop their graphs.
    released: Vec<Arc<str>>,
}

impl ClusterSlots {
    pub fn new(max: usize, idle_after: Duration, pinned: Arc<str>) -> ClusterSlots {
        ClusterSlots { max: max.max(1), idle_after, pinned, state: Mutex::default() }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// The interned name for a batch being accepted at `now`. When every slot
    /// is taken, the cluster idle the longest past `idle_after` gives its slot
    /// up; `None` when none has been idle that long.
    pub fn admit(&self, name: &str, now: Instant) -> Option<Arc<str>> {
        let mut state = self.state.lock().expect("cluster slots");
        if let Some((key, used)) = state.last_used.get_key_value(name) {
            let key = key.clone();
            if now > *used {
                state.last_used.insert(key.clone(), now);
            }
            return Some(key);
        }
        if state.last_used.len() >= self.max {
            let idlest = state
                .last_used
                .iter()
                .filter(|(key, used)| **key != self.pinned && now.saturating_duration_since(**used) >= self.idle_after)
                .min_by_key(|(_, used)| **used)
                .map(|(key, _)| key.clone())?;
            state.last_used.remove(&idlest);
            tracing::info!(
                released = %idlest,
                admitted = %name,
                idle_after = ?self.idle_after,
                "every cluster slot was taken (--max-clusters); the idlest cluster's graph is given up for a new one"
            );
            state.released.push(idlest);
        }
        let key: Arc<str> = name.into();
        state.last_used.insert(key.clone(), now);
        Some(key)
    }

    /// Admits a cluster whose entries a previous run accepted, whatever the
    /// cap: a restart with a lower `--max-clusters` must neither skip them
    /// nor leave them in the log for ever. Such slots are given up like any
    /// other once idle.
    pub fn admit_recovered(&self, name: &str, now: Instant) -> Arc<str> {
        let mut state = self.state.lock().expect("cluster slots");
        if let Some((key, _)) = state.last_used.get_key_value(name) {
            return key.clone();
        }
        let key: Arc<str> = name.into();
        state.last_used.insert(key.clone(), now);
        key
    }

    /// Clusters given up since the last call and not admitted again since.
    pub fn take_released(&self) -> Vec<Arc<str>> {
        let mut state = self.state.lock().expect("cluster slots");
        let mut released = std::mem::take(&mut state.released);
        released.sort_unstable();
        released.dedup();
        released.retain(|c| !state.last_used.contains_key(c));
        released
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_set_gives_up_only_a_slot_idle_past_the_period() {
        let start = Instant::now();
        let slots = ClusterSlots::new(2, Duration::from_secs(10), "".into());
        assert!(slots.admit("a", start).is_some());
        assert!(slots.admit("b", start + Duration::from_secs(3)).is_some());
        assert_eq!(slots.admit("c", start + Duration::from_secs(9)), None, "nobody idle for 10 s yet");
        assert!(slots.admit("a", start + Duration::from_secs(9)).is_some(), "a held cluster is always let in");
        // At 14 s, b has been idle 11 s and a 5 s: b goes.
        assert_eq!(slots.admit("c", start + Duration::from_secs(14)).as_deref(), Some("c"));
        assert_eq!(slots.take_released(), vec![Arc::<str>::from("b")]);
        assert!(slots.take_released().is_empty());
    }

    #[test]
    fn the_pinned_cluster_is_never_given_up_and_a_readmitted_one_is_not_dropped() {
        let start = Instant::now();
        let later = start + Duration::from_secs(60);
        let slots = ClusterSlots::new(2, Duration::from_secs(10), "prod".into());
        slots.admit("prod", start);
        slots.admit("a", start + Duration::from_secs(1));
        assert!(slots.admit("b", later).is_some(), "a gives up its slot, prod keeps its own");
        assert!(slots.admit("a", later + Duration::from_secs(30)).is_some(), "b idle 30 s gives way to a again");
        // b was given up and is back: its graph must not be dropped.
        slots.admit("b", later + Duration::from_secs(60));
        assert!(slots.take_released().iter().all(|c| &**c != "b"));
    }

    #[test]
    fn recovered_clusters_are_admitted_beyond_the_cap_and_age_out() {
        let start = Instant::now();
        let slots = ClusterSlots::new(1, Duration::from_secs(10), "".into());
        for name in ["a", "b", "c"] {
            assert_eq!(&*slots.admit_recovered(name, start), name);
        }
        assert_eq!(slots.admit("d", start + Duration::from_secs(5)), None);
        assert!(slots.admit("d", start + Duration::from_secs(11)).is_some());
        assert_eq!(slots.take_released().len(), 1);
    }
}
