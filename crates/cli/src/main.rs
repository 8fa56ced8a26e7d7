//! `toolfan`: submit jobs to a cluster, or run a whole one locally.

mod bench;
mod demo;
mod dev;
mod error_text;
mod fleet;
mod jobs;
mod limits;
mod local;
mod mcp;
mod person;
mod submit;
mod table;
mod ui;

use clap::{Parser, Subcommand};

/// toolfan: a distributed work queue for LLM tool calls.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Submit a job (JSON from a file or stdin) and print its ordered results.
    Submit(submit::SubmitArgs),
    /// Run a local cluster (NATS, Redis, a coordinator, workers) and a demo fan-out.
    Dev(dev::DevArgs),
    /// Define, list or delete fleet-wide rate limits and concurrency caps.
    Limits(limits::LimitsArgs),
    /// Measure a scenario on a local cluster.
    Bench(bench::BenchArgs),
    /// List the live workers: id, host, tools, slots, tasks in flight.
    Workers(fleet::FleetArgs),
    /// List the tools the fleet serves, with their argument schemas, as a table or for an LLM API.
    Tools(fleet::ToolsArgs),
    /// Show queue depths: jobs and tasks queued, in flight and redelivered per consumer.
    Stats(fleet::FleetArgs),
    /// List the coordinators' live jobs (with progress), then their recent ones.
    Jobs(jobs::JobsArgs),
    /// Show one job: its state and each task's outcome.
    Job(jobs::JobArgs),
    /// List the tasks waiting for a person (job, index, tool, prompt, how long).
    Pending(person::PendingArgs),
    /// Complete a task waiting for a person with a value (or --reject REASON).
    Resolve(person::ResolveArgs),
    /// Serve a live web view of the fleet: workers, queues, jobs with their progress, limits.
    Ui(ui::UiArgs),
    /// Serve the fleet's tools to MCP clients (stdio, or streamable HTTP with --http); each call is a job.
    Mcp(mcp::args::McpArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // async-nats warns once per publish ack dropped unawaited at
    // shutdown: after a stalled `bench load`, thousands of lines that
    // would bury the error saying which job stalled. The guard flushes
    // the last spans before the process exits.
    let traces = toolfan_telemetry::logging::init_filtered(
        toolfan_telemetry::LogFormat::Human,
        "warn,async_nats::jetstream::context=error",
        "toolfan",
    );
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Submit(args) => submit::run(args).await,
        Command::Dev(args) => dev::run(args).await,
        Command::Limits(args) => limits::run(args).await,
        Command::Bench(args) => bench::run(args).await,
        Command::Workers(args) => fleet::workers(args).await,
        Command::Tools(args) => fleet::tools(args).await,
        Command::Stats(args) => fleet::stats(args).await,
        Command::Mcp(args) => mcp::run(args).await,
        Command::Jobs(args) => jobs::jobs(args).await,
        Command::Job(args) => jobs::job(args).await,
        Command::Ui(args) => ui::run(args).await,
        Command::Pending(args) => person::pending(args).await,
        Command::Resolve(args) => person::resolve(args).await,
    };
    drop(traces);
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("toolfan: {}", error_text::describe(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
