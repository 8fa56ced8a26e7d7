//! Limits that adapt to what the backend says: the arithmetic that
//! `lua/acquire.lua` and `lua/after.lua` run in Redis, as the reference
//! they are tested against.
//!
//! A backend's "too many" (an HTTP 429, a 503 with `Retry-After`, a tool's
//! [rate-limited error]) cuts the key's *effective* rate for the whole
//! fleet: it becomes `factor` (½) of what it was, at most once per quiet
//! window (1 s, or the `Retry-After` if longer, so a burst of 429s from
//! calls in flight on many workers counts once), never below one unit per
//! period; and its burst is used up at once (the next unit passes one
//! new interval later: the backend is full, and a slower interval would
//! otherwise make room for a burst right after the cut). From the cut on it climbs back on a timer, additively: by
//! `1/recovery` of the configured rate per second of time (+10 % a second
//! with the default 10 s), never above the configured rate. Recovering on
//! the clock instead of counting successes costs nothing per call: a
//! success is never reported, and a backend that is still overloaded
//! answers "too many" again and cuts the rate again (AIMD).
//!
//! The state is one Redis hash per key, `<prefix>:adapt:<key>`, next to
//! its GCRA state: `interval` (µs per unit right after the cut), `at` (the
//! cut, µs of Redis time), `recover` (µs to climb from zero to the
//! configured rate) and `quiet_until` (µs; no cut before then). It expires
//! once the rate is back at the configured one.
//!
//! [rate-limited error]: https://docs.rs/toolfan-worker (`ToolError::rate_limited`)

use std::time::Duration;

/// How keys adapt; the same for the whole fleet (the values travel with
/// each report and the state, so workers of other versions agree).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adaptation {
    /// What a cut multiplies the effective rate by (0 < factor < 1).
    pub factor: f64,
    /// Least time between two cuts of a key.
    pub quiet: Duration,
    /// Time to climb from zero back to the configured rate.
    pub recovery: Duration,
    /// How far ahead of now reported costs may push a key's arrival time,
    /// in bursts.
    pub max_bursts_ahead: u64,
}

impl Default for Adaptation {
    fn default() -> Self {
        Self {
            factor: 0.5,
            quiet: Duration::from_secs(1),
            recovery: Duration::from_secs(10),
            max_bursts_ahead: 10,
        }
    }
}

/// A key's adapted state, as stored in `<prefix>:adapt:<key>`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Adapted {
    /// Emission interval right after the last cut, µs per unit.
    pub interval_us: f64,
    /// When it was cut, µs of Redis time.
    pub at_us: f64,
    /// µs to climb from zero to the configured rate.
    pub recover_us: f64,
    /// No cut before this, µs of Redis time.
    pub quiet_until_us: f64,
}

/// The emission interval in force at `now_us` for a key configured at
/// `configured_us` per unit: the cut one plus what it recovered since,
/// never faster than configured.
pub fn effective_interval(state: Option<&Adapted>, configured_us: f64, now_us: f64) -> f64 {
    let Some(s) = state.filter(|s| s.interval_us > 0.0 && s.recover_us > 0.0) else {
        return configured_us;
    };
    // Rates in units per µs: the cut's plus 1/recover of the configured per µs elapsed.
    let rate = 1.0 / s.interval_us + (now_us - s.at_us).max(0.0) / (s.recover_us * configured_us);
    if rate * configured_us >= 1.0 {
        configured_us
    } else {
        1.0 / rate
    }
}

/// The state after a "too many" at `now_us`, or `None` while the key is in
/// its quiet window. `floor_us` is the slowest interval (one unit per
/// period); `hold` a `Retry-After`, which lengthens the quiet window.
pub fn cut(
    state: Option<&Adapted>,
    configured_us: f64,
    floor_us: f64,
    now_us: f64,
    hold: Duration,
    how: &Adaptation,
) -> Option<Adapted> {
    if state.is_some_and(|s| now_us < s.quiet_until_us) {
        return None;
    }
    let effective = effective_interval(state, configured_us, now_us);
    let quiet = how.quiet.max(hold).as_micros() as f64;
    Some(Adapted {
        interval_us: (effective / how.factor).min(floor_us.max(configured_us)),
        at_us: now_us,
        recover_us: how.recovery.as_micros() as f64,
        quiet_until_us: now_us + quiet,
    })
}

