//! Write de-duplication: the apiserver resends a batch it did not see
//! acknowledged, and a restart replays the log, so the same auditID can
//! arrive twice. Each is remembered for the dedup TTL, in arrival order.

use std::collections::VecDeque;

use foldhash::HashSet;

use super::time::Micros;

#[derive(Default)]
pub(super) struct WriteDedup {
    seen: HashSet<Box<str>>,
    /// The same IDs, oldest first, to forget them in order.
    queue: VecDeque<(Micros, Box<str>)>,
}

impl WriteDedup {
    /// True the first time an auditID is seen (within the TTL).
    pub(super) fn first_sight(&mut self, audit_id: &str, at: Micros) -> bool {
        if self.seen.contains(audit_id) {
            return false;
        }
        self.seen.insert(audit_id.into());
        self.queue.push_back((at, audit_id.into()));
        true
    }

    /// Forgets the IDs seen before `cutoff`.
    pub(super) fn expire(&mut self, cutoff: Micros) {
        while self.queue.front().is_some_and(|(t, _)| *t < cutoff) {
            let (_, id) = self.queue.pop_front().expect("checked");
            self.seen.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_new_once_until_it_expires() {
        let mut dedup = WriteDedup::default();
        assert!(dedup.first_sight("a", 10));
        assert!(!dedup.first_sight("a", 20));
        assert!(dedup.first_sight("b", 30));
        dedup.expire(11);
        assert!(dedup.first_sight("a", 40), "forgotten after its TTL");
        assert!(!dedup.first_sight("b", 41), "b was seen after the cutoff");
    }
}
