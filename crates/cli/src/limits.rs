//! `toolfan limits`: define, list and delete the fleet's limits in Redis.
//! Every worker picks a change up within a second.

use anyhow::Context;
use clap::{Args, Subcommand};
use toolfan_limits::{LimitSpec, LimitStore, Rate};

/// Options of `toolfan limits`.
#[derive(Args, Debug)]
pub(crate) struct LimitsArgs {
    /// Redis URL.
    #[arg(
        long,
        global = true,
        env = "TOOLFAN_REDIS_URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis_url: String,
    /// Key prefix in Redis (the subject prefix).
    #[arg(long, global = true, env = "TOOLFAN_PREFIX", default_value = "toolfan")]
    prefix: String,
    #[command(subcommand)]
    command: LimitsCommand,
}

#[derive(Subcommand, Debug)]
enum LimitsCommand {
    /// Define (or replace) the limits under KEY, e.g. `set openai 50/s --burst 10`,
    /// `set db --concurrency 50`, or a caller's fair share: `set caller:acme
    /// --concurrency 200 --weight 2`.
    Set {
        /// The limit key (a tool's key, `global`, or a task's rate_key such as tenant:acme).
        key: String,
        /// Units per second, minute or hour: 50/s, 600/m, 1000/h.
        rate: Option<Rate>,
        /// Units that may pass at once above the steady rate.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
        burst: u64,
        /// Calls in flight at once, fleet-wide.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        concurrency: Option<u32>,
        /// Under `caller:<name>`: the caller's weight in the fleet's fair
        /// shares (default 1); its concurrency is then its tasks in flight.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        weight: Option<u32>,
    },
    /// List every defined limit.
    List,
    /// Remove the limits under KEY.
    Delete {
        /// The limit key.
        key: String,
    },
}

pub(crate) async fn run(args: LimitsArgs) -> anyhow::Result<()> {
    let store = LimitStore::connect(&args.redis_url, &args.prefix)
        .await
        .context("cannot reach the limits store")?;
    match args.command {
        LimitsCommand::Set {
            key,
            rate,
            burst,
            concurrency,
            weight,
        } => {
            let spec = LimitSpec {
                rate,
                burst,
                concurrency,
                weight,
            };
            store.set(&key, &spec).await?;
            println!("{key}: {spec}");
        }
        LimitsCommand::List => {
            for (key, spec) in store.list().await? {
                match spec {
                    Ok(spec) => println!("{key}: {spec}"),
                    Err(e) => println!("{key}: malformed ({e})"),
                }
            }
        }
        LimitsCommand::Delete { key } => {
            if store.delete(&key).await? {
                println!("{key}: deleted");
            } else {
                anyhow::bail!("no limit is defined under {key:?}");
            }
        }
    }
    Ok(())
}
