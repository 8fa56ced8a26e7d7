//! A coordinator's life ([`run`]): started, the pull loop over the jobs
//! stream (no more jobs than free slots), then the drain and the stop.

use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use toolfan_transport::pull_with_slots;

use crate::error::CoordinatorError;
use crate::job;
use crate::options::CoordinatorOptions;
use crate::shared::Shared;
use crate::start::{start, Started};

/// Runs a coordinator until `shutdown` is cancelled, then stops taking jobs
/// and waits up to the drain timeout for live ones; jobs still live then
/// are handed back (nak) for another coordinator to take over.
pub async fn run(
    options: CoordinatorOptions,
    shutdown: CancellationToken,
) -> Result<(), CoordinatorError> {
    options.check()?;
    let slots = Arc::new(Semaphore::new(options.max_live_jobs));
    let Started {
        shared,
        consumer,
        background,
    } = start(options, &shutdown).await?;
    tracing::info!(
        workers = shared.registry.live().len(),
        "coordinator started"
    );
    let mut jobs = JoinSet::new();
    pull_with_slots(consumer, slots, shutdown.clone(), |message, permit| {
        while jobs.try_join_next().is_some() {}
        let shared = shared.clone();
        jobs.spawn(async move {
            job::handle(&shared, message).await;
            drop(permit);
        });
        std::future::ready(())
    })
    .await;
    drain(&shared, &mut jobs).await;
    background.stop().await;
    tracing::info!("coordinator stopped");
    Ok(())
}

/// Waits up to the drain timeout for the live `jobs`; jobs still live then
/// are abandoned: each hands its message back at once (a nak without
/// delay), so another coordinator takes it now rather than after the jobs
/// consumer's ack wait.
async fn drain(shared: &Shared, jobs: &mut JoinSet<()>) {
    let all = async { while jobs.join_next().await.is_some() {} };
    if tokio::time::timeout(shared.options.drain_timeout, all)
        .await
        .is_ok()
    {
        return;
    }
    tracing::warn!(
        live = jobs.len(),
        "drain timeout passed with jobs still live; handing them back"
    );
    shared.abandon.cancel();
    let handed_back = async { while jobs.join_next().await.is_some() {} };
    if tokio::time::timeout(HAND_BACK_WITHIN, handed_back)
        .await
        .is_err()
    {
        tracing::warn!(
            live = jobs.len(),
            "jobs not handed back in time; they will be redelivered"
        );
    }
}

/// How long abandoned jobs get to hand their messages back.
const HAND_BACK_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);
