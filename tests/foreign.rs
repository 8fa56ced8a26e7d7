//! A worker in another language, written from docs/protocol.md alone
//! (`tests/foreign/worker.py`, nats-py and redis-py from the virtualenv
//! `scripts/install-deps` makes), serves tasks and honours the fleet's
//! rate limit through the documented Redis scripts.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{Job, Task};
use toolfan_e2e::{max_in_window, python, Cluster};
use toolfan_testkit::{Process, RedisServer};

fn foreign_worker(nats: &str, redis: &str, id: &str) -> anyhow::Result<Process> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/foreign/worker.py");
    let mut cmd = Command::new(python()?);
    cmd.arg(script)
        .args([nats, redis, "pyecho", id, "pyrate"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    Ok(Process::spawn("python worker", cmd)?)
}

#[tokio::test]
async fn a_python_worker_holds_the_fleets_rate_limit() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let redis = RedisServer::start()?;
    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let limit = json!({"rate": {"count": 5, "period_ms": 1000}, "burst": 1}).to_string();
    redis::cmd("HSET")
        .arg("toolfan:limits")
        .arg("pyrate")
        .arg(limit)
        .query_async::<()>(&mut conn)
        .await?;
    let _workers = [
        foreign_worker(&cluster.nats.url(), &redis.url(), "py-1")?,
        foreign_worker(&cluster.nats.url(), &redis.url(), "py-2")?,
    ];
    cluster
        .wait_for_workers(&["py-1".to_owned(), "py-2".to_owned()])
        .await?;

    let client = cluster.client().await?;
    let tasks = (0..15)
        .map(|i| Task::new("pyecho", json!({"i": i})))
        .collect();
    let started = Instant::now();
    let results = client
        .submit(Job::new(tasks).deadline(Duration::from_secs(30)))
        .await?
        .results()
        .await?;
    let took = started.elapsed();
    let mut starts = Vec::new();
    for (i, r) in results.iter().enumerate() {
        let value = r.value().unwrap_or_else(|| panic!("task {i}: {r:?}"));
        assert_eq!(value["args"], json!({"i": i}), "results in input order");
        starts.push(value["started_ms"].as_u64().expect("a start time"));
    }
    starts.sort_unstable();
    let workers: std::collections::BTreeSet<_> =
        results.iter().filter_map(|r| r.worker.clone()).collect();
    // 5/s with a burst of 1 across both workers: at most 5 + 1 starts in any
    // second (a little slack for the two hosts' clocks reading the times),
    // and 15 calls need at least 14 intervals of 200 ms.
    let most = max_in_window(&starts, 1000);
    assert!(most <= 6, "{most} starts in one second under a 5/s limit");
    assert!(
        took >= Duration::from_millis(2600),
        "15 calls at 5/s took only {took:?}: the limit was not taken"
    );
    assert!(took < Duration::from_secs(20), "took {took:?}");
    eprintln!("15 calls through 2 Python workers at 5/s: {took:?}, most {most} in 1 s, workers {workers:?}");
    Ok(())
}
