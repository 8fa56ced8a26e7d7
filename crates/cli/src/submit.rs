//! `toolfan submit [FILE|-]`: one job in, its ordered results out as JSON.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use toolfan::{Client, ClientOptions, Job};
use toolfan_telemetry::NatsAuthArgs;

/// Options of `toolfan submit`.
#[derive(Args, Debug)]
pub(crate) struct SubmitArgs {
    /// The job JSON (`{"tasks": [...]}` is enough; see docs/protocol.md); `-` or nothing reads stdin.
    file: Option<PathBuf>,
    /// NATS server URL; several, comma-separated, for a cluster.
    #[arg(
        long,
        global = true,
        env = "TOOLFAN_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    nats_url: String,
    /// Caller id (the `<caller>` of `toolfan.job.<caller>`).
    #[arg(long, env = "TOOLFAN_CALLER", default_value = "cli")]
    caller: String,
    /// Print compact JSON on one line instead of indented JSON.
    #[arg(long)]
    compact: bool,
    /// Do not create the streams if they are missing (for a caller whose
    /// NATS permissions stop at its own subjects).
    #[arg(long)]
    no_create_streams: bool,
    /// NATS credentials and TLS.
    #[command(flatten)]
    auth: NatsAuthArgs,
    /// If this command dies, the job is cancelled this many milliseconds
    /// after its last keepalive.
    #[arg(long, env = "TOOLFAN_CALLER_GRACE_MS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    caller_grace_ms: u64,
}

fn read_job(file: Option<&PathBuf>) -> anyhow::Result<Job> {
    let (name, bytes) = match file {
        Some(path) if path.as_os_str() != "-" => (
            path.display().to_string(),
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
        ),
        _ => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("cannot read the job from stdin")?;
            ("stdin".to_owned(), bytes)
        }
    };
    Job::from_json(&bytes).with_context(|| format!("{name} is not a valid job"))
}

pub(crate) async fn run(args: SubmitArgs) -> anyhow::Result<()> {
    let job = read_job(args.file.as_ref())?;
    let mut options = ClientOptions::new(&args.nats_url).caller(&args.caller)?;
    options.caller_grace = Some(std::time::Duration::from_millis(args.caller_grace_ms));
    options.auth = args.auth.to_auth();
    options.create_streams = !args.no_create_streams;
    let client = Client::connect(options).await?;
    let handle = client.submit(job).await?;
    // Ctrl-C cancels the job rather than leaving it to run for nobody.
    let canceller = handle.canceller();
    let results = tokio::select! {
        results = handle.results() => results?,
        _ = tokio::signal::ctrl_c() => {
            canceller.cancel().await?;
            anyhow::bail!("interrupted: the job was cancelled");
        }
    };
    let out = if args.compact {
        serde_json::to_string(&results)?
    } else {
        serde_json::to_string_pretty(&results)?
    };
    println!("{out}");
    Ok(())
}
