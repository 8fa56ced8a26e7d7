//! A worker's slots: run slots (`concurrency`) for tools running, held
//! slots for tasks here at all (running or waiting for a limit), and the
//! share of run slots prefetched calls may use. Pulls are sized by them.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use toolfan_transport::Slots;

/// The worker's budgets of slots.
pub(crate) struct TaskSlots {
    /// Slots for running tools (`concurrency`).
    pub(crate) run: Arc<Semaphore>,
    /// Slots for tasks held at all, running or waiting for a limit.
    pub(crate) held: Arc<Semaphore>,
    /// Slots prefetched calls may run in.
    pub(crate) prefetch: Arc<Semaphore>,
}

impl TaskSlots {
    /// `concurrency` run slots, `held_factor` times as many held slots, and
    /// `prefetch_share` of the run slots (at least one) for prefetched calls.
    pub(crate) fn new(concurrency: u32, held_factor: u32, prefetch_share: f64) -> Self {
        let concurrency = concurrency as usize;
        let prefetch = ((concurrency as f64 * prefetch_share) as usize).max(1);
        Self {
            run: Arc::new(Semaphore::new(concurrency)),
            held: Arc::new(Semaphore::new(concurrency * held_factor as usize)),
            prefetch: Arc::new(Semaphore::new(prefetch)),
        }
    }
}

/// A pulled task's hold on the worker: a held slot for as long as the task
/// is here, and a run slot that it gives back while it waits (for a limit,
/// a prefetch slot, or an equal call running elsewhere).
pub(crate) struct TaskPermits {
    pub(crate) run: Option<OwnedSemaphorePermit>,
    pub(crate) _held: OwnedSemaphorePermit,
}

impl TaskPermits {
    /// Gives the run slot back for the length of a wait.
    pub(crate) fn give_back_run_slot(&mut self) {
        self.run = None;
    }

    /// Takes a run slot again after a wait (at once if it kept its own).
    pub(crate) async fn retake_run_slot(&mut self, slots: &TaskSlots) {
        if self.run.is_none() {
            self.run = slots.run.clone().acquire_owned().await.ok();
        }
    }
}

/// Pulls are sized by whichever budget is tighter.
pub(crate) struct PullSlots(pub(crate) Arc<TaskSlots>);

impl Slots for PullSlots {
    type Permit = TaskPermits;

    fn free(&self) -> usize {
        self.0
            .run
            .available_permits()
            .min(self.0.held.available_permits())
    }

    async fn acquire(&self) -> Option<TaskPermits> {
        let held = self.0.held.clone().acquire_owned().await.ok()?;
        let run = self.0.run.clone().acquire_owned().await.ok()?;
        Some(TaskPermits {
            run: Some(run),
            _held: held,
        })
    }
}
