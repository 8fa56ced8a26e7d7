//! Asking the coordinators what they are running and what they finished.

use std::time::Duration;

use futures::StreamExt;
use toolfan_protocol::{decode, encode, CoordinatorJobs, JobId, JobsRequest};

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
        let what = "asking coordinators for their jobs";
        let inbox = self.nats.new_inbox();
        let mut answers = self
            .nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| ClientError::transport(what, e))?;
        self.nats
            .publish_with_reply(self.options.subjects.coordinator_jobs(), inbox, body.into())
            .await
            .map_err(|e| ClientError::transport(what, e))?;
        let mut listings: Vec<CoordinatorJobs> = Vec::new();
        let collect = async {
            while let Some(answer) = answers.next().await {
                // With no coordinator listening, the server answers itself:
                // an empty "no responders" status message.
                if answer.status.is_some() && answer.payload.is_empty() {
                    continue;
                }
                match decode::<CoordinatorJobs>("coordinator jobs", &answer.payload) {
                    Ok(listing) => {
                        listings.retain(|l| l.coordinator != listing.coordinator);
                        listings.push(listing);
                    }
                    Err(e) => tracing::warn!(error = %e, "a coordinator's jobs are unreadable"),
                }
            }
        };
        let _ = tokio::time::timeout(listen, collect).await;
        listings.sort_by(|a, b| a.coordinator.cmp(&b.coordinator));
        Ok(listings)
    }
}
