//! Command tools: args on stdin, stdout as the result, the child killed
//! when its call ends early; and the worker binary's tools file.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use toolfan::{ErrorKind, Job, Policy, Task};
use toolfan_e2e::{one_task_jobs, Cluster};
use toolfan_tools::command::CommandTool;
use toolfan_worker::Worker;

fn command(argv: &[&str]) -> Arc<CommandTool> {
    Arc::new(CommandTool::new(argv.iter().map(|s| s.to_string()).collect()).expect("a program"))
}

fn alive(pid: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-0", pid])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn a_command_tool_answers_fails_and_dies_with_its_call() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let dir = tempfile::tempdir()?;
    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    cluster
        .worker(
            Worker::builder()
                .boxed_tool("cat", command(&["cat"]))
                .boxed_tool(
                    "broken",
                    command(&["sh", "-c", "echo 'disk on fire' >&2; exit 3"]),
                )
                .boxed_tool("hang", command(&["sh", "-c", &script]))
                .boxed_tool("missing", command(&["/nonexistent/program"]))
                .boxed_tool("later", command(&["sh", "-c", "sleep 0.3; cat"])),
        )
        .await?;
    let client = cluster.client().await?;

    let results = client
        .fanout(vec![
            Task::new(
                "cat",
                json!({"city": "Paris", "$(rm -rf /)": "no shell here"}),
            ),
            Task::new("broken", json!({})),
            Task::new("missing", json!({})),
        ])
        .await?;
    assert_eq!(
        results[0].value(),
        Some(&json!({"city": "Paris", "$(rm -rf /)": "no shell here"}))
    );
    let error = results[1].error().expect("a failure");
    assert_eq!(error.kind, ErrorKind::ToolError);
    assert!(
        error.message.contains("exit status: 3") && error.message.contains("disk on fire"),
        "{}",
        error.message
    );
    assert!(
        results[2].error().unwrap().message.contains("cannot start"),
        "{:?}",
        results[2]
    );

    // first_ok: the call answering after 300 ms wins and the hanging one
    // (started by then) is cancelled: its process must go.
    let job = Job::new(vec![
        Task::new("hang", json!({})),
        Task::new("later", json!({"quick": true})),
    ])
    .policy(Policy::FirstOk);
    let handle = client.submit(job);
    let started = Instant::now();
    let outcome = handle.await?.wait().await?;
    assert_eq!(
        outcome.results[0].error().map(|e| e.kind.clone()),
        Some(ErrorKind::Cancelled)
    );
    let pid = loop {
        if let Ok(pid) = std::fs::read_to_string(&pidfile) {
            break pid.trim().to_owned();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(5),
            "the hanging command never started"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let waited = Instant::now();
    while alive(&pid) {
        anyhow::ensure!(
            waited.elapsed() < Duration::from_secs(3),
            "the cancelled call's process {pid} is still running"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn the_worker_binary_serves_the_tools_of_its_tools_file() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (_worker, dir) = cluster
        .configured_worker(
            "configured",
            "[[tools]]\nname = \"reverse\"\ncommand = [\"rev\"]\nmax_in_flight = 2\n",
        )
        .await?;
    let path = dir.path().join("tools.toml");
    let url = cluster.nats.url();
    let results = cluster
        .client()
        .await?
        .fanout(vec![Task::new("reverse", json!("abc"))])
        .await?;
    // `rev` reverses the JSON text it reads: "\"abc\"" → "\"cba\"".
    assert_eq!(results[0].value(), Some(&json!("cba")));

    std::fs::write(&path, "[[tools]]\nname = \"bad\"\ncmd = [\"ls\"]\n")?;
    let out = std::process::Command::new(toolfan_testkit::binary("toolfan-worker")?)
        .args(["--nats-url", &url, "--config", path.to_str().unwrap()])
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("tools.toml") && stderr.contains("unknown field `cmd`"),
        "{stderr}"
    );
    Ok(())
}

mod http {
    use super::*;
    use axum::extract::{Query, State};
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;
    use axum::{Json, Router};
    use std::collections::HashMap;
    use std::sync::Mutex;
    use toolfan_tools::http::{HttpDef, HttpTool};

    type Calls = Arc<Mutex<Vec<Instant>>>;

    async fn weather(Query(q): Query<HashMap<String, String>>) -> Json<serde_json::Value> {
        Json(json!({"city": q.get("city"), "temp": 21}))
    }

    async fn flaky(State(calls): State<Calls>) -> impl IntoResponse {
        let mut calls = calls.lock().unwrap();
        calls.push(Instant::now());
        if calls.len() == 1 {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "1")],
                "busy",
            )
                .into_response()
        } else {
            Json(json!({"ok": true})).into_response()
        }
    }

    fn tool(base: &str, path: &str, timeout_ms: u64) -> Arc<HttpTool> {
        Arc::new(
            HttpTool::new(HttpDef {
                method: "GET".into(),
                url: format!("{base}{path}"),
                headers: Default::default(),
                allowed_hosts: vec!["127.0.0.1".into()],
                timeout_ms,
                usage: None,
            })
            .expect("a valid tool"),
        )
    }

    #[tokio::test]
    async fn an_http_tool_answers_fails_retries_and_times_out() -> anyhow::Result<()> {
        let calls: Calls = Arc::default();
        let app = Router::new()
            .route("/weather", get(weather))
            .route(
                "/missing",
                get(|| async { (StatusCode::NOT_FOUND, "no such thing") }),
            )
            .route("/flaky", get(flaky))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    "late"
                }),
            )
            .with_state(calls.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });

        let cluster = Cluster::start().await?;
        cluster
            .worker(
                Worker::builder()
                    .boxed_tool("weather", tool(&base, "/weather?city={city}", 2000))
                    .boxed_tool("missing", tool(&base, "/missing", 2000))
                    .boxed_tool("flaky", tool(&base, "/flaky", 2000))
                    .boxed_tool("slow", tool(&base, "/slow", 300))
                    .boxed_tool("anywhere", tool("http://{host}", "/x", 2000)),
            )
            .await?;
        let results = cluster
            .client()
            .await?
            .fanout(vec![
                Task::new("weather", json!({"city": "São Paulo"})),
                Task::new("missing", json!({})).retries(2),
                Task::new("flaky", json!({})).retries(2),
                Task::new("slow", json!({})),
                Task::new("anywhere", json!({"host": "example.com"})),
            ])
            .await?;
        assert_eq!(
            results[0].value(),
            Some(&json!({"city": "São Paulo", "temp": 21}))
        );
        let missing = results[1].error().expect("a 404 fails");
        assert_eq!(
            (missing.kind.clone(), results[1].attempts),
            (ErrorKind::ToolError, 1),
            "a 404 is not retried"
        );
        assert!(
            missing.message.contains("404") && missing.message.contains("no such thing"),
            "{}",
            missing.message
        );
        assert_eq!(
            results[2].value(),
            Some(&json!({"ok": true})),
            "{:?}",
            results[2]
        );
        assert_eq!(results[2].attempts, 2, "the 503 was retried");
        let calls = calls.lock().unwrap();
        let gap = calls[1] - calls[0];
        assert!(
            gap >= Duration::from_millis(950),
            "Retry-After: 1 was not honoured ({gap:?})"
        );
        let slow = results[3].error().expect("a timeout");
        assert!(slow.message.contains("timed out"), "{}", slow.message);
        let anywhere = results[4].error().expect("refused");
        assert_eq!(anywhere.kind, ErrorKind::InvalidArgs);
        assert!(
            anywhere
                .message
                .contains("not among this tool's allowed hosts"),
            "{}",
            anywhere.message
        );
        Ok(())
    }
}

