//! Why a worker could not start or stopped ([`WorkerError`]), and what is
//! wrong with a configuration ([`ConfigError`]).

use std::time::Duration;

/// Why a worker could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration is unusable.
    #[error("invalid worker configuration: {0}")]
    Config(#[from] ConfigError),
    /// NATS could not be reached or set up.
    #[error(transparent)]
    Transport(#[from] toolfan_transport::TransportError),
    /// The metrics endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] toolfan_telemetry::http::ServeError),
}

/// What is wrong with a worker's configuration; each names the setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// No tool to serve.
    #[error("a worker needs at least one tool")]
    NoTools,
    /// `concurrency` is 0.
    #[error("concurrency must be at least 1")]
    NoConcurrency,
    /// The worker id is empty.
    #[error("the worker id must not be empty")]
    EmptyId,
    /// A setting names a tool this worker does not serve.
    #[error("{what} given for {tool:?}, which this worker does not serve")]
    NotServed {
        /// The tool.
        tool: String,
        /// The setting ("limit keys", "a description or schema").
        what: &'static str,
    },
    /// Limit keys without a Redis to keep the limits in.
    #[error("limit keys need a Redis URL for the limits")]
    LimitsWithoutRedis,
    /// A fleet-wide cap below 1, or for a tool not served here.
    #[error(
        "max in flight {max} for {tool:?}: the tool must be served here and the cap at least 1"
    )]
    MaxInFlight {
        /// The tool.
        tool: String,
        /// The cap given.
        max: i64,
    },
    /// `prefetch_share` outside (0, 1].
    #[error("prefetch_share must be in (0, 1], not {0}")]
    PrefetchShare(f64),
    /// `max_held_factor` is 0.
    #[error("max_held_factor must be at least 1")]
    MaxHeldFactor,
    /// A batch tool's options are out of range.
    #[error("batch tool {tool:?}: max_size must be at least 1 and max_wait at most 60 s (got {max_size} and {max_wait:?})")]
    Batch {
        /// The tool.
        tool: String,
        /// The size given.
        max_size: usize,
        /// The wait given.
        max_wait: Duration,
    },
    /// A tool's argument schema is unusable.
    #[error("tool {tool:?}: {source}")]
    Schema {
        /// The tool.
        tool: String,
        /// What is wrong with it.
        #[source]
        source: crate::describe::SchemaError,
    },
    /// A tool name that cannot be a subject token.
    #[error(transparent)]
    ToolName(#[from] toolfan_protocol::ValidationError),
    /// A limit key or the limiter's settings are malformed.
    #[error(transparent)]
    Limits(#[from] toolfan_limits::LimitError),
    /// The cache's Redis URL is malformed.
    #[error(transparent)]
    Cache(#[from] crate::cache::CacheError),
    /// The worker's metrics could not be registered.
    #[error("registering metrics: {0}")]
    Metrics(#[source] prometheus::Error),
}
