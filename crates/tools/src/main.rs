//! `toolfan-worker`: a worker process serving the built-in tools.

use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio_util::sync::CancellationToken;
use toolfan_limits::{LimitSpec, LimiterOptions};
use toolfan_protocol::Subjects;
use toolfan_telemetry::{MetricsAddr, ServiceArgs};
use toolfan_tools::builtin::{add_builtin, BUILTIN_TOOLS};
use toolfan_tools::config::ToolsFile;
use toolfan_worker::CacheOptions;
use toolfan_worker::{Worker, WorkerBuilder, WorkerOptions};

/// Serves toolfan's built-in tools (sleep, echo, fail, flaky, span) to the fleet.
/// Where /metrics is served unless told otherwise.
const DEFAULT_METRICS_ADDR: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9471);

#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    #[command(flatten)]
    service: ServiceArgs,
    /// Redis URL for fleet-wide rate limits, concurrency caps and the
    /// result cache; without it tasks run unlimited and uncached.
    #[arg(long, env = "TOOLFAN_REDIS_URL")]
    redis_url: Option<String>,
    /// A default limit, used where Redis defines none for the key:
    /// `KEY=RATE[,burst=N][,concurrency=N]`, e.g. api=50/s,burst=5. Repeatable.
    #[arg(long = "limit", value_name = "KEY=SPEC")]
    limits: Vec<String>,
    /// The limit keys a tool's calls are under: TOOL=KEY[,KEY...], e.g.
    /// echo=api. Repeatable. Every call is also under `global` and its own
    /// `rate_key`, where limits are defined for them.
    #[arg(long = "limit-keys", value_name = "TOOL=KEYS")]
    limit_keys: Vec<String>,
    /// Run limited tasks unlimited while Redis is unreachable (default: they wait).
    #[arg(long, env = "TOOLFAN_LIMITS_FAIL_OPEN")]
    limits_fail_open: bool,
    /// Milliseconds a concurrency lease lasts unless renewed (a killed
    /// worker's leases free themselves after this).
    #[arg(long, env = "TOOLFAN_LEASE_TTL_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    lease_ttl_ms: u64,
    /// Ceiling of the first retry's delay, in ms; it doubles per attempt.
    #[arg(long, env = "TOOLFAN_RETRY_BASE_MS", default_value_t = 100)]
    retry_base_ms: u64,
    /// Largest retry delay ceiling, in ms.
    #[arg(long, env = "TOOLFAN_RETRY_CAP_MS", default_value_t = 10_000)]
    retry_cap_ms: u64,
    /// Serve /metrics, /healthz and /readyz on this address; `off` to
    /// disable. Default: 127.0.0.1:9471, or if another service on this host
    /// has it, the next free port (logged); a given address that is taken
    /// fails.
    #[arg(long, env = "TOOLFAN_METRICS_ADDR")]
    metrics_addr: Option<MetricsAddr>,
    /// Largest result, in bytes of JSON; larger ones are answered `result_too_large`.
    #[arg(long, env = "TOOLFAN_MAX_RESULT_BYTES", default_value_t = 512 * 1024, value_parser = clap::value_parser!(u64).range(256..=64 * 1024 * 1024))]
    max_result_bytes: u64,
    /// Fleet-wide cap on a tool's tasks in flight: TOOL=N. Repeatable.
    #[arg(long = "tool-max-in-flight", value_name = "TOOL=N")]
    tool_max_in_flight: Vec<String>,
    /// How many tasks run at once.
    #[arg(long, env = "TOOLFAN_CONCURRENCY", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
    /// A tools file (TOML) of command, HTTP and MCP tools to serve; see deploy/tools.toml.
    #[arg(long, env = "TOOLFAN_WORKER_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Comma-separated built-in tools to serve (default: all of them, unless
    /// --config gives tools).
    #[arg(long, env = "TOOLFAN_TOOLS", value_delimiter = ',')]
    tools: Vec<String>,
    /// This worker's id in the fleet (default: w- and random hex).
    #[arg(long, env = "TOOLFAN_WORKER_ID")]
    id: Option<String>,
    /// Seconds a shutdown waits for running tasks.
    #[arg(long, env = "TOOLFAN_DRAIN_TIMEOUT", default_value_t = 30)]
    drain_timeout: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Flushes the last spans when main returns.
    let _traces = toolfan_telemetry::logging::init(args.service.log_format, "toolfan-worker");
    let options = options(&args)?;
    let worker = builder(args, options).await?.build()?;
    let shutdown = CancellationToken::new();
    tokio::spawn(toolfan_telemetry::shutdown_on_signal(shutdown.clone()));
    worker.run(shutdown).await.context("worker failed")
}

