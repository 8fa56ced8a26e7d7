//! `toolfan mcp`: the fleet's live tools as an MCP server, over stdio
//! (the default; stdout carries MCP only, logs go to stderr) or
//! streamable HTTP at `/mcp` (`--http ADDR`, bearer token from `--token`
//! or `TOOLFAN_MCP_TOKEN`).
//!
//! - [`args`] — the flags, and the refusal of a non-loopback bind without a token.
//! - [`watcher`] — the fleet's tool list, re-read every `--poll-ms`; `list_changed`.
//! - [`convert`] — fleet tools as MCP tools, task results as call results.
//! - [`call`] — one `tools/call` as a one-task job: slots, progress, cancellation.
//! - [`handler`] — the rmcp `ServerHandler`, one per session.
//! - [`http`] — streamable HTTP serving with the bearer check.
//! - [`idle`] — closing HTTP sessions their clients have left.
//! - [`stdio`] — stdio serving; the end of stdin stops the server at once.
//!
//! When the server stops (stdin ended, SIGINT or SIGTERM), the calls in
//! flight cancel their jobs, and it waits up to 2 s for the fleet to
//! confirm before it exits.

pub(crate) mod args;
mod call;
mod convert;
mod handler;
mod http;
mod idle;
mod stdio;
mod watcher;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use toolfan::{Client, ClientOptions};
use toolfan_protocol::Subjects;

/// How long in-flight calls get to wind down at exit.
const DRAIN: Duration = Duration::from_secs(2);

/// Serves the fleet's tools until stdin closes (stdio) or a signal comes.
pub(crate) async fn run(args: args::McpArgs) -> anyhow::Result<()> {
    let http = args.http_settings()?;
    let client = connect(&args).await?;
    let (tool_watcher, tools) = watcher::ToolWatcher::start(
        client.clone(),
        Duration::from_millis(args.listen_ms),
        Duration::from_millis(args.poll_ms),
    )
    .await
    .context("cannot read the fleet's tools")?;
    let stop = CancellationToken::new();
    let fleet = Arc::new(call::Fleet {
        client,
        tools,
        calls: Arc::new(Semaphore::new(args.max_calls as usize)),
        settings: args.call_settings(),
        stop: stop.clone(),
    });
    tokio::spawn(toolfan_telemetry::shutdown_on_signal(stop.clone()));
    tokio::spawn(tool_watcher.run(stop.clone()));
    let served = match http {
        Some(settings) => http::serve(fleet.clone(), settings, stop.clone()).await,
        None => stdio::serve(fleet.clone(), stop.clone()).await,
    };
    stop.cancel();
    drain(&fleet, args.max_calls).await;
    served
}

/// The calls still in flight when the sessions end were cancelled with
/// them: gives their jobs' cancels up to [`DRAIN`] to go out and the
/// fleet to confirm (a job not confirmed by then is cancelled by the
/// fleet once the caller grace passes), then flushes the connection.
async fn drain(fleet: &call::Fleet, max_calls: u32) {
    if tokio::time::timeout(DRAIN, fleet.calls.acquire_many(max_calls))
        .await
        .is_err()
    {
        tracing::warn!(
            "calls still in flight at exit; the fleet cancels their jobs after the caller grace"
        );
    }
    if let Err(e) = fleet.client.clone().close().await {
        tracing::warn!(error = %e, "cannot flush the NATS connection");
    }
}

async fn connect(args: &args::McpArgs) -> anyhow::Result<Client> {
    let mut options = ClientOptions::new(&args.cluster.nats_url).caller(&args.caller)?;
    options.subjects = Subjects::new(&args.cluster.prefix)?;
    options.auth = args.cluster.auth.to_auth();
    options.caller_grace = Some(Duration::from_millis(args.caller_grace_ms));
    Ok(Client::connect(options).await?)
}
