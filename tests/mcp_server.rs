//! `toolfan mcp` against a client nobody here wrote: the official MCP
//! Python SDK's `ClientSession` (`tests/mcp/client_check.py`, from the
//! virtualenv `.venv-test`), over stdio and streamable HTTP, with a real
//! cluster (NATS, an in-process coordinator and workers) behind it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{json, Value};
use toolfan_e2e::{http_client, python, spawn, Cluster};
use toolfan_protocol::Subjects;
use toolfan_testkit::Process;
use toolfan_worker::{TaskContext, ToolError, Worker};

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn toolfan() -> anyhow::Result<String> {
    let path = toolfan_testkit::binary("toolfan")?;
    Ok(path.to_str().expect("a UTF-8 path").to_owned())
}

/// Runs the Python client with `args` (45 s at most) and returns its findings.
async fn client(args: &[String], ready_file: Option<&Path>) -> anyhow::Result<Value> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client_check.py");
    let mut cmd = tokio::process::Command::new(python()?);
    cmd.arg(script)
        .args(args)
        .env("RUST_LOG", "warn")
        .env("TOOLFAN_METRICS_ADDR", "off")
        .env_remove("TOOLFAN_MCP_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if let Some(file) = ready_file {
        cmd.env("MCP_READY_FILE", file);
    }
    let out = tokio::time::timeout(Duration::from_secs(45), cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("the MCP client ran over 45 s"))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "the MCP client failed: {stdout}");
    let last = stdout.lines().last().unwrap_or_default();
    Ok(serde_json::from_str(last)?)
}

/// Counts the aborts the coordinator sends workers (one per cancelled job
/// with tasks running).
async fn count_aborts(cluster: &Cluster) -> anyhow::Result<Arc<AtomicUsize>> {
    let nats = async_nats::connect(cluster.nats.url()).await?;
    let mut aborts = nats
        .subscribe(Subjects::default().aborts_wildcard())
        .await?;
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        let _nats = nats;
        while aborts.next().await.is_some() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    Ok(seen)
}

/// What `basics` must find, over either transport.
fn assert_basics(f: &Value) {
    assert_eq!(f["server"], "toolfan", "{f}");
    assert_eq!(f["list_changed_capability"], true, "{f}");
    for name in ["echo", "sleep", "fail"] {
        let schema = &f["tools"][name]["input_schema"];
        assert_eq!(schema["type"], "object", "{name}: {f}");
    }
    assert!(
        f["tools"]["sleep"]["input_schema"]["properties"]["ms"].is_object(),
        "{f}"
    );
    assert_eq!(
        f["tools"]["echo"]["description"],
        "Returns its arguments unchanged."
    );
    let echo = &f["echo"];
    assert_eq!(echo["is_error"], false, "{f}");
    assert_eq!(echo["structured"], json!({"hello": "world", "n": 3}), "{f}");
    let fail = &f["fail"];
    assert_eq!(fail["is_error"], true, "{f}");
    assert_eq!(fail["text"], "tool_error: division by zero", "{f}");
    let unknown = &f["unknown"];
    assert_eq!(unknown["is_error"], true, "{f}");
    let text = unknown["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("unknown_tool") && text.contains("nope"),
        "{f}"
    );
    // A name toolfan cannot route, and args the tool refuses.
    assert_eq!(f["bad_name"]["is_error"], true, "{f}");
    let text = f["bad_name"]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("invalid: ") && text.contains("no such/tool"),
        "{f}"
    );
    assert_eq!(f["bad_args"]["is_error"], true, "{f}");
    let text = f["bad_args"]["text"].as_str().unwrap_or_default();
    assert!(text.starts_with("invalid_args: "), "{f}");
}

