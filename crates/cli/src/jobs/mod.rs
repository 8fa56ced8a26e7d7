//! `toolfan jobs` (every coordinator's live jobs, then its recent ones)
//! and `toolfan job ID` (one job's tasks and outcomes).

pub(crate) mod detail;

use std::time::Duration;

use clap::Args;
use toolfan::{Client, ClientOptions, CoordinatorJobs, FinishedJob, LiveJobInfo};
use toolfan_protocol::{now_unix_ms, Subjects};

use crate::fleet::ClusterArgs;
use detail::seconds;

/// `toolfan jobs`' arguments.
#[derive(Args, Debug)]
pub(crate) struct JobsArgs {
    /// Where the cluster is.
    #[command(flatten)]
    pub(crate) cluster: ClusterArgs,
    /// Print JSON (one listing per coordinator) instead of tables.
    #[arg(long)]
    json: bool,
    /// How long to collect coordinators' answers, in ms.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) listen_ms: u64,
    /// How many recent jobs to show per coordinator (the table only).
    #[arg(long, default_value_t = 20)]
    recent: usize,
}

/// `toolfan job`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct JobArgs {
    /// The job's id (as `toolfan submit` or `toolfan jobs` print it).
    id: String,
    /// Where the cluster is.
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// How long to collect coordinators' answers, in ms.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=60_000))]
    listen_ms: u64,
}

/// A client of the cluster `args` names.
pub(crate) async fn connect(args: &ClusterArgs) -> anyhow::Result<Client> {
    let mut options = ClientOptions::new(&args.nats_url);
    options.subjects = Subjects::new(&args.prefix)?;
    options.auth = args.auth.to_auth();
    Ok(Client::connect(options).await?)
}

/// Lists every coordinator's live jobs, then its recent ones.
pub(crate) async fn jobs(args: JobsArgs) -> anyhow::Result<()> {
    let client = connect(&args.cluster).await?;
    let listings = client.jobs(Duration::from_millis(args.listen_ms)).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listings)?);
        return Ok(());
    }
    print_live(&listings);
    println!();
    print_recent(&listings, args.recent);
    println!(
        "{} coordinator(s) answered within {} ms",
        listings.len(),
        args.listen_ms
    );
    Ok(())
}

fn print_live(listings: &[CoordinatorJobs]) {
    println!(
        "{:<28} {:<12} {:>7} {:>7} {:>5} {:>6} {:>9} {:>9}  tools",
        "live job", "caller", "done", "tasks", "ok", "failed", "running", "deadline"
    );
    let now = now_unix_ms();
    let live: Vec<&LiveJobInfo> = listings.iter().flat_map(|l| &l.live).collect();
    for j in &live {
        println!(
            "{:<28} {:<12} {:>7} {:>7} {:>5} {:>6} {:>9} {:>9}  {}",
            j.job.as_str(),
            j.caller.as_str(),
            j.done,
            j.total,
            j.succeeded,
            j.failed,
            seconds(now.saturating_sub(j.started_unix_ms)),
            seconds_left(j.deadline_unix_ms, now),
            tools_text(&j.tools),
        );
    }
    if live.is_empty() {
        println!("(no live jobs)");
    }
    let total: u64 = listings.iter().map(|l| u64::from(l.live_total)).sum();
    if total > live.len() as u64 {
        println!(
            "(and {} more live jobs, not listed)",
            total - live.len() as u64
        );
    }
}

fn print_recent(listings: &[CoordinatorJobs], per_coordinator: usize) {
    println!(
        "{:<28} {:<12} {:>7} {:>5} {:>6} {:<10} {:<12} {:>9}  tools",
        "recent job", "caller", "tasks", "ok", "failed", "status", "ended by", "took"
    );
    let mut recent: Vec<&FinishedJob> = listings
        .iter()
        .flat_map(|l| l.recent.iter().take(per_coordinator))
        .collect();
    recent.sort_by_key(|j| std::cmp::Reverse(j.ended_unix_ms));
    for j in &recent {
        println!(
            "{:<28} {:<12} {:>7} {:>5} {:>6} {:<10} {:<12} {:>9}  {}",
            j.job.as_str(),
            j.caller.as_str(),
            j.total,
            j.succeeded,
            j.failed,
            j.status.as_str(),
            j.ended_by.as_str(),
            seconds(j.duration_ms),
            tools_text(&j.tools),
        );
    }
    if recent.is_empty() {
        println!("(no recent jobs)");
    }
}

/// Shows one job: its state, then each task's outcome.
pub(crate) async fn job(args: JobArgs) -> anyhow::Result<()> {
    let client = connect(&args.cluster).await?;
    let listen = Duration::from_millis(args.listen_ms);
    let found = detail::find(&client, &args.cluster, &args.id, listen).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    detail::print(&found);
    Ok(())
}

fn seconds_left(deadline_unix_ms: u64, now: u64) -> String {
    if deadline_unix_ms <= now {
        "passed".to_owned()
    } else {
        seconds(deadline_unix_ms - now)
    }
}

fn tools_text(tools: &[toolfan_protocol::ToolName]) -> String {
    let names: Vec<&str> = tools.iter().map(|t| t.as_str()).collect();
    names.join(",")
}
