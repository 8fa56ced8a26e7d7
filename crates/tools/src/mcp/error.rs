//! [`McpError`]: what is wrong with an `[[mcp]]` entry or its server at start.

/// Longest name of an `[[mcp]]` entry, so that `<name>_<tool>` has room
/// for the tool's name within a tool name's 64 characters.
pub const MAX_SOURCE_NAME_LEN: usize = 32;

/// What is wrong with an `[[mcp]]` entry or its server at start.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// The entry's name cannot be part of a tool name.
    #[error("bad name: {0}")]
    Name(#[source] toolfan_protocol::ValidationError),
    /// The entry's name leaves no room for its tools' names.
    #[error("the name must be at most {MAX_SOURCE_NAME_LEN} characters")]
    NameTooLong,
    /// Both or neither of `command` and `url`.
    #[error("give exactly one of `command` and `url`")]
    CommandOrUrl,
    /// `command = []`.
    #[error("`command` needs at least the program")]
    EmptyCommand,
    /// `headers` on a stdio server.
    #[error("`headers` apply only to `url` servers")]
    HeadersNeedUrl,
    /// The URL is unusable.
    #[error("{url:?} is not a valid URL for MCP: {problem}")]
    Url {
        /// The URL.
        url: String,
        /// Why.
        problem: String,
    },
    /// A header name is not an HTTP header name, or one the transport sets itself.
    #[error("{0:?} is not a header name toolfan can send (not a valid name, or one MCP's transport sets)")]
    HeaderName(String),
    /// A header value (after reading its variable) is not a valid header value.
    #[error("the value of header {0:?} is not a valid HTTP header value")]
    HeaderValue(String),
    /// A header's `env:` variable is not set.
    #[error("header {header:?} names the environment variable {var}, which is not set")]
    UnsetVariable {
        /// The header.
        header: String,
        /// The variable.
        var: String,
    },
    /// `tools = [...]` names a tool twice.
    #[error("`tools` names {0:?} twice")]
    ListedTwice(String),
    /// `tools = []`.
    #[error("`tools` names no tool; leave it out to serve them all")]
    NoToolsListed,
    /// `max_concurrency = 0`.
    #[error("max_concurrency must be at least 1")]
    NoConcurrency,
    /// `timeout_ms = 0`.
    #[error("timeout_ms must be at least 1")]
    NoTimeout,
    /// The server's program could not be started.
    #[error("cannot start {program:?}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The MCP handshake failed.
    #[error("cannot connect: {0}")]
    Connect(#[source] Box<rmcp::service::ClientInitializeError>),
    /// The server did not finish the handshake or its listing in time.
    #[error("the server did not answer within {0} ms")]
    Unanswered(u64),
    /// The server's tool list cannot be followed to its end.
    #[error("its tool list {0}")]
    Paging(String),
    /// A tool's input schema is too large to pass on.
    #[error("the input schema of tool {tool:?} is {bytes} bytes; at most {max} are served")]
    SchemaTooLarge {
        /// The server's name of the tool.
        tool: String,
        /// Its size as JSON.
        bytes: usize,
        /// The most served.
        max: usize,
    },
    /// Listing the server's tools failed.
    #[error("cannot list its tools: {0}")]
    List(#[source] rmcp::ServiceError),
    /// `tools = [...]` names a tool the server does not offer.
    #[error("the server offers no tool {tool:?} (it offers {offered})")]
    MissingTool {
        /// The tool asked for.
        tool: String,
        /// What it offers, comma-separated.
        offered: String,
    },
    /// The server offers no tool at all.
    #[error("the server offers no tools")]
    NoTools,
    /// Two of the server's tools map to the same toolfan name.
    #[error("tool {tool:?} would be served as {served:?}, like another of the server's tools")]
    NameClash {
        /// The server's name for it.
        tool: String,
        /// The toolfan name.
        served: String,
    },
    /// Two `[[mcp]]` entries of one name, or a tool name served twice.
    #[error("{0:?} is served twice (by two entries, or also by a [[tools]] entry)")]
    Duplicate(String),
    /// A tool's input schema cannot describe a toolfan tool's arguments.
    #[error("tool {tool:?}: {source}")]
    Schema {
        /// The server's name for it.
        tool: String,
        /// Why.
        #[source]
        source: toolfan_worker::SchemaError,
    },
}
