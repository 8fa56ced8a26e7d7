//! `toolfan::testing` against real servers: the fleet starts, fake tools
//! inject latency and failures, and the recorders see what happened.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use toolfan::testing::{FakeTool, LocalFleet, TestingError, ToolError};
use toolfan::{ErrorKind, Job, Task};

/// Runs `test`, failing it if it takes more than a minute.
async fn bounded<F: Future<Output = anyhow::Result<()>>>(test: F) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(60), test).await?
}

#[tokio::test]
async fn a_fanout_over_a_fake_tool_comes_back_in_order_and_is_recorded() -> anyhow::Result<()> {
    bounded(async {
        let search = FakeTool::new()
            .latency(Duration::from_millis(100))
            .returns(|args| json!({"hit": args["q"]}));
        let fleet = LocalFleet::builder().tool("search", search).start().await?;
        let queries: Vec<String> = (0..6).map(|i| format!("query {i}")).collect();
        let tasks = queries
            .iter()
            .map(|q| Task::new("search", json!({ "q": q })))
            .collect();
        let results = fleet.client().fanout(tasks).await?;
        assert_eq!(results.len(), queries.len());
        for (i, (result, q)) in results.iter().zip(&queries).enumerate() {
            assert_eq!(result.index as usize, i);
            assert_eq!(result.value(), Some(&json!({ "hit": q })), "{result:?}");
        }
        let recorder = fleet.recorder("search").expect("search is recorded");
        assert_eq!(recorder.calls(), queries.len());
        let mut seen: Vec<Value> = recorder.args();
        seen.sort_by_key(|args| args["q"].as_str().map(str::to_owned));
        let sent: Vec<Value> = queries.iter().map(|q| json!({ "q": q })).collect();
        assert_eq!(seen, sent);
        assert_eq!(recorder.running(), 0);
        assert!(fleet.recorder("nope").is_none());
        recorder.reset();
        assert_eq!((recorder.calls(), recorder.peak_concurrency()), (0, 0));
        fleet.stop().await;
        Ok(())
    })
    .await
}

/// The peak the fleet's recorder reports and the one a tool closure counts
/// itself, for `calls` calls of 300 ms on a worker of `concurrency` slots
/// in a job whose window is `calls` wide.
async fn peaks(concurrency: u32, calls: usize) -> anyhow::Result<(usize, usize)> {
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (r, p) = (running.clone(), peak.clone());
    let fleet = LocalFleet::builder()
        .tool_fn("slow", move |_ctx, args| {
            let (running, peak) = (r.clone(), p.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                Ok::<_, ToolError>(args)
            }
        })
        .concurrency(concurrency)
        .start()
        .await?;
    let tasks = (0..calls)
        .map(|i| Task::new("slow", json!({ "i": i })))
        .collect();
    let job = Job::new(tasks).max_concurrency(calls as u32);
    let results = fleet.client().submit(job).await?.results().await?;
    assert!(results.iter().all(|r| r.value().is_some()), "{results:?}");
    let recorder = fleet.recorder("slow").expect("slow is recorded");
    assert_eq!(recorder.calls(), calls);
    Ok((recorder.peak_concurrency(), peak.load(Ordering::SeqCst)))
}

#[tokio::test]
async fn the_recorded_peak_is_the_workers_concurrency_when_it_is_the_bound() -> anyhow::Result<()> {
    bounded(async {
        assert_eq!(peaks(4, 20).await?, (4, 4));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_recorded_peak_is_the_number_of_calls_when_they_all_fit() -> anyhow::Result<()> {
    bounded(async {
        assert_eq!(peaks(16, 8).await?, (8, 8));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn injected_failures_are_retried_or_surface_with_their_kind() -> anyhow::Result<()> {
    bounded(async {
        let fleet = LocalFleet::builder()
            .tool("flaky", FakeTool::new().fail_first(1))
            .tool(
                "broken",
                FakeTool::new().fail_with(ToolError::invalid_args("no such page")),
            )
            .start()
            .await?;
        let results = fleet
            .client()
            .fanout(vec![
                Task::new("flaky", json!({"n": 1})).retries(1),
                Task::new("broken", json!({"n": 2})).retries(3),
            ])
            .await?;
        assert_eq!(results[0].value(), Some(&json!({"n": 1})), "{results:?}");
        assert_eq!(results[0].attempts, 2);
        assert_eq!(fleet.recorder("flaky").map(|r| r.calls()), Some(2));
        let error = results[1].error().expect("broken fails");
        assert_eq!(error.kind, ErrorKind::InvalidArgs);
        assert!(error.message.contains("no such page"), "{error:?}");
        assert_eq!(fleet.recorder("broken").map(|r| r.calls()), Some(1));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn with_redis_a_cached_call_runs_once() -> anyhow::Result<()> {
    bounded(async {
        let fleet = LocalFleet::builder()
            .tool("lookup", FakeTool::new())
            .redis()
            .start()
            .await?;
        assert!(fleet.redis_url().is_some());
        for _ in 0..2 {
            let results = fleet
                .client()
                .fanout(vec![Task::new("lookup", json!({"k": "v"})).cached()])
                .await?;
            assert_eq!(results[0].value(), Some(&json!({"k": "v"})), "{results:?}");
        }
        assert_eq!(fleet.recorder("lookup").map(|r| r.calls()), Some(1));
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_fleet_that_cannot_come_up_says_which_part() -> anyhow::Result<()> {
    bounded(async {
        let error = LocalFleet::builder()
            .start()
            .await
            .expect_err("a worker without tools is refused");
        assert!(matches!(error, TestingError::Worker(_)), "{error:?}");
        assert!(error.to_string().contains("worker"), "{error}");
        let error = LocalFleet::builder()
            .tool("twice", FakeTool::new())
            .tool("twice", FakeTool::new())
            .start()
            .await
            .expect_err("a tool added twice is refused");
        assert!(matches!(error, TestingError::DuplicateTool(_)), "{error:?}");
        Ok(())
    })
    .await
}