fn assert_sleeps_and_cancel(f: &Value) {
    let sleeps = &f["sleeps"];
    assert_eq!(sleeps["all_ok"], true, "{f}");
    assert_eq!(sleeps["texts"], json!([r#"{"slept_ms":200}"#]), "{f}");
    let took = sleeps["took_ms"].as_u64().unwrap_or(u64::MAX);
    assert!(
        (200..1500).contains(&took),
        "20 concurrent 200 ms sleeps took {took} ms"
    );
    eprintln!("20 concurrent sleep 200 ms calls took {took} ms");
    let cancel = &f["cancel"];
    assert_eq!(cancel["finished"], false, "{f}");
    assert_eq!(cancel["next_call"]["is_error"], false, "{f}");
    assert_eq!(
        cancel["next_call"]["structured"],
        json!({"after": "cancel"})
    );
    eprintln!(
        "the call after a cancelled one took {} ms",
        cancel["next_call_ms"]
    );
}

fn assert_progress(f: &Value) {
    let progress = &f["progress"];
    assert_eq!(progress["result"]["is_error"], false, "{f}");
    let seen = progress["notifications"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(seen.len(), 2, "{f}");
    assert_eq!(seen[0]["progress"], 0.0);
    let queued = seen[0]["message"].as_str().unwrap_or_default();
    assert!(queued.starts_with("queued as job "), "{f}");
    assert_eq!(seen[1]["progress"], 1.0);
    assert_eq!(seen[1]["total"], 1.0);
    assert_eq!(seen[1]["message"], "done");
}

/// Waits (5 s at most) until `count` is at least `n`.
async fn at_least(count: &AtomicUsize, n: usize) -> bool {
    let until = Instant::now() + Duration::from_secs(5);
    while count.load(Ordering::SeqCst) < n && Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    count.load(Ordering::SeqCst) >= n
}

#[tokio::test]
async fn over_stdio_the_sdk_lists_calls_runs_concurrently_and_cancels() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(64).await?;
    let aborts = count_aborts(&cluster).await?;
    let args = [
        "basics",
        "stdio",
        &toolfan()?,
        "mcp",
        "--nats-url",
        &cluster.nats.url(),
    ]
    .map(String::from);
    let findings = client(&args, None).await?;
    eprintln!("stdio findings: {findings}");
    assert_basics(&findings);
    assert_sleeps_and_cancel(&findings);
    assert_progress(&findings);
    // The abandoned sleep's job was cancelled: the coordinator told the
    // workers to abort it (no other job here is cancelled).
    assert!(at_least(&aborts, 1).await, "no abort reached the workers");
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits (10 s at most) until `url` answers anything.
async fn answering(url: &str) -> anyhow::Result<()> {
    let http = http_client();
    let until = Instant::now() + Duration::from_secs(10);
    while http.get(url).send().await.is_err() {
        anyhow::ensure!(Instant::now() < until, "{url} did not answer within 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// `toolfan mcp --http` on a free loopback port with `extra` flags, once
/// it answers; returns it and its `/mcp` URL.
async fn http_server(cluster: &Cluster, extra: &[&str]) -> anyhow::Result<(Process, String)> {
    let addr = format!("127.0.0.1:{}", free_port()?);
    let nats = cluster.nats.url();
    let args = [&["mcp", "--http", &addr, "--nats-url", &nats][..], extra].concat();
    let server = spawn("toolfan", &args)?;
    let url = format!("http://{addr}/mcp");
    answering(&url).await?;
    Ok((server, url))
}

/// An `initialize` request, as a raw HTTP client sends it.
fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "reqwest", "version": "0"}}})
}

#[tokio::test]
async fn over_http_a_token_is_required_and_the_sdk_gets_results_and_progress() -> anyhow::Result<()>
{
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(64).await?;
    let aborts = count_aborts(&cluster).await?;
    let (_server, url) = http_server(&cluster, &["--token", "s3cret"]).await?;
    let http = http_client();
    let initialize = initialize();
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("Basic s3cret"),
        Some("Bearer s3cre"),
    ] {
        let mut post = http
            .post(&url)
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize);
        if let Some(auth) = auth {
            post = post.header("Authorization", auth);
        }
        let status = post.send().await?.status();
        assert_eq!(status, reqwest::StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    let args = ["basics", "http", &url, "s3cret"].map(String::from);
    let findings = client(&args, None).await?;
    eprintln!("http findings: {findings}");
    assert_basics(&findings);
    assert_sleeps_and_cancel(&findings);
    assert_progress(&findings);
    assert!(at_least(&aborts, 1).await, "no abort reached the workers");
    Ok(())
}

#[tokio::test]
async fn max_sessions_caps_the_open_http_sessions() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (_server, url) = http_server(&cluster, &["--max-sessions", "1"]).await?;
    let http = http_client();
    let initialize = initialize();
    let open = || {
        http.post(&url)
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize)
            .send()
    };
    let first = open().await?;
    assert_eq!(first.status(), reqwest::StatusCode::OK);
    let session = first
        .headers()
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no session id"))?;
    drop(first);
    assert_eq!(
        open().await?.status(),
        reqwest::StatusCode::SERVICE_UNAVAILABLE
    );
    let closed = http
        .delete(&url)
        .header("mcp-session-id", &session)
        .send()
        .await?;
    assert!(closed.status().is_success(), "{}", closed.status());
    opens_within(&url, Duration::from_secs(5)).await?;
    Ok(())
}

