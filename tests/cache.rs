//! Batch tools, the fleet-wide result cache with single flight, and
//! speculative prefetch, against a real NATS and Redis.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolfan::{CacheUse, ErrorKind, Job, Task, TaskResult};
use toolfan_e2e::{one_task_jobs, Cluster};
use toolfan_testkit::RedisServer;
use toolfan_worker::{
    BatchOptions, CacheOptions, TaskContext, ToolError, Worker, WorkerBuilder, WorkerOptions,
};

/// A tool that sleeps `ms` and counts its runs per args.
fn counted(runs: Arc<Mutex<Vec<Value>>>, ms: u64) -> WorkerBuilder {
    counted_in(runs, ms, prometheus::Registry::new())
}

/// [`counted`], its worker's metrics in `registry`.
fn counted_in(
    runs: Arc<Mutex<Vec<Value>>>,
    ms: u64,
    registry: prometheus::Registry,
) -> WorkerBuilder {
    Worker::builder()
        .options(WorkerOptions {
            metrics: registry,
            ..WorkerOptions::default()
        })
        .concurrency(32)
        .tool("slow", move |_ctx: TaskContext, args: Value| {
            let runs = runs.clone();
            async move {
                runs.lock().unwrap().push(args.clone());
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok(json!({"answer": args, "at": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64}))
            }
        })
}

/// The counter `name{outcome}` in `registry`, summed over its other labels.
fn outcome_count(registry: &prometheus::Registry, name: &str, outcome: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|family| family.name() == name)
        .flat_map(|family| family.get_metric())
        .filter(|m| {
            m.get_label()
                .iter()
                .any(|l| l.name() == "outcome" && l.value() == outcome)
        })
        .map(|m| m.get_counter().get_value())
        .sum()
}

fn cached_by(redis: &RedisServer) -> CacheOptions {
    CacheOptions::new(redis.url())
}

#[tokio::test]
async fn fifty_one_task_jobs_share_a_few_batch_calls() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let calls = Arc::new(Mutex::new(Vec::<usize>::new()));
    let seen = calls.clone();
    let registry = prometheus::Registry::new();
    let builder = Worker::builder().options(WorkerOptions {
        metrics: registry.clone(),
        ..WorkerOptions::default()
    });
    cluster
        .worker(builder.concurrency(64).batch_tool(
            "classify",
            BatchOptions::new(16, Duration::from_millis(20)),
            move |inputs: Vec<Value>| {
                seen.lock().unwrap().push(inputs.len());
                async move {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    Ok(inputs
                        .into_iter()
                        .map(|input| match input["text"].as_str() {
                            Some("poison") => Err(ToolError::new("cannot classify poison")),
                            Some(text) => Ok(json!({"text": text, "label": text.len() % 3})),
                            None => Err(ToolError::invalid_args("text is missing")),
                        })
                        .collect())
                }
            },
        ))
        .await?;
    let client = cluster.client().await?;
    let texts: Vec<String> = (0..50)
        .map(|i| {
            if i == 17 {
                "poison".to_owned()
            } else {
                format!("prompt number {i}")
            }
        })
        .collect();
    let tasks = texts
        .iter()
        .map(|text| Task::new("classify", json!({ "text": text })));
    let results = one_task_jobs(&client, tasks.collect()).await?;
    let answers: Vec<(String, TaskResult)> = texts.into_iter().zip(results).collect();
    for (text, result) in &answers {
        if text == "poison" {
            let error = result.error().expect("the poisoned item fails");
            assert_eq!(error.kind, ErrorKind::ToolError);
            assert_eq!(error.message, "cannot classify poison");
        } else {
            assert_eq!(
                result.value(),
                Some(&json!({"text": text, "label": text.len() % 3})),
                "{text} got another caller's answer"
            );
        }
    }
    let calls = calls.lock().unwrap().clone();
    eprintln!("50 one-task jobs → handler calls of sizes {calls:?}");
    assert_eq!(
        calls.iter().sum::<usize>(),
        50,
        "every call in exactly one batch: {calls:?}"
    );
    assert!(
        calls.len() <= 5,
        "50 calls took {} handler calls: {calls:?}",
        calls.len()
    );
    assert!(calls.iter().all(|&n| n <= 16), "{calls:?}");
    let sizes = registry
        .gather()
        .into_iter()
        .find(|family| family.name() == "toolfan_batch_size")
        .expect("the batch size histogram");
    let histogram = sizes.get_metric()[0].get_histogram();
    assert_eq!(
        (histogram.get_sample_count(), histogram.get_sample_sum()),
        (calls.len() as u64, 50.0),
        "toolfan_batch_size counts every handler call and item"
    );
    Ok(())
}

