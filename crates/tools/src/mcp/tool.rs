//! [`McpTool`]: one of a server's tools as a toolfan [`Tool`]; each call is
//! one `tools/call` over the server's shared session.

use std::sync::Arc;

use rmcp::model::CallToolRequestParams;
use serde_json::Value;
use tokio::time::Instant;
use toolfan_worker::{TaskContext, Tool, ToolError, ToolFuture, ToolRuntime};

use super::session::{Session, RESTART_WAIT};
use super::value;

/// A tool of an MCP server, called over its server's session.
pub struct McpTool {
    session: Arc<Session>,
    remote: Arc<str>,
}

impl std::fmt::Debug for McpTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTool")
            .field("server", &self.session.name)
            .field("tool", &self.remote)
            .finish()
    }
}

impl McpTool {
    pub(crate) fn new(session: Arc<Session>, remote: String) -> Self {
        Self {
            session,
            remote: remote.into(),
        }
    }
}

impl Tool for McpTool {
    fn start(&self, runtime: ToolRuntime) {
        self.session.catalog.started(&self.remote, runtime);
    }

    fn call(&self, ctx: TaskContext, args: Value) -> ToolFuture {
        let session = self.session.clone();
        let remote = self.remote.clone();
        Box::pin(async move {
            let call = call(&session, &remote, args);
            tokio::select! {
                outcome = call => outcome,
                // Dropping the call sends the server notifications/cancelled.
                _ = ctx.cancelled() => Err(ToolError::retryable("the task was cancelled")),
            }
        })
    }
}

/// One `tools/call` under the session's concurrency cap and timeout.
async fn call(session: &Session, tool: &str, args: Value) -> Result<Value, ToolError> {
    let arguments = match args {
        Value::Object(arguments) => arguments,
        Value::Null => serde_json::Map::new(),
        other => {
            return Err(ToolError::invalid_args(format!(
                "MCP tools take an object of named arguments, not {other}"
            )))
        }
    };
    if session.catalog.is_gone(tool) {
        return Err(ToolError::new(format!(
            "MCP server {} no longer offers the tool {tool:?}",
            session.name
        )));
    }
    let started = Instant::now();
    let timed_out = || {
        ToolError::retryable(format!(
            "MCP server {} did not answer {tool:?} within {} ms",
            session.name,
            session.timeout.as_millis()
        ))
    };
    let work = async {
        let _permit = session
            .permits
            .acquire()
            .await
            .map_err(|_| ToolError::retryable("the MCP session is closing"))?;
        let within = RESTART_WAIT.min(session.timeout.saturating_sub(started.elapsed()));
        let peer = session.peer(within).await.map_err(ToolError::retryable)?;
        let request = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
        value::outcome(&session.name, peer.call_tool_once(request).await)
    };
    tokio::time::timeout(session.timeout, work)
        .await
        .unwrap_or_else(|_| Err(timed_out()))
}
