//! Fleet-wide limits with real Redis and three real worker processes.

use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{Job, Task};
use toolfan_e2e::fleet::{all_ok, cap, max_overlap, rate, Fleet};
use toolfan_e2e::{max_in_window, span_starts};

const SECOND_US: u64 = 1_000_000;

#[tokio::test]
async fn fifty_per_second_holds_across_three_workers() -> anyhow::Result<()> {
    let fleet = Fleet::start(3, &["--limit-keys", "span=api", "--concurrency", "16"]).await?;
    fleet.define("api", rate(50, 5)).await?;

    let (results, elapsed) = fleet
        .run(vec![Task::new("span", json!({"ms": 0})); 600])
        .await?;
    all_ok(&results);
    let starts = span_starts(&results);
    let most = max_in_window(&starts, SECOND_US);
    let workers: std::collections::BTreeSet<_> =
        results.iter().filter_map(|r| r.worker.clone()).collect();
    eprintln!(
        "600 calls at 50/s burst 5 on {} workers: {elapsed:?}, at most {most} starts in any 1 s",
        workers.len()
    );
    assert!(
        most <= 55,
        "{most} starts in one second under 50/s with burst 5"
    );
    // (600 - 5) / 50 = 11.9 s; within 10 % of 12 s.
    assert!(
        elapsed >= Duration::from_millis(10_800) && elapsed <= Duration::from_millis(13_200),
        "took {elapsed:?}"
    );
    assert!(workers.len() >= 2, "the fleet shared the work: {workers:?}");
    Ok(())
}

#[tokio::test]
async fn costs_weigh_calls_against_the_rate() -> anyhow::Result<()> {
    let fleet = Fleet::start(3, &[]).await?;
    fleet.define("tokens", rate(1000, 100)).await?;

    let task = Task::new("span", json!({"ms": 0}))
        .rate_key("tokens")
        .cost(100);
    let (results, _) = fleet.run(vec![task; 30]).await?;
    all_ok(&results);
    let starts = span_starts(&results);
    let most = max_in_window(&starts, SECOND_US);
    let span_s = (starts[29] - starts[0]) as f64 / 1e6;
    eprintln!(
        "30 calls of cost 100 under 1000/s: at most {most} in any 1 s, spread over {span_s:.2} s"
    );
    assert!(
        most <= 11,
        "{most} calls of cost 100 in one second under 1000 units/s"
    );
    // 10 a second: the 30th starts about 2.9 s after the first.
    assert!((2.6..=3.4).contains(&span_s), "spread over {span_s} s");
    Ok(())
}

