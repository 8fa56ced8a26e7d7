//! One job, gathered for `toolfan job ID`: its outcomes from the results
//! stream (the first per task, as the coordinator took them) and, while it
//! runs, its progress from the coordinator running it.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;
use serde::Serialize;
use toolfan::{Client, FinishedJob, LiveJobInfo, TaskResult};
use toolfan_protocol::{decode, JobId, Subjects, ToolName};
use toolfan_transport::{Topology, TopologyOptions};

use crate::fleet::ClusterArgs;

/// How many stored results of one job are read at most.
const MAX_RESULTS: u64 = 100_000;

/// How long one stored result may take to arrive.
const RESULT_TIMEOUT: Duration = Duration::from_secs(5);

/// One job as `toolfan job` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct JobDetail {
    /// The job.
    pub(crate) job: JobId,
    /// `live`, `finished` (a coordinator remembers it) or `stored` (only its results are left).
    pub(crate) state: &'static str,
    /// The coordinator that runs or ran it, if one said so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) coordinator: Option<String>,
    /// Its progress, while live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) live: Option<LiveJobInfo>,
    /// How it ended, if a coordinator remembers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) finished: Option<FinishedJob>,
    /// Each task with a result, by index.
    pub(crate) tasks: Vec<TaskRow>,
}

/// One task's outcome.
#[derive(Debug, Serialize)]
pub(crate) struct TaskRow {
    index: u32,
    /// The task's tool: known while the job is live, or when it calls only one.
    #[serde(skip_serializing_if = "Option::is_none")]
    tool: Option<ToolName>,
    ok: bool,
    /// The error kind of a failed task.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<String>,
    duration_ms: u64,
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    worker: Option<String>,
}

/// Finds job `id`: a bad id, or one no coordinator knows and with no
/// stored result, is an error saying so.
pub(crate) async fn find(
    client: &Client,
    cluster: &ClusterArgs,
    id: &str,
    listen: Duration,
) -> anyhow::Result<JobDetail> {
    let job = JobId::new(id).with_context(|| format!("{id:?} is not a job id"))?;
    let listings = client.jobs_about(&job, listen).await?;
    let mut detail = JobDetail {
        job: job.clone(),
        state: "stored",
        coordinator: None,
        live: None,
        finished: None,
        tasks: Vec::new(),
    };
    for listing in listings {
        if let Some(live) = listing.live.into_iter().find(|j| j.job == job) {
            detail.state = "live";
            detail.live = Some(live);
            detail.coordinator = Some(listing.coordinator);
        } else if let Some(done) = listing.recent.into_iter().find(|j| j.job == job) {
            if detail.live.is_none() {
                detail.state = "finished";
                detail.finished = Some(done);
                detail.coordinator = Some(listing.coordinator);
            }
        }
    }
    let results = stored_results(cluster, &job).await?;
    if results.is_empty() && detail.live.is_none() && detail.finished.is_none() {
        anyhow::bail!(
            "no job {job}: no coordinator that answered within {} ms runs it or finished it lately, and no result of it is stored",
            listen.as_millis()
        );
    }
    let tools = detail
        .live
        .as_ref()
        .map(|j| &j.tools)
        .or(detail.finished.as_ref().map(|j| &j.tools));
    // Each task's tool while the job is live; after, only a one-tool job's.
    let only = tools.filter(|t| t.len() == 1).map(|t| t[0].clone());
    let by_task = detail.live.as_ref().map(|j| j.task_tools.as_slice());
    let tool_of = |index: u32| {
        by_task
            .and_then(|t| t.get(index as usize).cloned())
            .or_else(|| only.clone())
    };
    let tasks = results.into_values().map(|r| row(tool_of(r.index), r));
    let tasks = tasks.collect();
    detail.tasks = tasks;
    Ok(detail)
}

fn row(tool: Option<ToolName>, result: TaskResult) -> TaskRow {
    let error = result.error();
    TaskRow {
        index: result.index,
        tool,
        ok: result.is_ok(),
        error: error.map(|e| e.kind.as_str().to_owned()),
        message: error.map(|e| e.message.chars().take(200).collect()),
        duration_ms: result.duration_ms,
        attempts: result.attempts,
        worker: result.worker.clone(),
    }
}

/// The first stored result of each of the job's tasks (stream order, as
/// the coordinator takes them), by index; unreadable ones are skipped.
async fn stored_results(
    cluster: &ClusterArgs,
    job: &JobId,
) -> anyhow::Result<BTreeMap<u32, TaskResult>> {
    let nats = toolfan_transport::connect_observed(
        &cluster.nats_url,
        "toolfan-cli job",
        &cluster.auth.to_auth(),
        None,
    )
    .await?;
    let topology = Topology::new(
        nats,
        Subjects::new(&cluster.prefix)?,
        TopologyOptions::default(),
    );
    let (mut stream, stored) = topology.job_results(job).await?;
    let mut first = BTreeMap::new();
    for _ in 0..stored.min(MAX_RESULTS) {
        let message = tokio::time::timeout(RESULT_TIMEOUT, stream.next())
            .await
            .context("the results stream stopped answering")?
            .context("the results stream ended")??;
        match decode::<TaskResult>("task result", &message.payload) {
            Ok(result) => {
                first.entry(result.index).or_insert(result);
            }
            Err(e) => tracing::warn!(error = %e, "skipping an unreadable result"),
        }
    }
    Ok(first)
}

/// Prints a job's state and its tasks as a table.
pub(crate) fn print(detail: &JobDetail) {
    let on = detail.coordinator.as_deref().unwrap_or("-");
    println!("job {} ({}, coordinator {on})", detail.job, detail.state);
    if let Some(j) = &detail.live {
        println!(
            "  {} of {} tasks done: {} ok, {} failed; caller {}",
            j.done, j.total, j.succeeded, j.failed, j.caller
        );
    }
    if let Some(j) = &detail.finished {
        println!(
            "  {} ({}) after {}: {} of {} ok, {} failed; caller {}",
            j.status.as_str(),
            j.ended_by.as_str(),
            seconds(j.duration_ms),
            j.succeeded,
            j.total,
            j.failed,
            j.caller
        );
    }
    println!(
        "{:>6} {:<16} {:<18} {:>9} {:>8}  worker",
        "index", "tool", "outcome", "duration", "attempts"
    );
    for t in &detail.tasks {
        let outcome = t.error.as_deref().unwrap_or("ok");
        let tool = t.tool.as_ref().map_or("?", |t| t.as_str());
        println!(
            "{:>6} {:<16} {:<18} {:>7}ms {:>8}  {}",
            t.index,
            tool,
            outcome,
            t.duration_ms,
            t.attempts,
            t.worker.as_deref().unwrap_or("(coordinator)")
        );
    }
    println!("{} task(s) with a result", detail.tasks.len());
}

/// `ms` as seconds with one decimal.
pub(crate) fn seconds(ms: u64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}
