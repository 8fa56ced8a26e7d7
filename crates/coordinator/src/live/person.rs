//! A live job's tasks waiting for a person: the worker's waiting record
//! (live, or replayed by a coordinator taking the job over) marks a task
//! waiting, and a resolution from the job's caller (or an operator)
//! becomes its result, stored before the resolver is told so.

use async_nats::Subject;
use toolfan_protocol::{
    decode, encode, verdict_msg_id, ErrorKind, Resolution, ResolveAnswer, TaskError, TaskResult,
    WaitingRecord, WaitingTask,
};
use toolfan_transport::{store, stored_message};

use super::state::JobState;

impl JobState<'_> {
    /// Task `record.index` waits for a person: it is not dispatched or
    /// looked for again, and the caller and the board are told.
    pub(super) async fn on_waiting(&mut self, record: WaitingRecord) {
        let index = record.index;
        if !self.gather.is_open(index) || self.ending.is_some() {
            return;
        }
        tracing::info!(job = %self.job.id, index, "a task waits for a person");
        self.window.hold(index);
        let waiting = record.waiting;
        self.waiting.insert(index, waiting.clone());
        self.show_waiting();
        self.reply.waiting(WaitingTask { index, waiting }).await;
    }

    /// Task `index` has its result: it waits no more.
    pub(super) fn done_waiting(&mut self, index: u32) {
        if self.waiting.remove(&index).is_some() {
            self.show_waiting();
        }
    }

    fn show_waiting(&self) {
        let waiting = self.waiting.iter().map(|(&index, waiting)| WaitingTask {
            index,
            waiting: waiting.clone(),
        });
        self.progress.set_waiting(waiting.collect());
    }

    /// A resolution of one of the job's tasks: refused at once (it cannot
    /// be read, or the task does not wait), or stored as the task's
    /// result on a task of its own (the loop never waits on a publish),
    /// which then answers the resolver. The result reaches the job
    /// through the results stream like any other.
    pub(super) fn on_resolve(&mut self, body: &[u8], reply: Option<Subject>) {
        let result = match self.resolution(body) {
            Ok(result) => result,
            Err(why) => return self.answer(reply, ResolveAnswer::refused(why)),
        };
        let job = &self.job.id;
        let subject = self.shared.topology.subjects.result(job);
        let message = stored_message(
            encode(&result).into(),
            &verdict_msg_id(job, result.index, "resolved"),
            None,
        );
        let js = self.shared.topology.js.clone();
        let client = self.shared.client.clone();
        let (job, index) = (job.clone(), result.index);
        tokio::spawn(async move {
            let answer = match store(&js, subject, message).await {
                Ok(ack) if ack.duplicate => {
                    ResolveAnswer::refused(format!("task {index} of job {job} is already resolved"))
                }
                Ok(_) => ResolveAnswer::stored(),
                Err(e) => ResolveAnswer::refused(format!("the outcome was not stored: {e}")),
            };
            send(&client, reply, answer).await;
        });
    }

    /// The result a resolution gives its task, or why there is none.
    fn resolution(&self, body: &[u8]) -> Result<TaskResult, String> {
        let resolution: Resolution = decode("resolution", body).map_err(|e| e.to_string())?;
        let index = resolution.index;
        let job = &self.job.id;
        if !self.waiting.contains_key(&index) {
            let state = if self.gather.is_open(index) {
                "it does not wait for a person"
            } else if (index as usize) < self.job.spec.tasks.len() {
                "it has its result"
            } else {
                "the job has no such task"
            };
            return Err(format!(
                "task {index} of job {job} cannot be resolved: {state}"
            ));
        }
        if let Some((_, reason)) = &self.ending {
            return Err(format!(
                "task {index} of job {job} cannot be resolved: the job is ending ({reason})"
            ));
        }
        let outcome = match (resolution.value, resolution.reject) {
            (_, Some(reason)) => Err(TaskError::new(ErrorKind::Rejected, reason)),
            (value, None) => Ok(value.unwrap_or_default()),
        };
        Ok(TaskResult {
            outcome,
            ..TaskResult::decided(index, TaskError::new(ErrorKind::Internal, ""))
        })
    }

    fn answer(&self, reply: Option<Subject>, answer: ResolveAnswer) {
        let client = self.shared.client.clone();
        tokio::spawn(async move { send(&client, reply, answer).await });
    }
}

async fn send(client: &async_nats::Client, reply: Option<Subject>, answer: ResolveAnswer) {
    let Some(reply) = reply else { return };
    if let Err(e) = client.publish(reply, encode(&answer).into()).await {
        tracing::warn!(error = %e, "the answer to a resolution was not sent");
    }
}
