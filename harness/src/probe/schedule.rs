//! Open-loop schedules and wall-clock bounds for the load generators: when send *i* is due, when a run must stop,
//! and how far a run fell short of its schedule. All arithmetic saturates, so no rate or duration a caller passes
//! can panic (`Duration::from_secs_f64` and `Instant + Duration` both panic on overflow).

use std::time::{Duration, Instant};

/// The lowest open-loop rate a generator accepts (one send per 1,000 s): below it a run of at most an hour sends
/// one request at the start and nothing else, and `1 / rate` no longer fits a `Duration`.
pub const MIN_RATE: f64 = 0.001;

/// `start + d`, or the farthest instant representable near it when that overflows (a far-away deadline is as good
/// as "never" for a run that is also bounded by count).
pub fn after(start: Instant, d: Duration) -> Instant {
    start.checked_add(d).or_else(|| start.checked_add(Duration::from_secs(100 * 365 * 86_400))).unwrap_or(start)
}

/// When send `i` is due in an open-loop run at `rate` per second; `None` when it is too far to represent (never).
pub fn due(start: Instant, rate: f64, i: u64) -> Option<Instant> {
    let offset = Duration::try_from_secs_f64(i as f64 / rate).ok()?;
    start.checked_add(offset)
}

/// How many sends an open-loop schedule holds before `duration`, capped at `count`: the sends it *intends*.
pub fn intended(rate: Option<f64>, duration: Duration, count: u64) -> u64 {
    match rate {
        // Send i is due at i / rate, so the ones before the deadline are i < duration × rate.
        Some(rate) if rate.is_finite() && rate > 0.0 => {
            let due_before = (duration.as_secs_f64() * rate).ceil();
            if due_before >= count as f64 { count } else { due_before as u64 }
        }
        // Closed loop has no schedule: its intent is the count bound.
        _ => count,
    }
}

/// Sends per second over `elapsed` (0 for an empty run).
pub fn achieved_rate(sent: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 { sent as f64 / secs } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extreme_rates_and_durations_saturate() {
        let now = Instant::now();
        assert_eq!(due(now, 1e-300, 1), None);
        assert_eq!(due(now, 1e-19, 1), None);
        assert_eq!(due(now, 2.0, 0), Some(now));
        assert_eq!(due(now, 2.0, 1), Some(now + Duration::from_millis(500)));
        assert!(after(now, Duration::MAX) > now);
        assert_eq!(intended(Some(1e-300), Duration::from_secs(2), 10), 1);
        assert_eq!(intended(Some(1000.0), Duration::from_secs(2), 300_000), 2000);
        assert_eq!(intended(Some(1e300), Duration::MAX, 7), 7);
        assert_eq!(intended(None, Duration::from_secs(2), 7), 7);
        assert_eq!(achieved_rate(10, Duration::ZERO), 0.0);
    }
}
