//! Limits that adapt and costs known after the call: `lua/after.lua` and
//! `lua/acquire.lua` against a real redis-server.

use std::time::Duration;

use toolfan_limits::{Decision, Learned, LimitSpec, LimitStore, Limiter, LimiterOptions, Usage};
use toolfan_testkit::RedisServer;

async fn limiter(redis: &RedisServer, defined: &[(&str, LimitSpec)]) -> anyhow::Result<Limiter> {
    let store = LimitStore::connect(&redis.url(), "toolfan").await?;
    for (key, spec) in defined {
        store.set(key, spec).await?;
    }
    let limiter = Limiter::new(LimiterOptions::new(redis.url()))?;
    limiter.refresh().await?;
    Ok(limiter)
}

async fn usage(redis: &RedisServer, key: &str) -> anyhow::Result<Usage> {
    let store = LimitStore::connect(&redis.url(), "toolfan").await?;
    Ok(store.usage(&[key.to_owned()]).await?[0])
}

fn too_many(retry_after: Option<Duration>) -> Learned {
    Learned {
        too_many: true,
        retry_after,
        ..Learned::default()
    }
}

fn charged(key: &str, units: u64) -> Learned {
    Learned {
        charges: [(key.to_owned(), units)].into(),
        ..Learned::default()
    }
}

#[tokio::test]
async fn too_many_halves_the_fleets_rate_once_per_second_and_it_recovers() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    // 10/s: slow enough that a loaded machine's milliseconds barely count.
    let api = LimitSpec::per_second(10, 1);
    let global = LimitSpec::per_second(1000, 1);
    let limiter = limiter(&redis, &[("api", api.clone()), ("global", global)]).await?;
    let limits = limiter.applicable(&["api".into()], None);
    let settled = limiter.after(&limits, 1, &too_many(None)).await?;
    assert_eq!(settled.cut, ["api"], "api is cut, global is not");
    // Calls in flight on other workers hear 429s too: within the quiet
    // second they change nothing.
    for _ in 0..5 {
        assert!(limiter
            .after(&limits, 1, &too_many(None))
            .await?
            .cut
            .is_empty());
    }
    let rate = api.rate.unwrap();
    let now = usage(&redis, "api").await?.effective_per_second(&rate);
    assert!((5.0..5.1).contains(&now), "effective {now}/s after one cut");
    assert!(usage(&redis, "global").await?.adapted.is_none());
    // A second limiter (another worker) is paced at the cut rate, its
    // burst used up by the cut: the next call waits one new interval
    // (200 ms at 5/s), not one of 100 ms.
    let other = Limiter::new(LimiterOptions::new(redis.url()))?;
    other.refresh().await?;
    match other.acquire(&limits, 1, "a").await? {
        Decision::Wait { after, key, .. } => {
            assert_eq!(key, "api");
            assert!(after > Duration::from_millis(120), "{after:?}");
            assert!(after <= Duration::from_millis(200), "{after:?}");
        }
        d => panic!("expected a wait, got {d:?}"),
    }
    // +10 % of the configured rate a second: 0.5 s later about 5.5/s.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = usage(&redis, "api").await?.effective_per_second(&rate);
    assert!(
        (5.4..5.8).contains(&later),
        "effective {later}/s 0.5 s after the cut"
    );
    Ok(())
}

#[tokio::test]
async fn a_retry_after_pauses_the_key_for_everyone() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let limiter = limiter(&redis, &[("api", LimitSpec::per_second(100, 5))]).await?;
    let limits = limiter.applicable(&["api".into()], None);
    let hold = Duration::from_millis(400);
    limiter.after(&limits, 1, &too_many(Some(hold))).await?;
    match limiter.acquire(&limits, 1, "x").await? {
        Decision::Wait { after, .. } => assert!(
            after >= Duration::from_millis(350) && after <= Duration::from_millis(500),
            "{after:?}"
        ),
        d => panic!("expected a wait for the Retry-After, got {d:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn real_costs_move_the_bucket_by_the_difference_bounded() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    // 100 units/s, burst 100: 10 ms a unit (slow enough that the time
    // this test takes on a loaded machine barely counts).
    let limiter = limiter(&redis, &[("tokens", LimitSpec::per_second(100, 100))]).await?;
    let limits = limiter.applicable(&["tokens".into()], None);
    assert!(matches!(
        limiter.acquire(&limits, 10, "a").await?,
        Decision::Admitted(_)
    ));
    // Estimated 10, really 100: 90 more units taken.
    let settled = limiter.after(&limits, 10, &charged("tokens", 100)).await?;
    assert_eq!(settled.charged, [("tokens".to_owned(), 90)]);
    let in_use = usage(&redis, "tokens").await?.burst_in_use(10_000.0);
    assert!((97.0..=100.0).contains(&in_use), "{in_use} units in use");
    // Really 0 of an estimate of 10: 10 given back.
    limiter.after(&limits, 10, &charged("tokens", 0)).await?;
    let in_use = usage(&redis, "tokens").await?.burst_in_use(10_000.0);
    assert!((87.0..=90.0).contains(&in_use), "{in_use} units in use");
    // A wild report moves it at most 10 bursts (1000 units, 10 s) ahead.
    limiter
        .after(&limits, 10, &charged("tokens", 1_000_000))
        .await?;
    let in_use = usage(&redis, "tokens").await?.burst_in_use(10_000.0);
    assert!((990.0..=1000.0).contains(&in_use), "{in_use} units in use");
    Ok(())
}
