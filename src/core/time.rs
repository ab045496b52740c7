//! Timestamps as integer microseconds since the Unix epoch.
//!
//! Audit records carry microsecond RFC 3339 timestamps, and core/v1 Events carry
//! whole seconds. Integers keep comparisons exact and cheap in the core.

/// Microseconds since the Unix epoch.
pub type Micros = i64;

pub const MICROS_PER_SECOND: Micros = 1_000_000;

/// A duration in microseconds, saturating at [`Micros::MAX`]: the one
/// conversion from flags and settings into the core's time.
pub fn from_duration(d: std::time::Duration) -> Micros {
    Micros::try_from(d.as_micros()).unwrap_or(Micros::MAX)
}

/// Parses an RFC 3339 timestamp (`2026-11-21T22:17:46.161151Z`) to microseconds.
/// Returns `None` for anything that is not a valid timestamp, so callers can
/// report a bad record instead of guessing a time.
pub fn parse_rfc3339_micros(text: &str) -> Option<Micros> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    let micros = ts.as_microsecond();
    Some(micros)
}

/// Whether a timestamp string has sub-second precision. core/v1 `firstTimestamp`
/// and `lastTimestamp` never do; Events are then compared as the interval
/// `[t, t + 1 s)`.
pub fn has_fraction(text: &str) -> bool {
    text.contains('.')
}

/// Formats microseconds as RFC 3339 with microsecond precision (used in output).
pub fn format_micros(micros: Micros) -> String {
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(ts) => format!("{ts:.6}"),
        Err(_) => micros.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_audit_timestamps_to_micros() {
        let a = parse_rfc3339_micros("2026-11-21T22:17:46.161151Z").unwrap();
        let b = parse_rfc3339_micros("2026-11-21T22:17:46.161152Z").unwrap();
        assert_eq!(b - a, 1);
        let whole = parse_rfc3339_micros("2026-11-21T22:17:46Z").unwrap();
        assert_eq!(a - whole, 161_151);
        assert_eq!(format_micros(a), "2026-11-21T22:17:46.161151Z");
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(parse_rfc3339_micros("yesterday"), None);
        assert_eq!(parse_rfc3339_micros(""), None);
    }
}