/// Opens a session (an `initialize` POST), answered 200 with its id.
async fn open_session(http: &reqwest::Client, url: &str) -> anyhow::Result<reqwest::Response> {
    Ok(http
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .json(&initialize())
        .send()
        .await?)
}

/// How long until a session can be opened at `url` (within `within`).
async fn opens_within(url: &str, within: Duration) -> anyhow::Result<Duration> {
    let (http, started) = (http_client(), Instant::now());
    loop {
        let status = open_session(&http, url).await?.status();
        if status == reqwest::StatusCode::OK {
            return Ok(started.elapsed());
        }
        anyhow::ensure!(
            started.elapsed() < within,
            "still {status} after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_session_its_client_left_is_closed_and_frees_its_place() -> anyhow::Result<()> {
    // Most clients leave without a DELETE; the place is freed all the same
    // once the session has been idle for --session-idle-ms.
    let cluster = Cluster::start().await?;
    let flags = ["--max-sessions", "1", "--session-idle-ms", "800"];
    let (_server, url) = http_server(&cluster, &flags).await?;
    let http = http_client();
    assert_eq!(
        open_session(&http, &url).await?.status(),
        reqwest::StatusCode::OK
    );
    // The abandoned session holds the one place for a while...
    let refused = open_session(&http, &url).await?.status();
    assert_eq!(refused, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    // ...and is closed once idle: a new client gets in.
    let took = opens_within(&url, Duration::from_secs(10)).await?;
    eprintln!("an abandoned session's place came free after {took:?}");
    assert!(
        took >= Duration::from_millis(500),
        "freed after {took:?}, before it was idle"
    );
    Ok(())
}

#[tokio::test]
async fn a_non_loopback_bind_without_a_token_is_refused() -> anyhow::Result<()> {
    let out = tokio::process::Command::new(toolfan()?)
        .args([
            "mcp",
            "--http",
            "0.0.0.0:0",
            "--nats-url",
            "nats://127.0.0.1:1",
        ])
        .env_remove("TOOLFAN_MCP_TOKEN")
        .stdin(Stdio::null())
        .output();
    let out = tokio::time::timeout(Duration::from_secs(10), out).await??;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refusing to serve MCP on 0.0.0.0:0 without a token"),
        "{stderr}"
    );
    Ok(())
}

/// Runs the `list_changed` scenario with `transport` (its args after the
/// scenario name); a worker with the new tool `extra` joins once the
/// client is connected.
async fn list_changed(cluster: &Cluster, transport: Vec<String>) -> anyhow::Result<Value> {
    let dir = tempfile::tempdir()?;
    let ready = dir.path().join("ready");
    let mut args = vec!["list_changed".to_owned()];
    args.extend(transport);
    let session = {
        let ready = ready.clone();
        tokio::spawn(async move { client(&args, Some(&ready)).await })
    };
    let until = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        anyhow::ensure!(Instant::now() < until, "the MCP client did not connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let extra = Worker::builder()
        .id("extra-worker")
        .tool("extra", |_ctx: TaskContext, args: Value| async move {
            Ok::<_, ToolError>(args)
        })
        .describe("extra", "A tool that came later.");
    cluster.worker(extra).await?;
    let findings = session.await??;
    eprintln!(
        "list_changed came {} ms after the client was connected",
        findings["waited_ms"]
    );
    assert_eq!(findings["notified"], true, "{findings}");
    let before = findings["before"].as_array().cloned().unwrap_or_default();
    assert!(!before.contains(&json!("extra")), "{findings}");
    let after = findings["after"].as_array().cloned().unwrap_or_default();
    assert!(
        after.contains(&json!("extra")) && after.contains(&json!("echo")),
        "{findings}"
    );
    Ok(findings)
}

#[tokio::test]
async fn over_stdio_a_new_workers_tool_is_announced_with_list_changed() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(4).await?;
    let transport = [
        "stdio",
        &toolfan()?,
        "mcp",
        "--nats-url",
        &cluster.nats.url(),
    ];
    let transport = [&transport[..], &["--poll-ms", "500"]].concat();
    list_changed(&cluster, strings(&transport)).await?;
    Ok(())
}

#[tokio::test]
async fn over_http_a_new_workers_tool_is_announced_with_list_changed() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(4).await?;
    let (_server, url) = http_server(&cluster, &["--poll-ms", "500"]).await?;
    // Loopback without a token: no Authorization header needed.
    list_changed(&cluster, vec!["http".into(), url, "-".into()]).await?;
    Ok(())
}

#[tokio::test]
async fn max_calls_caps_the_calls_in_flight() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(16).await?;
    let nats = cluster.nats.url();
    let args = ["capped", "stdio", &toolfan()?, "mcp", "--nats-url", &nats];
    let args = [&args[..], &["--max-calls", "2"]].concat();
    let findings = client(&strings(&args), None).await?;
    let sleeps = &findings["sleeps"];
    assert_eq!(sleeps["all_ok"], true, "{findings}");
    let took = sleeps["took_ms"].as_u64().unwrap_or(0);
    eprintln!("6 sleeps of 300 ms with --max-calls 2 took {took} ms");
    assert!(
        (900..3000).contains(&took),
        "three rounds of two: {took} ms"
    );
    Ok(())
}