/// The arrival time after a call's real cost is known: moved by
/// `delta_units` (actual − estimate) intervals from `max(tat, now)`, kept
/// between now and `max_ahead_us` ahead of it.
pub fn charged_tat(
    tat_us: f64,
    now_us: f64,
    delta_units: i64,
    interval_us: f64,
    max_ahead_us: f64,
) -> f64 {
    let moved = tat_us.max(now_us) + delta_units as f64 * interval_us;
    moved.clamp(now_us, now_us + max_ahead_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: f64 = 1e6;
    /// 100/s: 10 ms a unit; one unit per second at the floor.
    const CONFIGURED: f64 = 10_000.0;
    const FLOOR: f64 = SECOND;

    fn rate_at(state: &Adapted, now: f64) -> f64 {
        SECOND / effective_interval(Some(state), CONFIGURED, now)
    }

    #[test]
    fn a_cut_halves_the_rate_and_it_climbs_back_ten_percent_a_second() {
        let how = Adaptation::default();
        let cut1 = cut(None, CONFIGURED, FLOOR, 0.0, Duration::ZERO, &how).unwrap();
        assert_eq!(rate_at(&cut1, 0.0), 50.0);
        // +10/s a second (10 % of 100/s), up to the configured rate and no further.
        assert!((rate_at(&cut1, 2.0 * SECOND) - 70.0).abs() < 1e-9);
        assert_eq!(rate_at(&cut1, 5.0 * SECOND), 100.0);
        assert_eq!(rate_at(&cut1, 60.0 * SECOND), 100.0);
        // Within the quiet second another "too many" changes nothing.
        assert_eq!(
            cut(
                Some(&cut1),
                CONFIGURED,
                FLOOR,
                0.5 * SECOND,
                Duration::ZERO,
                &how
            ),
            None
        );
        // After it, the cut starts from the recovered rate (60/s → 30/s).
        let cut2 = cut(Some(&cut1), CONFIGURED, FLOOR, SECOND, Duration::ZERO, &how).unwrap();
        assert!((rate_at(&cut2, SECOND) - 30.0).abs() < 1e-9);
    }

    #[test]
    fn cuts_stop_at_one_unit_per_period_and_a_retry_after_lengthens_the_quiet() {
        // Recovering slowly enough not to count, cut once a second 20 times.
        let slow = Adaptation {
            recovery: Duration::from_secs(1_000_000),
            ..Adaptation::default()
        };
        let mut state = None;
        for i in 0..20 {
            let now = f64::from(i) * SECOND;
            state = cut(
                state.as_ref(),
                CONFIGURED,
                FLOOR,
                now,
                Duration::ZERO,
                &slow,
            );
        }
        assert_eq!(
            state.unwrap().interval_us,
            FLOOR,
            "never below 1 unit per second"
        );
        let how = Adaptation::default();
        let held = cut(None, CONFIGURED, FLOOR, 0.0, Duration::from_secs(3), &how).unwrap();
        assert_eq!(held.quiet_until_us, 3.0 * SECOND);
    }

    #[test]
    fn a_configured_rate_lowered_below_the_cut_one_wins() {
        let how = Adaptation::default();
        let cut1 = cut(None, CONFIGURED, FLOOR, 0.0, Duration::ZERO, &how).unwrap();
        // Now configured at 20/s (50 ms), below the cut's 50/s.
        assert_eq!(effective_interval(Some(&cut1), 50_000.0, 0.0), 50_000.0);
    }

    #[test]
    fn charges_move_the_arrival_time_within_bounds() {
        // 1000/s: 1 ms a unit. A call estimated at 10 that cost 100: 90 ms more.
        assert_eq!(charged_tat(5_000.0, 0.0, 90, 1_000.0, 1e6), 95_000.0);
        // From now if the arrival time was behind.
        assert_eq!(charged_tat(0.0, 50_000.0, 90, 1_000.0, 1e6), 140_000.0);
        // A credit never goes behind now; a debit never past the bound.
        assert_eq!(charged_tat(5_000.0, 0.0, -90, 1_000.0, 1e6), 0.0);
        assert_eq!(charged_tat(900_000.0, 0.0, 900, 1_000.0, 1e6), 1e6);
    }
}
