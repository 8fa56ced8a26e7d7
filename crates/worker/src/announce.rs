//! Telling the fleet about this worker: a heartbeat every interval, one at
//! once in answer to a ping, a last one marked `leaving`, and the tools'
//! descriptions to whoever asks on `toolfan.worker.tools`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::describe::Described;
use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{encode, Subjects, ToolName, WorkerInfo, WorkerTools, PROTOCOL_VERSION};

fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// What a worker says of itself.
pub(crate) struct Announcement {
    pub(crate) client: async_nats::Client,
    pub(crate) subjects: Subjects,
    pub(crate) id: String,
    pub(crate) concurrency: u32,
    /// Tools running now, counted by the pipeline.
    pub(crate) in_flight: Arc<AtomicU32>,
    pub(crate) every: Duration,
    pub(crate) tools: Vec<ToolName>,
    /// What each tool does, read afresh for each ask (tools may change it).
    pub(crate) descriptions: Described,
}

impl Announcement {
    /// The heartbeat (`leaving` on the last one).
    fn heartbeat(&self, host: &str, leaving: bool) -> Vec<u8> {
        encode(&WorkerInfo {
            v: PROTOCOL_VERSION,
            id: self.id.clone(),
            host: host.to_owned(),
            tools: self.tools.clone(),
            concurrency: self.concurrency,
            in_flight: self.in_flight.load(Ordering::Relaxed),
            leaving,
        })
    }

    async fn publish(&self, host: &str, leaving: bool) {
        let payload = self.heartbeat(host, leaving);
        let subject = self.subjects.heartbeat();
        if let Err(e) = self.client.publish(subject, payload.into()).await {
            tracing::warn!(error = %e, "heartbeat not sent");
        }
    }

    /// The answer to `toolfan.worker.tools`: every tool's description now.
    fn described(&self) -> Vec<u8> {
        let tools = match self.descriptions.read() {
            Ok(tools) => tools.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        encode(&WorkerTools {
            v: PROTOCOL_VERSION,
            worker: self.id.clone(),
            tools,
        })
    }

    /// Subscribes to `subject`; without it the worker does without `what`.
    async fn listen(&self, subject: String, what: &str) -> Option<async_nats::Subscriber> {
        match self.client.subscribe(subject).await {
            Ok(subscriber) => Some(subscriber),
            Err(e) => {
                tracing::warn!(error = %e, "cannot answer {what}");
                None
            }
        }
    }
}

/// The next message of `subscriber`, or never without one.
async fn next(subscriber: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match subscriber.as_mut() {
        Some(subscriber) => subscriber.next().await,
        None => std::future::pending().await,
    }
}

/// Announces the worker until `shutdown`, then says it is leaving.
pub(crate) async fn run(announcement: Announcement, shutdown: CancellationToken) {
    let host = host();
    let me = &announcement;
    let mut pings = me
        .listen(me.subjects.ping(), "pings; heartbeats only")
        .await;
    let what = "requests for tool descriptions";
    let mut asks = me.listen(me.subjects.tools(), what).await;
    let mut ticker = tokio::time::interval(me.every);
    loop {
        tokio::select! {
            _ = ticker.tick() => me.publish(&host, false).await,
            Some(_) = next(&mut pings) => me.publish(&host, false).await,
            Some(ask) = next(&mut asks) => {
                if let Some(reply) = ask.reply {
                    let described = me.described();
                    if let Err(e) = me.client.publish(reply, described.into()).await {
                        tracing::warn!(error = %e, "tool descriptions not sent");
                    }
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    me.publish(&host, true).await;
    let _ = me.client.flush().await;
}
