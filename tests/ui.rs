//! `toolfan ui` in a real browser: a cluster (an in-process coordinator
//! and a built-in worker), the `toolfan ui` binary and a slow job; headless
//! chromium renders the page twice and must show the worker and the job's
//! progress growing; then a screenshot of it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{Job, Task};
use toolfan_e2e::Cluster;
use toolfan_limits::{Decision, LimitSpec, LimitStore, Limiter, LimiterOptions};

/// Runs headless chromium on `url` with `extra` flags (30 s at most); its stdout.
async fn chromium(home: &Path, url: &str, extra: &[&str]) -> anyhow::Result<String> {
    let profile = tempfile::tempdir_in(home)?;
    let mut cmd = tokio::process::Command::new("chromium");
    cmd.env("HOME", home)
        .args(["--headless=new", "--no-sandbox", "--disable-gpu"])
        .args([
            "--no-first-run",
            "--disable-extensions",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--virtual-time-budget=3000"])
        .args(extra)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output()).await??;
    anyhow::ensure!(out.status.success(), "chromium failed: {:?}", out.status);
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The `data-done` of job `id`'s progress bar in `dom`.
fn done_of(dom: &str, id: &str) -> Option<u32> {
    let at = dom.find(&format!(r#"data-job="{id}" data-done=""#))?;
    let rest = &dom[at..];
    let rest = &rest[rest.find("data-done=\"")? + 11..];
    rest[..rest.find('"')?].parse().ok()
}

/// Waits (10 s at most) until the UI answers `/api/state`.
async fn wait_for_ui(base: &str) -> anyhow::Result<()> {
    let http = toolfan_e2e::http_client();
    let started = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{base}/api/state")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the UI never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn screenshot_path() -> anyhow::Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&target)?;
    Ok(target.join("ui.png"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_page_shows_workers_and_live_progress() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(4).await?;
    let redis = toolfan_testkit::RedisServer::start()?;
    let store = LimitStore::connect(&redis.url(), "toolfan").await?;
    store.set("sleep", &LimitSpec::per_second(50, 5)).await?;
    store.set("db", &LimitSpec::concurrency(4)).await?;
    let _traffic = limit_traffic(&redis.url()).await?;
    let client = cluster.client().await?;
    let workers = client.workers(Duration::from_millis(300)).await?;
    let worker = workers.first().expect("a worker").id.clone();

    let port = toolfan_testkit::server::free_port()?;
    let addr = format!("127.0.0.1:{port}");
    let url = cluster.nats.url();
    let redis_url = redis.url();
    let _ui = toolfan_e2e::spawn(
        "toolfan",
        &[
            "ui",
            "--addr",
            &addr,
            "--nats-url",
            &url,
            "--redis-url",
            &redis_url,
        ],
    )?;
    let base = format!("http://{addr}");
    wait_for_ui(&base).await?;

    // A finished job for the recent table, then a slow one running.
    let quick = client
        .submit(Job::new(vec![Task::new("echo", json!({"hi": 1}))]))
        .await?;
    tokio::time::timeout(Duration::from_secs(10), quick.wait()).await??;
    let tasks = (0..60)
        .map(|_| Task::new("sleep", json!({"ms": 400})))
        .collect();
    let slow = Job::new(tasks)
        .max_concurrency(2)
        .deadline(Duration::from_secs(40));
    let handle = client.submit(slow).await?;
    let id = handle.id().to_string();
    tokio::time::sleep(Duration::from_millis(600)).await;

    let home = tempfile::tempdir()?;
    let page = format!("{base}/");
    let first = chromium(home.path(), &page, &["--dump-dom"]).await?;
    assert!(first.contains(&worker), "the worker is listed: {first}");
    let done1 = done_of(&first, &id).unwrap_or_else(|| panic!("the job's bar: {first}"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = chromium(home.path(), &page, &["--dump-dom"]).await?;
    let done2 = done_of(&second, &id).unwrap_or_else(|| panic!("the job's bar: {second}"));
    // While the job still runs.
    let shot = screenshot_path()?;
    let _ = std::fs::remove_file(&shot);
    let flag = format!("--screenshot={}", shot.display());
    chromium(home.path(), &page, &[&flag, "--window-size=1280,900"]).await?;
    let size = std::fs::metadata(&shot)?.len();
    assert!(size > 20_000, "a screenshot of {size} bytes");
    println!("screenshot: {} ({size} bytes)", shot.display());
    assert!(done2 > done1, "progress grew: {done1} then {done2}");
    assert!(second.contains("data-worker="), "the workers table");
    assert!(
        second.contains(r#"<td class="mono" title="sleep">sleep</td>"#),
        "the sleep queue / limit"
    );
    assert!(second.contains("50/s burst 5"), "the limit: {second}");
    assert!(second.contains(quick_id_cell(&second)), "a recent job");
    let db = row(&second, r#"data-limit="db""#);
    assert!(db.contains(">1</td>"), "one lease held on db: {db}");
    let sleep = row(&second, r#"data-limit="sleep""#);
    let in_use = cells(sleep).nth(5).and_then(|c| c.parse::<f64>().ok());
    assert!(
        in_use.is_some_and(|u| u > 0.5),
        "sleep's burst is in use: {sleep}"
    );

    handle.cancel().await?;
    Ok(())
}

/// The first recent-job row of `dom` (the quick job finished before the slow one started).
fn quick_id_cell(dom: &str) -> &str {
    let at = dom.find("<tr data-job=").expect("a recent job row");
    &dom[at..at + 20]
}

/// Takes the `sleep` rate as fast as it admits (its burst stays in use) and holds one `db` lease,
/// as a worker would, until what is returned drops.
async fn limit_traffic(redis_url: &str) -> anyhow::Result<impl Drop> {
    let limiter = Limiter::new(LimiterOptions::new(redis_url))?;
    let cap = [("db".to_owned(), LimitSpec::concurrency(4))];
    let Decision::Admitted(lease) = limiter.acquire(&cap, 1, "held").await? else {
        anyhow::bail!("the db lease was refused");
    };
    let rate = [("sleep".to_owned(), LimitSpec::per_second(50, 5))];
    let task = tokio::spawn(async move {
        let _lease = lease;
        loop {
            let wait = match limiter.acquire(&rate, 1, "taker").await {
                Ok(Decision::Wait { after, .. }) => after.min(Duration::from_millis(20)),
                _ => Duration::from_millis(1),
            };
            tokio::time::sleep(wait).await;
        }
    });
    Ok(tokio_util::task::AbortOnDropHandle::new(task))
}

/// The table row of `dom` holding `marker`.
fn row<'a>(dom: &'a str, marker: &str) -> &'a str {
    let at = dom
        .find(marker)
        .unwrap_or_else(|| panic!("no row {marker}"));
    let end = dom[at..].find("</tr>").map_or(dom.len(), |e| at + e);
    &dom[at..end]
}

/// The texts of a row's cells.
fn cells(row: &str) -> impl Iterator<Item = &str> {
    row.split("<td").skip(1).filter_map(|c| {
        let text = &c[c.find('>')? + 1..];
        Some(text[..text.find("</td>")?].trim())
    })
}

#[tokio::test]
async fn a_public_address_needs_public() -> anyhow::Result<()> {
    let run = tokio::process::Command::new(toolfan_testkit::binary("toolfan")?)
        .args([
            "ui",
            "--addr",
            "0.0.0.0:0",
            "--nats-url",
            "nats://127.0.0.1:1",
        ])
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), run).await??;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("not a loopback address: pass --public"),
        "{err}"
    );
    Ok(())
}
