//! `--shape soak`: a fixed offered rate of echo jobs for minutes against the
//! real binaries, sampling every `--sample-every` seconds the RSS of each
//! process and the size of each stream. Reports RSS growth between the
//! first sample after warm-up and the last, and what became of the tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;
use clap::Args;
use serde_json::json;

use super::fleet::Fleet;
use super::offer::{self, Offer, Tally};
use super::probe::{self, StreamSize};
use super::{percentiles, takeover_failure};
use crate::bench::Figures;

/// Options of the soak (ignored by the other shapes).
#[derive(Args, Debug)]
pub(crate) struct SoakArgs {
    /// (soak) Offered load, tasks per second.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    rate: u32,
    /// (soak) Echo tasks per job (and the job's window).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    job_size: u32,
    /// (soak) How long to offer the load, in minutes; fractions allowed.
    #[arg(long, default_value_t = 10.0)]
    minutes: f64,
    /// (soak) Seconds between samples.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    sample_every: u64,
    /// (soak) Seconds of warm-up: growth counts from the first sample after
    /// it (at most half the run). The default is past the streams' 120 s
    /// duplicate window, whose message ids nats-server holds in memory.
    #[arg(long, default_value_t = 150)]
    warmup: u64,
    /// (soak) Each job's deadline, seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    deadline: u64,
    /// (soak) Most jobs outstanding at once; a tick past it is shed, not offered.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_outstanding: u32,
    /// (soak) Worker processes.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=16))]
    workers: u32,
    /// (soak) Slots per worker.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    concurrency: u32,
}

/// One look at the cluster.
struct Sample {
    at_s: f64,
    /// RSS in bytes of each process, in the order of `Fleet::processes`.
    rss: Vec<Option<u64>>,
    streams: Vec<StreamSize>,
    answered: u64,
}

impl Sample {
    fn json(&self, names: &[String]) -> serde_json::Value {
        let rss: serde_json::Map<_, _> = names
            .iter()
            .zip(&self.rss)
            .map(|(n, r)| (n.clone(), json!(r)))
            .collect();
        let streams: Vec<_> = self.streams.iter().map(StreamSize::json).collect();
        json!({"at_s": self.at_s, "rss_bytes": rss, "streams": streams, "tasks_answered": self.answered})
    }
}

pub(super) async fn run(
    args: &SoakArgs,
    timeout: Duration,
) -> anyhow::Result<(Figures, Option<String>)> {
    anyhow::ensure!(
        args.minutes > 0.0 && args.minutes <= 24.0 * 60.0,
        "--minutes must be above 0 and at most a day"
    );
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let warmup = Duration::from_secs(args.warmup).min(duration / 2);
    let mut fleet = tokio::time::timeout(timeout, Fleet::start(args.workers, args.concurrency))
        .await
        .context("the soak cluster did not start within --timeout")??;
    let names: Vec<String> = fleet.processes().into_iter().map(|(n, _)| n).collect();
    let nats = toolfan_transport::connect(&fleet.nats_url, "toolfan-bench soak").await?;
    let js = jetstream::new(nats);
    let offer = Offer {
        rate: args.rate,
        job_size: args.job_size,
        deadline: Duration::from_secs(args.deadline),
        max_outstanding: args.max_outstanding,
    };
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let until = started + duration;
    let offering = tokio::spawn(offer::offer(
        fleet.client.clone(),
        offer,
        until,
        tally.clone(),
    ));
    let every = Duration::from_secs(args.sample_every);
    let (samples, died) = sample_until(&mut fleet, &js, &tally, started, until, every).await;
    let running = offering.await?;
    let bound = (offer.deadline + Duration::from_secs(10)).min(timeout);
    offer::drain(running, bound, &tally, args.job_size).await;
    let metrics = probe::scrape(fleet.metrics_addr).await.unwrap_or_default();
    let taken_over = probe::metric_value(&metrics, "toolfan_jobs_taken_over_total");
    let report = Report {
        args,
        names: &names,
        samples: &samples,
        tally: &tally,
        seconds: duration.as_secs_f64(),
        warmup_s: warmup.as_secs_f64(),
        taken_over,
    };
    let failure = died.or_else(|| report.failure());
    Ok((report.figures(), failure))
}

/// Samples every `every` until `until` (or until a process dies, which is
/// returned); prints a progress line per sample on stderr.
async fn sample_until(
    fleet: &mut Fleet,
    js: &jetstream::Context,
    tally: &Tally,
    started: Instant,
    until: Instant,
    every: Duration,
) -> (Vec<Sample>, Option<String>) {
    let mut ticks = tokio::time::interval(every);
    ticks.tick().await;
    let mut samples = Vec::new();
    while Instant::now() < until {
        ticks.tick().await;
        if let Some(died) = fleet.exited() {
            return (samples, Some(died));
        }
        let sample = Sample {
            at_s: started.elapsed().as_secs_f64(),
            rss: fleet
                .processes()
                .iter()
                .map(|(_, pid)| pid.and_then(probe::rss_bytes))
                .collect(),
            streams: probe::streams(js).await.unwrap_or_default(),
            answered: Tally::get(&tally.answered),
        };
        eprintln!("{}", progress(&sample, &fleet.processes(), tally));
        samples.push(sample);
    }
    (samples, None)
}

fn progress(sample: &Sample, processes: &[(String, Option<u32>)], tally: &Tally) -> String {
    let rss: Vec<String> = processes
        .iter()
        .zip(&sample.rss)
        .map(|((name, _), r)| format!("{name} {}", r.map_or("-".into(), probe::mib)))
        .collect();
    let store: Vec<String> = sample
        .streams
        .iter()
        .map(|s| format!("{} {} msgs {}", s.name, s.messages, probe::mib(s.bytes)))
        .collect();
    format!(
        "soak {:>5.0} s: answered {} late {} lost {} shed {} | RSS: {} | {}",
        sample.at_s,
        sample.answered,
        Tally::get(&tally.late),
        Tally::get(&tally.lost),
        Tally::get(&tally.shed),
        rss.join(", "),
        store.join("; ")
    )
}

