//! Keeping a task message's ack deadline from lapsing while its task waits
//! or runs: only a dead worker's tasks are delivered again.

use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio_util::sync::CancellationToken;

/// Runs `work` while telling JetStream every `every` that the message is
/// still being worked on; `None` if `abandon` fires first (the work is dropped).
pub(crate) async fn with_progress<T>(
    message: &jetstream::Message,
    every: Duration,
    abandon: &CancellationToken,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    // The first signal is due after `every`. (Not `interval(every)` and
    // its immediate first tick: the timer rounds up to the next
    // millisecond, and awaiting it delayed every task by up to 1 ms.)
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Some(out),
            _ = abandon.cancelled() => return None,
            _ = ticker.tick() => {
                if let Err(e) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %e, "progress ack not sent");
                }
            }
        }
    }
}
