//! Redis restarted mid-job, keeping no data: every limit's definition,
//! its GCRA state and every lease are gone. No task is lost; workers
//! write the definitions they last read back (a restart must not lift
//! every limit: before they did, 76 tasks started in the second after a
//! restart under 20/s); a rate lets at most one extra burst through, and
//! a concurrency cap at most one extra cap's worth while the tasks that
//! held the lost leases finish.

use std::time::Duration;

use serde_json::json;
use toolfan::Task;
use toolfan_e2e::fleet::{all_ok, cap, max_overlap, rate, Fleet};
use toolfan_e2e::{max_in_window, span_starts};

const SECOND_US: u64 = 1_000_000;

fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_micros() as u64
}

#[tokio::test]
async fn a_rate_limit_lets_one_extra_burst_through_a_redis_restart() -> anyhow::Result<()> {
    let mut fleet = Fleet::start(2, &["--limit-keys", "span=api"]).await?;
    fleet.define("api", rate(20, 5)).await?;
    let client = fleet.cluster.client().await?;
    let job = toolfan::Job::new(vec![Task::new("span", json!({"ms": 0})); 120])
        .max_concurrency(1000)
        .deadline(Duration::from_secs(60));
    let run = tokio::spawn(async move { client.submit(job).await?.results().await });
    tokio::time::sleep(Duration::from_secs(3)).await;
    fleet.redis.restart()?;
    let restarted = now_us();

    let results = run.await??;
    assert_eq!(results.len(), 120, "no task lost");
    all_ok(&results);
    let starts = span_starts(&results);
    let steady = max_in_window(
        &starts
            .iter()
            .copied()
            .filter(|&s| s >= starts[0] + SECOND_US && s < restarted)
            .collect::<Vec<_>>(),
        SECOND_US,
    );
    let after: Vec<u64> = starts.iter().copied().filter(|&s| s >= restarted).collect();
    let first_second = after.iter().filter(|&&s| s < restarted + SECOND_US).count();
    let most = max_in_window(&starts, SECOND_US);
    eprintln!(
        "20/s burst 5, Redis restarted 3 s in: {steady} starts in the steadiest second before, \
         {first_second} in the second after the restart, at most {most} in any second"
    );
    // Before: 20 a second. After: the state is gone, so one more burst of
    // 5 may start at once, then 20 a second again.
    assert!(steady <= 22, "{steady} starts in a second under 20/s");
    assert!(
        first_second <= 20 + 5 + 2,
        "{first_second} starts in the second after the restart: more than one extra burst"
    );
    Ok(())
}

#[tokio::test]
async fn a_concurrency_cap_lets_at_most_one_extra_caps_worth_through_a_redis_restart(
) -> anyhow::Result<()> {
    let mut fleet = Fleet::start(2, &["--limit-keys", "span=slots", "--concurrency", "16"]).await?;
    fleet.define("slots", cap(3)).await?;
    let client = fleet.cluster.client().await?;
    let job = toolfan::Job::new(vec![Task::new("span", json!({"ms": 1200})); 12])
        .max_concurrency(1000)
        .deadline(Duration::from_secs(60));
    let run = tokio::spawn(async move { client.submit(job).await?.results().await });
    // Mid-way through the second wave of three.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    fleet.redis.restart()?;

    let results = run.await??;
    assert_eq!(results.len(), 12, "no task lost");
    all_ok(&results);
    let most = max_overlap(&results);
    eprintln!("cap 3, 12 × 1200 ms, Redis restarted 1.8 s in: at most {most} ran at once");
    assert!(
        most <= 6,
        "{most} at once: more than the cap's worth over it"
    );
    Ok(())
}