/// One process's RSS over the span after warm-up.
struct Growth {
    name: String,
    first: Option<u64>,
    last: Option<u64>,
    pct: Option<f64>,
}

/// What the soak measured, for the table and JSON.
struct Report<'a> {
    args: &'a SoakArgs,
    names: &'a [String],
    samples: &'a [Sample],
    tally: &'a Tally,
    seconds: f64,
    warmup_s: f64,
    taken_over: Option<f64>,
}

impl Report<'_> {
    /// The first sample after warm-up and the last one.
    fn span(&self) -> Option<(&Sample, &Sample)> {
        let first = self.samples.iter().find(|s| s.at_s >= self.warmup_s)?;
        Some((first, self.samples.last()?))
    }

    fn failure(&self) -> Option<String> {
        let lost = Tally::get(&self.tally.lost);
        if lost > 0 {
            return Some(format!("{lost} task(s) lost: their jobs got no answer"));
        }
        match self.taken_over {
            None => Some("could not read the coordinator's metrics".into()),
            Some(n) => takeover_failure(n),
        }
    }

    /// Per process: its RSS at the span's start and end, and the growth.
    fn rss_growth(&self) -> Vec<Growth> {
        let Some((first, last)) = self.span() else {
            return Vec::new();
        };
        (0..self.names.len())
            .map(|i| {
                let (a, b) = (first.rss[i], last.rss[i]);
                Growth {
                    name: self.names[i].clone(),
                    first: a,
                    last: b,
                    pct: a.zip(b).and_then(|(a, b)| probe::growth_pct(a, b)),
                }
            })
            .collect()
    }

    fn figures(&self) -> Figures {
        Figures {
            table: self.table(),
            json: self.json(),
        }
    }

    fn table(&self) -> String {
        let t = self.tally;
        let latencies = t.latencies_ms.lock().map(|l| l.clone()).unwrap_or_default();
        let (p50, p99) = percentiles(&latencies);
        let mut out = format!(
            "load soak: {} echo tasks/s offered in jobs of {} for {:.1} min, {} worker process(es) × {} slots\n\n\
             \x20 tasks offered {} ({:.0}/s), answered {} ({:.0}/s), late {}, failed {}, lost {}, shed {}\n\
             \x20 job latency p50 / p99   {p50:.0} ms / {p99:.0} ms\n\
             \x20 jobs taken over         {}\n",
            self.args.rate, self.args.job_size, self.seconds / 60.0, self.args.workers, self.args.concurrency,
            Tally::get(&t.offered), Tally::get(&t.offered) as f64 / self.seconds,
            Tally::get(&t.answered), Tally::get(&t.answered) as f64 / self.seconds,
            Tally::get(&t.late), Tally::get(&t.failed), Tally::get(&t.lost), Tally::get(&t.shed),
            self.taken_over.map_or("unknown".into(), |n| n.to_string()),
        );
        out.push_str(&self.span_table());
        out
    }

    fn span_table(&self) -> String {
        let Some((first, last)) = self.span() else {
            return "\n  no sample after the warm-up: run longer or lower --warmup\n".into();
        };
        let mib = |b: Option<u64>| b.map_or("-".into(), probe::mib);
        let mut out = format!(
            "\n  RSS from {:.0} s (after warm-up) to {:.0} s:\n",
            first.at_s, last.at_s
        );
        for g in self.rss_growth() {
            let pct = g.pct.map_or("-".into(), |p| format!("{p:+.1} %"));
            let (a, b) = (mib(g.first), mib(g.last));
            out += &format!("  {:<16}{a:>12} → {b:>12}  {pct:>9}\n", g.name);
        }
        out += &format!("\n  store, {:.0} s → {:.0} s:\n", first.at_s, last.at_s);
        for (a, b) in first.streams.iter().zip(&last.streams) {
            out += &format!(
                "  {:<16}{:>10} msgs {:>12} → {:>10} msgs {:>12}\n",
                a.name,
                a.messages,
                probe::mib(a.bytes),
                b.messages,
                probe::mib(b.bytes)
            );
        }
        out
    }

    fn json(&self) -> serde_json::Value {
        let t = self.tally;
        let latencies = t.latencies_ms.lock().map(|l| l.clone()).unwrap_or_default();
        let (p50, p99) = percentiles(&latencies);
        let growth: serde_json::Map<_, _> = self
            .rss_growth()
            .into_iter()
            .map(|g| (g.name, json!(g.pct)))
            .collect();
        let samples: Vec<_> = self.samples.iter().map(|s| s.json(self.names)).collect();
        json!({"scenario": "load", "shape": "soak", "rate": self.args.rate, "job_size": self.args.job_size,
            "seconds": self.seconds, "warmup_s": self.warmup_s, "workers": self.args.workers,
            "concurrency": self.args.concurrency, "tasks_offered": Tally::get(&t.offered),
            "tasks_answered": Tally::get(&t.answered), "tasks_late": Tally::get(&t.late),
            "tasks_failed": Tally::get(&t.failed), "tasks_lost": Tally::get(&t.lost),
            "tasks_shed": Tally::get(&t.shed), "job_latency_ms_p50": p50, "job_latency_ms_p99": p99,
            "jobs_taken_over": self.taken_over, "rss_growth_pct": growth, "samples": samples})
    }
}
