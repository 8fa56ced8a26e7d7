//! Keeping a lease alive: renewed every third of its TTL, so two renewals
//! can fail before it lapses, until the holder drops the handle.

use std::future::Future;
use std::time::Duration;

use tokio_util::task::AbortOnDropHandle;

/// Runs `renew` every third of `ttl` (the first a third after now) until
/// the returned handle is dropped. A failed renewal is logged as `what`.
pub(crate) fn every_third_of<F, Fut, E>(
    ttl: Duration,
    what: &'static str,
    mut renew: F,
) -> AbortOnDropHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let every = ttl / 3;
    AbortOnDropHandle::new(tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        loop {
            ticker.tick().await;
            if let Err(e) = renew().await {
                tracing::warn!(error = %e, "{what} not renewed");
            }
        }
    }))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn renews_every_third_of_the_ttl_until_dropped() {
        let count = Arc::new(AtomicU32::new(0));
        let counted = count.clone();
        let handle = every_third_of(Duration::from_secs(3), "a test lease", move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                Ok::<_, std::convert::Infallible>(())
            }
        });
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert_eq!(count.load(Ordering::SeqCst), 3, "at 1 s, 2 s and 3 s");
        drop(handle);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(count.load(Ordering::SeqCst), 3, "none after the drop");
    }
}
