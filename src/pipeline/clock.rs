//! Clocks: the one place kausal reads the wall clock, and the core's
//! notion of "now" for a live stream.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::core::time::Micros;

/// This machine's clock, in microseconds since the Unix epoch. Sources stamp
/// arrivals with it and the export loop measures lag with it; the core never
/// calls it.
#[allow(clippy::disallowed_methods)] // the one permitted reader of the wall clock
pub fn wall_clock_micros() -> Micros {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| Micros::try_from(d.as_micros()).unwrap_or(Micros::MAX))
}

/// The core's notion of "now" for a live stream, in record time.
///
/// The apiserver's clock, not ours, stamps the records, and a recorded stream
/// may be POSTed long after it happened. So "now" is the newest record time
/// plus the wall time elapsed since that record arrived: idle input still
/// flushes after the settle delay, and clock skew does not matter.
#[derive(Debug, Default)]
pub struct EventClock {
    newest: Option<(Micros, Instant)>,
}

impl EventClock {
    pub fn saw(&mut self, record_time: Micros, at: Instant) {
        match self.newest {
            Some((t, _)) if t >= record_time => {}
            _ => self.newest = Some((record_time, at)),
        }
    }

    /// The wall-clock instant at which this clock reaches record time `due`
    /// (`None` before any record was seen, or beyond what an `Instant` holds).
    pub fn instant_of(&self, due: Micros) -> Option<Instant> {
        let (t, seen) = self.newest?;
        let ahead = u64::try_from(due.saturating_sub(t)).unwrap_or(0);
        seen.checked_add(Duration::from_micros(ahead))
    }

    pub fn now(&self, at: Instant) -> Option<Micros> {
        self.newest.map(|(t, seen)| {
            let elapsed = at.saturating_duration_since(seen).as_micros();
            t.saturating_add(Micros::try_from(elapsed).unwrap_or(Micros::MAX))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_clock_moves_with_wall_time_from_the_newest_record() {
        let start = Instant::now();
        let mut clock = EventClock::default();
        assert_eq!(clock.now(start), None);
        clock.saw(1_000_000, start);
        clock.saw(500_000, start + Duration::from_secs(5)); // older record: no effect
        assert_eq!(clock.now(start + Duration::from_millis(1500)), Some(2_500_000));
    }
}
