//! Asking the coordinators what they are running and what they finished.

use std::time::Duration;

use toolfan_protocol::{encode, CoordinatorJobs, JobId, JobsRequest};

use crate::ask::Ask;
use crate::{Client, ClientError};

impl Client {
    /// Every coordinator's live and recent jobs: asks on
    /// `toolfan.coordinator.jobs` and collects the answers that arrive
    /// within `listen`, one per coordinator, sorted by coordinator id. An
    /// answer that cannot be read is logged and skipped.
    pub async fn jobs(&self, listen: Duration) -> Result<Vec<CoordinatorJobs>, ClientError> {
        self.ask_jobs(Vec::new(), listen).await
    }

    /// Like [`Client::jobs`], and the coordinator running `job` also tells
    /// each of its tasks' tool (`LiveJobInfo::task_tools`).
    pub async fn jobs_about(
        &self,
        job: &JobId,
        listen: Duration,
    ) -> Result<Vec<CoordinatorJobs>, ClientError> {
        let request = JobsRequest {
            v: toolfan_protocol::PROTOCOL_VERSION,
            job: Some(job.clone()),
        };
        self.ask_jobs(encode(&request), listen).await
    }

    async fn ask_jobs(
        &self,
        body: Vec<u8>,
        listen: Duration,
    ) -> Result<Vec<CoordinatorJobs>, ClientError> {
        let ask = Ask {
            subject: self.options.subjects.coordinator_jobs(),
            body,
            what: "asking coordinators for their jobs",
            answers: "coordinator jobs",
            listen,
            client: self,
        };
        let mut listings: Vec<CoordinatorJobs> = Vec::new();
        for listing in ask.gather::<CoordinatorJobs>().await? {
            listings.retain(|l| l.coordinator != listing.coordinator);
            listings.push(listing);
        }
        listings.sort_by(|a, b| a.coordinator.cmp(&b.coordinator));
        Ok(listings)
    }
}
