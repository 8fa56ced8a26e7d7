//! MCP both ways at once: the official MCP Python SDK's client calls
//! `toolfan mcp`, which runs each call as a job on the fleet, whose worker
//! serves the tools of an MCP server written with the same SDK
//! (`tests/mcp/calc_server.py`). Neither end is toolfan's code.

use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use toolfan_e2e::{python, spawn, test_file, Cluster};

/// The worker binary serving the stdio calc server's tools as `calc_*`.
async fn calc_worker(
    cluster: &Cluster,
) -> anyhow::Result<(toolfan_testkit::Process, tempfile::TempDir)> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("tools.toml");
    let command = [
        python()?.display().to_string(),
        test_file("mcp/calc_server.py"),
        "stdio".into(),
    ];
    let toml = format!(
        "[[mcp]]\nname = \"calc\"\ncommand = {}\n",
        Value::from(command.to_vec())
    );
    std::fs::write(&path, toml)?;
    let url = cluster.nats.url();
    let path = path.to_str().expect("a UTF-8 temporary path");
    let worker = spawn(
        "toolfan-worker",
        &["--nats-url", &url, "--id", "calc-1", "--config", path],
    )?;
    cluster.wait_for_workers(&["calc-1".to_owned()]).await?;
    Ok((worker, dir))
}

/// Runs the SDK client's `relay` scenario against `toolfan mcp` over stdio.
async fn relay(cluster: &Cluster) -> anyhow::Result<Value> {
    let toolfan = toolfan_testkit::binary("toolfan")?;
    let mut cmd = tokio::process::Command::new(python()?);
    cmd.arg(test_file("mcp/client_check.py"))
        .args(["relay", "stdio"])
        .arg(toolfan)
        .args(["mcp", "--nats-url", &cluster.nats.url()])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(45), cmd.output())
        .await
        .map_err(|_| anyhow::anyhow!("the MCP client ran over 45 s"))??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    anyhow::ensure!(out.status.success(), "the MCP client failed: {stdout}");
    Ok(serde_json::from_str(
        stdout.lines().last().unwrap_or_default(),
    )?)
}

#[tokio::test]
async fn an_mcp_client_reaches_an_mcp_servers_tools_through_the_fleet() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    let (_worker, _dir) = calc_worker(&cluster).await?;
    let f = relay(&cluster).await?;
    eprintln!("relay findings: {f}");
    // The server's tool, its description and schema, as the far client sees it.
    let add = &f["tools"]["calc_add"];
    assert_eq!(add["description"], "Adds two integers.");
    assert_eq!(
        add["input_schema"]["properties"]["a"]["type"], "integer",
        "{add}"
    );
    // The answer crossed both bridges: the server's structured {"result": "5"}.
    assert_eq!(f["add"]["is_error"], false, "{}", f["add"]);
    assert_eq!(f["add"]["structured"]["result"], "5", "{}", f["add"]);
    // The server's own error text arrives, kind named.
    assert_eq!(f["fail"]["is_error"], true);
    let text = f["fail"]["text"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("tool_error:") && text.contains("no such number"),
        "{text}"
    );
    // Ten 300 ms calls ran at once across the chain, not one after another (3 s).
    let slow: Vec<&Value> = f["slow"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    assert_eq!(slow.len(), 10);
    for (i, r) in slow.iter().enumerate() {
        assert_eq!(r["is_error"], false, "{r}");
        assert_eq!(r["structured"]["result"], format!("slow {i}"), "{r}");
    }
    let ms = f["slow_ms"].as_f64().unwrap_or(f64::MAX);
    assert!(
        (300.0..1_500.0).contains(&ms),
        "10 concurrent 300 ms calls took {ms} ms"
    );
    Ok(())
}
