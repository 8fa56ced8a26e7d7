//! Sending a job's work out: tasks to their tools' queues and the
//! coordinator's own verdicts to the results stream, both through the
//! job's [`Lane`] of the shared publisher (so nothing here waits on a
//! publish), and aborts to the workers.

use std::sync::Arc;

use toolfan_protocol::{
    encode, encode_task, task_msg_id, verdict_msg_id, ErrorKind, Subjects, TaskError, TaskResult,
    TraceParent,
};
use toolfan_transport::stored_message;

use crate::graph::{Graph, Resolved};
use crate::intake::AcceptedJob;
use crate::net::Net;
use crate::publisher::{Lane, Messages, Outgoing, TaskRef, Verdict};
use crate::shared::Shared;
use crate::window::Window;

/// A job's task dispatches and verdicts, made when the publisher takes them.
pub(crate) struct JobMessages {
    pub(crate) job: Arc<AcceptedJob>,
    pub(crate) subjects: Subjects,
    pub(crate) deadline_unix_ms: u64,
    /// The job span's context when spans are exported: each task message
    /// then gets a `dispatch` span under it; else (`None`) its
    /// `traceparent` is a child of the caller's.
    pub(crate) tasks_parent: Option<TraceParent>,
    /// Tasks with dependencies as they are sent: references replaced.
    pub(crate) resolved: Resolved,
}

impl Messages for JobMessages {
    fn task(&self, task: TaskRef) -> Outgoing {
        let job = &self.job;
        let TaskRef { index, dispatch } = task;
        let resolved = self.resolved.get(index);
        let spec = resolved
            .as_deref()
            .unwrap_or(&job.spec.tasks[index as usize]);
        let deadline = self.deadline_unix_ms;
        let payload = encode_task(&job.id, index, &job.caller, spec, deadline, dispatch);
        let msg_id = task_msg_id(&job.id, index, dispatch);
        let trace = match self.tasks_parent {
            Some(job_span) => dispatch_span(job_span, task, spec.tool.as_str()),
            None => job.trace.child(),
        };
        let message = stored_message(payload.into(), &msg_id, Some(trace));
        let subject = self.subjects.task(&spec.tool);
        Outgoing { subject, message }
    }

    fn verdict(&self, index: u32, verdict: &Verdict) -> Outgoing {
        let job = &self.job.id;
        let result = TaskResult::decided(index, verdict.error.clone());
        let msg_id = verdict_msg_id(job, index, verdict.tag);
        let message = stored_message(encode(&result).into(), &msg_id, None);
        let subject = self.subjects.result(job);
        Outgoing { subject, message }
    }
}

/// A `dispatch` span (a child of the job span `job_span`) for one task
/// message, made only when spans are exported; its context is the
/// message's `traceparent`, so the worker's task span is its child.
fn dispatch_span(job_span: TraceParent, task: TaskRef, tool: &str) -> TraceParent {
    let span = tracing::info_span!(
        "dispatch",
        index = i64::from(task.index),
        dispatch = i64::from(task.dispatch),
        tool,
    );
    toolfan_transport::adopt_parent(&span, job_span);
    toolfan_transport::traceparent_of(&span).unwrap_or(job_span)
}

/// Queues every task the window and the fair share (`room` per tool
/// group, groups held back marked) have room for, as the dispatch `net`
/// says is current, its references replaced from the `graph`; tasks
/// whose tool no live worker serves get an `unknown_tool` verdict
/// instead, and those whose reference names nothing `invalid_args`.
pub(crate) async fn dispatch(
    shared: &Shared,
    job: &AcceptedJob,
    lane: &Lane,
    window: &mut Window,
    graph: &mut Graph,
    net: &Net,
    (room, held): (&mut [u32], &mut [bool]),
) {
    let mut ready = Vec::new();
    let mut unknown = Vec::new();
    while let Some(index) = window.take_within(room, held) {
        let spec = &job.spec.tasks[index as usize];
        if let Err(error) = graph.resolve(index, spec) {
            decide(lane, &[index], "unresolved", error);
            continue;
        }
        // A tool served a moment ago is waited for, not refused.
        if shared.registry.serves(&spec.tool) || shared.registry.known(&spec.tool) {
            ready.push(net.current(index));
        } else {
            unknown.push(index);
        }
    }
    lane.send_tasks(&ready);
    if !unknown.is_empty() {
        answer_unknown(shared, job, lane, window, unknown).await;
    }
}

/// Tasks whose tool seemed unserved: the fleet is asked once per tool
/// (the view can be stale right after a worker starts); a tool still
/// unserved gets `unknown_tool` once this coordinator has listened for a
/// full worker TTL without a break, and the rest go out next round.
async fn answer_unknown(
    shared: &Shared,
    job: &AcceptedJob,
    lane: &Lane,
    window: &mut Window,
    unknown: Vec<u32>,
) {
    let subjects = &shared.topology.subjects;
    let mut confirmed = std::collections::HashMap::new();
    // Not sure yet (just started or reconnected): the tasks wait and are
    // tried again, without pinging (a ping waits, in the job's loop).
    if !shared.registry.sure() {
        for index in unknown {
            window.retry(index);
        }
        return;
    }
    for index in unknown {
        let tool = &job.spec.tasks[index as usize].tool;
        let served = match confirmed.get(tool) {
            Some(&served) => served,
            None => {
                let served = shared
                    .registry
                    .confirm_serves(&shared.client, subjects, tool)
                    .await;
                confirmed.insert(tool, served);
                served
            }
        };
        if served {
            window.retry(index);
            continue;
        }
        let mut message = format!("no live worker serves the tool {:?}", tool.as_str());
        if let Some(near) = shared.registry.closest_served(tool) {
            message.push_str(&format!("; did you mean {:?}?", near.as_str()));
        }
        let error = TaskError::new(ErrorKind::UnknownTool, message);
        decide(lane, &[index], "unknown", error);
    }
}

/// Queues the coordinator's own verdict for `indices` to the results
/// stream, where it competes with worker results: the first one wins.
pub(crate) fn decide(lane: &Lane, indices: &[u32], tag: &'static str, error: TaskError) {
    lane.send_verdicts(indices, Verdict { error, tag });
}

/// Tells every worker to stop the job's running tasks and skip its queued ones.
pub(crate) async fn abort(shared: &Shared, job: &AcceptedJob) {
    let subject = shared.topology.subjects.abort(&job.id);
    if let Err(e) = shared.client.publish(subject, "".into()).await {
        tracing::warn!(job = %job.id, error = %e, "abort not sent; workers finish the job's tasks");
    }
}