/// The worker's options from its flags.
fn options(args: &Args) -> anyhow::Result<WorkerOptions> {
    let mut options = WorkerOptions {
        nats_url: args.service.nats_url.clone(),
        nats_auth: args.service.auth.to_auth(),
        concurrency: args.concurrency,
        subjects: Subjects::new(&args.service.prefix)?,
        drain_timeout: Duration::from_secs(args.drain_timeout),
        retry_base: Duration::from_millis(args.retry_base_ms),
        retry_cap: Duration::from_millis(args.retry_cap_ms),
        metrics_addr: args
            .metrics_addr
            .map_or(Some(DEFAULT_METRICS_ADDR), |a| a.0),
        metrics_addr_is_default: args.metrics_addr.is_none(),
        max_result_bytes: args.max_result_bytes as usize,
        topology: args.service.topology(),
        ..WorkerOptions::default()
    };
    if let Some(id) = &args.id {
        options.id = id.clone();
    }
    if let Some(url) = &args.redis_url {
        options.limits = Some(limits(args, url)?);
        let mut cache = CacheOptions::new(url);
        cache.prefix = args.service.prefix.clone();
        options.cache = Some(cache);
    } else if !args.limits.is_empty() {
        anyhow::bail!("--limit needs --redis-url: limits are kept in Redis");
    }
    for flag in &args.limit_keys {
        let (tool, keys) = split_flag("--limit-keys", flag)?;
        let keys = keys
            .split(',')
            .map(|k| k.trim().to_owned())
            .filter(|k| !k.is_empty());
        options
            .tool_limit_keys
            .insert(tool.to_owned(), keys.collect());
    }
    for flag in &args.tool_max_in_flight {
        let (tool, max) = split_flag("--tool-max-in-flight", flag)?;
        let max = max
            .parse()
            .with_context(|| format!("--tool-max-in-flight {flag:?}: {max:?} is not a number"))?;
        options.tool_max_in_flight.insert(tool.to_owned(), max);
    }
    Ok(options)
}

/// The limiter's options: Redis at `url`, and the `--limit` defaults.
fn limits(args: &Args, url: &str) -> anyhow::Result<LimiterOptions> {
    let mut limits = LimiterOptions::new(url);
    limits.prefix = args.service.prefix.clone();
    limits.fail_open = args.limits_fail_open;
    limits.lease_ttl = Duration::from_millis(args.lease_ttl_ms);
    for flag in &args.limits {
        let (key, spec) = split_flag("--limit", flag)?;
        limits
            .defaults
            .insert(key.to_owned(), LimitSpec::parse_flag(spec)?);
    }
    Ok(limits)
}

/// The tools to serve: the tools file's, then the built-in ones asked for
/// (all of them when neither is given).
async fn builder(args: Args, options: WorkerOptions) -> anyhow::Result<WorkerBuilder> {
    let names: Vec<String> = match (&args.config, args.tools.is_empty()) {
        (None, true) => BUILTIN_TOOLS.iter().map(|s| s.to_string()).collect(),
        _ => args.tools,
    };
    let mut builder = Worker::builder().options(options);
    if let Some(path) = &args.config {
        builder = ToolsFile::load(path)?.apply(builder).await?;
    }
    for name in names.iter().map(|n| n.trim()).filter(|n| !n.is_empty()) {
        builder = add_builtin(builder, name)?;
    }
    Ok(builder)
}

/// Splits `NAME=VALUE`, naming the flag in the error.
fn split_flag<'a>(flag: &str, value: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    value
        .split_once('=')
        .filter(|(name, rest)| !name.is_empty() && !rest.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{flag} {value:?}: expected NAME=VALUE"))
}
