//! Pulling from a durable consumer no faster than there are free slots.
//!
//! The loop waits until a slot is free, then asks for as many messages as
//! there are free slots (long-polling up to one second). It holds no slot
//! while it waits, so several loops sharing one budget never starve each
//! other; each message takes its slot when it arrives.

use std::future::Future;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{consumer, AckKind, Message};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Most messages asked for in one pull request.
const MAX_PULL: usize = 256;
/// How long one pull request waits for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(1);

/// A budget of slots that pulled messages take.
pub trait Slots: Send + Sync {
    /// What a message holds while it is being handled.
    type Permit: Send + 'static;
    /// Slots free now.
    fn free(&self) -> usize;
    /// Waits for a slot; `None` once the budget is closed.
    fn acquire(&self) -> impl Future<Output = Option<Self::Permit>> + Send;
}

impl Slots for Arc<Semaphore> {
    type Permit = OwnedSemaphorePermit;

    fn free(&self) -> usize {
        self.available_permits()
    }

    async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.clone().acquire_owned().await.ok()
    }
}

/// Pulls from `consumer` until `stop`, handing each message with its slot to
/// `handle`. Messages that arrive after `stop` are handed back (nak) at once.
pub async fn pull_with_slots<S, H, Fut>(
    consumer: consumer::Consumer<consumer::pull::Config>,
    slots: S,
    stop: CancellationToken,
    mut handle: H,
) where
    S: Slots,
    H: FnMut(Message, S::Permit) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut failures = 0u32;
    loop {
        // Stop first: with both ready, an unbiased select would pull
        // another batch (and wait out its expiry) half the time.
        tokio::select! {
            biased;
            _ = stop.cancelled() => return,
            permit = slots.acquire() => match permit {
                Some(permit) => drop(permit),
                None => return,
            },
        }
        let want = slots.free().clamp(1, MAX_PULL);
        let batch = match consumer
            .batch()
            .max_messages(want)
            .expires(PULL_EXPIRES)
            .messages()
            .await
        {
            Ok(batch) => {
                failures = 0;
                batch
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "pull request failed; retrying");
                let backoff = Duration::from_millis(100 * u64::from(failures.min(20)));
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => continue,
                    _ = stop.cancelled() => return,
                }
            }
        };
        if hand_out(batch, &slots, &stop, &mut handle).await.is_break() {
            return;
        }
    }
}

/// Hands each message of `batch` with its slot to `handle`, or back (nak)
/// once `stop` is cancelled; breaks when the budget is closed.
async fn hand_out<S, H, Fut>(
    mut batch: consumer::pull::Batch,
    slots: &S,
    stop: &CancellationToken,
    handle: &mut H,
) -> ControlFlow<()>
where
    S: Slots,
    H: FnMut(Message, S::Permit) -> Fut,
    Fut: Future<Output = ()>,
{
    while let Some(next) = batch.next().await {
        let message = match next {
            Ok(message) => message,
            Err(e) => {
                tracing::debug!(error = %e, "pull batch ended with an error");
                break;
            }
        };
        if stop.is_cancelled() {
            let _ = message.ack_with(AckKind::Nak(None)).await;
            continue;
        }
        match slots.acquire().await {
            Some(permit) => handle(message, permit).await,
            None => return ControlFlow::Break(()),
        }
    }
    ControlFlow::Continue(())
}
