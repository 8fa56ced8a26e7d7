//! The one deadline type: when a job must be answered by, as it travels
//! (milliseconds since the Unix epoch, so every process reads the same
//! moment) and as this process waits for it (a monotonic [`Instant`] on
//! tokio's clock, so tests with paused time see it move).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Milliseconds since the Unix epoch, now (0 on a clock before 1970).
pub fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// How far ahead an [`Instant`] may be put (tokio's clock panics past its
/// range; no deadline of this system is a century long).
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// A job's deadline on the wall clock, mapped once to this process's
/// monotonic clock, which every later check reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    unix_ms: u64,
    at: Instant,
}

impl Deadline {
    /// The deadline a message carries (`deadline_unix_ms`), as of now.
    pub fn from_unix_ms(unix_ms: u64) -> Self {
        let left = Duration::from_millis(unix_ms.saturating_sub(now_unix_ms()));
        Self {
            unix_ms,
            at: later(Instant::now(), left),
        }
    }

    /// The deadline of a job stored at `submitted_unix_ms` with a budget
    /// of `budget_ms`.
    pub fn after(submitted_unix_ms: u64, budget_ms: u64) -> Self {
        Self::from_unix_ms(submitted_unix_ms.saturating_add(budget_ms))
    }

    /// A deadline `budget` from now.
    pub fn within(budget: Duration) -> Self {
        let ms = u64::try_from(budget.as_millis()).unwrap_or(u64::MAX);
        Self {
            unix_ms: now_unix_ms().saturating_add(ms),
            at: later(Instant::now(), budget),
        }
    }

    /// The deadline as milliseconds since the Unix epoch (what is sent).
    pub fn unix_ms(&self) -> u64 {
        self.unix_ms
    }

    /// The deadline on this process's monotonic clock.
    pub fn instant(&self) -> Instant {
        self.at
    }

    /// The time left (zero once passed).
    pub fn remaining(&self) -> Duration {
        self.at.saturating_duration_since(Instant::now())
    }

    /// Whether the deadline has passed.
    pub fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// `wait`, cut to the time left: a timeout never outlives the job.
    pub fn bound(&self, wait: Duration) -> Duration {
        wait.min(self.remaining())
    }

    /// Whether waiting `wait` from now still ends before the deadline.
    pub fn allows(&self, wait: Duration) -> bool {
        later(Instant::now(), wait) <= self.at
    }

    /// The deadline moved `extra` later (a grace for answers to arrive).
    pub fn plus(&self, extra: Duration) -> Instant {
        later(self.at, extra)
    }
}

fn later(from: Instant, by: Duration) -> Instant {
    from.checked_add(by.min(FAR))
        .unwrap_or_else(|| from + Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn remaining_time_runs_down_on_the_paused_clock() {
        let deadline = Deadline::within(Duration::from_secs(10));
        assert_eq!(deadline.remaining(), Duration::from_secs(10));
        tokio::time::advance(Duration::from_secs(4)).await;
        assert_eq!(deadline.remaining(), Duration::from_secs(6));
        assert_eq!(
            deadline.bound(Duration::from_secs(30)),
            Duration::from_secs(6)
        );
        assert_eq!(
            deadline.bound(Duration::from_secs(2)),
            Duration::from_secs(2)
        );
        assert!(deadline.allows(Duration::from_secs(6)));
        assert!(!deadline.allows(Duration::from_millis(6001)));
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(deadline.passed());
        assert_eq!(deadline.remaining(), Duration::ZERO);
    }

    #[test]
    fn a_wall_clock_deadline_keeps_its_wire_value() {
        let now = now_unix_ms();
        let past = Deadline::from_unix_ms(now.saturating_sub(1_000));
        assert_eq!(past.unix_ms(), now - 1_000);
        assert!(past.passed());
        let future = Deadline::after(now, 60_000);
        assert_eq!(future.unix_ms(), now + 60_000);
        let left = future.remaining();
        assert!(left > Duration::from_secs(59) && left <= Duration::from_secs(60));
    }

    #[test]
    fn an_absurd_deadline_does_not_panic() {
        let far = Deadline::from_unix_ms(u64::MAX);
        assert!(!far.passed());
        assert!(far.allows(Duration::from_secs(3600)));
        let _ = far.plus(Duration::MAX);
    }
}
