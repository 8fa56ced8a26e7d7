//! The safety net: the coordinator owns each job, and does not take the
//! broker's word that a dispatched task is on its way.
//!
//! Every task dispatch JetStream stored is watched from the moment its
//! publish was acked. Once the task's time budget has passed without a
//! result (its timeout over its attempts, an allowance for backoff, the
//! ack wait and a margin; tasks without a timeout are first looked at
//! after the ack wait and the margin), the net looks its message up in
//! the tasks stream:
//!
//! - **Still stored**: it is queued behind others, waiting for a limit, or
//!   held by a worker that has not acked it: alive. JetStream delivers it
//!   again if its worker dies. Looked at again later, at doubling
//!   intervals up to [`MAX_LOOK_EVERY`]; so however deep a backlog, the
//!   net never sends a queued task twice.
//! - **Gone, and no result once the results follower has caught up with
//!   everything stored**: a worker acks only after the task's result is
//!   stored, so the message was lost (a server losing it, a consumer
//!   skipping it, a foreign worker acking without answering). The task is
//!   dispatched again as a new dispatch, with its own message ids, and
//!   the first result still wins.
//! - **Cannot tell** (NATS unreachable): looked at again later.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;
use toolfan_protocol::{Task, ToolName};
use toolfan_transport::Topology;

use crate::publisher::TaskRef;

/// Added to every task's budget.
const MARGIN: Duration = Duration::from_secs(2);
/// Allowed per retry for its backoff.
const RETRY_ALLOWANCE: Duration = Duration::from_secs(1);
/// The longest wait between two looks at a task that is still stored.
pub(crate) const MAX_LOOK_EVERY: Duration = Duration::from_secs(60);
/// Most tasks of one job looked up in one round.
const MAX_LOOKS: usize = 256;
/// Most lookups in flight at once, across a coordinator's jobs.
const MAX_IN_FLIGHT: usize = 32;
/// How long a round waits for the results follower to catch up with the
/// results stream before it trusts a "gone".
const CATCH_UP: Duration = Duration::from_secs(2);

/// How long task `spec` may take before the net looks for it.
pub(crate) fn budget(spec: &Task, ack_wait: Duration) -> Duration {
    let running = spec.timeout_ms.map_or(Duration::ZERO, |timeout| {
        let attempts = spec.retries.saturating_add(1);
        Duration::from_millis(timeout)
            .saturating_mul(attempts)
            .saturating_add(RETRY_ALLOWANCE.saturating_mul(spec.retries))
    });
    running.saturating_add(ack_wait).saturating_add(MARGIN)
}

/// One task's watch.
#[derive(Debug, Clone, Copy)]
struct Watch {
    /// The task's latest dispatch (1 before the first).
    dispatch: u32,
    /// Where JetStream stored that dispatch; 0 until it did.
    sequence: u64,
    /// When it is looked at next.
    next: Option<Instant>,
    /// The wait before the look after next.
    every: Duration,
    /// Found gone before the follower had caught up: the results stream's
    /// last sequence then. A result stored before the message went is at or
    /// below it, so once the follower is past it, none is coming.
    gone_at: Option<u64>,
}

/// A task to look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Look {
    pub(crate) task: TaskRef,
    pub(crate) sequence: u64,
}

/// What a look found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Found {
    Stored,
    Gone,
    /// Still stored, but its consumer has passed it for good (its ack
    /// floor is above it, or it was delivered and nothing awaits an ack):
    /// lost like a gone one.
    Orphaned,
    Unknown,
}

/// A round of looks, answered.
#[derive(Debug)]
pub(crate) struct Looked {
    pub(crate) found: Vec<(Look, Found)>,
    /// Whether every result stored by the end of the round had reached
    /// the coordinator (so a "gone" task without one has none).
    pub(crate) caught_up: bool,
    /// The results stream's last sequence, read after the lookups (0 when
    /// it could not be read).
    pub(crate) last: u64,
    /// The highest sequence the follower had handed to jobs at the end.
    pub(crate) seen: u64,
}

impl Looked {
    /// A round that found out nothing.
    pub(crate) fn nothing() -> Self {
        Self {
            found: Vec::new(),
            caught_up: false,
            last: 0,
            seen: 0,
        }
    }
}

/// One job's watches.
#[derive(Debug)]
pub(crate) struct Net {
    watches: Vec<Watch>,
    due: BinaryHeap<Reverse<(Instant, u32)>>,
}

impl Net {
    pub(crate) fn new(total: usize) -> Self {
        let watch = Watch {
            dispatch: 1,
            sequence: 0,
            next: None,
            every: MAX_LOOK_EVERY,
            gone_at: None,
        };
        Self {
            watches: vec![watch; total],
            due: BinaryHeap::new(),
        }
    }

    /// The dispatch to send of task `index`.
    pub(crate) fn current(&self, index: u32) -> TaskRef {
        let dispatch = self.watches.get(index as usize).map_or(1, |w| w.dispatch);
        TaskRef { index, dispatch }
    }

    /// JetStream stored `task` at `sequence`: it is looked at once
    /// `budget` has passed. A stale dispatch's report is ignored.
    pub(crate) fn stored(&mut self, task: TaskRef, sequence: u64, budget: Duration, now: Instant) {
        let Some(watch) = self.watches.get_mut(task.index as usize) else {
            return;
        };
        if watch.dispatch == task.dispatch {
            watch.sequence = sequence;
            watch.every = budget;
            self.arm(task.index, now + budget);
        }
    }

