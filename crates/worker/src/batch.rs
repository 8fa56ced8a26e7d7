//! Batch tools: one handler call for many tasks' args.
//!
//! A tool registered with [`WorkerBuilder::batch_tool`](crate::WorkerBuilder::batch_tool)
//! collects the calls that reach this worker, from any job, for at most
//! `max_wait` after the first one or until `max_size` have come, then calls
//! its handler once with all their args, in arrival order. The handler
//! returns one outcome per input, in order, and each task gets its own:
//! its own result or error, its own timeout and cancellation (a task that
//! times out or is cancelled while it waits for its batch is left out of
//! it; one that ends while the batch runs just stops waiting). A handler
//! that fails as a whole fails every task of the batch with its error
//! (retryable if it says so, and each task retries on its own).
//!
//! Each waiting task holds one of the worker's slots, so a worker batches
//! at most `concurrency` calls at once: give it at least `max_size`.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::tool::{json_value, typed_args, ToolFuture, ToolRuntime};
use crate::{TaskContext, Tool, ToolError};

/// How a batch tool gathers calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchOptions {
    /// Most calls in one handler call.
    pub max_size: usize,
    /// Longest a call waits for others after the first of its batch came.
    pub max_wait: Duration,
}

impl BatchOptions {
    /// Batches of at most `max_size`, gathered for at most `max_wait`.
    pub fn new(max_size: usize, max_wait: Duration) -> Self {
        Self { max_size, max_wait }
    }
}

/// What a batch handler returns: one outcome per input, in order, or a
/// failure of the whole batch.
pub type BatchOutcome<R> = Result<Vec<Result<R, ToolError>>, ToolError>;

struct Item<A> {
    args: A,
    reply: oneshot::Sender<Result<Value, ToolError>>,
}

/// A batch tool: the [`Tool`] each task calls, and the collector behind it.
pub(crate) struct Batched<F, A, R> {
    handler: Arc<F>,
    options: BatchOptions,
    tx: mpsc::UnboundedSender<Item<A>>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Item<A>>>>,
    _types: PhantomData<fn(A) -> R>,
}

impl<F, Fut, A, R> Batched<F, A, R>
where
    F: Fn(Vec<A>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BatchOutcome<R>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    pub(crate) fn new(handler: F, options: BatchOptions) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self {
            handler: Arc::new(handler),
            options,
            tx,
            rx: Mutex::new(Some(rx)),
            _types: PhantomData,
        }
    }
}

impl<F, Fut, A, R> Tool for Batched<F, A, R>
where
    F: Fn(Vec<A>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BatchOutcome<R>> + Send + 'static,
    A: DeserializeOwned + Send + 'static,
    R: Serialize + Send + 'static,
{
    fn call(&self, _ctx: TaskContext, args: Value) -> ToolFuture {
        // Args that do not fit fail alone, before they join a batch.
        let args = match typed_args::<A>(args) {
            Ok(args) => args,
            Err(e) => return Box::pin(async move { Err(e) }),
        };
        let (reply, answer) = oneshot::channel();
        let sent = self.tx.send(Item { args, reply });
        Box::pin(async move {
            if sent.is_err() {
                return Err(ToolError::retryable("the worker's batcher has stopped"));
            }
            answer.await.unwrap_or_else(|_| {
                Err(ToolError::retryable(
                    "the batch ended without an answer for this call",
                ))
            })
        })
    }

    fn start(&self, runtime: ToolRuntime) {
        let Some(rx) = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        tokio::spawn(collect(rx, self.handler.clone(), self.options, runtime));
    }
}

/// Gathers calls into batches and runs each batch on its own task.
async fn collect<F, Fut, A, R>(
    mut rx: mpsc::UnboundedReceiver<Item<A>>,
    handler: Arc<F>,
    options: BatchOptions,
    runtime: ToolRuntime,
) where
    F: Fn(Vec<A>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BatchOutcome<R>> + Send + 'static,
    A: Send + 'static,
    R: Serialize + Send + 'static,
{
    // Runs while the tool lives: a shutting-down worker still finishes
    // its running tasks, batched ones too.
    loop {
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + options.max_wait;
        while batch.len() < options.max_size {
            tokio::select! {
                item = rx.recv() => match item {
                    Some(item) => batch.push(item),
                    None => break,
                },
                _ = tokio::time::sleep_until(until) => break,
            }
        }
        // Calls that timed out or were cancelled meanwhile are left out.
        batch.retain(|item| !item.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        runtime.batch_sizes.observe(batch.len() as f64);
        tokio::spawn(run_batch(handler.clone(), batch));
    }
}

async fn run_batch<F, Fut, A, R>(handler: Arc<F>, batch: Vec<Item<A>>)
where
    F: Fn(Vec<A>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = BatchOutcome<R>> + Send + 'static,
    A: Send + 'static,
    R: Serialize + Send + 'static,
{
    let (args, replies): (Vec<A>, Vec<_>) = batch.into_iter().map(|i| (i.args, i.reply)).unzip();
    let count = args.len();
    // On its own task so a panic is caught.
    let ran = tokio::spawn(handler(args)).await;
    let outcomes: Vec<Result<Value, ToolError>> = match ran {
        Ok(Ok(outcomes)) if outcomes.len() == count => outcomes
            .into_iter()
            .map(|o| o.and_then(json_value))
            .collect(),
        Ok(Ok(outcomes)) => {
            let error = ToolError::new(format!(
                "the batch handler returned {} outcomes for {count} calls",
                outcomes.len()
            ));
            vec![Err(error); count]
        }
        Ok(Err(error)) => vec![Err(error); count],
        Err(join) => {
            let error = ToolError::new(format!("the batch handler failed: {join}"));
            vec![Err(error); count]
        }
    };
    for (reply, outcome) in replies.into_iter().zip(outcomes) {
        let _ = reply.send(outcome);
    }
}
