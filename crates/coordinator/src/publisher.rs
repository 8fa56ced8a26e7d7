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
//! A task whose publish fails is reported back to its lane; the job puts
//! it back in its window and sends it again.

use std::collections::{HashMap, VecDeque};
use std::future::IntoFuture;
use std::sync::{Arc, Mutex};

use async_nats::jetstream::{self, context::PublishAckFuture, message::PublishMessage};
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::TaskError;

/// Most publishes taken from one lane per turn.
const QUANTUM: usize = 8;

/// One message to publish: where and what.
pub(crate) struct Outgoing {
    pub(crate) subject: String,
    pub(crate) message: PublishMessage,
}

/// The coordinator's own outcome for some of a job's tasks.
pub(crate) struct Verdict {
    pub(crate) error: TaskError,
    /// Names the verdict in its `Nats-Msg-Id` (`deadline`, `cancel`, …).
    pub(crate) tag: &'static str,
}

/// Makes one job's messages when the publisher takes them.
pub(crate) trait Messages: Send + Sync {
    /// The dispatch of task `index`.
    fn task(&self, index: u32) -> Outgoing;
    /// `verdict` as the result of task `index`.
    fn verdict(&self, index: u32, verdict: &Verdict) -> Outgoing;
}

/// Something queued in a lane.
enum Pending {
    Task(u32),
    Verdict(u32, Arc<Verdict>),
}

impl Pending {
    fn encode(&self, messages: &dyn Messages) -> Outgoing {
        match self {
            Self::Task(index) => messages.task(*index),
            Self::Verdict(index, verdict) => messages.verdict(*index, verdict),
        }
    }

    fn task(&self) -> Option<u32> {
        match self {
            Self::Task(index) => Some(*index),
            Self::Verdict(..) => None,
        }
    }
}

type LaneId = u64;

struct LaneQueues {
    messages: Arc<dyn Messages>,
    verdicts: VecDeque<Pending>,
    tasks: VecDeque<Pending>,
    failed: Vec<u32>,
    notify: Arc<Notify>,
}

impl LaneQueues {
    fn new(messages: Arc<dyn Messages>) -> Self {
        Self {
            messages,
            verdicts: VecDeque::new(),
            tasks: VecDeque::new(),
            failed: Vec::new(),
            notify: Arc::default(),
        }
    }
}

/// Taken from a lane: its messages and what to encode with them.
type Taken = (LaneId, Arc<dyn Messages>, Pending);

#[derive(Default)]
struct Queues {
    next_id: LaneId,
    lanes: HashMap<LaneId, LaneQueues>,
    /// Lanes with verdicts waiting, in turn.
    verdict_turns: VecDeque<LaneId>,
    /// Lanes with tasks waiting, in turn.
    task_turns: VecDeque<LaneId>,
    /// Messages waiting in all lanes.
    waiting: usize,
}

impl Queues {
    /// Up to [`QUANTUM`] messages of the next lane in turn, verdicts first.
    fn next_batch(&mut self, room: usize, batch: &mut Vec<Taken>) {
        let take = room.min(QUANTUM);
        for verdicts in [true, false] {
            while batch.is_empty() {
                let turns = if verdicts {
                    &mut self.verdict_turns
                } else {
                    &mut self.task_turns
                };
                let Some(id) = turns.pop_front() else { break };
                let Some(lane) = self.lanes.get_mut(&id) else {
                    continue; // the job has ended
                };
                let queue = if verdicts {
                    &mut lane.verdicts
                } else {
                    &mut lane.tasks
                };
                let n = take.min(queue.len());
                let messages = &lane.messages;
                batch.extend(queue.drain(..n).map(|p| (id, messages.clone(), p)));
                if !queue.is_empty() {
                    turns.push_back(id);
                }
                self.waiting -= n;
            }
            if !batch.is_empty() {
                return;
            }
        }
    }

    fn push(&mut self, id: LaneId, pending: impl ExactSizeIterator<Item = Pending>) {
        let Some(lane) = self.lanes.get_mut(&id) else {
            return;
        };
        let mut pending = pending.peekable();
        let (queue, turns) = match pending.peek() {
            None => return,
            Some(Pending::Verdict(..)) => (&mut lane.verdicts, &mut self.verdict_turns),
            Some(Pending::Task(_)) => (&mut lane.tasks, &mut self.task_turns),
        };
        if queue.is_empty() {
            turns.push_back(id);
        }
        self.waiting += pending.len();
        queue.extend(pending);
    }

