//! What every job of a coordinator shares ([`Shared`]): its options, its
//! connection, the worker registry, and the coordinator-wide services
//! (publisher, routes, retention, the safety net's lookups) started once
//! by `start`.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use toolfan_transport::Topology;

use crate::board::Board;
use crate::fair::Fair;
use crate::metrics::CoordinatorMetrics;
use crate::net::Lookups;
use crate::options::CoordinatorOptions;
use crate::publisher::Publisher;
use crate::registry::Registry;
use crate::retention::Retention;
use crate::routes::Routes;

/// What every job of a coordinator shares.
pub(crate) struct Shared {
    pub(crate) options: CoordinatorOptions,
    pub(crate) client: async_nats::Client,
    pub(crate) topology: Topology,
    pub(crate) registry: Arc<Registry>,
    /// The jobs consumer's ack wait: live jobs signal progress every third of it.
    pub(crate) job_ack_wait: Duration,
    /// Cancelled when the drain timeout passes: live jobs are handed back.
    pub(crate) abandon: CancellationToken,
    pub(crate) metrics: CoordinatorMetrics,
    pub(crate) publisher: Publisher,
    pub(crate) routes: Arc<Routes>,
    pub(crate) retention: Retention,
    /// What the safety net's rounds of lookups share.
    pub(crate) lookups: Lookups,
    /// Live jobs' progress and recent jobs, for `toolfan.coordinator.jobs`.
    pub(crate) board: Arc<Board>,
    /// The fleet's fair shares between callers and their jobs.
    pub(crate) fair: Arc<Fair>,
}

impl Shared {
    /// How long this coordinator's results floor outlives its last word.
    pub(crate) fn floor_ttl(&self) -> Duration {
        floor_ttl(self.job_ack_wait)
    }
}

/// How long a coordinator's results floor outlives its last word: longer
/// than a dead coordinator's jobs take to reach a new owner.
pub(crate) fn floor_ttl(job_ack_wait: Duration) -> Duration {
    3 * job_ack_wait + Duration::from_secs(5)
}