#[tokio::test]
async fn a_concurrency_cap_holds_across_three_workers() -> anyhow::Result<()> {
    let fleet = Fleet::start(3, &["--limit-keys", "span=db", "--concurrency", "16"]).await?;
    fleet.define("db", cap(4)).await?;

    let (results, elapsed) = fleet
        .run(vec![Task::new("span", json!({"ms": 100})); 40])
        .await?;
    all_ok(&results);
    let most = max_overlap(&results);
    eprintln!(
        "40 × 100 ms under a cap of 4 on 3 workers × 16: at most {most} at once, {elapsed:?}"
    );
    assert!(most <= 4, "{most} ran at once under a cap of 4");
    assert_eq!(most, 4, "the cap was not used");
    assert!(
        elapsed >= Duration::from_millis(1000),
        "40 × 100 ms at 4 at once takes ≥ 1 s: {elapsed:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_killed_workers_leases_free_themselves_after_the_ttl() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(1, &["--limit-keys", "span=db", "--lease-ttl-ms", "1500"]).await?;
    fleet.define("db", cap(2)).await?;

    // Two long calls take both places, then their worker dies holding them.
    // The hog's deadline ends it before the tasks consumer's 10 s ack wait
    // would hand its tasks to the fresh worker, yet leaves a loaded machine
    // (CI runs test binaries side by side) time to start them.
    let client = fleet.cluster.client().await?;
    let hog_deadline = Duration::from_secs(9);
    let hog = Job::new(vec![Task::new("span", json!({"ms": 20_000})); 2]).deadline(hog_deadline);
    let _hog = client.submit(hog).await?;
    let mut conn = redis::Client::open(fleet.redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let started = Instant::now();
    loop {
        let held: u64 = redis::cmd("ZCARD")
            .arg("toolfan:lease:db")
            .query_async(&mut conn)
            .await?;
        if held == 2 {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < hog_deadline,
            "the leases were never taken within the hog's deadline of {hog_deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fleet.workers[0].kill();
    let killed = Instant::now();
    fleet.workers.push(fleet.worker(
        "lim-fresh",
        &["--limit-keys", "span=db", "--lease-ttl-ms", "1500"],
    )?);
    fleet
        .cluster
        .wait_for_workers(&["lim-fresh".to_owned()])
        .await?;

    let (results, _) = fleet
        .run(vec![Task::new("span", json!({"ms": 10})); 2])
        .await?;
    all_ok(&results);
    let waited = killed.elapsed();
    eprintln!("after the kill the cap was whole again within {waited:?} (lease TTL 1.5 s)");
    assert!(
        waited < Duration::from_millis(1500 + 1500),
        "the dead worker's leases held for {waited:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_limit_changed_with_the_cli_takes_effect_within_a_second() -> anyhow::Result<()> {
    let fleet = Fleet::start(2, &["--limit-keys", "span=api"]).await?;
    fleet.define("api", rate(10, 1)).await?;

    let client = fleet.cluster.client().await?;
    let job = Job::new(vec![Task::new("span", json!({"ms": 0})); 100])
        .max_concurrency(100)
        .deadline(Duration::from_secs(30));
    let run = tokio::spawn(async move { client.submit(job).await?.results().await });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let redis_url = fleet.redis.url();
    let status = std::process::Command::new(toolfan_testkit::binary("toolfan")?)
        .args(["limits", "--redis-url", &redis_url, "set", "api", "40/s"])
        .status()?;
    assert!(status.success());
    let changed_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as u64;

    let results = run.await??;
    all_ok(&results);
    let starts = span_starts(&results);
    let before = starts.iter().filter(|&&s| s < changed_us).count();
    let after_a_second = starts
        .iter()
        .filter(|&&s| s >= changed_us + SECOND_US && s < changed_us + 2 * SECOND_US)
        .count();
    eprintln!("10/s → 40/s: {before} starts before the change, {after_a_second} in the second after the first second");
    assert!(before <= 25, "{before} starts in ~2 s at 10/s");
    assert!(
        after_a_second >= 30,
        "only {after_a_second} starts per second a second after raising to 40/s"
    );
    Ok(())
}

#[tokio::test]
async fn with_redis_down_limited_tasks_wait_and_run_when_it_returns() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(1, &["--limit-keys", "span=api"]).await?;
    fleet.define("api", rate(100, 10)).await?;

    fleet.redis.kill();
    let client = fleet.cluster.client().await?;
    let job =
        Job::new(vec![Task::new("span", json!({"ms": 0})); 5]).deadline(Duration::from_secs(20));
    let run = tokio::spawn(async move { client.submit(job).await?.results().await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !run.is_finished(),
        "limited tasks ran while Redis was down (fail closed)"
    );
    fleet.redis.restart()?;
    let back_us = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_micros() as u64;

    let results = run.await??;
    all_ok(&results);
    let starts = span_starts(&results);
    assert!(
        starts[0] + 100_000 >= back_us,
        "a task started before Redis came back"
    );
    Ok(())
}

#[tokio::test]
async fn with_fail_open_limited_tasks_run_while_redis_is_down() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(1, &["--limit-keys", "span=api", "--limits-fail-open"]).await?;
    fleet.define("api", rate(1, 1)).await?;

    fleet.redis.kill();
    let (results, elapsed) = fleet
        .run(vec![Task::new("span", json!({"ms": 0})); 5])
        .await?;
    all_ok(&results);
    // Under 1/s they would take 4 s; unlimited they take no time to speak of.
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    Ok(())
}

#[tokio::test]
async fn a_tools_fleet_wide_in_flight_cap_holds_through_its_consumer() -> anyhow::Result<()> {
    let fleet = Fleet::start(
        3,
        &["--tool-max-in-flight", "span=3", "--concurrency", "16"],
    )
    .await?;
    let (results, _) = fleet
        .run(vec![Task::new("span", json!({"ms": 100})); 30])
        .await?;
    all_ok(&results);
    let most = max_overlap(&results);
    eprintln!(
        "30 × 100 ms with span capped at 3 in flight on 3 workers × 16: at most {most} at once"
    );
    assert!(most <= 3, "{most} ran at once under max_ack_pending 3");
    assert!(most >= 2, "the cap was barely used: {most}");
    Ok(())
}

#[tokio::test]
async fn a_worker_started_with_an_in_flight_cap_updates_the_existing_consumer() -> anyhow::Result<()>
{
    let mut fleet = Fleet::start(1, &[]).await?;
    fleet
        .workers
        .push(fleet.worker("lim-capped", &["--tool-max-in-flight", "span=2"])?);
    fleet
        .cluster
        .wait_for_workers(&["lim-capped".to_owned()])
        .await?;
    let (results, _) = fleet
        .run(vec![Task::new("span", json!({"ms": 100})); 20])
        .await?;
    all_ok(&results);
    let most = max_overlap(&results);
    assert!(
        most <= 2,
        "{most} ran at once after the cap was lowered to 2"
    );
    Ok(())
}
