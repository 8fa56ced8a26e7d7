//! MCP servers as a tool source of the `toolfan-worker` binary: the Python
//! server `tests/mcp/calc_server.py` (the official MCP SDK, from the test
//! virtualenv) over stdio and over streamable HTTP, its tools served as
//! `calc_<tool>` under the fleet's limits, retries and deadlines.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toolfan::{CacheUse, ErrorKind, Job, Task, TaskResult};
use toolfan_e2e::fleet::rate;
use toolfan_e2e::{max_in_window, python, spawn, terminate, Cluster};
use toolfan_limits::LimitStore;
use toolfan_testkit::{Process, RedisServer};

fn server_script() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/calc_server.py");
    path.display().to_string()
}

/// A TOML string (paths may hold anything).
fn quoted(text: &str) -> String {
    Value::String(text.to_owned()).to_string()
}

/// The `[[mcp]]` entry of the stdio server, with `extra` lines.
fn stdio_entry(extra: &str) -> anyhow::Result<String> {
    let python = python()?.display().to_string();
    Ok(format!(
        "[[mcp]]\nname = \"calc\"\ncommand = [{}, {}, \"stdio\"]\n{extra}\n",
        quoted(&python),
        quoted(&server_script())
    ))
}

/// Starts the worker binary as `id` with the tools file `toml` (and Redis,
/// if given) and waits until it has announced itself.
async fn mcp_worker(
    cluster: &Cluster,
    id: &str,
    toml: &str,
    redis: Option<&str>,
) -> anyhow::Result<(Process, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tools.toml");
    std::fs::write(&path, toml)?;
    let url = cluster.nats.url();
    let path = path.to_str().expect("a UTF-8 temporary path");
    let mut args = vec!["--nats-url", &url, "--id", id, "--config", path];
    if let Some(redis) = redis {
        args.extend(["--redis-url", redis]);
    }
    let worker = spawn("toolfan-worker", &args)?;
    cluster.wait_for_workers(&[id.to_owned()]).await?;
    Ok((worker, dir))
}

