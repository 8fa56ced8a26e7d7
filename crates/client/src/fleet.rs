//! Asking the fleet who is there.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use toolfan_protocol::{decode, ToolDescription, WorkerInfo, WorkerTools};

use crate::ask::Ask;
use crate::{Client, ClientError};

impl Client {
    /// The workers that announce themselves within `listen`: pings the
    /// fleet (every worker answers at once) and collects heartbeats.
    pub async fn workers(&self, listen: Duration) -> Result<Vec<WorkerInfo>, ClientError> {
        let subjects = &self.options.subjects;
        let what = "listening for worker heartbeats";
        let mut beats = self
            .nats
            .subscribe(subjects.heartbeat())
            .await
            .map_err(|e| ClientError::transport(what, e))?;
        self.nats
            .publish(subjects.ping(), "".into())
            .await
            .map_err(|e| ClientError::transport(what, e))?;
        let mut seen = BTreeMap::new();
        let collect = async {
            while let Some(beat) = beats.next().await {
                if let Ok(info) = decode::<WorkerInfo>("heartbeat", &beat.payload) {
                    if info.leaving {
                        seen.remove(&info.id);
                    } else {
                        seen.insert(info.id.clone(), info);
                    }
                }
            }
        };
        let _ = tokio::time::timeout(listen, collect).await;
        Ok(seen.into_values().collect())
    }

    /// The tools the fleet serves, by name, with what each does and the
    /// JSON Schema of its arguments: asks every worker and collects the
    /// answers that arrive within `listen`. Hand them to an LLM with
    /// [`crate::llm::openai::tool_definitions`] or
    /// [`crate::llm::anthropic::tool_definitions`]. Workers that describe
    /// the same tool differently (a rolling upgrade) are logged, and the
    /// description of the lowest worker id is kept.
    pub async fn tools(&self, listen: Duration) -> Result<Vec<ToolDescription>, ClientError> {
        let ask = Ask {
            subject: self.options.subjects.tools(),
            body: Vec::new(),
            what: "asking workers for their tools",
            answers: "tool descriptions",
            listen,
            client: self,
        };
        let mut by_worker = BTreeMap::new();
        for answer in ask.gather::<WorkerTools>().await? {
            by_worker.insert(answer.worker, answer.tools);
        }
        let mut tools: BTreeMap<String, (String, ToolDescription)> = BTreeMap::new();
        for (worker, described) in by_worker {
            for tool in described {
                match tools.get(tool.name.as_str()) {
                    Some((first, kept)) if kept != &tool => tracing::warn!(
                        tool = %tool.name, kept = %first, differs = %worker,
                        "workers describe this tool differently"
                    ),
                    Some(_) => {}
                    None => {
                        tools.insert(tool.name.to_string(), (worker.clone(), tool));
                    }
                }
            }
        }
        Ok(tools.into_values().map(|(_, tool)| tool).collect())
    }

    /// Waits until every worker in `ids` has announced itself, or fails
    /// after `within` naming the ones still missing.
    pub async fn wait_for_workers(
        &self,
        ids: &[String],
        within: Duration,
    ) -> Result<(), ClientError> {
        let started = tokio::time::Instant::now();
        loop {
            let live = self.workers(Duration::from_millis(200)).await?;
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !live.iter().any(|w| &w.id == *id))
                .cloned()
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if started.elapsed() > within {
                return Err(ClientError::WorkersMissing {
                    missing,
                    waited: within,
                });
            }
        }
    }
}