    fn arm(&mut self, index: u32, at: Instant) {
        self.watches[index as usize].next = Some(at);
        self.due.push(Reverse((at, index)));
    }

    /// The stored tasks due for a look by `now` that `open` says still
    /// lack a result (at most [`MAX_LOOKS`]); each is disarmed until its
    /// look is answered.
    pub(crate) fn due(&mut self, now: Instant, open: impl Fn(u32) -> bool) -> Vec<Look> {
        let mut looks = Vec::new();
        while looks.len() < MAX_LOOKS {
            let Some(&Reverse((at, index))) = self.due.peek() else {
                break;
            };
            if at > now {
                break;
            }
            self.due.pop();
            let watch = &mut self.watches[index as usize];
            if watch.next != Some(at) || !open(index) {
                continue; // re-armed since, or answered
            }
            watch.next = None;
            let task = TaskRef {
                index,
                dispatch: watch.dispatch,
            };
            looks.push(Look {
                task,
                sequence: watch.sequence,
            });
        }
        looks
    }

    /// Takes a round's answers: tasks still stored (or unknown) are looked
    /// at again later; the returned ones were lost and are to be
    /// dispatched again (their dispatch number is already raised).
    pub(crate) fn looked(
        &mut self,
        looked: Looked,
        now: Instant,
        open: impl Fn(u32) -> bool,
    ) -> Vec<TaskRef> {
        let mut lost = Vec::new();
        for (look, found) in looked.found {
            let index = look.task.index;
            let watch = self.watches[index as usize];
            if watch.dispatch != look.task.dispatch || !open(index) {
                continue;
            }
            let past_gone = watch.gone_at.is_some_and(|at| looked.seen >= at);
            match found {
                Found::Gone | Found::Orphaned if looked.caught_up || past_gone => {
                    let again = TaskRef {
                        index,
                        dispatch: watch.dispatch + 1,
                    };
                    let watch = &mut self.watches[index as usize];
                    watch.dispatch = again.dispatch;
                    watch.sequence = 0;
                    watch.gone_at = None;
                    lost.push(again);
                }
                Found::Gone | Found::Orphaned => {
                    let watch = &mut self.watches[index as usize];
                    if looked.last > 0 {
                        watch.gone_at =
                            Some(watch.gone_at.map_or(looked.last, |at| at.min(looked.last)));
                    }
                    self.arm(index, now + Duration::from_secs(1));
                }
                Found::Stored | Found::Unknown => {
                    let every = watch.every.saturating_mul(2).min(MAX_LOOK_EVERY);
                    self.watches[index as usize].every = every;
                    self.arm(index, now + watch.every);
                }
            }
        }
        lost
    }
}

/// What the net's rounds of lookups share across a coordinator's jobs.
#[derive(Clone)]
pub(crate) struct Lookups {
    /// The tasks stream (looked in) and the results stream (its last sequence).
    topology: Topology,
    /// Bounds the lookups in flight, across all jobs.
    limit: Arc<Semaphore>,
    /// The highest results-stream sequence the follower has handed out.
    seen: Arc<AtomicU64>,
}

impl Lookups {
    /// Lookups in `topology`'s tasks stream, at most [`MAX_IN_FLIGHT`] at
    /// once; `seen` is the results follower's highest sequence handed out.
    pub(crate) fn new(topology: Topology, seen: Arc<AtomicU64>) -> Self {
        Self {
            topology,
            limit: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            seen,
        }
    }
}

/// Looks `looks` up in the tasks stream (under the coordinator-wide
/// bound on concurrent lookups), then waits briefly for the results
/// follower to reach the last result stored.
pub(crate) async fn look(lookups: Lookups, looks: Vec<(Look, ToolName)>) -> Looked {
    let Lookups {
        topology,
        limit,
        seen,
    } = lookups;
    let mut found = Vec::with_capacity(looks.len());
    let mut stored_tools = Vec::new();
    for (look, tool) in looks {
        let Ok(_permit) = limit.acquire().await else {
            found.push((look, Found::Unknown));
            continue;
        };
        let answer = match topology.task_stored(look.sequence).await {
            Ok(true) => Found::Stored,
            Ok(false) => Found::Gone,
            Err(e) => {
                tracing::debug!(error = %e, "safety net: cannot look a task up");
                Found::Unknown
            }
        };
        if answer == Found::Stored {
            stored_tools.push((found.len(), tool));
        }
        found.push((look, answer));
    }
    // After the lookups (an ack between the two is then seen as a result
    // stored before the stream's last sequence read below).
    orphans(&topology, &mut found, stored_tools).await;
    let last = topology.results_last_sequence().await.unwrap_or(0);
    let deadline = Instant::now() + CATCH_UP;
    while last > 0 && seen.load(Ordering::Relaxed) < last && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seen = seen.load(Ordering::Relaxed);
    Looked {
        found,
        caught_up: last > 0 && seen >= last,
        last,
        seen,
    }
}

/// Marks the stored tasks whose tool's consumer has passed them for good.
async fn orphans(topology: &Topology, found: &mut [(Look, Found)], stored: Vec<(usize, ToolName)>) {
    let mut positions = std::collections::HashMap::new();
    for (at, tool) in stored {
        if !positions.contains_key(&tool) {
            let position = topology.tool_consumer_position(&tool).await.ok();
            positions.insert(tool.clone(), position);
        }
        let (look, answer) = &mut found[at];
        if positions[&tool].is_some_and(|p| p.orphaned(look.sequence)) {
            *answer = Found::Orphaned;
        }
    }
}

#[cfg(test)]
mod tests;
