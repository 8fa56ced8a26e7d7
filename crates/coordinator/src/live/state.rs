//! What a live job knows ([`JobState`]), and what it does with what
//! reaches it: a result (the first per task wins), its caller's cancel
//! or keepalive, a redelivery of its message, its caller's silence; how it
//! ends before its last task, and its summary.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use toolfan_protocol::{
    Deadline, EndedBy, ErrorKind, JobStatus, JobSummary, ResultHead, TaskError, TaskResult,
};

use crate::ack::ack;
use crate::board::Progress;
use crate::dispatch::{abort, decide, dispatch};
use crate::fair::JobShare;
use crate::gather::{Accepted, Gather};
use crate::graph::Graph;
use crate::intake::AcceptedJob;
use crate::metrics::CoordinatorMetrics;
use crate::net::{Looked, Net};
use crate::policy::Judge;
use crate::publisher::{Lane, Verdict};
use crate::reply::ReplyTo;
use crate::retention::Hold;
use crate::routes::Inbound;
use crate::shared::Shared;
use crate::window::Window;

/// How long a check that JetStream answers may take.
const REACHABLE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a live job knows.
pub(super) struct JobState<'a> {
    pub(super) shared: &'a Shared,
    pub(super) job: &'a AcceptedJob,
    pub(super) gather: Gather,
    /// Which tasks wait for which, and the values their references read.
    pub(super) graph: Graph,
    pub(super) window: Window,
    pub(super) judge: Judge,
    /// A policy decision waiting to be acted on.
    pub(super) judge_pending: Option<String>,
    pub(super) reply: ReplyTo<'a>,
    /// Set once something other than the last task ends the job.
    pub(super) ending: Option<(EndedBy, String)>,
    /// When to stop waiting for the job's own verdicts to come back through
    /// the stream (NATS may be down) and answer from memory.
    pub(super) give_up: Option<Instant>,
    pub(super) deadline: Deadline,
    /// Results up to this stream sequence came from the replay; the live
    /// route's copies of them are skipped.
    pub(super) replayed_upto: u64,
    pub(super) last_alive: Instant,
    /// The job's claim on its stored results.
    pub(super) hold: &'a Hold,
    /// The safety net's watches over the job's dispatched tasks.
    pub(super) net: Net,
    /// The net's round of lookups in flight, if any.
    pub(super) looking: Option<JoinHandle<Looked>>,
    /// Verdicts whose publish failed, to be sent again.
    pub(super) verdicts_failed: Vec<(u32, Arc<Verdict>)>,
    /// The job's progress on the coordinator's board.
    pub(super) progress: &'a Progress,
    /// Its account with the fleet's fair shares (a group per tool).
    pub(super) share: JobShare,
    /// Its tasks waiting for a person (see `person`).
    pub(super) waiting: std::collections::BTreeMap<u32, toolfan_protocol::Waiting>,
}

impl<'a> JobState<'a> {
    /// A job's state before anything is dispatched or replayed.
    pub(super) fn new(
        shared: &'a Shared,
        job: &'a AcceptedJob,
        hold: &'a Hold,
        progress: &'a Progress,
    ) -> Self {
        let total = job.spec.tasks.len();
        let subjects = &shared.topology.subjects;
        let (tools, groups) = tool_groups(job);
        let (graph, ready) = Graph::new(&job.spec.tasks);
        Self {
            shared,
            job,
            gather: Gather::new(total),
            graph,
            window: Window::build(groups, job.spec.max_concurrency, ready),
            judge: Judge::new(job.spec.policy),
            judge_pending: None,
            reply: ReplyTo::new(&shared.client, subjects, &job.caller, &job.id),
            ending: None,
            give_up: None,
            deadline: job.deadline(),
            replayed_upto: 0,
            last_alive: Instant::now(),
            hold,
            net: Net::new(total),
            looking: None,
            verdicts_failed: Vec::new(),
            progress,
            share: shared.fair.job(job.caller.as_str(), tools),
            waiting: Default::default(),
        }
    }
}

/// The job's distinct tools, and each task's index among them.
fn tool_groups(job: &AcceptedJob) -> (Vec<toolfan_protocol::ToolName>, Vec<u32>) {
    let mut tools = Vec::new();
    let mut index = std::collections::HashMap::new();
    let groups = job
        .spec
        .tasks
        .iter()
        .map(|task| {
            *index.entry(&task.tool).or_insert_with(|| {
                tools.push(task.tool.clone());
                tools.len() as u32 - 1
            })
        })
        .collect();
    (tools, groups)
}

