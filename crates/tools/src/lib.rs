//! toolfan-tools: tools that need no Rust of their own, and the
//! `toolfan-worker` binary that serves them.
//!
//! # Layout
//! - [`builtin`] — the binary's built-in tools (`sleep`, `echo`, `fail`,
//!   `flaky`, `span`).
//! - [`command`] — tools that run a program per call (or per batch).
//! - [`http`] — tools that make an HTTP request per call.
//! - [`mcp`] — MCP servers (stdio or streamable HTTP) whose tools are served.
//! - [`config`] — the tools file (`toolfan-worker --config tools.toml`).
//!
//! Each adds its tools to a [`toolfan_worker::WorkerBuilder`], so they run
//! under the same limits, cache, retries and deadlines as Rust tools.

pub mod builtin;
pub mod command;
pub mod config;
pub mod http;
pub mod mcp;

pub use builtin::{add_builtin, BUILTIN_TOOLS};
pub use command::CommandTool;
pub use config::{ToolDef, ToolsFile};
pub use http::{HttpDef, HttpTool};
pub use mcp::{McpDef, McpError, McpSource};

/// A tool source could not be read or set up; the message names the tool,
/// the file or the variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ToolsError {
    /// The tools file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The tools file is not valid TOML of the expected shape.
    #[error("{0}")]
    Syntax(#[from] toml::de::Error),
    /// A tool of the file is defined wrongly.
    #[error("tool {tool:?}: {problem}")]
    Tool {
        /// The tool's name.
        tool: String,
        /// What is wrong.
        problem: String,
    },
    /// A tool's argument schema is unusable.
    #[error("tool {tool:?}: {source}")]
    Schema {
        /// The tool's name.
        tool: String,
        /// What is wrong with the schema.
        #[source]
        source: toolfan_worker::SchemaError,
    },
    /// An HTTP tool could not be made.
    #[error("tool {tool:?}: {source}")]
    Http {
        /// The tool's name.
        tool: String,
        /// Why.
        #[source]
        source: http::HttpToolError,
    },
    /// An `[[mcp]]` entry is wrong, or its server could not be used at start.
    #[error("mcp {mcp:?}: {source}")]
    Mcp {
        /// The entry's name.
        mcp: String,
        /// What is wrong.
        #[source]
        source: mcp::McpError,
    },
    /// No built-in tool has this name.
    #[error("unknown built-in tool {name:?}; the built-in tools are {}", BUILTIN_TOOLS.join(", "))]
    UnknownBuiltin {
        /// The name asked for.
        name: String,
    },
    /// An error in a file, naming the file.
    #[error("{}: {source}", path.display())]
    InFile {
        /// The file.
        path: std::path::PathBuf,
        /// The error.
        #[source]
        source: Box<ToolsError>,
    },
}

/// Puts `tool` under its limit keys and fleet-wide cap.
pub(crate) fn limits_of(
    mut builder: toolfan_worker::WorkerBuilder,
    tool: String,
    keys: Vec<String>,
    max_in_flight: Option<i64>,
) -> toolfan_worker::WorkerBuilder {
    if !keys.is_empty() {
        builder = builder.limit_keys(tool.clone(), keys);
    }
    if let Some(max) = max_in_flight {
        builder = builder.tool_max_in_flight(tool, max);
    }
    builder
}