#[tokio::test]
async fn a_batch_respects_each_tasks_own_timeout() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster
        .worker(Worker::builder().concurrency(16).batch_tool(
            "slowbatch",
            BatchOptions::new(8, Duration::from_millis(20)),
            |inputs: Vec<Value>| async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok(inputs.into_iter().map(Ok).collect())
            },
        ))
        .await?;
    let results = cluster
        .client()
        .await?
        .fanout(vec![
            Task::new("slowbatch", json!({"n": 1})),
            Task::new("slowbatch", json!({"n": 2})).timeout(Duration::from_millis(100)),
        ])
        .await?;
    assert_eq!(results[0].value(), Some(&json!({"n": 1})));
    assert_eq!(
        results[1].error().map(|e| e.kind.clone()),
        Some(ErrorKind::Timeout)
    );
    Ok(())
}

#[tokio::test]
async fn one_idempotency_key_runs_once_then_again_after_its_ttl() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let redis = RedisServer::start()?;
    let runs = Arc::new(Mutex::new(Vec::new()));
    // Two workers: the second call may land on either; it must not run.
    let registries = [prometheus::Registry::new(), prometheus::Registry::new()];
    for registry in &registries {
        cluster
            .worker(counted_in(runs.clone(), 500, registry.clone()).cache(cached_by(&redis)))
            .await?;
    }
    let client = cluster.client().await?;
    let task = |n: u32| {
        Task::new("slow", json!({"n": n}))
            .idempotency_key("order-42")
            .cache_ttl(Duration::from_millis(1500))
    };
    let started = Instant::now();
    let first = client.submit(Job::new(vec![task(1)])).await?;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let second = client.submit(Job::new(vec![task(2)])).await?;
    let (first, second) = tokio::try_join!(first.results(), second.results())?;
    let took = started.elapsed();
    eprintln!("two calls with one key, 10 ms apart, both answered in {took:?}");
    assert_eq!(runs.lock().unwrap().len(), 1, "one execution for one key");
    assert_eq!(
        first[0].value(),
        second[0].value(),
        "both callers get the one result"
    );
    // Whichever call claimed the key first ran (10 ms apart, on a loaded
    // machine either may): its args are the answer both get.
    let ran = runs.lock().unwrap()[0].clone();
    assert_eq!(first[0].value().unwrap()["answer"], ran);
    assert!(
        took < Duration::from_millis(900),
        "the second call waited for the first: {took:?}"
    );

    // Within the TTL: stored, answered without running.
    let third = client.fanout(vec![task(3)]).await?;
    assert_eq!(third[0].value(), first[0].value());
    assert_eq!(third[0].cache, Some(CacheUse::Hit));
    assert_eq!(runs.lock().unwrap().len(), 1);

    tokio::time::sleep(Duration::from_millis(1600)).await;
    let fourth = client.fanout(vec![task(4)]).await?;
    assert_eq!(fourth[0].value().unwrap()["answer"], json!({"n": 4}));
    assert_eq!(fourth[0].cache, None);
    assert_eq!(runs.lock().unwrap().len(), 2, "after the TTL it runs again");
    // The workers counted it: two misses (runs), one joined call, one hit.
    for (outcome, expected) in [
        ("miss", 2.0),
        ("joined", 1.0),
        ("hit", 1.0),
        ("unavailable", 0.0),
    ] {
        let counted: f64 = registries
            .iter()
            .map(|r| outcome_count(r, "toolfan_cache_total", outcome))
            .sum();
        assert_eq!(
            counted, expected,
            "toolfan_cache_total{{outcome={outcome:?}}}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn failures_are_shared_with_joiners_but_not_stored_unless_asked() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let redis = RedisServer::start()?;
    let runs = Arc::new(AtomicU32::new(0));
    let counter = runs.clone();
    cluster
        .worker(Worker::builder().cache(cached_by(&redis)).tool(
            "broken",
            move |_ctx: TaskContext, _args: Value| {
                let counter = counter.clone();
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Err::<Value, _>(ToolError::new("upstream says no"))
                }
            },
        ))
        .await?;
    let client = cluster.client().await?;
    let call = || Task::new("broken", json!({"q": 1})).cached();
    // Two equal calls at once: one run, both get its failure.
    let results = client.fanout(vec![call(), call()]).await?;
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    for result in &results {
        assert_eq!(
            result.error().map(|e| e.message.as_str()),
            Some("upstream says no")
        );
    }
    // Not stored: the next call runs again.
    client.fanout(vec![call()]).await?;
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    // Stored when asked.
    client.fanout(vec![call().cache_failures()]).await?;
    let again = client.fanout(vec![call().cache_failures()]).await?;
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    assert_eq!(
        again[0].error().map(|e| e.kind.clone()),
        Some(ErrorKind::ToolError)
    );
    Ok(())
}