#[tokio::test]
async fn a_client_that_vanishes_mid_call_has_its_job_cancelled() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(4).await?;
    let aborts = count_aborts(&cluster).await?;
    let dir = tempfile::tempdir()?;
    let ready = dir.path().join("ready");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client_check.py");
    let nats = cluster.nats.url();
    let mut python = tokio::process::Command::new(python()?)
        .arg(script)
        .args(["hangup", "stdio", &toolfan()?, "mcp", "--nats-url", &nats])
        .env("MCP_READY_FILE", &ready)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let until = Instant::now() + Duration::from_secs(20);
    while !ready.exists() {
        anyhow::ensure!(
            Instant::now() < until,
            "the MCP client did not start its call"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(aborts.load(Ordering::SeqCst), 0);
    // SIGKILL: no courtesy cancel; `toolfan mcp` sees its stdin close.
    let killed = Instant::now();
    python.kill().await?;
    assert!(
        at_least(&aborts, 1).await,
        "the vanished client's job ran on"
    );
    let took = killed.elapsed();
    eprintln!(
        "the job was aborted {} ms after its client vanished",
        took.as_millis()
    );
    // Well before the caller grace (10 s) would have cancelled it.
    assert!(took < Duration::from_secs(3), "{took:?}");
    Ok(())
}

#[tokio::test]
async fn over_stdio_stdout_carries_mcp_only_and_the_end_of_stdin_stops_the_server(
) -> anyhow::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(4).await?;
    let mut server = tokio::process::Command::new(toolfan()?)
        .args(["mcp", "--nats-url", &cluster.nats.url()])
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = server.stdin.take().expect("piped");
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"x": 1}}}),
    ];
    for message in &messages {
        stdin.write_all(format!("{message}\n").as_bytes()).await?;
    }
    let mut lines = BufReader::new(server.stdout.take().expect("piped")).lines();
    let mut answered = Vec::new();
    let read = async {
        while answered.len() < 3 {
            let Some(line) = lines.next_line().await? else {
                break;
            };
            let message: Value = serde_json::from_str(&line).map_err(|e| {
                anyhow::anyhow!("stdout carried a line that is not JSON ({e}): {line}")
            })?;
            assert_eq!(message["jsonrpc"], "2.0", "{line}");
            if message.get("id").is_some() {
                answered.push(message);
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), read).await??;
    let by_id = |id: u64| answered.iter().find(|m| m["id"] == id).cloned();
    let listed = by_id(2).unwrap_or_default();
    let tools = listed["result"]["tools"].as_array().map(Vec::len);
    assert!(tools >= Some(4), "{listed}");
    let called = by_id(3).unwrap_or_default();
    assert_eq!(
        called["result"]["structuredContent"],
        json!({"x": 1}),
        "{called}"
    );
    drop(stdin);
    let closed = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(5), server.wait()).await??;
    eprintln!(
        "the server exited {} ms after stdin closed",
        closed.elapsed().as_millis()
    );
    assert!(status.success(), "{status}");
    let mut stderr = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut server.stderr.take().expect("piped"), &mut stderr)
        .await?;
    assert!(
        stderr.contains("DEBUG"),
        "the debug logs went to stderr: {stderr}"
    );
    Ok(())
}
