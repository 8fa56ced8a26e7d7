//! `toolfan limits`: define, list and delete the fleet's limits in Redis.
//! Every worker picks a change up within a second.

use anyhow::Context;
use clap::{Args, Subcommand};
use toolfan_limits::{LimitSpec, LimitStore, Rate, Usage};

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
    /// List every defined limit; a rate with its effective rate now (lower
    /// while it recovers from a backend's "too many").
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
            let specs = store.list().await?;
            let keys: Vec<String> = specs.keys().cloned().collect();
            let usage = store.usage(&keys).await?;
            for ((key, spec), usage) in specs.into_iter().zip(usage) {
                match spec {
                    Ok(spec) => println!("{key}: {}", listed(&spec, &usage)),
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

/// A limit as listed: its definition and, for a rate, the effective rate
/// now in the same unit (`100/s burst 5; effective 42.5/s, cut after a
/// "too many"`).
fn listed(spec: &LimitSpec, usage: &Usage) -> String {
    let Some(rate) = spec.rate else {
        return spec.to_string();
    };
    let per_period = usage.effective_per_second(&rate) * rate.period_ms as f64 / 1000.0;
    let configured = rate.to_string();
    let unit = configured.split_once('/').map_or("s", |(_, unit)| unit);
    let mut effective = format!("{per_period:.1}");
    if effective.ends_with(".0") {
        effective.truncate(effective.len() - 2);
    }
    let cut = if per_period < rate.count as f64 - 0.05 {
        ", cut after a \"too many\""
    } else {
        ""
    };
    format!("{spec}; effective {effective}/{unit}{cut}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use toolfan_limits::Adapted;

    #[test]
    fn a_listed_rate_shows_its_effective_rate() {
        let usage = |adapted| Usage {
            now_us: 0,
            tat_us: None,
            leases: 0,
            adapted,
        };
        let spec = LimitSpec::per_second(100, 5);
        assert_eq!(
            listed(&spec, &usage(None)),
            "100/s burst 5; effective 100/s"
        );
        let cut = Adapted {
            interval_us: 1e6 / 42.5,
            at_us: 0.0,
            recover_us: 10e6,
            quiet_until_us: 1e6,
        };
        assert_eq!(
            listed(&spec, &usage(Some(cut))),
            "100/s burst 5; effective 42.5/s, cut after a \"too many\""
        );
        assert_eq!(
            listed(&LimitSpec::concurrency(4), &usage(None)),
            "concurrency 4"
        );
    }
}
