//! The MCP server handler: one per session (the stdio connection, or each
//! streamable HTTP session), all sharing one [`Fleet`].
//!
//! It advertises tools with `listChanged`; `tools/list` answers the list
//! the watcher read last; `tools/call` runs the call as a job
//! ([`super::call`]). Once the client has sent `initialized`, a task
//! sends it `notifications/tools/list_changed` on every change, until the
//! session's handler is dropped.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::{NotificationContext, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tokio_util::sync::{CancellationToken, DropGuard};

use super::call::{self, Fleet};
use super::watcher;

/// One MCP session's handler.
pub(crate) struct Session {
    fleet: Arc<Fleet>,
    /// Cancelled when the session's handler drops: ends its list_changed task.
    ended: CancellationToken,
    _end_on_drop: DropGuard,
    /// Whether its list_changed task runs (a client may send `initialized`
    /// more than once; one task is enough).
    watching: AtomicBool,
}

impl Session {
    /// A handler for a new session.
    pub(crate) fn new(fleet: Arc<Fleet>) -> Self {
        let ended = CancellationToken::new();
        Self {
            fleet,
            _end_on_drop: ended.clone().drop_guard(),
            ended,
            watching: AtomicBool::new(false),
        }
    }
}

impl ServerHandler for Session {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("toolfan", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "The tools of a toolfan worker fleet. Each call runs as a toolfan job; \
                 a failed call's text starts with the toolfan error kind \
                 (tool_error, timeout, invalid_args, unknown_tool, ...).",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tools: Vec<Tool> = self.fleet.tools.borrow().values().cloned().collect();
        Ok(ListToolsResult::with_all_items(tools))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        Ok(call::call(&self.fleet, request, context).await.into())
    }

    async fn on_initialized(&self, context: NotificationContext<RoleServer>) {
        if self.watching.swap(true, Ordering::AcqRel) {
            return;
        }
        tokio::spawn(watcher::notify_changes(
            self.fleet.tools.clone(),
            context.peer,
            self.ended.clone(),
        ));
    }
}
