//! Sending a job's work out: tasks to their tools' queues, the
//! coordinator's own verdicts to the results stream, aborts to the workers.

use async_nats::jetstream;
use toolfan_protocol::{
    encode, encode_task, task_msg_id, ErrorKind, TaskError, TaskResult, TRACEPARENT_HEADER,
};

use crate::intake::AcceptedJob;
use crate::window::Window;
use crate::Shared;

/// Sends every task the window has room for; tasks whose tool no live worker
/// serves get an `unknown_tool` result instead. Publishes are pipelined.
pub(crate) async fn dispatch(
    shared: &Shared,
    job: &AcceptedJob,
    deadline_unix_ms: u64,
    window: &mut Window,
) {
    let subjects = &shared.topology.subjects;
    let mut pending = Vec::new();
    let mut unknown = Vec::new();
    while let Some(index) = window.take() {
        let spec = &job.spec.tasks[index as usize];
        if !shared.registry.serves(&spec.tool) {
            unknown.push(index);
            continue;
        }
        let payload = encode_task(&job.id, index, &job.caller, spec, deadline_unix_ms);
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.into())
            .message_id(task_msg_id(&job.id, index))
            .header(TRACEPARENT_HEADER, job.trace.child().to_string().as_str());
        match shared
            .topology
            .js
            .send_publish(subjects.task(&spec.tool), publish)
            .await
        {
            Ok(ack) => pending.push((index, std::future::IntoFuture::into_future(ack))),
            Err(e) => {
                tracing::warn!(job = %job.id, index, error = %e, "dispatch failed; will retry");
                window.retry(index);
            }
        }
    }
    let (indices, acks): (Vec<u32>, Vec<_>) = pending.into_iter().unzip();
    for (index, ack) in indices
        .into_iter()
        .zip(futures::future::join_all(acks).await)
    {
        if let Err(e) = ack {
            tracing::warn!(job = %job.id, index, error = %e, "dispatch not acknowledged; will retry");
            window.retry(index);
        }
    }
    let mut confirmed = std::collections::HashMap::new();
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
            // The view was stale: a worker answered the ping. Send it next round.
            window.retry(index);
            continue;
        }
        let error = TaskError::new(
            ErrorKind::UnknownTool,
            format!("no live worker serves the tool {:?}", tool.as_str()),
        );
        decide(shared, job, &[index], "unknown", &error).await;
    }
}

/// Publishes the coordinator's own verdict for `indices` to the results
/// stream, where it competes with worker results: the first one wins.
pub(crate) async fn decide(
    shared: &Shared,
    job: &AcceptedJob,
    indices: &[u32],
    tag: &str,
    error: &TaskError,
) {
    let subject = shared.topology.subjects.result(&job.id);
    let mut acks = Vec::new();
    for &index in indices {
        let result = TaskResult::decided(index, error.clone());
        let publish = jetstream::message::PublishMessage::build()
            .payload(encode(&result).into())
            .message_id(format!("{}.{index}.{tag}", job.id));
        match shared
            .topology
            .js
            .send_publish(subject.clone(), publish)
            .await
        {
            Ok(ack) => acks.push(std::future::IntoFuture::into_future(ack)),
            Err(e) => {
                tracing::warn!(job = %job.id, index, error = %e, "could not publish a decided result")
            }
        }
    }
    for ack in futures::future::join_all(acks).await {
        if let Err(e) = ack {
            tracing::warn!(job = %job.id, error = %e, "a decided result was not acknowledged");
        }
    }
}

/// Tells every worker to stop the job's running tasks and skip its queued ones.
pub(crate) async fn abort(shared: &Shared, job: &AcceptedJob) {
    let subject = shared.topology.subjects.abort(&job.id);
    if let Err(e) = shared.client.publish(subject, "".into()).await {
        tracing::warn!(job = %job.id, error = %e, "abort not sent; workers finish the job's tasks");
    }
}
