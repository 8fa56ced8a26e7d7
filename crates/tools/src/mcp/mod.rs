//! MCP servers as a tool source: the worker connects to each `[[mcp]]`
//! server of its tools file, lists its tools and serves each as an ordinary
//! toolfan tool named `<name>_<tool>`, so fleet limits, the cache, retries,
//! deadlines and metrics apply to them as to any other tool.
//!
//! ```toml
//! [[mcp]]
//! name = "calc"                             # its tools are served as calc_<tool>
//! command = ["python3", "calc_server.py"]   # stdio: a child process
//! # or: url = "http://127.0.0.1:8000/mcp"   # streamable HTTP
//! # optional:
//! # headers = { Authorization = "env:CALC_TOKEN" }   # url only; env:VAR reads VAR at start
//! # tools = ["add", "mul"]                  # serve only these (each must exist)
//! # timeout_ms = 30000                      # longest wait for one call
//! # max_concurrency = 32                    # calls in flight over the session
//! # limit_keys = ["calc"]                   # as for [[tools]], for each of its tools
//! # max_in_flight = 8                       # fleet-wide, for each of its tools
//! ```
//!
//! # Names
//! A tool's name keeps ASCII letters, digits, `_` and `-`; any other
//! character becomes `_`, and a name too long or shared with another of the
//! server's tools ends in a hash ([`names`]). Every mapped name is logged at
//! start. Descriptions and input schemas are the server's.
//!
//! # Values
//! Each task is one `tools/call` with the task's args as `arguments`:
//! - `isError: true` is a `tool_error` (not retryable) with the server's
//!   text blocks, one a line, as its message;
//! - a result with `structuredContent` has that JSON as its value;
//! - otherwise one text block is its text as a JSON string (text that
//!   happens to be JSON stays a string: the server said text), no content is
//!   `null`, and several blocks are an array, a text block as its string and
//!   any other block (image, audio, resource) in its MCP JSON form.
//!
//! (The Python SDK gives a tool that returns a `str` the structured content
//! `{"result": "<text>"}`, so that object is its value.)
//!
//! # Start
//! The worker connects to each server, in file order, before it serves
//! anything: a server that cannot be started, reached or listed (within
//! `timeout_ms`), a `tools = [...]` name it lacks, an unset `env:` variable
//! or a tool name served twice stops it with an error naming the entry.
//!
//! # Errors
//! | what happened | kind | retryable |
//! |---|---|---|
//! | `isError: true` (also args the server's own validation refuses, as the spec asks and the Python SDK does) | `tool_error` | no |
//! | args that are not a JSON object (nothing is sent) | `invalid_args` | no |
//! | JSON-RPC `-32602` invalid params (also an unknown tool) | `invalid_args` | no |
//! | JSON-RPC `-32603` internal error | `tool_error` | yes |
//! | any other JSON-RPC error | `tool_error` | no |
//! | connection closed, send failed, server down or restarting | `tool_error` | yes |
//! | no answer within `timeout_ms` | `tool_error` | yes |
//! | the server asks for input or answers with a task | `tool_error` | no |
//! | a tool the server has since dropped from its list | `tool_error` | no |
//!
//! The task's own `timeout_ms` and the job deadline bound every call as for
//! any tool. A call that is cancelled or runs out of time has its future
//! dropped, and rmcp then sends the server `notifications/cancelled` for it.
//!
//! # Restarts
//! A stdio server that exits is started again after 100 ms; the wait
//! doubles with each start, up to 5 s, and is 100 ms again once a session
//! has stayed up 10 s (so a server that crashes at once is not spun).
//! Its calls in flight fail retryably at once; calls arriving while it is
//! down wait up to 5 s for it (never past their timeout: a Python server
//! takes over a second to start), then fail retryably. An HTTP session that
//! closes is made again the same way, but its calls never wait: while the
//! server is unreachable they fail retryably at once, and once it is back
//! the transport makes a new MCP session by itself. The child is killed
//! when the worker stops (and a stdio server also ends when the worker is
//! killed, on the end of its stdin); its stderr goes to the worker's log,
//! a line an event, at `info`.
//!
//! # Changed tool lists
//! On `notifications/tools/list_changed` (and after each restart) the tools
//! are listed again. A served tool whose description or schema changed is
//! described anew to callers (`toolfan tools` and the like ask each time).
//! The worker's set of tools is fixed when it starts (one JetStream consumer
//! and pull loop each, its name in every heartbeat), so a new tool is only
//! logged as needing a restart of the worker, and a served tool the server
//! no longer lists fails its calls at once with a clear error until the
//! server lists it again. The session asks for protocol version 2025-11-25
//! (the `initialize` handshake), where list changes arrive as plain
//! notifications.

mod catalog;
mod config;
mod error;
pub mod names;
mod session;
mod tool;
mod value;

use std::sync::Arc;

pub use config::McpDef;
pub use error::{McpError, MAX_SOURCE_NAME_LEN};
pub use tool::McpTool;

use crate::ToolsError;
use session::{Connector, Served, Session};

/// An MCP server connected at start, with the tools it will serve.
pub struct McpSource {
    def: McpDef,
    session: Arc<Session>,
    served: Vec<Served>,
}

impl McpSource {
    /// Connects to `def`'s server, lists its tools and keeps the session up
    /// (restarting a stdio server that exits); the error names the entry.
    pub async fn connect(def: McpDef) -> Result<Self, ToolsError> {
        let named = |source| ToolsError::Mcp {
            mcp: def.name.clone(),
            source,
        };
        def.check().map_err(named)?;
        let connector = Connector::new(&def).map_err(named)?;
        let (session, served) = Session::start(connector, &def).await.map_err(named)?;
        Ok(Self {
            def,
            session,
            served,
        })
    }

    /// The toolfan names of the tools it serves.
    pub fn tool_names(&self) -> Vec<String> {
        self.served
            .iter()
            .map(|s| s.mapped.served.clone())
            .collect()
    }

    /// Adds each of its tools to `builder`, with its description, schema,
    /// limit keys and fleet-wide cap.
    pub fn register(
        self,
        mut builder: toolfan_worker::WorkerBuilder,
    ) -> toolfan_worker::WorkerBuilder {
        for served in self.served {
            let name = served.mapped.served.clone();
            let tool = McpTool::new(self.session.clone(), served.mapped.remote.clone());
            builder = builder
                .boxed_tool(name.clone(), Arc::new(tool))
                .describe(name.clone(), served.description)
                .parameters(name.clone(), served.schema);
            builder = crate::limits_of(
                builder,
                name,
                self.def.limit_keys.clone(),
                self.def.max_in_flight,
            );
        }
        builder
    }
}
