//! `wide`, `many-wide` and `small`: one batch of echo jobs submitted at once
//! to an in-process cluster (2 workers × 256 slots), next to the bare
//! JetStream loop with as many messages in flight.

use std::time::Duration;

use serde_json::json;
use toolfan::{Job, Task};

use super::args::Shape;
use super::jobs::{self, Batch};
use super::probe::{self, StreamSize};
use crate::bench::common::{percentiles, takeover_failure, Figures};
use crate::bench::throughput::{bare_loop, task_message_bytes};
use crate::local::{LocalCluster, LocalOptions};

/// The size of one shape.
struct Spec {
    name: &'static str,
    jobs: u32,
    size: u32,
    window: u32,
    /// Messages in flight in the bare loop: as many as toolfan can have
    /// (set from the live-job bound when the shape runs).
    loop_in_flight: usize,
    what: &'static str,
}

fn spec(shape: Shape) -> Spec {
    match shape {
        Shape::Wide => Spec {
            name: "wide",
            jobs: 1,
            size: 10_000,
            window: 10_000,
            loop_in_flight: 10_000,
            what: "1 job × 10,000 echo tasks, window 10,000",
        },
        Shape::ManyWide => Spec {
            name: "many-wide",
            jobs: 256,
            size: 100,
            window: 100,
            loop_in_flight: 25_600,
            what: "256 jobs × 100 echo tasks, window 100, all at once",
        },
        // Live jobs (1,024 by default) × 5 tasks in flight.
        _ => Spec {
            name: "small",
            jobs: 10_000,
            size: 5,
            window: 5,
            loop_in_flight: 50_000,
            what: "10,000 jobs × 5 echo tasks, all at once",
        },
    }
}

/// What a shape's run saw besides its jobs.
struct Aside {
    bare_msgs_per_s: Option<f64>,
    taken_over: f64,
    streams: Vec<StreamSize>,
    nats_rss: Option<u64>,
}

pub(super) async fn run(
    shape: Shape,
    timeout: Duration,
    max_live_jobs: usize,
) -> anyhow::Result<(Figures, Option<String>)> {
    let mut spec = spec(shape);
    let live = spec
        .jobs
        .min(u32::try_from(max_live_jobs).unwrap_or(u32::MAX));
    spec.loop_in_flight = spec.loop_in_flight.min((live * spec.size) as usize);
    let options = LocalOptions {
        nats_url: None,
        redis_url: None,
        workers: 2,
        concurrency: 256,
    };
    let metrics = prometheus::Registry::new();
    let coordinator = toolfan_coordinator::CoordinatorOptions {
        metrics: metrics.clone(),
        max_live_jobs,
        ..Default::default()
    };
    let cluster = LocalCluster::start_with_coordinator(&options, coordinator, |b| b).await?;
    let measured = jobs::at_once(&cluster.client, echo_jobs(&spec, timeout), timeout).await;
    let aside = match &measured {
        Ok(_) => Some(aside(&cluster, &spec, &metrics, timeout).await),
        Err(_) => None,
    };
    cluster.stop().await;
    let batch = measured.map_err(|e| anyhow::anyhow!("load {}: {e}", spec.name))?;
    let aside = aside.expect("measured when the jobs were answered")?;
    let failure = takeover_failure(aside.taken_over);
    Ok((figures(&spec, &batch, &aside), failure))
}

/// The shape's jobs, with a deadline past the bench's own timeout so a
/// stall shows as a stall, not as `deadline_exceeded` answers.
fn echo_jobs(spec: &Spec, timeout: Duration) -> Vec<Job> {
    (0..spec.jobs)
        .map(|job| {
            let tasks = (0..spec.size)
                .map(|i| Task::new("echo", json!({"job": job, "i": i})))
                .collect();
            Job::new(tasks)
                .max_concurrency(spec.window)
                .deadline(timeout + Duration::from_secs(30))
        })
        .collect()
}

/// Takeovers, store size and nats-server RSS after the jobs, then the bare loop.
async fn aside(
    cluster: &LocalCluster,
    spec: &Spec,
    metrics: &prometheus::Registry,
    timeout: Duration,
) -> anyhow::Result<Aside> {
    let nats = toolfan_transport::connect(&cluster.nats_url, "toolfan-bench load").await?;
    let streams = probe::streams(&async_nats::jetstream::new(nats)).await?;
    let nats_rss = cluster.nats_pid().and_then(probe::rss_bytes);
    let taken_over = probe::counter(metrics, "toolfan_jobs_taken_over_total");
    let total = spec.jobs * spec.size;
    let bare = bare_loop(
        &cluster.nats_url,
        total,
        spec.loop_in_flight,
        task_message_bytes(),
    );
    let bare_msgs_per_s = match tokio::time::timeout(timeout, bare).await {
        Ok(Ok(seconds)) => Some(f64::from(total) / seconds),
        Ok(Err(e)) => {
            eprintln!(
                "toolfan bench load: the bare JetStream loop failed: {}",
                crate::error_text::describe(&e)
            );
            None
        }
        Err(_) => None,
    };
    Ok(Aside {
        bare_msgs_per_s,
        taken_over,
        streams,
        nats_rss,
    })
}

fn figures(spec: &Spec, batch: &Batch, aside: &Aside) -> Figures {
    let seconds = batch.elapsed.as_secs_f64();
    let rate = batch.tasks() as f64 / seconds;
    let ratio = aside.bare_msgs_per_s.map(|bare| rate / bare);
    let (p50, p99) = percentiles(&batch.latencies_ms);
    let bare = aside.bare_msgs_per_s.map_or("not measured".into(), |b| {
        format!("{b:>9.0} msgs/s    ({} in flight)", spec.loop_in_flight)
    });
    let ratio_text = ratio.map_or("-".into(), |r| format!("{r:.3}"));
    let nats_rss = aside.nats_rss.map_or("-".into(), probe::mib);
    let table = format!(
        "load {}: {}, 2 workers × 256 slots\n\n\
         \x20 toolfan end to end              {rate:>9.0} tasks/s   ({seconds:.2} s)\n\
         \x20 jobs answered                   {} of {}; tasks ok {}, deadline_exceeded {}, other errors {}\n\
         \x20 job latency p50 / p99           {p50:.0} ms / {p99:.0} ms\n\
         \x20 bare JetStream loop (ceiling)   {bare}\n\
         \x20 ratio                           {ratio_text:>9}\n\
         \x20 jobs taken over                 {:>9}\n\
         \x20 nats-server RSS after           {nats_rss:>9}\n\
         \x20 store after:\n{}",
        spec.name,
        spec.what,
        batch.jobs,
        spec.jobs,
        batch.ok,
        batch.late,
        batch.failed,
        aside.taken_over,
        probe::streams_table(&aside.streams),
    );
    let streams: Vec<_> = aside.streams.iter().map(StreamSize::json).collect();
    let json = json!({"scenario": "load", "shape": spec.name, "jobs": spec.jobs, "job_size": spec.size,
        "window": spec.window, "seconds": seconds, "tasks_per_s": rate, "jobs_answered": batch.jobs,
        "tasks_ok": batch.ok, "tasks_deadline_exceeded": batch.late, "tasks_failed": batch.failed,
        "job_latency_ms_p50": p50, "job_latency_ms_p99": p99,
        "bare_loop_msgs_per_s": aside.bare_msgs_per_s, "bare_loop_in_flight": spec.loop_in_flight,
        "ratio": ratio, "jobs_taken_over": aside.taken_over, "nats_rss_bytes": aside.nats_rss,
        "streams": streams});
    Figures { table, json }
}
