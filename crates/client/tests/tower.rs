//! `toolfan::tower::ToolRouter` on a real local fleet (`toolfan::testing`):
//! call order, fail-fast, tower layers on top, and readiness.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::testing::{FakeTool, LocalFleet, ToolError};
use toolfan::tower::{ToolInvocation, ToolOutput, ToolRouter};
use toolfan::{ErrorKind, Policy};
use tower::{Service, ServiceBuilder, ServiceExt};

/// Runs `test`, failing it if it takes more than a minute.
async fn bounded<F: Future<Output = anyhow::Result<()>>>(test: F) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(60), test).await?
}

async fn batch(
    router: &mut ToolRouter,
    calls: Vec<ToolInvocation>,
) -> anyhow::Result<Vec<ToolOutput>> {
    let ready = ServiceExt::<Vec<ToolInvocation>>::ready(router).await?;
    Ok(ready.call(calls).await?)
}

#[tokio::test]
async fn a_batch_of_twenty_comes_back_in_call_order_whatever_order_it_finishes_in(
) -> anyhow::Result<()> {
    bounded(async {
        let echo = FakeTool::new().latency_from_args("ms");
        let fleet = LocalFleet::builder()
            .tool("echo", echo)
            .concurrency(32)
            .start()
            .await?;
        let mut router = ToolRouter::new(fleet.client().clone());
        // Latencies shuffled: call i sleeps (i * 37 % 20) * 15 ms.
        let calls: Vec<ToolInvocation> = (0..20)
            .map(|i| {
                let args = json!({"i": i, "ms": (i * 37 % 20) * 15});
                ToolInvocation::new(format!("call_{i}"), "echo", args)
            })
            .collect();
        let outputs = batch(&mut router, calls.clone()).await?;
        assert_eq!(outputs.len(), 20);
        for (call, output) in calls.iter().zip(&outputs) {
            assert_eq!(output.id, call.id);
            assert_eq!(
                output.result.as_ref().ok(),
                Some(&call.arguments),
                "{output:?}"
            );
        }
        let recorder = fleet.recorder("echo").expect("echo is served");
        assert_eq!(recorder.calls(), 20, "one batch, every call run once");
        assert!(recorder.peak_concurrency() > 1, "the batch ran in parallel");
        Ok(())
    })
    .await
}

