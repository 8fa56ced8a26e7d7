//! [`ToolRouter`] and its two `Service` impls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_nats::connection::State;
use toolfan_protocol::{ErrorKind, Job, Policy, Task, TaskError, TaskResult, ToolName};

use super::{refused, RouterError, ToolInvocation, ToolOutput};
use crate::Client;

/// How often a router waiting for its connection looks again.
const RECONNECT_POLL: Duration = Duration::from_millis(50);

/// A boxed, `Send` response future.
type Answer<T> = Pin<Box<dyn Future<Output = Result<T, RouterError>> + Send>>;

/// What every job the router submits gets.
#[derive(Debug, Clone, Default)]
struct Settings {
    policy: Policy,
    max_concurrency: Option<u32>,
    deadline: Option<Duration>,
    timeout: Option<Duration>,
    retries: u32,
}

/// Runs tool calls on the fleet as a tower `Service`; see the module doc.
/// Cheap to clone (clones share the client's connection).
pub struct ToolRouter {
    client: Client,
    settings: Arc<Settings>,
    /// Set while waiting for the connection to come back.
    recheck: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Clone for ToolRouter {
    fn clone(&self) -> Self {
        Self {
            client: self.client.clone(),
            settings: self.settings.clone(),
            recheck: None,
        }
    }
}

impl std::fmt::Debug for ToolRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolRouter")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl ToolRouter {
    /// A router over `client`, with toolfan's defaults (policy `all`, the
    /// default window and deadline, no task timeout, no retries).
    pub fn new(client: Client) -> Self {
        Self {
            client,
            settings: Arc::default(),
            recheck: None,
        }
    }

    fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(Arc::make_mut(&mut self.settings));
        self
    }

    /// The join policy of a batch: `All`, `FailFast` (the first failure
    /// ends the batch; calls still running are cancelled on the fleet),
    /// `FirstOk`, `Quorum(k)`.
    pub fn policy(self, policy: Policy) -> Self {
        self.with(|s| s.policy = policy)
    }

    /// Most calls of a batch running at once (the job's window).
    pub fn max_concurrency(self, n: u32) -> Self {
        self.with(|s| s.max_concurrency = Some(n))
    }

    /// The deadline of a call or batch, from its submit.
    pub fn deadline(self, deadline: Duration) -> Self {
        self.with(|s| s.deadline = Some(deadline))
    }

    /// Each call's own timeout on the worker.
    pub fn task_timeout(self, timeout: Duration) -> Self {
        self.with(|s| s.timeout = Some(timeout))
    }

    /// How many times a call that failed retryably is tried again.
    pub fn retries(self, retries: u32) -> Self {
        self.with(|s| s.retries = retries)
    }

    /// Ready while the client is connected; while it reconnects, pending
    /// (looked at again every 50 ms), so tower's buffers and load
    /// balancers hold calls rather than fail them.
    fn poll_connected(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), RouterError>> {
        loop {
            if self.client.nats.connection_state() == State::Connected {
                self.recheck = None;
                return Poll::Ready(Ok(()));
            }
            let recheck = self
                .recheck
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(RECONNECT_POLL)));
            if recheck.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.recheck = None;
        }
    }

    /// Runs `calls` as one job and answers in call order.
    fn run(&self, calls: Vec<ToolInvocation>) -> Answer<Vec<ToolOutput>> {
        let client = self.client.clone();
        let settings = self.settings.clone();
        Box::pin(async move {
            let (job, sent) = prepare(&settings, &calls);
            let results = match job {
                Some(job) => client.submit(job).await?.results().await?,
                None => Vec::new(),
            };
            answer(calls, &sent, results)
        })
    }
}

/// The job of the calls that can be sent (`None` if none can), and for
/// each call the task it became or why it was refused.
fn prepare(
    settings: &Settings,
    calls: &[ToolInvocation],
) -> (Option<Job>, Vec<Result<usize, TaskError>>) {
    let mut tasks = Vec::new();
    let sent = calls
        .iter()
        .map(|call| {
            ToolName::new(call.name.as_str())
                .map(|_| {
                    let mut task = Task::new(call.name.clone(), call.arguments.clone());
                    task.retries = settings.retries;
                    if let Some(timeout) = settings.timeout {
                        task = task.timeout(timeout);
                    }
                    tasks.push(task);
                    tasks.len() - 1
                })
                .map_err(|e| refused(&call.name, e))
        })
        .collect();
    if tasks.is_empty() {
        return (None, sent);
    }
    let mut job = Job::new(tasks).policy(settings.policy);
    if let Some(n) = settings.max_concurrency {
        job = job.max_concurrency(n);
    }
    if let Some(deadline) = settings.deadline {
        job = job.deadline(deadline);
    }
    (Some(job), sent)
}

/// One output per call, in call order.
fn answer(
    calls: Vec<ToolInvocation>,
    sent: &[Result<usize, TaskError>],
    results: Vec<TaskResult>,
) -> Result<Vec<ToolOutput>, RouterError> {
    let asked = sent.iter().filter(|s| s.is_ok()).count();
    if results.len() < asked {
        return Err(RouterError::Incomplete {
            asked,
            answered: results.len(),
        });
    }
    let mut results: Vec<Option<TaskResult>> = results.into_iter().map(Some).collect();
    Ok(calls
        .into_iter()
        .zip(sent)
        .map(|(call, sent)| ToolOutput {
            id: call.id,
            result: match sent {
                Ok(i) => results[*i]
                    .take()
                    .map_or_else(|| Err(missing()), |r| r.outcome),
                Err(error) => Err(error.clone()),
            },
        })
        .collect())
}

/// A call the fleet's answer skipped (never expected: a result per task).
fn missing() -> TaskError {
    TaskError::new(
        ErrorKind::Internal,
        "the fleet answered no result for this call",
    )
}

impl tower::Service<ToolInvocation> for ToolRouter {
    type Response = ToolOutput;
    type Error = RouterError;
    type Future = Answer<ToolOutput>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_connected(cx)
    }

    fn call(&mut self, call: ToolInvocation) -> Self::Future {
        let batch = self.run(vec![call]);
        Box::pin(async move {
            let mut outputs = batch.await?;
            outputs.pop().ok_or(RouterError::Incomplete {
                asked: 1,
                answered: 0,
            })
        })
    }
}

impl tower::Service<Vec<ToolInvocation>> for ToolRouter {
    type Response = Vec<ToolOutput>;
    type Error = RouterError;
    type Future = Answer<Vec<ToolOutput>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_connected(cx)
    }

    fn call(&mut self, calls: Vec<ToolInvocation>) -> Self::Future {
        self.run(calls)
    }
}
