//! A tower [`Service`](::tower::Service) for tool calls (feature `tower`):
//! swap a tool-router service of an agent stack for [`ToolRouter`] and the
//! calls run on the fleet, under its limits, cache, retries and deadlines.
//!
//! - `Service<ToolInvocation>` runs one call as a one-task job.
//! - `Service<Vec<ToolInvocation>>` runs a batch as **one** job (the
//!   router's window, deadline and join policy) and answers in call order.
//!
//! ```no_run
//! # async fn run(client: toolfan::Client) -> Result<(), toolfan::tower::RouterError> {
//! use std::time::Duration;
//! use tower::{Service, ServiceBuilder, ServiceExt};
//! use toolfan::tower::{ToolInvocation, ToolRouter};
//!
//! let router = ToolRouter::new(client).max_concurrency(8).deadline(Duration::from_secs(20));
//! let mut tools = ServiceBuilder::new()
//!     .concurrency_limit(4)
//!     .service(router);
//! let call = ToolInvocation::new("call_1", "search", serde_json::json!({"q": "rust"}));
//! // The router serves one call and a batch: say which one is meant where
//! // nothing else does (a stack's `S: Service<ToolInvocation>` bound does).
//! let ready = ServiceExt::<ToolInvocation>::ready(&mut tools).await?;
//! let output = ready.call(call).await?;
//! match &output.result {
//!     Ok(value) => println!("{}: {value}", output.id),
//!     Err(error) => println!("{} failed: {error}", output.id),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Errors: outputs, not `Err`
//! A call that fails on the fleet (the tool's error, a timeout, an unknown
//! tool, a call cancelled by a fail-fast batch) is an `Ok` [`ToolOutput`]
//! whose `result` is the toolfan [`TaskError`] (kind and message): an agent
//! hands it back to the model as that call's tool message, as it would a
//! value, and one failed call never discards the others of a batch. `Err`
//! ([`RouterError`]) is kept for the router itself failing — the job could
//! not be submitted or was not answered — which is what tower layers such
//! as retry, timeout or load shedding act on.

mod service;

use serde_json::Value;
use toolfan_protocol::{ErrorKind, TaskError};

pub use service::ToolRouter;

/// One tool call as an agent stack names it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolInvocation {
    /// The call's id (the model's tool-call id), given back on its output.
    pub id: String,
    /// The tool.
    pub name: String,
    /// The call's arguments (a JSON object for most tools).
    pub arguments: Value,
}

impl ToolInvocation {
    /// A call of `name` with `arguments`, known as `id`.
    pub fn new(id: impl Into<String>, name: impl Into<String>, arguments: Value) -> Self {
        Self {
            id: id.into(),
            name: name.into(),
            arguments,
        }
    }
}

/// What a call came to: its value, or the fleet's error for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    /// The invocation's id.
    pub id: String,
    /// The tool's value, or why the call failed (kind and message).
    pub result: Result<Value, TaskError>,
}

impl ToolOutput {
    /// Whether the call failed (an agent marks its tool message as an error).
    pub fn is_error(&self) -> bool {
        self.result.is_err()
    }

    /// The output as a tool message's text: the value (a string as it is,
    /// other JSON as JSON), or `kind: message` for an error.
    pub fn content(&self) -> String {
        match &self.result {
            Ok(Value::String(text)) => text.clone(),
            Ok(value) => value.to_string(),
            Err(error) => error.to_string(),
        }
    }
}

/// The router could not run the calls at all.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    /// The job could not be submitted, or its answer did not come.
    #[error("the tool calls could not be run on the fleet: {0}")]
    Client(#[from] crate::ClientError),
    /// The fleet answered fewer results than calls (a protocol fault).
    #[error("the fleet answered {answered} results for {asked} calls")]
    Incomplete {
        /// Calls sent.
        asked: usize,
        /// Results received.
        answered: usize,
    },
}

/// The error of a call refused before it was sent (a name that cannot be
/// a tool): it fails alone, the batch's other calls run.
fn refused(name: &str, why: impl std::fmt::Display) -> TaskError {
    TaskError::new(
        ErrorKind::InvalidArgs,
        format!("tool name {name:?} cannot be a tool: {why}"),
    )
}