impl JobState<'_> {
    /// Dispatches what the window and the job's fair share have room for.
    pub(super) async fn dispatch(&mut self, lane: &Lane) {
        if self.ending.is_none() {
            let mut room = self.share.room();
            let (window, graph) = (&mut self.window, &mut self.graph);
            let held = &mut self.share.held;
            dispatch(
                self.shared,
                self.job,
                lane,
                window,
                graph,
                &self.net,
                (&mut room, held),
            )
            .await;
        }
        self.share.report(self.window.out());
    }

    pub(super) async fn on_inbound(
        &mut self,
        lane: &Lane,
        message: &mut jetstream::Message,
        inbound: Inbound,
    ) {
        match inbound {
            // (A sequence of 0 means its metadata could not be read: never skip it.)
            Inbound::Result { sequence, payload }
                if sequence == 0 || sequence > self.replayed_upto =>
            {
                self.on_result(lane, &payload).await;
                self.dispatch(lane).await;
            }
            Inbound::Result { .. } => {}
            Inbound::Cancel if self.ending.is_none() => {
                let reason = "cancelled by the caller".to_owned();
                self.end(lane, EndedBy::Cancel, reason).await;
            }
            Inbound::Cancel => {}
            Inbound::Alive => self.last_alive = Instant::now(),
            Inbound::Resolve { body, reply } => self.on_resolve(&body, reply),
            Inbound::Redelivered(again) => {
                *message = *again;
                ack(message, AckKind::Progress).await;
            }
        }
    }

    pub(super) async fn check_caller(&mut self, lane: &Lane, grace: Duration) {
        if self.last_alive.elapsed() <= grace {
            return;
        }
        // Keepalives also stop reaching a coordinator cut off from the
        // cluster: the caller is only taken for gone if JetStream answers.
        let reachable = tokio::time::timeout(
            REACHABLE_TIMEOUT,
            self.shared.topology.results_last_sequence(),
        )
        .await
        .is_ok_and(|answer| answer.is_ok());
        if !reachable {
            tracing::info!(job = %self.job.id, "no keepalive, but NATS is not answering either; waiting");
            return;
        }
        let reason = format!("no keepalive from the caller for {} ms", grace.as_millis());
        self.end(lane, EndedBy::CallerGone, reason).await;
    }

    /// Takes one message off the results stream: the first result of a
    /// task frees its window place, goes to the caller (as the bytes it
    /// came as) and may decide the policy.
    pub(super) async fn on_result(&mut self, lane: &Lane, payload: &[u8]) {
        let job = &self.job.id;
        let head = match ResultHead::decode(payload) {
            Ok(head) => head,
            Err(e) => match serde_json::from_slice(payload) {
                Ok(record) => return self.on_waiting(record).await,
                Err(_) => return self.unreadable(lane, payload, e),
            },
        };
        let metrics = &self.shared.metrics;
        match self.gather.accept(head.index, head.is_ok()) {
            Accepted::First => {
                count(metrics, &head);
                self.progress.record(head.is_ok());
                self.window.finished(head.index);
                self.done_waiting(head.index);
                self.settle(lane, &head, payload);
                if self.ending.is_none() {
                    self.judge_pending = self.judge.decide(head.index, head.is_ok());
                }
                self.reply.result_bytes(payload).await;
            }
            Accepted::Duplicate => {
                metrics.duplicate_results.inc();
                tracing::debug!(%job, index = head.index, "dropping a duplicate result")
            }
            Accepted::OutOfRange => {
                tracing::warn!(%job, index = head.index, "dropping a result for no task of the job")
            }
        }
    }

    /// A task's first result in its job's graph: the tasks waiting for it
    /// become ready (its value kept while references still read it), or
    /// fail with `dependency_failed` when it did not succeed.
    fn settle(&mut self, lane: &Lane, head: &ResultHead, payload: &[u8]) {
        let value = (head.is_ok() && self.graph.needs_value(head.index))
            .then(|| serde_json::from_slice::<TaskResult>(payload).ok())
            .flatten()
            .and_then(|result| result.outcome.ok());
        let unblocked = self.graph.finished(head.index, head.is_ok(), value);
        for index in unblocked.ready {
            self.window.ready(index);
        }
        for (index, error) in unblocked.failed {
            decide(lane, &[index], "dependency", error);
        }
    }

    /// A result that cannot be read (a foreign worker's, say): if it names
    /// a task still without a result, that task is answered `internal` at
    /// once, through the stream like any verdict, rather than left to the
    /// deadline. One that names no task is only logged.
    fn unreadable(
        &mut self,
        lane: &Lane,
        payload: &[u8],
        error: toolfan_protocol::ValidationError,
    ) {
        let job = &self.job.id;
        let index = serde_json::from_slice::<serde_json::Value>(payload)
            .ok()
            .and_then(|v| v.get("index")?.as_u64())
            .and_then(|i| u32::try_from(i).ok())
            .filter(|&i| self.gather.is_open(i));
        let Some(index) = index else {
            tracing::warn!(%job, %error, "dropping an unreadable result that names no open task");
            return;
        };
        tracing::warn!(%job, index, %error, "answering a task whose result cannot be read");
        let message = format!("the task's result could not be read: {error}");
        decide(
            lane,
            &[index],
            "unreadable",
            TaskError::new(ErrorKind::Internal, message),
        );
    }

    /// Ends the job before its last task: nothing more is dispatched, every
    /// task without a result gets the coordinator's verdict (first result
    /// still wins), and workers abort the job's running tasks.
    pub(super) async fn end(&mut self, lane: &Lane, by: EndedBy, reason: String) {
        if self.ending.is_some() {
            return;
        }
        self.window.close();
        lane.drop_tasks();
        let missing: Vec<u32> = self.gather.missing().collect();
        tracing::info!(job = %self.job.id, ?by, %reason, missing = missing.len(), "job ending");
        let (kind, tag) = match by {
            EndedBy::Deadline => (ErrorKind::DeadlineExceeded, "deadline"),
            _ => (ErrorKind::Cancelled, "cancel"),
        };
        let verdict = TaskError::new(kind, format!("{reason} before the task finished"));
        decide(lane, &missing, tag, verdict);
        abort(self.shared, self.job).await;
        self.give_up = Some(Instant::now() + self.shared.options.deadline_grace);
        self.ending = Some((by, reason));
    }

    /// How the job ended. Workers bound by the same deadline may answer
    /// `deadline_exceeded` for the last tasks a moment before the
    /// coordinator's own timer fires: the deadline ended that job all the same.
    pub(super) fn summary(&mut self) -> JobSummary {
        let spec = &self.job.spec;
        let (ended_by, reason) = self.ending.take().unwrap_or_else(|| {
            if self.deadline.passed() {
                (EndedBy::Deadline, deadline_passed(self.job))
            } else {
                (EndedBy::AllDone, String::new())
            }
        });
        let status = match ended_by {
            EndedBy::Cancel | EndedBy::CallerGone => JobStatus::Cancelled,
            _ => JobStatus::Completed,
        };
        JobSummary {
            job: self.job.id.clone(),
            status,
            policy: spec.policy,
            total: spec.tasks.len() as u32,
            succeeded: self.gather.succeeded(),
            failed: self.gather.failed(),
            duration_ms: toolfan_protocol::now_unix_ms().saturating_sub(self.job.submitted_unix_ms),
            ended_by,
            reason: (!reason.is_empty()).then_some(reason),
            error: None,
        }
    }
}

/// Why a job whose deadline passed ended.
pub(super) fn deadline_passed(job: &AcceptedJob) -> String {
    format!("the job deadline of {} ms passed", job.spec.deadline_ms)
}

/// Counts a task's first result by its outcome, and the coordinator's
/// own deadline and cancel verdicts.
fn count(metrics: &CoordinatorMetrics, head: &ResultHead) {
    let outcome = head.error.as_ref().map_or("ok", ErrorKind::label);
    metrics.task_results.with_label_values(&[outcome]).inc();
    if !head.from_worker {
        match head.error {
            Some(ErrorKind::DeadlineExceeded) => metrics.deadline_misses.inc(),
            Some(ErrorKind::Cancelled) => metrics.tasks_cancelled.inc(),
            _ => {}
        }
    }
}
