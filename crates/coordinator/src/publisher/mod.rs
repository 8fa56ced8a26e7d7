//! The coordinator's JetStream publishes, bounded and shared fairly.
//!
//! Every live job has a [`Lane`]: it queues its task dispatches and its
//! verdicts there and goes straight back to its own duties (progress acks,
//! deadline, cancellation); nothing a job does waits on a publish. One
//! publisher task keeps at most `max_in_flight` publishes awaiting their
//! JetStream acks, below the JetStream context's own bound, so a publish
//! never blocks on a permit that only a later ack would free (the stall a
//! whole window published before awaiting any ack ran into). It takes
//! work from the lanes in turn: verdicts first (they end jobs on time),
//! then task dispatches, a few from each job with work waiting, round
//! robin, so a small job's tasks go out between a wide job's.
//!
//! A lane holds task indices and verdict indices, not messages: each is
//! encoded (by the job's [`Messages`]) only when the publisher takes it,
//! so a stalled server costs a few bytes per queued task, not a prepared
//! message each.
//!
//! What became of each task dispatch is reported back to its lane: the
//! stream sequence it was stored at (the job's safety net looks it up
//! there later), or a failure (the job puts it back in its window and
//! sends it again). A verdict that was not stored is reported too, and
//! the job sends it again: a verdict lost is a task without a result.

mod turns;

use std::future::IntoFuture;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, context::PublishAckFuture};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use turns::{LaneId, LaneQueues, Pending, Queues, QUANTUM};
pub(crate) use turns::{Messages, Outgoing, Published, TaskRef, Verdict};

/// What the publisher reports.
pub(crate) struct PublishGauges {
    /// Publishes queued in the lanes.
    pub(crate) waiting: prometheus::IntGauge,
    /// Publishes awaiting their acks.
    pub(crate) in_flight: prometheus::IntGauge,
}

/// The coordinator-wide publisher; cheap to clone.
#[derive(Clone)]
pub(crate) struct Publisher {
    queues: Arc<Mutex<Queues>>,
    wake: Arc<Notify>,
}

impl Publisher {
    /// Starts the publisher task on `js` with at most `max_in_flight`
    /// publishes awaiting acks; it stops with `stop`.
    pub(crate) fn start(
        js: jetstream::Context,
        max_in_flight: usize,
        gauges: PublishGauges,
        stop: CancellationToken,
    ) -> Self {
        let publisher = Self {
            queues: Arc::default(),
            wake: Arc::default(),
        };
        let run = publisher
            .clone()
            .run(js, max_in_flight.max(1), gauges, stop);
        tokio::spawn(run);
        publisher
    }

    /// A new lane for one job, whose messages `messages` makes; it closes
    /// when dropped.
    pub(crate) fn lane(&self, messages: Arc<dyn Messages>) -> Lane {
        let mut queues = self.lock();
        let id = queues.next_id;
        queues.next_id += 1;
        let lane = LaneQueues::new(messages);
        let notify = lane.notify.clone();
        queues.lanes.insert(id, lane);
        Lane {
            id,
            publisher: self.clone(),
            notify,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(
        self,
        js: jetstream::Context,
        max_in_flight: usize,
        gauges: PublishGauges,
        stop: CancellationToken,
    ) {
        let mut in_flight = FuturesUnordered::new();
        let mut batch = Vec::with_capacity(QUANTUM);
        loop {
            while in_flight.len() < max_in_flight {
                self.lock()
                    .next_batch(max_in_flight - in_flight.len(), &mut batch);
                if batch.is_empty() {
                    break;
                }
                for (lane, messages, pending) in batch.drain(..) {
                    let outgoing = pending.encode(messages.as_ref());
                    match js.send_publish(outgoing.subject, outgoing.message).await {
                        Ok(ack) => in_flight.push(acked(lane, pending, ack)),
                        Err(e) => self.failed(lane, pending, &e),
                    }
                }
            }
            gauges.waiting.set(self.lock().waiting as i64);
            gauges.in_flight.set(in_flight.len() as i64);
            tokio::select! {
                Some((lane, pending, result)) = in_flight.next() => match (pending, result) {
                    (Pending::Task(task), Ok(sequence)) => {
                        self.lock().report(lane, Published::Stored { task, sequence });
                    }
                    (Pending::Verdict(..), Ok(_)) => {}
                    (pending, Err(e)) => self.failed(lane, pending, &e),
                },
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    fn failed(&self, lane: LaneId, pending: Pending, error: &dyn std::fmt::Display) {
        let report = match pending {
            Pending::Task(task) => {
                tracing::warn!(index = task.index, %error, "dispatch failed; will retry");
                Published::Failed(task)
            }
            Pending::Verdict(index, verdict) => {
                tracing::warn!(index, %error, "a decided result was not stored; will retry");
                Published::VerdictFailed(index, verdict)
            }
        };
        self.lock().report(lane, report);
    }
}

/// The stream sequence a publish was stored at (or its original's, for a
/// deduplicated one).
async fn acked(
    lane: LaneId,
    pending: Pending,
    ack: PublishAckFuture,
) -> (
    LaneId,
    Pending,
    Result<u64, async_nats::jetstream::context::PublishError>,
) {
    let stored = ack.into_future().await.map(|ack| ack.sequence);
    (lane, pending, stored)
}

/// One job's queue in the publisher.
pub(crate) struct Lane {
    id: LaneId,
    publisher: Publisher,
    notify: Arc<Notify>,
}

impl Lane {
    /// Queues task dispatches; what becomes of each comes back from
    /// [`Lane::reports`].
    pub(crate) fn send_tasks(&self, tasks: &[TaskRef]) {
        self.push(tasks.iter().map(|&task| Pending::Task(task)));
    }

    /// Queues `verdict` for tasks `indices` (ahead of every task dispatch).
    pub(crate) fn send_verdicts(&self, indices: &[u32], verdict: Verdict) {
        let verdict = Arc::new(verdict);
        self.push(
            indices
                .iter()
                .map(|&i| Pending::Verdict(i, verdict.clone())),
        );
    }

    /// Queues verdicts again whose publish failed.
    pub(crate) fn resend_verdicts(&self, verdicts: Vec<(u32, Arc<Verdict>)>) {
        let pending: Vec<_> = verdicts
            .into_iter()
            .map(|(i, v)| Pending::Verdict(i, v))
            .collect();
        self.push(pending.into_iter());
    }

    fn push(&self, pending: impl ExactSizeIterator<Item = Pending>) {
        if pending.len() > 0 {
            self.publisher.lock().push(self.id, pending);
            self.publisher.wake.notify_one();
        }
    }

    /// Drops the task dispatches not yet published (the job is ending).
    pub(crate) fn drop_tasks(&self) {
        let mut queues = self.publisher.lock();
        let dropped = queues
            .lanes
            .get_mut(&self.id)
            .map_or(0, |lane| std::mem::take(&mut lane.tasks).len());
        queues.waiting -= dropped;
    }

    /// Waits until a dispatch of this lane was stored or failed.
    pub(crate) async fn reported(&self) {
        self.notify.notified().await
    }

    /// What became of this lane's dispatches since the last call.
    pub(crate) fn reports(&self) -> Vec<Published> {
        self.publisher
            .lock()
            .lanes
            .get_mut(&self.id)
            .map(|lane| std::mem::take(&mut lane.reports))
            .unwrap_or_default()
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        let mut queues = self.publisher.lock();
        if let Some(lane) = queues.lanes.remove(&self.id) {
            queues.waiting -= lane.verdicts.len() + lane.tasks.len();
        }
    }
}