#[tokio::test]
async fn a_batched_command_tool_runs_once_per_batch() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let dir = tempfile::tempdir()?;
    let runs = dir.path().join("runs");
    // Counts its runs, then answers each call of the batch (jq reads the array).
    let script = format!(
        "echo run >> {}; exec jq -c 'map(if .text == \"poison\" then {{error: \"poisoned\"}} else {{ok: (.text | ascii_upcase)}} end)'",
        runs.display()
    );
    let toml = format!(
        "[[tools]]\nname = \"shout\"\ncommand = [\"sh\", \"-c\", {script:?}]\nbatch = {{ max_size = 10, max_wait_ms = 50 }}\n"
    );
    let (_worker, _file) = cluster.configured_worker("batcher", &toml).await?;
    let client = cluster.client().await?;
    let texts: Vec<String> = (0..20)
        .map(|i| {
            if i == 7 {
                "poison".to_owned()
            } else {
                format!("call {i}")
            }
        })
        .collect();
    let tasks = texts
        .iter()
        .map(|text| Task::new("shout", json!({ "text": text })));
    let results = one_task_jobs(&client, tasks.collect()).await?;
    for (text, result) in texts.into_iter().zip(results) {
        if text == "poison" {
            assert_eq!(result.error().map(|e| e.message.as_str()), Some("poisoned"));
        } else {
            assert_eq!(result.value(), Some(&json!(text.to_uppercase())));
        }
    }
    let runs = std::fs::read_to_string(&runs)?.lines().count();
    eprintln!("20 one-task jobs → {runs} runs of the batch program");
    assert!(
        (2..=5).contains(&runs),
        "{runs} runs for 20 calls in batches of 10"
    );
    Ok(())
}
