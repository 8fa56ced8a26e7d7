//! Telling the fleet about this worker: a heartbeat every interval, one at
//! once in answer to a ping, a last one marked `leaving`, and the tools'
//! descriptions to whoever asks on `toolfan.worker.tools`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{
    encode, Subjects, ToolDescription, ToolName, WorkerInfo, WorkerTools, PROTOCOL_VERSION,
};

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
    pub(crate) descriptions: Vec<ToolDescription>,
}

/// Announces the worker until `shutdown`, then says it is leaving.
pub(crate) async fn run(announcement: Announcement, shutdown: CancellationToken) {
    let Announcement {
        client,
        subjects,
        id,
        concurrency,
        in_flight,
        every,
        tools,
        descriptions,
    } = announcement;
    let subjects = &subjects;
    let host = host();
    let info = |leaving: bool| WorkerInfo {
        v: PROTOCOL_VERSION,
        id: id.clone(),
        host: host.clone(),
        tools: tools.clone(),
        concurrency,
        in_flight: in_flight.load(Ordering::Relaxed),
        leaving,
    };
    let publish = |leaving: bool| {
        let client = client.clone();
        let payload = encode(&info(leaving));
        let subject = subjects.heartbeat();
        async move {
            if let Err(e) = client.publish(subject, payload.into()).await {
                tracing::warn!(error = %e, "heartbeat not sent");
            }
        }
    };
    let mut pings = match client.subscribe(subjects.ping()).await {
        Ok(pings) => Some(pings),
        Err(e) => {
            tracing::warn!(error = %e, "cannot answer pings; heartbeats only");
            None
        }
    };
    let mut asks = match client.subscribe(subjects.tools()).await {
        Ok(asks) => Some(asks),
        Err(e) => {
            tracing::warn!(error = %e, "cannot answer requests for tool descriptions");
            None
        }
    };
    let described = encode(&WorkerTools {
        v: PROTOCOL_VERSION,
        worker: id.clone(),
        tools: descriptions,
    });
    let mut ticker = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticker.tick() => publish(false).await,
            Some(_) = async { match pings.as_mut() { Some(p) => p.next().await, None => None } } => publish(false).await,
            Some(ask) = async { match asks.as_mut() { Some(a) => a.next().await, None => None } } => {
                if let Some(reply) = ask.reply {
                    if let Err(e) = client.publish(reply, described.clone().into()).await {
                        tracing::warn!(error = %e, "tool descriptions not sent");
                    }
                }
            }
            _ = shutdown.cancelled() => break,
        }
    }
    publish(true).await;
    let _ = client.flush().await;
}