/// Runs `toolfan` with `args` and reads its output as JSON.
async fn cli(args: &[&str]) -> anyhow::Result<Value> {
    let run = tokio::process::Command::new(toolfan_testkit::binary("toolfan")?)
        .args(args)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run).await??;
    anyhow::ensure!(
        out.status.success(),
        "toolfan {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Runs `tasks` as one job, timed, within 30 s.
async fn run(cluster: &Cluster, tasks: Vec<Task>) -> anyhow::Result<(Vec<TaskResult>, Duration)> {
    let client = cluster.client().await?;
    let job = Job::new(tasks)
        .max_concurrency(100)
        .deadline(Duration::from_secs(20));
    let started = Instant::now();
    let results = tokio::time::timeout(Duration::from_secs(30), async {
        client.submit(job).await?.results().await
    })
    .await??;
    Ok((results, started.elapsed()))
}

fn error_of(result: &TaskResult) -> (ErrorKind, bool, String) {
    let error = result
        .error()
        .unwrap_or_else(|| panic!("a failure: {result:?}"));
    (error.kind.clone(), error.retryable, error.message.clone())
}

#[tokio::test]
async fn a_stdio_server_answers_fails_and_runs_calls_concurrently() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (_worker, _dir) = mcp_worker(&cluster, "mcp-stdio", &stdio_entry("")?, None).await?;

    // Through the CLI: the fast tool.
    let url = cluster.nats.url();
    let job = json!({"tasks": [{"tool": "calc_add", "args": {"a": 2, "b": 3}}]}).to_string();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("job.json");
    std::fs::write(&path, job)?;
    let out = cli(&["submit", path.to_str().unwrap(), "--nats-url", &url]).await?;
    assert_eq!(out[0]["ok"], json!(true), "{out}");
    assert_eq!(out[0]["value"], json!({"result": "5"}), "{out}");

    // Structured content, a mapped name, the failing tool, bad args.
    let (results, _) = run(
        &cluster,
        vec![
            Task::new("calc_structured", json!({"x": 4})),
            Task::new("calc_odd_name", json!({})),
            Task::new("calc_fail", json!({"message": "no such city"})),
            Task::new("calc_add", json!({"a": "two"})),
            Task::new("calc_add", json!([1, 2])),
        ],
    )
    .await?;
    assert_eq!(results[0].value(), Some(&json!({"x": 4, "double": 8})));
    assert_eq!(results[1].value(), Some(&json!({"result": "odd"})));
    let (kind, retryable, message) = error_of(&results[2]);
    assert_eq!((kind, retryable), (ErrorKind::ToolError, false));
    assert!(message.contains("no such city"), "{message}");
    // The Python SDK answers args that fail its validation with isError
    // (as the spec asks of input errors): a tool_error naming the field.
    let (kind, retryable, message) = error_of(&results[3]);
    assert_eq!((kind, retryable), (ErrorKind::ToolError, false));
    assert!(message.contains("valid integer"), "{message}");
    let (kind, _, message) = error_of(&results[4]);
    assert_eq!(kind, ErrorKind::InvalidArgs, "{message}");

    // 20 slow calls (300 ms each) in one job run at once over one session.
    let slow = (0..20)
        .map(|i| Task::new("calc_slow", json!({"i": i})))
        .collect();
    let (results, took) = run(&cluster, slow).await?;
    for (i, result) in results.iter().enumerate() {
        assert_eq!(
            result.value(),
            Some(&json!({"result": format!("slow {i}")}))
        );
    }
    eprintln!("20 calls of 300 ms over one stdio session took {took:?}");
    assert!(
        took > Duration::from_millis(300) && took < Duration::from_millis(2500),
        "{took:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_stdio_server_that_dies_mid_call_is_restarted_and_the_retry_succeeds(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (_worker, dir) = mcp_worker(&cluster, "mcp-crash", &stdio_entry("")?, None).await?;
    let marker = dir.path().join("crashed").display().to_string();

    // Without retries the call that kills the server fails retryably.
    let started = Instant::now();
    let (results, _) = run(&cluster, vec![Task::new("calc_die", json!({}))]).await?;
    let (kind, retryable, message) = error_of(&results[0]);
    assert!(
        retryable && kind == ErrorKind::ToolError,
        "{kind:?} {message}"
    );
    eprintln!(
        "the call that killed the server failed after {:?}: {message}",
        started.elapsed()
    );

    // The server comes back; a call that crashes it once succeeds on its retry.
    let started = Instant::now();
    let task = Task::new("calc_crash_once", json!({"marker": marker})).retries(3);
    let (results, _) = run(&cluster, vec![task]).await?;
    let value = results[0]
        .value()
        .unwrap_or_else(|| panic!("{:?}", results[0]));
    assert!(
        value["result"].as_str().unwrap().starts_with("survived"),
        "{value}"
    );
    // Attempt 2 waits (up to 5 s) for the restart; a slow machine may need a third.
    assert!(results[0].attempts >= 2, "{:?}", results[0]);
    eprintln!(
        "crash, restart and retry took {:?} ({} attempts); then calls work again",
        started.elapsed(),
        results[0].attempts
    );
    let (results, _) = run(
        &cluster,
        vec![Task::new("calc_add", json!({"a": 1, "b": 1}))],
    )
    .await?;
    assert_eq!(results[0].value(), Some(&json!({"result": "2"})));
    Ok(())
}

#[tokio::test]
async fn a_fleet_rate_limit_and_the_cache_apply_to_mcp_tools() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let redis = RedisServer::start()?;
    let store = LimitStore::connect(&redis.url(), "toolfan").await?;
    store.set("calc", &rate(5, 1)).await?;
    let toml = stdio_entry("limit_keys = [\"calc\"]")?;
    let (_worker, _dir) = mcp_worker(&cluster, "mcp-limited", &toml, Some(&redis.url())).await?;

    let tasks = (0..15)
        .map(|_| Task::new("calc_stamp", json!({})))
        .collect();
    let (results, took) = run(&cluster, tasks).await?;
    let mut starts: Vec<u64> = results
        .iter()
        .map(|r| {
            r.value()
                .and_then(|v| v["at_us"].as_u64())
                .unwrap_or_else(|| panic!("{r:?}"))
        })
        .collect();
    starts.sort_unstable();
    let spread = Duration::from_micros(starts[14] - starts[0]);
    let most = max_in_window(&starts, 1_000_000);
    eprintln!("15 calls at 5/s burst 1: {took:?}, spread {spread:?}, at most {most} in any 1 s");
    // GCRA at 5/s, burst 1: one call at once, then one each 200 ms, so the
    // 15th runs 14 × 200 ms = 2.8 s after the first, and any 1 s holds at
    // most 5 + 1.
    assert!(spread >= Duration::from_millis(2500), "{spread:?}");
    assert!(most <= 6, "{most} calls in one second");

    // The fleet's result cache serves a cached MCP call's second run.
    let cached = || vec![Task::new("calc_stamp", json!({})).cached()];
    let (first, _) = run(&cluster, cached()).await?;
    let (second, _) = run(&cluster, cached()).await?;
    assert!(first[0].is_ok(), "{:?}", first[0]);
    assert_eq!(second[0].cache, Some(CacheUse::Hit), "{:?}", second[0]);
    assert_eq!(first[0].value(), second[0].value());
    Ok(())
}