#[tokio::test]
async fn fail_fast_answers_at_the_first_failure_and_cancels_the_rest_on_the_fleet(
) -> anyhow::Result<()> {
    bounded(async {
        let boom = FakeTool::new()
            .latency(Duration::from_millis(100))
            .fail_with(ToolError::new("no luck"));
        let fleet = LocalFleet::builder()
            .tool("slow", FakeTool::new().latency(Duration::from_secs(20)))
            .tool("boom", boom)
            .concurrency(16)
            .start()
            .await?;
        let mut router = ToolRouter::new(fleet.client().clone()).policy(Policy::FailFast);
        let mut calls: Vec<ToolInvocation> = (0..5)
            .map(|i| ToolInvocation::new(format!("slow_{i}"), "slow", json!({})))
            .collect();
        calls.insert(2, ToolInvocation::new("boom", "boom", json!({})));
        let started = Instant::now();
        let outputs = batch(&mut router, calls).await?;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "answered in {took:?}, not after the slow calls' 20 s"
        );
        let kinds: Vec<(String, ErrorKind)> = outputs
            .iter()
            .map(|o| (o.id.clone(), o.result.as_ref().unwrap_err().kind.clone()))
            .collect();
        assert_eq!(kinds[2], ("boom".to_owned(), ErrorKind::ToolError));
        assert!(
            outputs[2].content().contains("no luck"),
            "{}",
            outputs[2].content()
        );
        for (id, kind) in kinds.iter().filter(|(id, _)| id != "boom") {
            assert_eq!(*kind, ErrorKind::Cancelled, "{id}");
        }
        // The slow calls stop running on the worker, not just in the answer.
        let slow = fleet.recorder("slow").expect("slow is served");
        let stop_by = Instant::now() + Duration::from_secs(3);
        while slow.running() > 0 && Instant::now() < stop_by {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            slow.running(),
            0,
            "the cancelled calls were stopped on the fleet"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_concurrency_limit_layer_bounds_what_runs_at_once() -> anyhow::Result<()> {
    bounded(async {
        let fleet = LocalFleet::builder()
            .tool(
                "search",
                FakeTool::new().latency(Duration::from_millis(300)),
            )
            .concurrency(16)
            .start()
            .await?;
        let limited = ServiceBuilder::new()
            .concurrency_limit(3)
            .service(ToolRouter::new(fleet.client().clone()));
        let calls = (0..12).map(|i| {
            let mut service = limited.clone();
            tokio::spawn(async move {
                let call = ToolInvocation::new(format!("c{i}"), "search", json!({"i": i}));
                let ready = ServiceExt::<ToolInvocation>::ready(&mut service).await?;
                ready.call(call).await
            })
        });
        for joined in futures::future::join_all(calls).await {
            let output = joined??;
            assert!(!output.is_error(), "{output:?}");
        }
        let search = fleet.recorder("search").expect("search is served");
        assert_eq!(search.calls(), 12);
        assert_eq!(
            search.peak_concurrency(),
            3,
            "the layer's bound, measured on the worker"
        );
        Ok(())
    })
    .await
}

#[tokio::test]
async fn a_bad_tool_name_fails_alone() -> anyhow::Result<()> {
    bounded(async {
        let fleet = LocalFleet::builder()
            .tool("echo", FakeTool::new())
            .start()
            .await?;
        let mut router = ToolRouter::new(fleet.client().clone());
        let calls = vec![
            ToolInvocation::new("a", "echo", json!({"x": 1})),
            ToolInvocation::new("b", "not a tool!", json!({})),
        ];
        let outputs = batch(&mut router, calls).await?;
        assert_eq!(outputs[0].result.as_ref().ok(), Some(&json!({"x": 1})));
        let refused = outputs[1].result.as_ref().unwrap_err();
        assert_eq!(refused.kind, ErrorKind::InvalidArgs);
        assert!(refused.message.contains("not a tool!"), "{refused}");

        Ok(())
    })
    .await
}

#[tokio::test]
async fn the_router_is_ready_only_while_its_client_is_connected() -> anyhow::Result<()> {
    bounded(async {
        let mut nats = toolfan_testkit::NatsServer::start()?;
        let client = toolfan::Client::connect(toolfan::ClientOptions::new(nats.url())).await?;
        let mut router = ToolRouter::new(client);
        assert!(
            is_ready(&mut router, Duration::from_secs(1)).await,
            "connected: ready"
        );
        nats.kill();
        // The client notices the lost server within its ping interval.
        let gone_by = Instant::now() + Duration::from_secs(10);
        while is_ready(&mut router, Duration::from_millis(100)).await && Instant::now() < gone_by {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            !is_ready(&mut router, Duration::from_millis(500)).await,
            "not ready while the server is gone"
        );
        nats.restart()?;
        assert!(
            is_ready(&mut router, Duration::from_secs(15)).await,
            "ready again once the client has reconnected"
        );
        Ok(())
    })
    .await
}

/// Whether `router` becomes ready within `within`.
async fn is_ready(router: &mut ToolRouter, within: Duration) -> bool {
    let ready = ServiceExt::<ToolInvocation>::ready(router);
    tokio::time::timeout(within, ready).await.is_ok()
}

/// A round at the size agents reach (hundreds of calls) is still one job,
/// answered in call order.
#[tokio::test]
async fn a_round_of_a_thousand_calls_is_one_job_in_call_order() -> anyhow::Result<()> {
    bounded(async {
        let fleet = LocalFleet::builder()
            .tool("echo", FakeTool::new().latency(Duration::from_millis(5)))
            .concurrency(128)
            .start()
            .await?;
        let mut router = ToolRouter::new(fleet.client().clone()).max_concurrency(256);
        let calls: Vec<ToolInvocation> = (0..1000)
            .map(|i| ToolInvocation::new(format!("c{i}"), "echo", json!({ "i": i })))
            .collect();
        let outputs = batch(&mut router, calls).await?;
        let ids: Vec<String> = outputs.iter().map(|o| o.id.clone()).collect();
        let expected: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        assert_eq!(ids, expected);
        for (i, output) in outputs.iter().enumerate() {
            assert_eq!(output.result.as_ref().ok(), Some(&json!({ "i": i })));
        }
        let echo = fleet.recorder("echo").expect("echo is served");
        assert_eq!(echo.calls(), 1000);
        assert!(
            echo.peak_concurrency() <= 128,
            "{}",
            echo.peak_concurrency()
        );
        Ok(())
    })
    .await
}