    fn fail(&mut self, id: LaneId, index: u32) {
        if let Some(lane) = self.lanes.get_mut(&id) {
            lane.failed.push(index);
            lane.notify.notify_one();
        }
    }
}

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
                    let task = pending.task();
                    let outgoing = pending.encode(messages.as_ref());
                    match js.send_publish(outgoing.subject, outgoing.message).await {
                        Ok(ack) => in_flight.push(acked(lane, task, ack)),
                        Err(e) => self.failed(lane, task, &e),
                    }
                }
            }
            gauges.waiting.set(self.lock().waiting as i64);
            gauges.in_flight.set(in_flight.len() as i64);
            tokio::select! {
                Some((lane, task, result)) = in_flight.next() => {
                    if let Err(e) = result {
                        self.failed(lane, task, &e);
                    }
                }
                _ = self.wake.notified() => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    fn failed(&self, lane: LaneId, task: Option<u32>, error: &dyn std::fmt::Display) {
        match task {
            Some(index) => {
                tracing::warn!(index, %error, "dispatch failed; will retry");
                self.lock().fail(lane, index);
            }
            None => tracing::warn!(%error, "a decided result was not stored"),
        }
    }
}

async fn acked(
    lane: LaneId,
    task: Option<u32>,
    ack: PublishAckFuture,
) -> (
    LaneId,
    Option<u32>,
    Result<(), async_nats::jetstream::context::PublishError>,
) {
    (lane, task, ack.into_future().await.map(|_| ()))
}

/// One job's queue in the publisher.
pub(crate) struct Lane {
    id: LaneId,
    publisher: Publisher,
    notify: Arc<Notify>,
}

impl Lane {
    /// Queues the dispatch of tasks `indices`; a failure comes back from
    /// [`Lane::failures`].
    pub(crate) fn send_tasks(&self, indices: &[u32]) {
        self.push(indices.iter().map(|&i| Pending::Task(i)));
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

    /// Waits until a dispatch of this lane has failed.
    pub(crate) async fn failed(&self) {
        self.notify.notified().await
    }

    /// The tasks whose dispatch failed since the last call.
    pub(crate) fn failures(&self) -> Vec<u32> {
        self.publisher
            .lock()
            .lanes
            .get_mut(&self.id)
            .map(|lane| std::mem::take(&mut lane.failed))
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Names each message by its kind and index.
    struct Named;

    impl Messages for Named {
        fn task(&self, index: u32) -> Outgoing {
            let subject = format!("task{index}");
            let message = PublishMessage::build();
            Outgoing { subject, message }
        }
        fn verdict(&self, index: u32, verdict: &Verdict) -> Outgoing {
            let subject = format!("{}{index}", verdict.tag);
            let message = PublishMessage::build();
            Outgoing { subject, message }
        }
    }

    fn lanes(n: u64) -> Queues {
        let mut q = Queues::default();
        for id in 0..n {
            q.lanes.insert(id, LaneQueues::new(Arc::new(Named)));
        }
        q
    }

    fn tasks(q: &mut Queues, lane: LaneId, indices: std::ops::Range<u32>) {
        q.push(lane, indices.map(Pending::Task));
    }

    /// Lane and subject of everything the publisher would send, in order.
    fn drain(q: &mut Queues) -> Vec<(LaneId, String)> {
        let mut order = Vec::new();
        let mut batch = Vec::new();
        loop {
            q.next_batch(QUANTUM, &mut batch);
            if batch.is_empty() {
                return order;
            }
            for (lane, messages, pending) in batch.drain(..) {
                order.push((lane, pending.encode(messages.as_ref()).subject));
            }
        }
    }

    #[test]
    fn a_small_job_goes_out_between_a_wide_ones_tasks() {
        let mut q = lanes(2);
        tasks(&mut q, 0, 0..100);
        tasks(&mut q, 1, 0..3);
        let order = drain(&mut q);
        assert_eq!(order.len(), 103);
        let last_small = order.iter().rposition(|(lane, _)| *lane == 1).unwrap();
        assert!(
            last_small <= QUANTUM + 3,
            "the small job waited behind {last_small} publishes"
        );
        let wide: Vec<_> = order
            .iter()
            .filter(|(l, _)| *l == 0)
            .map(|(_, s)| s.clone())
            .collect();
        let expected: Vec<_> = (0..100).map(|i| format!("task{i}")).collect();
        assert_eq!(wide, expected, "a job's own tasks keep their order");
        assert_eq!(q.waiting, 0);
    }

    #[test]
    fn verdicts_go_out_before_any_task() {
        let mut q = lanes(2);
        tasks(&mut q, 0, 0..20);
        let verdict = Arc::new(Verdict {
            error: TaskError::new(toolfan_protocol::ErrorKind::Cancelled, "x"),
            tag: "cancel",
        });
        q.push(1, [Pending::Verdict(4, verdict)].into_iter());
        assert_eq!(drain(&mut q)[0], (1, "cancel4".to_owned()));
    }

    #[test]
    fn an_ended_jobs_turns_are_skipped() {
        let mut q = lanes(2);
        tasks(&mut q, 0, 0..1);
        tasks(&mut q, 1, 7..8);
        q.lanes.remove(&0);
        q.waiting -= 1;
        assert_eq!(drain(&mut q), vec![(1, "task7".to_owned())]);
    }

    #[test]
    fn failures_reach_their_lane_only() {
        let mut q = lanes(2);
        q.fail(1, 7);
        q.fail(5, 9); // an ended job's failure is dropped
        assert_eq!(q.lanes[&1].failed, vec![7]);
        assert!(q.lanes[&0].failed.is_empty());
    }
}