/// A free loopback port.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The Python server over streamable HTTP on `port`, answering.
async fn http_server(port: u16) -> anyhow::Result<Process> {
    let mut cmd = Command::new(python()?);
    cmd.args([&server_script(), "http", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    let server = Process::spawn("mcp http server", cmd)?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(15),
            "the MCP HTTP server never listened on {port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(server)
}

#[tokio::test]
async fn a_streamable_http_server_answers_and_fails_fast_when_down() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let port = free_port()?;
    let mut server = http_server(port).await?;
    let toml = format!(
        "[[mcp]]\nname = \"calc\"\nurl = \"http://127.0.0.1:{port}/mcp\"\ntools = [\"add\", \"fail\", \"token\"]\ntimeout_ms = 5000\nheaders = {{ X-Calc-Token = \"env:TOOLFAN_TEST_CALC_TOKEN\" }}\n"
    );
    // The worker inherits this process's environment.
    std::env::set_var("TOOLFAN_TEST_CALC_TOKEN", "s3cret");
    let (_worker, _dir) = mcp_worker(&cluster, "mcp-http", &toml, None).await?;

    let (results, _) = run(
        &cluster,
        vec![
            Task::new("calc_add", json!({"a": 20, "b": 22})),
            Task::new("calc_fail", json!({"message": "over HTTP"})),
            Task::new("calc_token", json!({})),
        ],
    )
    .await?;
    assert_eq!(results[0].value(), Some(&json!({"result": "42"})));
    assert_eq!(
        results[2].value(),
        Some(&json!({"result": "s3cret"})),
        "env: headers are sent"
    );
    let (kind, retryable, message) = error_of(&results[1]);
    assert_eq!((kind, retryable), (ErrorKind::ToolError, false));
    assert!(message.contains("over HTTP"), "{message}");

    server.kill();
    let started = Instant::now();
    let (results, _) = run(
        &cluster,
        vec![Task::new("calc_add", json!({"a": 1, "b": 2}))],
    )
    .await?;
    let took = started.elapsed();
    let (_, retryable, message) = error_of(&results[0]);
    eprintln!("with the HTTP server down a call failed after {took:?}: {message}");
    assert!(retryable, "{message}");
    assert!(took < Duration::from_secs(4), "{took:?}");

    // The server back on its port: the session is made again and calls work.
    let _server = http_server(port).await?;
    let started = Instant::now();
    loop {
        let (results, _) = run(
            &cluster,
            vec![Task::new("calc_add", json!({"a": 2, "b": 2}))],
        )
        .await?;
        if results[0].is_ok() {
            assert_eq!(results[0].value(), Some(&json!({"result": "4"})));
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(10),
            "calls still fail with the HTTP server back: {:?}",
            results[0]
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "calls worked again {:?} after the HTTP server was back",
        started.elapsed()
    );
    Ok(())
}

#[tokio::test]
async fn mcp_tools_are_described_with_the_servers_descriptions_and_schemas() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let toml = stdio_entry("tools = [\"add\", \"odd.name\"]")?;
    let (_worker, _dir) = mcp_worker(&cluster, "mcp-described", &toml, None).await?;
    let url = cluster.nats.url();
    let offered = cli(&["tools", "--nats-url", &url, "--format", "openai"]).await?;
    let add = offered
        .as_array()
        .into_iter()
        .flatten()
        .find(|t| t["function"]["name"] == "calc_add")
        .unwrap_or_else(|| panic!("calc_add is offered: {offered}"));
    assert_eq!(add["function"]["description"], "Adds two integers.");
    let parameters = &add["function"]["parameters"];
    assert_eq!(parameters["type"], "object");
    assert_eq!(parameters["properties"]["a"]["type"], "integer");
    assert_eq!(parameters["required"], json!(["a", "b"]));
    let names: Vec<&str> = offered
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["function"]["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "only the tools asked for: {names:?}");
    assert!(names.contains(&"calc_odd_name"), "{names:?}");
    Ok(())
}

#[tokio::test]
async fn a_listed_tool_the_server_lacks_stops_the_worker_with_a_clear_error() -> anyhow::Result<()>
{
    let cluster = Cluster::start().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tools.toml");
    std::fs::write(&path, stdio_entry("tools = [\"add\", \"divide\"]")?)?;
    let run = tokio::process::Command::new(toolfan_testkit::binary("toolfan-worker")?)
        .args([
            "--nats-url",
            &cluster.nats.url(),
            "--config",
            path.to_str().unwrap(),
        ])
        .env("TOOLFAN_METRICS_ADDR", "off")
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), run).await??;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mcp \"calc\"") && stderr.contains("no tool \"divide\""),
        "{stderr}"
    );
    Ok(())
}

