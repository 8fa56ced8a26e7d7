//! `--shape soak`: a fixed offered rate of echo jobs for minutes against the
//! real binaries, sampling every `--sample-every` seconds the RSS of each
//! process and the size of each stream. Reports RSS growth between the
//! first sample after warm-up and the last, and what became of the tasks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use async_nats::jetstream;
use tokio_util::sync::CancellationToken;

use super::args::SoakArgs;
use super::fleet::Fleet;
use super::offer::{self, Offer, Tally};
use super::probe;
use super::sample::Sample;
use super::soak_report::Report;
use crate::bench::common::Figures;

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
    let watch = Watch {
        started,
        until: started + duration,
        every: Duration::from_secs(args.sample_every),
        stall_after: timeout,
    };
    let (samples, died, seconds) = offer_and_watch(&mut fleet, &js, offer, &watch, &tally).await?;
    let metrics = probe::scrape(fleet.metrics_addr).await.unwrap_or_default();
    let taken_over = probe::metric_value(&metrics, "toolfan_jobs_taken_over_total");
    let report = Report {
        args,
        names: &names,
        samples: &samples,
        tally: &tally,
        seconds,
        warmup_s: warmup.as_secs_f64(),
        taken_over,
    };
    let failure = died.or_else(|| report.failure());
    Ok((report.figures(), failure))
}

/// When and how long the soak samples.
struct Watch {
    started: Instant,
    until: Instant,
    every: Duration,
    /// No task answered for this long, with jobs outstanding, is a stall.
    stall_after: Duration,
}

/// Offers the load while sampling, then drains what is still running;
/// returns the samples, why the soak ended early if it did, and for how
/// many seconds the load was offered.
async fn offer_and_watch(
    fleet: &mut Fleet,
    js: &jetstream::Context,
    offer: Offer,
    watch: &Watch,
    tally: &Arc<Tally>,
) -> anyhow::Result<(Vec<Sample>, Option<String>, f64)> {
    let stop = CancellationToken::new();
    let (client, until) = (fleet.client.clone(), watch.until);
    let offering = tokio::spawn(offer::offer(
        client,
        offer,
        until,
        stop.clone(),
        tally.clone(),
    ));
    let (samples, died) = sample_until(fleet, js, tally, watch).await;
    let seconds = watch.started.elapsed().as_secs_f64();
    stop.cancel();
    let running = offering.await?;
    // After a stall or a death nothing more is coming: what is left is lost.
    let bound = match died {
        Some(_) => Duration::ZERO,
        None => (offer.deadline + Duration::from_secs(10)).min(watch.stall_after),
    };
    offer::drain(running, bound, tally, offer.job_size).await;
    Ok((samples, died, seconds))
}

/// Samples every `watch.every` until `watch.until`, or until a process dies
/// or the cluster stalls (which is returned); prints a progress line per
/// sample on stderr.
async fn sample_until(
    fleet: &mut Fleet,
    js: &jetstream::Context,
    tally: &Tally,
    watch: &Watch,
) -> (Vec<Sample>, Option<String>) {
    let mut ticks = tokio::time::interval(watch.every);
    ticks.tick().await;
    // Ctrl-C or SIGTERM ends the soak early with a report, and the
    // processes it started go with it.
    let interrupted = CancellationToken::new();
    let _signals = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
        toolfan_telemetry::shutdown_on_signal(interrupted.clone()),
    ));
    let mut samples = Vec::new();
    let (mut settled, mut progressed) = (0, Instant::now());
    while Instant::now() < watch.until {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = interrupted.cancelled() => return (samples, Some("interrupted by a signal".into())),
        }
        if let Some(died) = fleet.exited() {
            return (samples, Some(died));
        }
        if tally.settled() > settled {
            (settled, progressed) = (tally.settled(), Instant::now());
        } else if let Some(stall) = stalled(tally, progressed.elapsed(), watch.stall_after) {
            return (samples, Some(stall));
        }
        let sample = Sample {
            at_s: watch.started.elapsed().as_secs_f64(),
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

/// A stall: no task answered for `quiet` (at least `after`) with jobs outstanding.
fn stalled(tally: &Tally, quiet: Duration, after: Duration) -> Option<String> {
    let (oldest, age, outstanding) = tally.oldest_outstanding()?;
    (quiet >= after).then(|| {
        format!(
            "stalled: no task answered for {:.0} s with {outstanding} job(s) outstanding; the oldest, job {oldest}, was submitted {:.0} s ago",
            quiet.as_secs_f64(),
            age.as_secs_f64()
        )
    })
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
        .map(|s| {
            let size = probe::mib(s.bytes);
            format!("{} {} msgs {size} {} cons", s.name, s.messages, s.consumers)
        })
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
