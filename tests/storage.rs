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
async fn every_stream_is_bounded_by_bytes_and_refuses_rather_than_discards() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let _client = cluster.client().await?; // creates the streams
    let js = async_nats::jetstream::new(async_nats::connect(cluster.nats.url()).await?);
    let s = Subjects::default();
    let defaults = TopologyOptions::default();
    for (name, bound) in [
        (s.jobs_stream(), defaults.queue_max_bytes),
        (s.tasks_stream(), defaults.queue_max_bytes),
        (s.results_stream(), defaults.results_max_bytes),
    ] {
        let config = js.get_stream(&name).await?.cached_info().config.clone();
        assert_eq!(config.max_bytes, bound, "{name}");
        assert_eq!(config.discard, DiscardPolicy::New, "{name}");
    }
    Ok(())
}

#[tokio::test]
async fn an_answered_jobs_results_leave_the_stream_and_a_live_jobs_stay() -> anyhow::Result<()> {
    let cluster = Cluster::start_with(|o| o.results_keep = Duration::from_secs(1)).await?;
    cluster.builtin_worker(8).await?;
    let client = cluster.client().await?;
    let url = cluster.nats.url();

    let live = Job::new(vec![Task::new("sleep", json!({"ms": 1500})); 5])
        .max_concurrency(1)
        .deadline(Duration::from_secs(60));
    let live = client.submit(live).await?;
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

    // Its deadline (2 s from submission) plus the 1 s keep, then the purge.
    let started = Instant::now();
    while !stored_results(&url, &short_id).await?.is_empty() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the answered job's results are still stored"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let live_id = live.id().clone();
    let stored = stored_results(&url, &live_id).await?;
    assert!(
        stored.len() >= 2,
        "the live job's results must stay: {} stored",
        stored.len()
    );
    let results = live.results().await?;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
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
