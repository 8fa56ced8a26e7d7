//! The coordinators' jobs, seen from a client and from the `toolfan`
//! binary: a running job is listed live with its results growing, then
//! among the recent jobs with its outcome and duration; `toolfan job ID`
//! shows its tasks; a bad id is a clear error.

use std::time::Duration;

use serde_json::{json, Value};
use toolfan::{Client, Job, LiveJobInfo, Task};
use toolfan_e2e::{toolfan_cli as cli, Cluster};

const LISTEN: Duration = Duration::from_millis(300);

async fn cli_json(url: &str, args: &[&str]) -> anyhow::Result<Value> {
    let (ok, out, err) = cli(url, args).await?;
    anyhow::ensure!(ok, "toolfan {args:?} failed: {err}");
    Ok(serde_json::from_str(&out)?)
}

/// The live entry of `job`, if a coordinator lists it.
async fn live(client: &Client, job: &toolfan::JobId) -> anyhow::Result<Option<LiveJobInfo>> {
    let listings = client.jobs(LISTEN).await?;
    Ok(listings
        .into_iter()
        .flat_map(|l| l.live)
        .find(|j| &j.job == job))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_are_listed_live_then_recent() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(4).await?;
    let url = cluster.nats.url();
    let client = cluster.client().await?;
    // Two tools, alternating: `toolfan job` knows each task's while the job is live.
    let tool = |i: usize| if i.is_multiple_of(2) { "sleep" } else { "span" };
    let tasks = (0..20)
        .map(|i| Task::new(tool(i), json!({"ms": 300})))
        .collect();
    let job = Job::new(tasks)
        .max_concurrency(2)
        .deadline(Duration::from_secs(30));
    let handle = client.submit(job).await?;
    let id = handle.id().clone();

    // Live, with results growing between two reads.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let first = live(&client, &id).await?.expect("the job is listed live");
    assert_eq!(first.total, 20);
    assert_eq!(first.caller.as_str(), "tester");
    assert_eq!(first.tools.len(), 2);
    assert!(first.task_tools.is_empty(), "told only when asked about");
    assert!(first.deadline_unix_ms > first.started_unix_ms);
    tokio::time::sleep(Duration::from_millis(900)).await;
    let second = live(&client, &id).await?.expect("the job is still live");
    assert!(
        second.done > first.done,
        "results grew: {} then {}",
        first.done,
        second.done
    );
    assert!(second.done < 20);

    // The binary sees it live too.
    let listing = cli_json(&url, &["jobs", "--json"]).await?;
    let listed = listing[0]["live"].as_array().expect("live jobs");
    assert!(listed.iter().any(|j| j["job"] == id.as_str()), "{listing}");
    let shown = cli_json(&url, &["job", id.as_str(), "--json"]).await?;
    assert_eq!(shown["state"], "live", "{shown}");
    assert!(shown["live"]["done"].as_u64() >= Some(u64::from(second.done)));
    let tasks = shown["tasks"].as_array().expect("tasks");
    assert!(!tasks.is_empty());
    for task in tasks {
        let index = task["index"].as_u64().expect("an index") as usize;
        assert_eq!(task["tool"], tool(index), "{task}");
    }

    // Once done: among the recent jobs, with outcome and duration.
    let outcome = tokio::time::timeout(Duration::from_secs(20), handle.wait()).await??;
    assert_eq!(outcome.summary.succeeded, 20);
    assert!(live(&client, &id).await?.is_none(), "no longer live");
    let listings = client.jobs(LISTEN).await?;
    let recent = listings
        .iter()
        .flat_map(|l| &l.recent)
        .find(|j| j.job == id)
        .expect("among the recent jobs");
    assert_eq!((recent.succeeded, recent.failed, recent.total), (20, 0, 20));
    assert_eq!(recent.ended_by.as_str(), "all_done");
    assert!(recent.duration_ms >= 2_900, "{} ms", recent.duration_ms);

    let listing = cli_json(&url, &["jobs", "--json"]).await?;
    let recent = listing[0]["recent"].as_array().expect("recent jobs");
    let entry = recent
        .iter()
        .find(|j| j["job"] == id.as_str())
        .expect("listed");
    assert_eq!(entry["status"], "completed");
    assert!(entry["duration_ms"].as_u64() >= Some(2_900));

    let shown = cli_json(&url, &["job", id.as_str(), "--json"]).await?;
    assert_eq!(shown["state"], "finished", "{shown}");
    let tasks = shown["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 20);
    for (i, task) in tasks.iter().enumerate() {
        assert_eq!(task["index"], i);
        assert!(
            task.get("tool").is_none(),
            "a two-tool job's finished tasks: {task}"
        );
        assert_eq!(task["ok"], true);
        assert_eq!(task["attempts"], 1);
        assert!(task["duration_ms"].as_u64() >= Some(290), "{task}");
    }
    let (ok, table, _) = cli(&url, &["job", id.as_str()]).await?;
    assert!(ok && table.contains("20 task(s) with a result"), "{table}");
    println!("toolfan job {id}:\n{table}");
    let (ok, table, _) = cli(&url, &["jobs"]).await?;
    assert!(ok && table.contains(id.as_str()), "{table}");
    println!("toolfan jobs:\n{table}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_job_id_is_a_clear_error() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let url = cluster.nats.url();
    let (ok, _, err) = cli(&url, &["job", "not a.job"]).await?;
    assert!(!ok);
    assert!(err.contains("\"not a.job\" is not a job id"), "{err}");
    let (ok, _, err) = cli(&url, &["job", "01JNOSUCHJOB"]).await?;
    assert!(!ok);
    assert!(err.contains("no job 01JNOSUCHJOB"), "{err}");
    Ok(())
}