#[tokio::test]
async fn a_prefetched_call_is_taken_over_by_the_confirmed_one() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let redis = RedisServer::start()?;
    let runs = Arc::new(Mutex::new(Vec::new()));
    cluster
        .worker(counted(runs.clone(), 500).cache(cached_by(&redis)))
        .await?;
    let client = cluster.client().await?;
    let tasks: Vec<Task> = (0..5).map(|i| Task::new("slow", json!({"i": i}))).collect();

    client.prefetch(tasks.clone()).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let results = client.fanout(tasks).await?;
    let took = started.elapsed();
    eprintln!("prefetched 300 ms earlier, the fanout was answered in {took:?}");
    for (i, result) in results.iter().enumerate() {
        assert_eq!(result.value().unwrap()["answer"], json!({"i": i}));
        assert_eq!(result.cache, Some(CacheUse::Joined), "task {i}");
    }
    assert!(
        took < Duration::from_millis(400),
        "answered {took:?} after the fanout (ideal ~200 ms)"
    );
    assert_eq!(
        runs.lock().unwrap().len(),
        5,
        "each tool ran once: {:?}",
        runs.lock().unwrap()
    );
    Ok(())
}

#[tokio::test]
async fn an_unclaimed_prefetch_is_cancelled_after_its_ttl() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let redis = RedisServer::start()?;
    let finished = Arc::new(AtomicU32::new(0));
    let started = Arc::new(AtomicU32::new(0));
    let (f, s) = (finished.clone(), started.clone());
    let registry = prometheus::Registry::new();
    let builder = Worker::builder().options(WorkerOptions {
        metrics: registry.clone(),
        ..WorkerOptions::default()
    });
    cluster
        .worker(builder.cache(cached_by(&redis)).tool(
            "long",
            move |_ctx: TaskContext, _args: Value| {
                let (f, s) = (f.clone(), s.clone());
                async move {
                    s.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    f.fetch_add(1, Ordering::SeqCst);
                    Ok(json!("done"))
                }
            },
        ))
        .await?;
    let client = cluster.client().await?;
    client
        .prefetch_for(
            vec![Task::new("long", json!({}))],
            Duration::from_millis(300),
        )
        .await?;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(started.load(Ordering::SeqCst), 1, "the prefetch started");
    assert_eq!(
        finished.load(Ordering::SeqCst),
        0,
        "nobody claimed it: it was cancelled at its TTL"
    );
    assert_eq!(
        outcome_count(&registry, "toolfan_prefetch_total", "unclaimed"),
        1.0
    );
    // Nothing was stored: the confirmed call runs (and takes 1.5 s).
    let begun = Instant::now();
    let results = client.fanout(vec![Task::new("long", json!({}))]).await?;
    assert_eq!(results[0].value(), Some(&json!("done")));
    assert!(begun.elapsed() >= Duration::from_millis(1400));
    Ok(())
}

