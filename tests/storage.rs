//! Bounded storage and O(1) server cost per job: streams have byte
//! bounds, an answered job's results leave the results stream while a
//! live job's stay, and live jobs cost the server no consumer each.

use std::time::{Duration, Instant};

use async_nats::jetstream::stream::DiscardPolicy;
use serde_json::json;
use toolfan::{Job, Task};
use toolfan_e2e::{stored_results, Cluster};
use toolfan_protocol::Subjects;
use toolfan_transport::TopologyOptions;

#[tokio::test]
async fn every_stream_is_bounded_by_bytes() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _client = cluster.client().await?; // creates the streams
    let js = async_nats::jetstream::new(async_nats::connect(cluster.nats.url()).await?);
    let s = Subjects::default();
    let defaults = TopologyOptions::default();
    // Full queues refuse new work; a full results stream drops its oldest.
    for (name, bound, discard) in [
        (
            s.jobs_stream(),
            defaults.queue_max_bytes,
            DiscardPolicy::New,
        ),
        (
            s.tasks_stream(),
            defaults.queue_max_bytes,
            DiscardPolicy::New,
        ),
        (
            s.results_stream(),
            defaults.results_max_bytes,
            DiscardPolicy::Old,
        ),
    ] {
        let config = js.get_stream(&name).await?.cached_info().config.clone();
        assert_eq!(config.max_bytes, bound, "{name}");
        assert_eq!(config.discard, discard, "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn an_answered_jobs_results_leave_the_stream_and_a_live_jobs_stay() -> anyhow::Result<()> {
    // A 1 s ack wait makes the floor's lifetime (3 × ack wait + 5 s, the
    // time a dead coordinator's jobs take to reach a new owner) 8 s.
    let cluster = Cluster::start_with(|o| {
        o.results_keep = Duration::from_secs(1);
        o.topology.ack_wait = Duration::from_secs(1);
        o.topology.enforce_ack_wait = true;
    })
    .await?;
    cluster.builtin_worker(8).await?;
    let client = cluster.client().await?;
    let url = cluster.nats.url();
    let started = Instant::now();

    let short =
        Job::new(vec![Task::new("echo", json!({"n": 1})); 20]).deadline(Duration::from_secs(2));
    let short = client.submit(short).await?;
    let short_id = short.id().clone();
    let results = short.results().await?;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 20);
    assert_eq!(
        stored_results(&url, &short_id).await?.len(),
        20,
        "kept until its deadline + keep"
    );
    // A job still running holds its own results, stored after the short one's.
    let live = Job::new(vec![Task::new("sleep", json!({"ms": 1000})); 14])
        .max_concurrency(1)
        .deadline(Duration::from_secs(60));
    let live = client.submit(live).await?;
    let live_id = live.id().clone();

    while !stored_results(&url, &short_id).await?.is_empty() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(25),
            "the answered job's results are still stored after {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let purged_at = started.elapsed();
    assert!(
        purged_at >= Duration::from_secs(8),
        "purged after {purged_at:?}, before a dead coordinator's jobs could reach a new owner"
    );
    let stored = stored_results(&url, &live_id).await?;
    assert!(
        stored.len() >= 7,
        "the live job's results must stay: {} stored after {purged_at:?}",
        stored.len()
    );
    let results = live.results().await?;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 14);
    assert_eq!(
        stored_results(&url, &live_id).await?.len(),
        14,
        "kept after its answer"
    );
    Ok(())
}

#[tokio::test]
async fn two_hundred_live_jobs_cost_the_server_no_consumer_each() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(256).await?;
    let client = cluster.client().await?;
    let mut handles = Vec::new();
    for _ in 0..200 {
        let job = Job::new(vec![Task::new("sleep", json!({"ms": 2000})); 2]);
        handles.push(client.submit(job).await?);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let js = async_nats::jetstream::new(async_nats::connect(cluster.nats.url()).await?);
    let mut results = js.get_stream(Subjects::default().results_stream()).await?;
    let consumers = results.info().await?.state.consumer_count;
    assert!(
        consumers <= 1,
        "{consumers} consumers on the results stream with 200 jobs live (one coordinator)"
    );
    for handle in handles {
        let results = handle.results().await?;
        assert!(results.iter().all(|r| r.is_ok()));
    }
    Ok(())
}
