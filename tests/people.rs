//! A person in the loop, against real servers and binaries: a task handed
//! to a person frees its worker slot, is listed by `toolfan pending`, and
//! `toolfan resolve` (another process) completes it with a value or
//! rejects it; it survives its coordinator being SIGKILLed; the deadline
//! still ends it; and another caller cannot resolve it under the shipped
//! NATS permissions.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolfan::{ErrorKind, Job, JobEvent, JobHandle, Task, WaitingTask};
use toolfan_e2e::secured::caller;
use toolfan_e2e::{quick_takeover_coordinator, toolfan_cli as cli, Cluster};

fn approve(prompt: &str) -> Task {
    Task::new("approve", json!({ "prompt": prompt }))
}

/// Reads events until the job says a task waits.
async fn until_waiting(handle: &mut JobHandle) -> anyhow::Result<WaitingTask> {
    let next = tokio::time::timeout(Duration::from_secs(10), handle.next_event()).await?;
    match next {
        Some(Ok(JobEvent::Waiting(task))) => Ok(task),
        other => anyhow::bail!("expected a waiting event, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_task_frees_its_slot_and_another_process_resolves_it() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(1).await?; // one slot
    let url = cluster.nats.url();
    let client = cluster.client().await?;
    let mut handle = client.submit(Job::new(vec![approve("Ship it?")])).await?;
    let job = handle.id().to_string();
    let waiting = until_waiting(&mut handle).await?;
    assert_eq!(
        (waiting.index, waiting.waiting.prompt.as_str()),
        (0, "Ship it?")
    );

    // The one slot is free: another task runs while the first waits.
    let started = Instant::now();
    let other = client
        .fanout(vec![Task::new("sleep", json!({"ms": 100}))])
        .await?;
    assert!(other[0].is_ok() && started.elapsed() < Duration::from_secs(3));

    let (ok, out, err) = cli(&url, &["pending", "--json"]).await?;
    assert!(ok, "{err}");
    let listed: Vec<Value> = out
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["job"], json!(job));
    assert_eq!(
        (listed[0]["index"].clone(), listed[0]["tool"].clone()),
        (json!(0), json!("approve"))
    );
    assert_eq!(listed[0]["prompt"], json!("Ship it?"));

    // A task that does not wait cannot be resolved, and says why.
    let (ok, _, err) = cli(&url, &["resolve", &job, "3", "true", "--caller", "tester"]).await?;
    assert!(!ok && err.contains("no such task"), "{err}");
    let value = r#"{"approved": true}"#;
    let (ok, _, err) = cli(&url, &["resolve", &job, "0", value, "--caller", "tester"]).await?;
    assert!(ok, "{err}");
    let results = handle.results().await?;
    assert_eq!(results[0].value(), Some(&json!({"approved": true})));

    // Rejected: the task reads the reason.
    let mut handle = client.submit(Job::new(vec![approve("Delete it?")])).await?;
    let job = handle.id().to_string();
    until_waiting(&mut handle).await?;
    let reject = [
        "resolve",
        &job,
        "0",
        "--reject",
        "too risky",
        "--caller",
        "tester",
    ];
    let (ok, _, err) = cli(&url, &reject).await?;
    assert!(ok, "{err}");
    let results = handle.results().await?;
    let error = results[0].error().expect("rejected");
    assert_eq!(
        (&error.kind, error.message.as_str()),
        (&ErrorKind::Rejected, "too risky")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_waiting_task_survives_its_coordinator_and_reads_the_deadline() -> anyhow::Result<()> {
    let cluster = Cluster::without_coordinator()?;
    let url = cluster.nats.url();
    let mut first = quick_takeover_coordinator(&url)?;
    cluster.builtin_worker(1).await?;
    let client = cluster.client().await?;
    let job =
        Job::new(vec![approve("Pay?"), approve("Too late?")]).deadline(Duration::from_secs(30));
    let mut handle = client.submit(job).await?;
    let id = handle.id().clone();
    until_waiting(&mut handle).await?;
    until_waiting(&mut handle).await?;

    first.kill();
    let _second = quick_takeover_coordinator(&url)?;
    // The new coordinator knows both tasks wait, from the stored records.
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let pending = client.pending(Duration::from_millis(300)).await?;
        if pending.iter().filter(|p| p.job == id).count() == 2 {
            break;
        }
        anyhow::ensure!(
            Instant::now() < until,
            "not waiting after the takeover: {pending:?}"
        );
    }
    client.resolve(&id, 0, json!("paid")).await?;
    let again = client.resolve(&id, 0, json!("twice")).await.unwrap_err();
    assert!(
        again.to_string().contains("resolved") || again.to_string().contains("result"),
        "{again}"
    );
    client.reject(&id, 1, "no").await?;
    let results = handle.results().await?;
    assert_eq!(results[0].value(), Some(&json!("paid")));
    assert_eq!(
        results[1].error().map(|e| &e.kind),
        Some(&ErrorKind::Rejected)
    );

    // Past its deadline a waiting task reads deadline_exceeded.
    let job = Job::new(vec![approve("Anyone?")]).deadline(Duration::from_millis(1500));
    let started = Instant::now();
    let results = client.submit(job).await?.results().await?;
    assert_eq!(
        results[0].error().map(|e| &e.kind),
        Some(&ErrorKind::DeadlineExceeded)
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn only_the_jobs_caller_resolves_it_under_the_auth_config() -> anyhow::Result<()> {
    let (nats, stop) = toolfan_e2e::secured::start("people-w", &["approve"]).await?;
    let _stop = stop.drop_guard();
    let alice = caller(&nats, "alice").await?;
    let bob = caller(&nats, "bob").await?;
    let mut handle = alice.submit(Job::new(vec![approve("Alice's?")])).await?;
    let id = handle.id().clone();
    until_waiting(&mut handle).await?;

    // Bob may not publish on alice's resolve subject: nothing reaches a coordinator.
    let refused = bob.resolve(&id, 0, json!("bob's")).await.unwrap_err();
    assert!(
        refused.to_string().contains("no coordinator runs the job"),
        "{refused}"
    );
    alice.resolve(&id, 0, json!("alice's")).await?;
    let results = handle.results().await?;
    assert_eq!(results[0].value(), Some(&json!("alice's")));
    Ok(())
}
