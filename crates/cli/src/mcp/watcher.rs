//! The fleet's tool list, read again every `--poll-ms` and shared with
//! every MCP session through a `watch` channel; each session sends
//! `notifications/tools/list_changed` when the list changes.
//!
//! A read asks every worker for its tools and collects the answers for
//! `--listen-ms` (one request and a few small replies: cheap). A tool
//! stays listed until two reads in a row miss it, so one worker slow to
//! answer once does not make its tools flap out and back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rmcp::model::Tool;
use rmcp::service::Peer;
use rmcp::RoleServer;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use toolfan::Client;

use super::convert;

/// The tools as MCP lists them, by name.
pub(crate) type ToolList = Arc<BTreeMap<String, Tool>>;

/// Reads the fleet's tools now, then keeps re-reading them.
pub(crate) struct ToolWatcher {
    client: Client,
    listen: Duration,
    poll: Duration,
    last_read: BTreeMap<String, Tool>,
    sender: watch::Sender<ToolList>,
}

impl ToolWatcher {
    /// Reads the tools once (a fleet that cannot be asked is an error) and
    /// returns the watcher with a receiver of the list.
    pub(crate) async fn start(
        client: Client,
        listen: Duration,
        poll: Duration,
    ) -> Result<(Self, watch::Receiver<ToolList>), toolfan::ClientError> {
        let first = read(&client, listen).await?;
        let (sender, receiver) = watch::channel(Arc::new(first.clone()));
        let watcher = Self {
            client,
            listen,
            poll,
            last_read: first,
            sender,
        };
        Ok((watcher, receiver))
    }

    /// Re-reads the tools every poll interval until `stop`; a failed read
    /// keeps the list as it was.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let mut ticks = tokio::time::interval(self.poll);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            match read(&self.client, self.listen).await {
                Ok(tools) => self.update(tools),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the fleet's tools; keeping the last list")
                }
            }
        }
    }

    /// Publishes this read merged with the one before, if that changes the list.
    fn update(&mut self, tools: BTreeMap<String, Tool>) {
        let listed = merged(&self.last_read, &tools);
        self.last_read = tools;
        self.sender.send_if_modified(|current| {
            if **current == listed {
                return false;
            }
            tracing::info!(tools = ?listed.keys().collect::<Vec<_>>(), "the fleet's tools changed");
            *current = Arc::new(listed);
            true
        });
    }
}

/// The tools of this read and the one before; this read's description
/// wins where both have a tool.
fn merged(before: &BTreeMap<String, Tool>, now: &BTreeMap<String, Tool>) -> BTreeMap<String, Tool> {
    let mut listed = before.clone();
    listed.extend(now.iter().map(|(k, v)| (k.clone(), v.clone())));
    listed
}

async fn read(
    client: &Client,
    listen: Duration,
) -> Result<BTreeMap<String, Tool>, toolfan::ClientError> {
    let described = client.tools(listen).await?;
    Ok(described
        .iter()
        .map(|d| (d.name.to_string(), convert::tool(d)))
        .collect())
}

/// Sends `notifications/tools/list_changed` to `peer` whenever `tools`
/// changes, until `session_end` is cancelled, the list's sender is gone,
/// or the peer cannot be reached.
pub(crate) async fn notify_changes(
    mut tools: watch::Receiver<ToolList>,
    peer: Peer<RoleServer>,
    session_end: CancellationToken,
) {
    tools.mark_unchanged();
    loop {
        tokio::select! {
            _ = session_end.cancelled() => return,
            changed = tools.changed() => if changed.is_err() { return },
        }
        if peer.is_transport_closed() {
            return;
        }
        if let Err(e) = peer.notify_tool_list_changed().await {
            tracing::debug!(error = %e, "a session is gone; no more list_changed for it");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tools(names: &[(&str, &str)]) -> BTreeMap<String, Tool> {
        names
            .iter()
            .map(|(name, about)| {
                let schema = Arc::new(rmcp::model::JsonObject::new());
                (
                    name.to_string(),
                    Tool::new(name.to_string(), about.to_string(), schema),
                )
            })
            .collect()
    }

    #[test]
    fn a_tool_stays_listed_until_two_reads_miss_it() {
        let first = tools(&[("a", "1"), ("b", "1")]);
        let second = tools(&[("a", "2")]);
        let listed = merged(&first, &second);
        assert_eq!(listed.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(listed["a"].description.as_deref(), Some("2"));
        let third = tools(&[("a", "2")]);
        assert_eq!(merged(&second, &third).keys().collect::<Vec<_>>(), ["a"]);
    }
}
