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

pub(crate) mod args;
mod call;
mod convert;
mod handler;
mod http;
mod watcher;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rmcp::ServiceExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use toolfan::{Client, ClientOptions};
use toolfan_protocol::Subjects;

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
    let fleet = Arc::new(call::Fleet {
        client,
        tools,
        calls: Arc::new(Semaphore::new(args.max_calls as usize)),
        settings: args.call_settings(),
    });
    let stop = CancellationToken::new();
    tokio::spawn(toolfan_telemetry::shutdown_on_signal(stop.clone()));
    tokio::spawn(tool_watcher.run(stop.clone()));
    let served = match http {
        Some(settings) => http::serve(fleet, settings, stop.clone()).await,
        None => serve_stdio(fleet, stop.clone()).await,
    };
    stop.cancel();
    served
}

async fn connect(args: &args::McpArgs) -> anyhow::Result<Client> {
    let mut options = ClientOptions::new(&args.cluster.nats_url).caller(&args.caller)?;
    options.subjects = Subjects::new(&args.cluster.prefix)?;
    options.auth = args.cluster.auth.to_auth();
    options.caller_grace = Some(Duration::from_millis(args.caller_grace_ms));
    Ok(Client::connect(options).await?)
}

async fn serve_stdio(fleet: Arc<call::Fleet>, stop: CancellationToken) -> anyhow::Result<()> {
    let running = handler::Session::new(fleet)
        .serve(rmcp::transport::stdio())
        .await
        .context("the MCP client did not initialize the session")?;
    let session = running.cancellation_token();
    tokio::spawn(async move {
        stop.cancelled().await;
        session.cancel();
    });
    let quit = running.waiting().await?;
    tracing::info!(?quit, "the MCP session ended");
    Ok(())
}
