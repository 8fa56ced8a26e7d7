//! Asking everyone who listens on a subject and gathering their answers:
//! how the client asks workers for their tools and coordinators for their
//! jobs.

use std::time::Duration;

use futures::StreamExt;
use serde::de::DeserializeOwned;
use toolfan_protocol::decode;

use crate::{Client, ClientError};

/// A question to everyone listening on a subject.
pub(crate) struct Ask<'a> {
    /// Where it is asked.
    pub(crate) subject: String,
    /// Its body.
    pub(crate) body: Vec<u8>,
    /// What is being done, for a transport error.
    pub(crate) what: &'static str,
    /// What the answers are, for a decoding error and the log.
    pub(crate) answers: &'static str,
    /// How long answers are gathered.
    pub(crate) listen: Duration,
    /// The client asking.
    pub(crate) client: &'a Client,
}

impl Ask<'_> {
    /// Every answer that arrives within `listen`, in arrival order. With no
    /// one listening the server answers itself (an empty "no responders"
    /// status), which is skipped; an answer that cannot be read is logged
    /// and skipped.
    pub(crate) async fn gather<T: DeserializeOwned>(self) -> Result<Vec<T>, ClientError> {
        let nats = &self.client.nats;
        let inbox = nats.new_inbox();
        let mut replies = nats
            .subscribe(inbox.clone())
            .await
            .map_err(|e| ClientError::transport(self.what, e))?;
        nats.publish_with_reply(self.subject, inbox, self.body.into())
            .await
            .map_err(|e| ClientError::transport(self.what, e))?;
        let mut gathered = Vec::new();
        let collect = async {
            while let Some(reply) = replies.next().await {
                if reply.status.is_some() && reply.payload.is_empty() {
                    continue;
                }
                match decode::<T>(self.answers, &reply.payload) {
                    Ok(answer) => gathered.push(answer),
                    Err(e) => tracing::warn!(error = %e, "unreadable {}", self.answers),
                }
            }
        };
        let _ = tokio::time::timeout(self.listen, collect).await;
        Ok(gathered)
    }
}
