//! The retry decision: whether a failed attempt earns another, and after
//! how long. JetStream redelivers the task (a nak with that delay), so
//! another worker may take the next attempt.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use toolfan_protocol::{Deadline, ErrorKind, TaskResult};

use crate::runtime::{Shared, ToolEntry};

/// A retry must be able to start at least this long before the deadline.
const RETRY_MARGIN: Duration = Duration::from_millis(10);

/// How retries back off: attempt n waits a random time up to
/// `min(cap, base · 2^(n-1))` (exponential backoff, full jitter), or
/// longer if the tool asked for it (`retry_after`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) cap: Duration,
}

impl Backoff {
    /// The ceiling of attempt `attempt`'s delay (attempt 1 is the first).
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        self.base.saturating_mul(1u32 << exponent).min(self.cap)
    }

    /// The delay before another attempt, if `result` earns one: a
    /// retryable failure with retries left (`retries` after the first
    /// attempt) and time for the delay before `deadline`. `jitter` in
    /// [0, 1) picks the delay under the ceiling.
    pub(crate) fn delay(
        &self,
        result: &TaskResult,
        retries: u32,
        deadline: &Deadline,
        jitter: f64,
    ) -> Option<Duration> {
        let error = result.error()?;
        let retryable = error.retryable
            && !matches!(
                error.kind,
                ErrorKind::InvalidArgs
                    | ErrorKind::UnknownTool
                    | ErrorKind::DeadlineExceeded
                    | ErrorKind::RateLimited
            );
        if !retryable || result.attempts == 0 || result.attempts > retries {
            return None;
        }
        let backoff = self.ceiling(result.attempts).mul_f64(jitter);
        let asked = Duration::from_millis(error.retry_after_ms.unwrap_or(0));
        let delay = backoff.max(asked);
        (deadline.remaining() > delay + RETRY_MARGIN).then_some(delay)
    }
}

/// Hands the task back to JetStream for another attempt after `delay`.
pub(crate) async fn hand_back(
    shared: &Shared,
    entry: &ToolEntry,
    message: &jetstream::Message,
    delay: Duration,
) {
    tracing::debug!(?delay, "retrying after a retryable failure");
    let tool = entry.name.as_str();
    shared.metrics.retries.with_label_values(&[tool]).inc();
    if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
        tracing::warn!(error = %e, "retry nak failed; the task comes back after its ack wait");
    }
}

#[cfg(test)]
mod tests {
    use toolfan_protocol::TaskError;

    use super::*;

    const BACKOFF: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(10),
    };

    fn retryable(kind: ErrorKind) -> TaskError {
        TaskError {
            retryable: true,
            ..TaskError::new(kind, "failed")
        }
    }

    fn failed(attempts: u32, error: TaskError) -> TaskResult {
        TaskResult {
            attempts,
            ..TaskResult::decided(0, error)
        }
    }

    #[test]
    fn the_ceiling_doubles_up_to_the_cap() {
        let ceilings: Vec<u64> = (1..=9)
            .map(|n| BACKOFF.ceiling(n).as_millis() as u64)
            .collect();
        assert_eq!(
            ceilings,
            [100, 200, 400, 800, 1600, 3200, 6400, 10_000, 10_000]
        );
        assert_eq!(BACKOFF.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_needs_retries_left_and_time_before_the_deadline() {
        let deadline = Deadline::within(Duration::from_secs(1));
        let flaky = || retryable(ErrorKind::Timeout);
        let delay = BACKOFF.delay(&failed(1, flaky()), 2, &deadline, 0.5);
        assert_eq!(delay, Some(Duration::from_millis(50)));
        assert_eq!(
            BACKOFF.delay(&failed(3, flaky()), 2, &deadline, 0.5),
            None,
            "no retries left"
        );
        let asked = TaskError {
            retry_after_ms: Some(2_000),
            ..flaky()
        };
        assert_eq!(
            BACKOFF.delay(&failed(1, asked), 2, &deadline, 0.5),
            None,
            "asked to wait past the deadline"
        );
        tokio::time::advance(Duration::from_millis(960)).await;
        assert_eq!(
            BACKOFF.delay(&failed(1, flaky()), 2, &deadline, 0.5),
            None,
            "the delay would end within 10 ms of the deadline"
        );
        assert_eq!(
            BACKOFF.delay(&failed(1, flaky()), 2, &deadline, 0.0),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn kinds_that_another_attempt_cannot_help_are_not_retried() {
        let deadline = Deadline::within(Duration::from_secs(60));
        for kind in [
            ErrorKind::InvalidArgs,
            ErrorKind::UnknownTool,
            ErrorKind::DeadlineExceeded,
            ErrorKind::RateLimited,
        ] {
            let error = retryable(kind.clone());
            assert_eq!(
                BACKOFF.delay(&failed(1, error), 5, &deadline, 0.5),
                None,
                "{kind:?}"
            );
        }
        let final_error = TaskError::new(ErrorKind::ToolError, "no");
        assert_eq!(
            BACKOFF.delay(&failed(1, final_error), 5, &deadline, 0.5),
            None
        );
    }
}
