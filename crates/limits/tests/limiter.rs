//! The limiter's Lua scripts against a real redis-server.

use std::time::Duration;

use redis::AsyncCommands;
use toolfan_limits::{Decision, LimitSpec, LimitStore, Limiter, LimiterOptions};
use toolfan_testkit::RedisServer;

fn rate(per_second: u64, burst: u64) -> LimitSpec {
    LimitSpec::per_second(per_second, burst)
}

fn cap(n: u32) -> LimitSpec {
    LimitSpec::concurrency(n)
}

async fn limiter(redis: &RedisServer, defaults: &[(&str, LimitSpec)]) -> Limiter {
    let mut options = LimiterOptions::new(redis.url());
    options.lease_ttl = Duration::from_millis(500);
    options.defaults = defaults
        .iter()
        .map(|(k, s)| (k.to_string(), s.clone()))
        .collect();
    let limiter = Limiter::new(options).unwrap();
    limiter.refresh().await.unwrap();
    limiter
}

fn admitted(d: &Decision) -> bool {
    matches!(d, Decision::Admitted(_))
}

#[tokio::test]
async fn the_script_admits_the_burst_then_asks_for_one_interval() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let limiter = limiter(&redis, &[("api", rate(50, 5))]).await;
    let limits = limiter.applicable(&["api".into()], None);
    for i in 0..5 {
        assert!(
            admitted(&limiter.acquire(&limits, 1, &format!("m{i}")).await?),
            "call {i} of the burst"
        );
    }
    match limiter.acquire(&limits, 1, "m5").await? {
        Decision::Wait { after, key, cap } => {
            assert!(!cap, "a rate, not a cap, held it");
            assert_eq!(key, "api");
            // One emission interval (20 ms), less the time the calls took.
            assert!(
                after <= Duration::from_millis(20) && after >= Duration::from_millis(10),
                "{after:?}"
            );
            tokio::time::sleep(after).await;
        }
        other => panic!("expected a wait, got {other:?}"),
    }
    assert!(admitted(&limiter.acquire(&limits, 1, "m6").await?));
    Ok(())
}

#[tokio::test]
async fn a_task_under_two_limits_takes_neither_when_one_denies() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    // `global` at 1/s: the TAT the first call leaves stays in Redis for
    // about a second (its key expires once the TAT is past), long enough
    // to compare it before and after the denied calls.
    let limiter = limiter(
        &redis,
        &[("global", rate(1, 10)), ("tenant:a", rate(10, 1))],
    )
    .await;
    let limits = limiter.applicable(&[], Some("tenant:a"));
    assert_eq!(limits.len(), 2, "under global and its rate_key");
    assert!(admitted(&limiter.acquire(&limits, 1, "a").await?));

    let mut conn = redis::Client::open(redis.url())?
        .get_multiplexed_async_connection()
        .await?;
    let global_before: Option<String> = conn.get("toolfan:gcra:global").await?;
    for _ in 0..20 {
        match limiter.acquire(&limits, 1, "b").await? {
            Decision::Wait { key, .. } => assert_eq!(key, "tenant:a"),
            other => panic!("tenant:a should deny, got {other:?}"),
        }
    }
    let global_after: Option<String> = conn.get("toolfan:gcra:global").await?;
    assert!(
        global_before.is_some(),
        "the admitted call took a global token"
    );
    // Unchanged, or (on a machine slow enough to take a second for this)
    // expired untouched: a denied call that took a token would have moved it on.
    assert!(
        global_after.is_none() || global_after == global_before,
        "a denied call took a global token: {global_before:?} → {global_after:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_cost_over_the_burst_is_refused_with_a_clear_reason() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let limiter = limiter(&redis, &[("tokens", rate(1000, 10))]).await;
    let limits = limiter.applicable(&["tokens".into()], None);
    match limiter.acquire(&limits, 11, "x").await? {
        Decision::Never(why) => assert_eq!(
            why,
            "a call of cost 11 can never pass limit \"tokens\", whose burst is 10; raise its burst to at least 11"
        ),
        other => panic!("expected never, got {other:?}"),
    }
    Ok(())
}

#[tokio::test]
async fn leases_cap_concurrency_and_expire_when_not_renewed() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let limiter = limiter(&redis, &[("db", cap(2))]).await;
    let limits = limiter.applicable(&["db".into()], None);
    let first = match limiter.acquire(&limits, 1, "one").await? {
        Decision::Admitted(Some(lease)) => lease,
        other => panic!("{other:?}"),
    };
    assert!(admitted(&limiter.acquire(&limits, 1, "two").await?));
    assert!(matches!(
        limiter.acquire(&limits, 1, "three").await?,
        Decision::Wait { .. }
    ));
    // Given back: a place frees at once.
    limiter.release(&first).await;
    assert!(admitted(&limiter.acquire(&limits, 1, "three").await?));
    // Nobody renews "two" and "three": after the TTL (500 ms) both places free.
    assert!(matches!(
        limiter.acquire(&limits, 1, "four").await?,
        Decision::Wait { .. }
    ));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(admitted(&limiter.acquire(&limits, 1, "four").await?));
    assert!(admitted(&limiter.acquire(&limits, 1, "five").await?));
    Ok(())
}

#[tokio::test]
async fn a_renewed_lease_outlives_its_ttl() -> anyhow::Result<()> {
    let redis = RedisServer::start()?;
    let limiter = limiter(&redis, &[("db", cap(1))]).await;
    let limits = limiter.applicable(&["db".into()], None);
    let lease = match limiter.acquire(&limits, 1, "held").await? {
        Decision::Admitted(Some(lease)) => lease,
        other => panic!("{other:?}"),
    };
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        limiter.renew(&lease).await?;
    }
    // 800 ms later, past the 500 ms TTL, it is still held.
    assert!(matches!(
        limiter.acquire(&limits, 1, "other").await?,
        Decision::Wait { .. }
    ));
    Ok(())
}

#[tokio::test]
async fn definitions_in_redis_override_defaults_and_reach_a_running_limiter() -> anyhow::Result<()>
{
    let redis = RedisServer::start()?;
    let limiter = limiter(&redis, &[("api", rate(1, 1))]).await;
    assert_eq!(limiter.applicable(&["api".into()], None)[0].1, rate(1, 1));
    let store = LimitStore::connect(&redis.url(), "toolfan").await?;
    store.set("api", &rate(500, 20)).await?;
    store.set("db", &cap(3)).await?;
    limiter.refresh().await?;
    assert_eq!(
        limiter.applicable(&["api".into()], None)[0].1,
        rate(500, 20)
    );
    assert_eq!(store.list().await?.len(), 2);
    assert!(store.delete("api").await?);
    assert!(!store.delete("api").await?);
    limiter.refresh().await?;
    assert_eq!(
        limiter.applicable(&["api".into()], None)[0].1,
        rate(1, 1),
        "back to the default"
    );
    Ok(())
}
