//! A person in the loop, from the caller's side: the tasks waiting for a
//! person ([`Client::pending`]), and their answers ([`Client::resolve`],
//! [`Client::reject`]).

use std::time::Duration;

use serde_json::Value;
use toolfan_protocol::{decode, encode, JobId, Resolution, ResolveAnswer, WaitingTask};

use crate::{Client, ClientError};

/// How long the coordinator running a job has to store a resolution.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A task waiting for a person, on some coordinator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingTask {
    /// Its job.
    pub job: JobId,
    /// The job's caller.
    pub caller: toolfan_protocol::CallerId,
    /// The task and what it waits for.
    pub task: WaitingTask,
}

impl Client {
    /// Every task waiting for a person, on every coordinator that answers
    /// within `listen`, oldest first.
    pub async fn pending(&self, listen: Duration) -> Result<Vec<PendingTask>, ClientError> {
        let mut pending: Vec<PendingTask> = Vec::new();
        for listing in self.jobs(listen).await? {
            for job in listing.live {
                pending.extend(job.waiting.into_iter().map(|task| PendingTask {
                    job: job.job.clone(),
                    caller: job.caller.clone(),
                    task,
                }));
            }
        }
        pending.sort_by_key(|p| p.task.waiting.since_unix_ms);
        Ok(pending)
    }

    /// Completes task `index` of `job`, waiting for a person, with `value`:
    /// returns once the coordinator running the job stored it as the
    /// task's result. Only the job's caller (this client's caller id) is
    /// heard, unless NATS permissions let an operator use another's.
    pub async fn resolve(&self, job: &JobId, index: u32, value: Value) -> Result<(), ClientError> {
        self.send_resolution(job, index, Some(value), None).await
    }

    /// Fails task `index` of `job`, waiting for a person, with `rejected`
    /// and `reason`.
    pub async fn reject(&self, job: &JobId, index: u32, reason: &str) -> Result<(), ClientError> {
        self.send_resolution(job, index, None, Some(reason.to_owned()))
            .await
    }

    async fn send_resolution(
        &self,
        job: &JobId,
        index: u32,
        value: Option<Value>,
        reject: Option<String>,
    ) -> Result<(), ClientError> {
        let resolution = Resolution {
            v: toolfan_protocol::PROTOCOL_VERSION,
            index,
            value,
            reject,
        };
        let subject = self.options.subjects.resolve(&self.options.caller, job);
        let request = self.nats.request(subject, encode(&resolution).into());
        let refused = |why: String| ClientError::Resolve {
            job: job.clone(),
            index,
            why,
        };
        let answer = match tokio::time::timeout(RESOLVE_TIMEOUT, request).await {
            Ok(Ok(message)) => message,
            Ok(Err(e)) => return Err(refused(no_owner(&e.to_string()))),
            Err(_) => return Err(refused(no_owner("no answer within 5 s"))),
        };
        let answer: ResolveAnswer =
            decode("resolve answer", &answer.payload).map_err(|e| refused(e.to_string()))?;
        match answer.error {
            None if answer.ok => Ok(()),
            error => Err(refused(error.unwrap_or_else(|| "refused".into()))),
        }
    }
}

fn no_owner(what: &str) -> String {
    format!(
        "{what}: no coordinator runs the job for this caller (it ended, is unknown, \
         or these NATS credentials may not resolve it)"
    )
}
