//! `toolfan ui`: a live web view of the fleet. One page (HTML, CSS and JS
//! embedded in the binary, no CDN) polls `/api/state` every second and
//! draws workers, queues, live jobs with their progress, recent jobs and
//! limits. Loopback only unless `--public` says otherwise.
//!
//! `state` gathers what `/api/state` answers, `limits` its limits
//! section; `page.html` is the page.

mod limits;
mod state;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use clap::Args;

use crate::fleet::ClusterArgs;
use state::Gatherer;

/// The page, served at `/`.
const PAGE: &str = include_str!("page.html");

/// `toolfan ui`'s arguments.
#[derive(Args, Debug)]
pub(crate) struct UiArgs {
    /// Where the cluster is.
    #[command(flatten)]
    cluster: ClusterArgs,
    /// Where to serve the page.
    #[arg(long, default_value = "127.0.0.1:7878")]
    addr: SocketAddr,
    /// Allow an address other than loopback: anyone who reaches it sees the
    /// fleet's jobs, workers and limits (there is no login).
    #[arg(long)]
    public: bool,
    /// Redis URL of the fleet's limits; without it the page has no limits section.
    #[arg(long, env = "TOOLFAN_REDIS_URL")]
    redis_url: Option<String>,
}

/// Serves the page until SIGINT or SIGTERM.
pub(crate) async fn run(args: UiArgs) -> anyhow::Result<()> {
    if !args.addr.ip().is_loopback() && !args.public {
        anyhow::bail!(
            "refusing to serve the fleet's state on {}, which is not a loopback address: pass --public to allow it",
            args.addr
        );
    }
    let gatherer = Gatherer::connect(&args.cluster, args.redis_url.as_deref()).await?;
    let app = axum::Router::new()
        .route("/", get(page))
        .route("/api/state", get(api_state))
        .with_state(Arc::new(gatherer));
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let local = listener.local_addr()?;
    eprintln!("toolfan ui: serving http://{local}/");
    let stop = tokio_util::sync::CancellationToken::new();
    tokio::spawn(toolfan_telemetry::shutdown_on_signal(stop.clone()));
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled_owned().await })
        .await
        .context("the UI's HTTP server failed")
}

async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (headers, PAGE).into_response()
}

async fn api_state(State(gatherer): State<Arc<Gatherer>>) -> Response {
    let body = gatherer.state().await;
    let headers = [
        (header::CONTENT_TYPE, "application/json"),
        (header::CACHE_CONTROL, "no-store"),
    ];
    (StatusCode::OK, headers, body).into_response()
}
