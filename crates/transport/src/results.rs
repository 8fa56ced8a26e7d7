//! The results stream, read and trimmed: every job's outcomes as they are
//! stored (one consumer per coordinator, whatever the number of live jobs),
//! one job's outcomes from the start (a takeover, a client's recovery), and
//! everything below a sequence no job needs any more purged.

use async_nats::jetstream::consumer::{self, DeliverPolicy};
use toolfan_protocol::JobId;

use crate::follower::MAKE_TIMEOUT;
use crate::{Follower, Topology, TransportError};

impl Topology {
    /// A follower of every job's outcomes, in stream order: from sequence
    /// `from` on, or only those stored from now on when `from` is `None`.
    /// One server-side consumer, however many jobs are live; it is made
    /// again within a couple of seconds of a lost server, resuming after
    /// the last message it handed out.
    pub fn follow_all_results(&self, from: Option<u64>) -> Follower {
        let start = match from {
            Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
            None => DeliverPolicy::New,
        };
        Follower::new(
            self.js.clone(),
            self.subjects.results_stream(),
            self.subjects.results_wildcard(),
            start,
        )
    }

    /// An ordered consumer replaying `toolfan.result.<job>` from the start,
    /// then following it: the arbiter of which result of a task came first.
    /// Also returns how many results were already stored when it started.
    pub async fn job_results(
        &self,
        job: &JobId,
    ) -> Result<(consumer::push::Ordered, u64), TransportError> {
        // Bounded like the follower's: a cluster may place the consumer on
        // a node that just died, and only a new attempt is placed afresh.
        let made = tokio::time::timeout(
            MAKE_TIMEOUT,
            self.ordered_results(self.subjects.result(job), DeliverPolicy::All),
        )
        .await
        .unwrap_or_else(|_| Err("no answer in time".into()));
        made.map_err(|e| {
            TransportError::jetstream(format!("following the results of job {job}"), e)
        })
    }

    async fn ordered_results(
        &self,
        filter_subject: String,
        deliver_policy: DeliverPolicy,
    ) -> Result<(consumer::push::Ordered, u64), async_nats::Error> {
        let stream = self
            .js
            .get_stream_no_info(self.subjects.results_stream())
            .await?;
        let consumer = stream
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: self.js.client().new_inbox(),
                filter_subject,
                deliver_policy,
                ..Default::default()
            })
            .await?;
        // The create response counts what is already stored: no extra round trip.
        let stored = consumer.cached_info().num_pending;
        Ok((consumer.messages().await?, stored))
    }

    /// The sequence of the last outcome stored (0 when none ever was).
    pub async fn results_last_sequence(&self) -> Result<u64, TransportError> {
        // `get_stream` fetches the stream's info: no second request.
        let stream = self
            .js
            .get_stream(self.subjects.results_stream())
            .await
            .map_err(|e| TransportError::jetstream("reading the results stream", e))?;
        Ok(stream.cached_info().state.last_sequence)
    }

    /// Deletes every stored outcome below stream sequence `sequence` (no
    /// live or recently answered job needs them): one request, however
    /// many jobs they belong to. Returns how many were deleted.
    pub async fn purge_results_below(&self, sequence: u64) -> Result<u64, TransportError> {
        let what = || format!("purging the results stream below sequence {sequence}");
        let stream = self
            .js
            .get_stream_no_info(self.subjects.results_stream())
            .await
            .map_err(|e| TransportError::jetstream(what(), e))?;
        let purged = stream
            .purge()
            .sequence(sequence)
            .await
            .map_err(|e| TransportError::jetstream(what(), e))?;
        Ok(purged.purged)
    }
}
