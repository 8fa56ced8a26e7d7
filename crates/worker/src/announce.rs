//! Telling the fleet about this worker: a heartbeat every interval, one at
//! once in answer to a ping, a last one marked `leaving`, and the tools'
//! descriptions to whoever asks on `toolfan.worker.tools`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use toolfan_protocol::{
    encode, ToolDescription, ToolName, WorkerInfo, WorkerTools, PROTOCOL_VERSION,
};

use crate::run::Shared;

fn host() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Announces the worker until `shutdown`, then says it is leaving.
pub(crate) async fn run(
    client: async_nats::Client,
    shared: Arc<Shared>,
    tools: Vec<ToolName>,
    descriptions: Vec<ToolDescription>,
    shutdown: CancellationToken,
) {
    let subjects = &shared.topology.subjects;
    let host = host();
    let info = |leaving: bool| WorkerInfo {
        v: PROTOCOL_VERSION,
        id: shared.options.id.clone(),
        host: host.clone(),
        tools: tools.clone(),
        concurrency: shared.options.concurrency,
        in_flight: shared.in_flight.load(Ordering::Relaxed),
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
        worker: shared.options.id.clone(),
        tools: descriptions,
    });
    let mut ticker = tokio::time::interval(shared.options.heartbeat_interval);
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
