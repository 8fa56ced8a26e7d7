//! The GCRA (generic cell rate algorithm) arithmetic, as `lua/acquire.lua`
//! runs it inside Redis. This is the reference the script is tested
//! against, and what the worker uses to refuse a call that can never pass.
//!
//! A limit of `count` units per `period` has an emission interval
//! `T = period / count`. Its state is one number, the theoretical arrival
//! time (TAT). A call of `cost` units moves the TAT to
//! `max(TAT, now) + cost·T` and passes if that is at most `burst·T` ahead of
//! now. So over any window of length t at most `rate·t + burst` units pass.

use std::time::Duration;

/// The outcome of offering a call to a limit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// It passes; the limit's TAT becomes `new_tat_us`.
    Pass {
        /// The new theoretical arrival time, µs.
        new_tat_us: f64,
    },
    /// It would pass after `wait`; the state does not change.
    Wait(Duration),
    /// It can never pass: its cost is larger than the burst.
    Never,
}

/// Offers a call of `cost` units at `now_us` to a limit with emission
/// interval `interval_us`, burst `burst` and state `tat_us` (None: unused).
pub fn offer(tat_us: Option<f64>, now_us: f64, interval_us: f64, burst: u64, cost: u64) -> Verdict {
    if cost > burst {
        return Verdict::Never;
    }
    let tat = tat_us.unwrap_or(now_us).max(now_us);
    let new_tat = tat + cost as f64 * interval_us;
    let allow_at = new_tat - burst as f64 * interval_us;
    if allow_at > now_us {
        Verdict::Wait(Duration::from_micros((allow_at - now_us).ceil() as u64))
    } else {
        Verdict::Pass {
            new_tat_us: new_tat,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    /// A limit driven by tokio's paused clock.
    struct Clocked {
        start: Instant,
        tat: Option<f64>,
        interval_us: f64,
        burst: u64,
    }

    impl Clocked {
        fn new(per_second: f64, burst: u64) -> Self {
            Self {
                start: Instant::now(),
                tat: None,
                interval_us: 1e6 / per_second,
                burst,
            }
        }
        fn offer(&mut self, cost: u64) -> Verdict {
            let now = self.start.elapsed().as_micros() as f64;
            let verdict = offer(self.tat, now, self.interval_us, self.burst, cost);
            if let Verdict::Pass { new_tat_us } = verdict {
                self.tat = Some(new_tat_us);
            }
            verdict
        }
    }

    fn passes(v: Verdict) -> bool {
        matches!(v, Verdict::Pass { .. })
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_at_once_then_the_rate_holds() {
        let mut limit = Clocked::new(50.0, 5);
        for _ in 0..5 {
            assert!(passes(limit.offer(1)));
        }
        // The sixth call must wait one emission interval (20 ms).
        assert_eq!(limit.offer(1), Verdict::Wait(Duration::from_millis(20)));
        tokio::time::advance(Duration::from_millis(19)).await;
        assert_eq!(limit.offer(1), Verdict::Wait(Duration::from_millis(1)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(passes(limit.offer(1)));
    }

    #[tokio::test(start_paused = true)]
    async fn over_any_window_at_most_rate_times_t_plus_burst_pass() {
        let mut limit = Clocked::new(50.0, 5);
        let mut passed = 0;
        // Offer a call every millisecond for 10 s.
        for _ in 0..10_000 {
            if passes(limit.offer(1)) {
                passed += 1;
            }
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert!(passed <= 50 * 10 + 5, "{passed} passed");
        assert!(passed >= 50 * 10, "{passed} passed: the rate was not used");
    }

    #[tokio::test(start_paused = true)]
    async fn costs_weigh_calls() {
        // 1000 units/s with room for one call of 100 at once: 10 calls a second.
        let mut limit = Clocked::new(1000.0, 100);
        assert!(passes(limit.offer(100)));
        assert_eq!(limit.offer(100), Verdict::Wait(Duration::from_millis(100)));
        tokio::time::advance(Duration::from_millis(100)).await;
        assert!(passes(limit.offer(100)));
    }

    #[test]
    fn a_cost_over_the_burst_can_never_pass() {
        assert_eq!(offer(None, 0.0, 1000.0, 10, 11), Verdict::Never);
        assert!(passes(offer(None, 0.0, 1000.0, 10, 10)));
    }
}