#[tokio::test]
async fn a_flight_whose_leader_is_killed_is_taken_over() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let redis = RedisServer::start()?;
    let url = cluster.nats.url();
    let redis_url = redis.url();
    // One slot each: the leader's worker is busy, so the second call lands on the other.
    let mut workers = Vec::new();
    for id in ["fl-a", "fl-b"] {
        workers.push(toolfan_e2e::spawn(
            "toolfan-worker",
            &[
                "--nats-url",
                &url,
                "--redis-url",
                &redis_url,
                "--id",
                id,
                "--concurrency",
                "1",
                "--ack-wait-ms",
                "1000",
            ],
        )?);
    }
    cluster
        .wait_for_workers(&["fl-a".to_owned(), "fl-b".to_owned()])
        .await?;
    let client = cluster.client().await?;
    let call = || Job::new(vec![Task::new("sleep", json!({"ms": 1500})).cached()]);
    let first = client.submit(call()).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = client.submit(call()).await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The leader is the worker running a tool; the other only waits.
    let live = client.workers(Duration::from_millis(300)).await?;
    let leader = live
        .iter()
        .find(|w| w.in_flight == 1)
        .expect("a worker runs the call");
    assert_eq!(
        live.iter().filter(|w| w.in_flight == 1).count(),
        1,
        "one execution: {live:?}"
    );
    let killed = Instant::now();
    let index = if leader.id == "fl-a" { 0 } else { 1 };
    workers[index].kill();

    let (first, second) = tokio::try_join!(first.results(), second.results())?;
    let recovered = killed.elapsed();
    assert_eq!(first[0].value(), Some(&json!({"slept_ms": 1500})));
    assert_eq!(second[0].value(), Some(&json!({"slept_ms": 1500})));
    eprintln!("both callers answered {recovered:?} after the leader was killed");
    // The flight lease (5 s) bounds the takeover, plus one run of 1.5 s.
    assert!(recovered < Duration::from_secs(9), "{recovered:?}");
    Ok(())
}

#[tokio::test]
async fn cached_calls_run_uncached_while_redis_is_down() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let mut redis = RedisServer::start()?;
    let runs = Arc::new(Mutex::new(Vec::new()));
    let registry = prometheus::Registry::new();
    cluster
        .worker(counted_in(runs.clone(), 50, registry.clone()).cache(cached_by(&redis)))
        .await?;
    let client = cluster.client().await?;
    let call = || Task::new("slow", json!({"q": "same"})).cached();
    client.fanout(vec![call()]).await?;
    assert_eq!(runs.lock().unwrap().len(), 1);

    redis.kill();
    let started = Instant::now();
    let results = client.fanout(vec![call(), call()]).await?;
    let took = started.elapsed();
    assert!(
        results.iter().all(|r| r.is_ok() && r.cache.is_none()),
        "{results:?}"
    );
    assert_eq!(runs.lock().unwrap().len(), 3, "both ran, uncached");
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert_eq!(
        outcome_count(&registry, "toolfan_cache_total", "unavailable"),
        2.0
    );
    eprintln!("with Redis down, two cached calls ran uncached in {took:?}");

    // Back (empty: nothing was persisted): sharing resumes.
    redis.restart()?;
    let results = client.fanout(vec![call()]).await?;
    assert!(results[0].is_ok());
    let again = client.fanout(vec![call()]).await?;
    assert_eq!(again[0].cache, Some(CacheUse::Hit));
    Ok(())
}
