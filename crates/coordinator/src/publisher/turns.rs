//! The publisher's queues: each job's lane of task and verdict indices,
//! and the turns in which lanes are served (verdicts first, then up to
//! [`QUANTUM`] tasks per job, round robin).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use async_nats::jetstream::message::PublishMessage;
use tokio::sync::Notify;
use toolfan_protocol::TaskError;

/// Most publishes taken from one lane per turn.
pub(super) const QUANTUM: usize = 8;

/// One message to publish: where and what.
pub(crate) struct Outgoing {
    pub(crate) subject: String,
    pub(crate) message: PublishMessage,
}

/// The coordinator's own outcome for some of a job's tasks.
#[derive(Debug)]
pub(crate) struct Verdict {
    pub(crate) error: TaskError,
    /// Names the verdict in its `Nats-Msg-Id` (`deadline`, `cancel`, …).
    pub(crate) tag: &'static str,
}

/// One dispatch of one task: the task's index and which dispatch of it
/// this is (1, or more when the safety net sends it again).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskRef {
    pub(crate) index: u32,
    pub(crate) dispatch: u32,
}

/// What became of a publish the publisher took from a lane.
#[derive(Debug, Clone)]
pub(crate) enum Published {
    /// JetStream stored the task dispatch at this stream sequence.
    Stored { task: TaskRef, sequence: u64 },
    /// The task dispatch was not stored; the job sends it again.
    Failed(TaskRef),
    /// The verdict for this task was not stored; the job sends it again.
    VerdictFailed(u32, Arc<Verdict>),
}

/// Makes one job's messages when the publisher takes them.
pub(crate) trait Messages: Send + Sync {
    /// The dispatch of a task.
    fn task(&self, task: TaskRef) -> Outgoing;
    /// `verdict` as the result of task `index`.
    fn verdict(&self, index: u32, verdict: &Verdict) -> Outgoing;
}

/// Something queued in a lane.
pub(super) enum Pending {
    Task(TaskRef),
    Verdict(u32, Arc<Verdict>),
}

impl Pending {
    pub(super) fn encode(&self, messages: &dyn Messages) -> Outgoing {
        match self {
            Self::Task(task) => messages.task(*task),
            Self::Verdict(index, verdict) => messages.verdict(*index, verdict),
        }
    }
}

pub(super) type LaneId = u64;

pub(super) struct LaneQueues {
    pub(super) messages: Arc<dyn Messages>,
    pub(super) verdicts: VecDeque<Pending>,
    pub(super) tasks: VecDeque<Pending>,
    /// What became of its task dispatches, not yet read by the job.
    pub(super) reports: Vec<Published>,
    pub(super) notify: Arc<Notify>,
}

impl LaneQueues {
    pub(super) fn new(messages: Arc<dyn Messages>) -> Self {
        Self {
            messages,
            verdicts: VecDeque::new(),
            tasks: VecDeque::new(),
            reports: Vec::new(),
            notify: Arc::default(),
        }
    }
}

/// Taken from a lane: its messages and what to encode with them.
pub(super) type Taken = (LaneId, Arc<dyn Messages>, Pending);

#[derive(Default)]
pub(super) struct Queues {
    pub(super) next_id: LaneId,
    pub(super) lanes: HashMap<LaneId, LaneQueues>,
    /// Lanes with verdicts waiting, in turn.
    pub(super) verdict_turns: VecDeque<LaneId>,
    /// Lanes with tasks waiting, in turn.
    pub(super) task_turns: VecDeque<LaneId>,
    /// Messages waiting in all lanes.
    pub(super) waiting: usize,
}

impl Queues {
    /// Up to [`QUANTUM`] messages of the next lane in turn, verdicts first.
    pub(super) fn next_batch(&mut self, room: usize, batch: &mut Vec<Taken>) {
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

    pub(super) fn push(&mut self, id: LaneId, pending: impl ExactSizeIterator<Item = Pending>) {
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

    pub(super) fn report(&mut self, id: LaneId, report: Published) {
        if let Some(lane) = self.lanes.get_mut(&id) {
            lane.reports.push(report);
            lane.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names each message by its kind and index.
    struct Named;

    impl Messages for Named {
        fn task(&self, task: TaskRef) -> Outgoing {
            let subject = format!("task{}", task.index);
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
        q.push(
            lane,
            indices.map(|index| Pending::Task(TaskRef { index, dispatch: 1 })),
        );
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
    fn reports_reach_their_lane_only() {
        let mut q = lanes(2);
        let task = |index| TaskRef { index, dispatch: 1 };
        q.report(1, Published::Failed(task(7)));
        q.report(5, Published::Failed(task(9))); // an ended job's report is dropped
        assert!(matches!(q.lanes[&1].reports[..], [Published::Failed(t)] if t == task(7)));
        assert!(q.lanes[&0].reports.is_empty());
    }
}
