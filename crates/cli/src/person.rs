//! `toolfan pending` (the tasks waiting for a person, on every
//! coordinator) and `toolfan resolve JOB INDEX VALUE_JSON` (`--reject
//! REASON`), which answers one.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use toolfan::{ClientOptions, JobId};
use toolfan_protocol::{now_unix_ms, Subjects};

use crate::fleet::ClusterArgs;
use crate::jobs::{connect, detail::seconds};

/// `toolfan pending`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct PendingArgs {
    /// Where the cluster is.
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Print JSON (one object per waiting task) instead of a table.
    #[arg(long)]
    json: bool,
    /// How long to collect coordinators' answers, in ms.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    listen_ms: u64,
}

/// `toolfan resolve`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct ResolveArgs {
    /// The job (as `toolfan pending` lists it).
    job: String,
    /// The waiting task's index.
    index: u32,
    /// The task's value, as JSON (`true`, `{"approved": true}`, `"text"`).
    #[arg(required_unless_present = "reject")]
    value: Option<String>,
    /// Fail the task with `rejected` and this reason instead.
    #[arg(long, conflicts_with = "value")]
    reject: Option<String>,
    /// The job's caller: its own credentials may resolve only its jobs (an
    /// operator's any caller's).
    #[arg(long, env = "TOOLFAN_CALLER", default_value = "cli")]
    caller: String,
    /// Reply inbox prefix (default `_INBOX_<caller>`): an operator
    /// resolving another caller's job uses its own, e.g. `_INBOX_operator`.
    #[arg(long)]
    inbox_prefix: Option<String>,
    /// Where the cluster is.
    #[command(flatten)]
    cluster: ClusterArgs,
}

/// Lists the tasks waiting for a person.
pub(crate) async fn pending(args: PendingArgs) -> anyhow::Result<()> {
    let client = connect(&args.cluster).await?;
    let pending = client
        .pending(Duration::from_millis(args.listen_ms))
        .await?;
    if args.json {
        for p in &pending {
            let line = serde_json::json!({
                "job": p.job, "caller": p.caller, "index": p.task.index,
                "tool": p.task.waiting.tool, "prompt": p.task.waiting.prompt,
                "since_unix_ms": p.task.waiting.since_unix_ms,
            });
            println!("{line}");
        }
        return Ok(());
    }
    println!(
        "{:<28} {:<12} {:>5} {:<12} {:>9}  prompt",
        "job", "caller", "index", "tool", "waiting"
    );
    let now = now_unix_ms();
    for p in &pending {
        let waited = now.saturating_sub(p.task.waiting.since_unix_ms);
        println!(
            "{:<28} {:<12} {:>5} {:<12} {:>9}  {}",
            p.job.as_str(),
            p.caller.as_str(),
            p.task.index,
            p.task.waiting.tool.as_str(),
            seconds(waited),
            p.task.waiting.prompt,
        );
    }
    println!("{} task(s) waiting for a person", pending.len());
    Ok(())
}

/// Resolves (or rejects) one waiting task; succeeds once its outcome is stored.
pub(crate) async fn resolve(args: ResolveArgs) -> anyhow::Result<()> {
    let job = JobId::new(&args.job)?;
    let mut options = ClientOptions::new(&args.cluster.nats_url).caller(&args.caller)?;
    options.subjects = Subjects::new(&args.cluster.prefix)?;
    options.auth = args.cluster.auth.to_auth();
    if let Some(prefix) = &args.inbox_prefix {
        options.auth.inbox_prefix = Some(prefix.clone());
    }
    options.create_streams = false;
    let client = toolfan::Client::connect(options).await?;
    match (&args.reject, &args.value) {
        (Some(reason), _) => client.reject(&job, args.index, reason).await?,
        (None, Some(value)) => {
            let value = serde_json::from_str(value)
                .with_context(|| format!("VALUE_JSON {value:?} is not JSON"))?;
            client.resolve(&job, args.index, value).await?
        }
        (None, None) => anyhow::bail!("give VALUE_JSON or --reject REASON"),
    }
    println!("task {} of job {job} resolved", args.index);
    Ok(())
}