/// Waits up to `within` for `path` to exist.
async fn appears(path: &std::path::Path, within: Duration) -> bool {
    let started = Instant::now();
    while !path.exists() {
        if started.elapsed() > within {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

#[tokio::test]
async fn timed_out_calls_are_cancelled_and_tool_list_changes_are_followed() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (_worker, dir) = mcp_worker(&cluster, "mcp-cancel", &stdio_entry("")?, None).await?;

    // A call past its task timeout: the server is told to cancel it.
    let marker = dir.path().join("hang-stopped");
    let task = Task::new("calc_hang", json!({"marker": marker.display().to_string()}))
        .timeout(Duration::from_millis(800));
    let (results, took) = run(&cluster, vec![task]).await?;
    let (kind, _, message) = error_of(&results[0]);
    assert_eq!(kind, ErrorKind::Timeout, "{message}");
    assert!(
        appears(&marker, Duration::from_secs(3)).await,
        "the server never stopped the timed-out call"
    );
    eprintln!(
        "a call timed out after {took:?} and the server stopped it (notifications/cancelled)"
    );

    // The server describes `add` anew and adds a tool: callers are told
    // the new description; the new tool is not served (it needs a restart).
    let text = "Adds two integers, described anew.";
    let tasks = vec![
        Task::new("calc_describe_add", json!({"text": text})),
        Task::new("calc_grow", json!({})),
    ];
    let (results, _) = run(&cluster, tasks).await?;
    assert!(results.iter().all(TaskResult::is_ok), "{results:?}");
    let client = cluster.client().await?;
    let started = Instant::now();
    loop {
        let tools = client.tools(Duration::from_millis(300)).await?;
        let add = tools.iter().find(|t| t.name.as_str() == "calc_add");
        if add.is_some_and(|t| t.description == text) {
            assert!(!tools.iter().any(|t| t.name.as_str() == "calc_grown"));
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(5),
            "calc_add is still described as {add:?}"
        );
    }
    let (results, _) = run(&cluster, vec![Task::new("calc_grown", json!({}))]).await?;
    assert_eq!(error_of(&results[0]).0, ErrorKind::UnknownTool);

    // The server drops `add` and says its list changed: calls of it fail
    // at once with a clear error rather than reaching the server.
    let (results, _) = run(&cluster, vec![Task::new("calc_drop_add", json!({}))]).await?;
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let started = Instant::now();
    loop {
        let (results, _) = run(
            &cluster,
            vec![Task::new("calc_add", json!({"a": 1, "b": 2}))],
        )
        .await?;
        if let Some(error) = results[0].error() {
            assert!(
                !error.retryable && error.message.contains("no longer offers"),
                "{error:?}"
            );
            break;
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(5),
            "calc_add still answers after the server dropped it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

fn alive(pid: u64) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Waits up to 5 s for process `pid` to be gone.
async fn gone(pid: u64) -> bool {
    let started = Instant::now();
    while alive(pid) {
        if started.elapsed() > Duration::from_secs(5) {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// The stdio server's process id, asked through the fleet.
async fn server_pid(cluster: &Cluster) -> anyhow::Result<u64> {
    let (results, _) = run(cluster, vec![Task::new("calc_pid", json!({}))]).await?;
    let value = results[0]
        .value()
        .unwrap_or_else(|| panic!("{:?}", results[0]));
    Ok(value["result"]
        .as_u64()
        .unwrap_or_else(|| panic!("a pid: {value}")))
}

#[tokio::test]
async fn the_session_caps_calls_in_flight_and_its_server_stops_with_the_worker(
) -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let toml = stdio_entry("max_concurrency = 4")?;
    let (worker, _dir) = mcp_worker(&cluster, "mcp-capped", &toml, None).await?;
    let slow = (0..8)
        .map(|i| Task::new("calc_slow", json!({"i": i})))
        .collect();
    let (results, took) = run(&cluster, slow).await?;
    assert!(results.iter().all(TaskResult::is_ok), "{results:?}");
    eprintln!("8 calls of 300 ms, at most 4 in flight, took {took:?}");
    assert!(
        took >= Duration::from_millis(600) && took < Duration::from_millis(2500),
        "{took:?}"
    );

    // A worker that stops (SIGTERM) takes its server with it; so does a
    // killed one (the server reads the end of its stdin).
    let pid = server_pid(&cluster).await?;
    terminate(&worker)?;
    assert!(gone(pid).await, "the MCP server {pid} outlived its worker");
    let (mut worker, _dir) = mcp_worker(&cluster, "mcp-killed", &toml, None).await?;
    let pid = server_pid(&cluster).await?;
    worker.kill();
    assert!(
        gone(pid).await,
        "the MCP server {pid} outlived its killed worker"
    );
    Ok(())
}
