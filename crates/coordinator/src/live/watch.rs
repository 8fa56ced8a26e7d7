//! A live job's side of the safety net ([`crate::net`]): what its
//! dispatches became, its rounds of lookups, and tasks found lost sent
//! again.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::state::JobState;
use crate::net::{self, Looked};
use crate::publisher::{Lane, Published};

/// How often a job looks for overdue tasks.
pub(super) const ROUND_EVERY: Duration = Duration::from_secs(1);

/// Waits for the round in flight (forever when there is none) and clears it.
pub(super) async fn join_some(round: &mut Option<JoinHandle<Looked>>) -> Looked {
    let Some(handle) = round.as_mut() else {
        return std::future::pending().await;
    };
    let looked = handle.await.unwrap_or_else(|_| Looked::nothing());
    *round = None;
    looked
}

impl JobState<'_> {
    /// Takes what became of the job's dispatches: stored ones are watched
    /// from now on, failed ones go back to the window; failed verdicts
    /// wait to be sent again.
    pub(super) fn on_reports(&mut self, lane: &Lane) {
        let ack_wait = self.shared.options.topology.ack_wait;
        let now = Instant::now();
        for report in lane.reports() {
            match report {
                Published::Stored { task, sequence } => {
                    let spec = &self.job.spec.tasks[task.index as usize];
                    let budget = net::budget(spec, ack_wait);
                    self.net.stored(task, sequence, budget, now);
                }
                // (A stale dispatch's failure must not send the current one again.)
                Published::Failed(task) if self.net.current(task.index) == task => {
                    self.window.retry(task.index)
                }
                Published::Failed(_) => {}
                // Sent again on the next round, unless a result came meanwhile.
                Published::VerdictFailed(index, verdict) if self.gather.is_open(index) => {
                    self.verdicts_failed.push((index, verdict))
                }
                Published::VerdictFailed(..) => {}
            }
        }
    }

    /// Sends again the verdicts whose publish failed (for tasks still
    /// without a result).
    pub(super) fn resend_verdicts(&mut self, lane: &Lane) {
        let gather = &self.gather;
        self.verdicts_failed
            .retain(|(index, _)| gather.is_open(*index));
        if !self.verdicts_failed.is_empty() {
            lane.resend_verdicts(std::mem::take(&mut self.verdicts_failed));
        }
    }

    /// Starts a round of lookups of the tasks due for one.
    pub(super) fn look(&mut self) {
        let (gather, waiting) = (&self.gather, &self.waiting);
        let open = |i| gather.is_open(i) && !waiting.contains_key(&i);
        let looks = self.net.due(Instant::now(), open);
        if looks.is_empty() {
            return;
        }
        self.shared.metrics.net_looks.inc_by(looks.len() as u64);
        let tasks = &self.job.spec.tasks;
        let looks = looks
            .into_iter()
            .map(|l| (l, tasks[l.task.index as usize].tool.clone()))
            .collect();
        let lookups = self.shared.lookups.clone();
        self.looking = Some(tokio::spawn(net::look(lookups, looks)));
    }

    /// Takes a round's answers: lost tasks are dispatched again.
    pub(super) fn on_looked(&mut self, lane: &Lane, looked: Looked) {
        if self.ending.is_some() {
            return;
        }
        let (gather, waiting) = (&self.gather, &self.waiting);
        let open = |i| gather.is_open(i) && !waiting.contains_key(&i);
        let lost = self.net.looked(looked, Instant::now(), open);
        if lost.is_empty() {
            return;
        }
        let indices: Vec<u32> = lost.iter().map(|t| t.index).collect();
        tracing::warn!(job = %self.job.id, ?indices, "tasks lost (no result; message gone from the tasks stream, or passed by its consumer); dispatching them again");
        self.shared
            .metrics
            .tasks_redispatched
            .inc_by(lost.len() as u64);
        lane.send_tasks(&lost);
    }
}
