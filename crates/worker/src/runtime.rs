//! What every task of a running worker shares, made once by
//! [`Worker::run`](crate::Worker::run) and read by each pipeline step.

use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use toolfan_limits::Limiter;
use toolfan_protocol::ToolName;
use toolfan_transport::Topology;

use crate::abort::Aborts;
use crate::cache::Cache;
use crate::metrics::WorkerMetrics;
use crate::options::WorkerOptions;
use crate::slots::TaskSlots;
use crate::tool::Tool;
use crate::turns::Turns;

/// What every task of a worker shares.
pub(crate) struct Shared {
    pub(crate) options: WorkerOptions,
    pub(crate) topology: Topology,
    pub(crate) slots: Arc<TaskSlots>,
    /// Tools running now (heartbeats report it).
    pub(crate) in_flight: Arc<AtomicU32>,
    /// The fleet's limits, if the worker takes them, and the turns tasks
    /// take asking for them.
    pub(crate) limiter: Option<Arc<Limiter>>,
    pub(crate) turns: Turns,
    /// The result cache, if the worker has one.
    pub(crate) cache: Option<Arc<Cache>>,
    /// Cancelled when the drain timeout passes: running tasks are handed back.
    pub(crate) abandon: CancellationToken,
    /// Jobs whose tasks must stop.
    pub(crate) aborts: Arc<Aborts>,
    pub(crate) metrics: WorkerMetrics,
}

/// A served tool, the limit keys its calls are under, and its consumer's ack wait.
#[derive(Clone)]
pub(crate) struct ToolEntry {
    pub(crate) name: ToolName,
    pub(crate) tool: Arc<dyn Tool>,
    pub(crate) limit_keys: Arc<Vec<String>>,
    pub(crate) ack_wait: Duration,
}
