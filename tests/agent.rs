//! examples/agent.rs against a small fake OpenAI-compatible server: two
//! rounds (tool calls, then an answer), the tools run by a real cluster.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use toolfan_e2e::Cluster;

type Seen = Arc<Mutex<Vec<Value>>>;

/// Round 1: ask for two tools. Round 2: answer with what the echo tool said.
async fn chat(State(seen): State<Seen>, Json(request): Json<Value>) -> Json<Value> {
    seen.lock().unwrap().push(request.clone());
    let messages = request["messages"].as_array().cloned().unwrap_or_default();
    let tool_messages: Vec<&Value> = messages.iter().filter(|m| m["role"] == "tool").collect();
    if tool_messages.is_empty() {
        return Json(
            json!({"choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "echo", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "sleep", "arguments": "{\"ms\": 20}"}}
            ]}}]}),
        );
    }
    let echoed = tool_messages[0]["content"].as_str().unwrap_or_default();
    Json(
        json!({"choices": [{"message": {"role": "assistant", "content": format!("Sunny in Paris; the tool said {echoed}")}}]}),
    )
}

/// Runs `example` against the fake chat server and a real cluster:
/// its stdout and the requests the server saw.
async fn converse(example: &str) -> anyhow::Result<(String, Vec<Value>)> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(8).await?;
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let chat_url = format!("http://{}/v1/chat/completions", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });

    let exe = toolfan_testkit::binary(example)?;
    let url = cluster.nats.url();
    let output = tokio::process::Command::new(exe)
        .args([
            "--chat-url",
            &chat_url,
            "--nats-url",
            &url,
            "What is the weather in Paris?",
        ])
        .output()
        .await?;
    anyhow::ensure!(
        output.status.success(),
        "the agent failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let seen = seen.lock().unwrap().clone();
    Ok((stdout, seen))
}

#[tokio::test]
async fn the_agent_example_completes_a_two_round_conversation() -> anyhow::Result<()> {
    let (stdout, seen) = converse("examples/agent").await?;
    assert_eq!(
        stdout.trim(),
        r#"Sunny in Paris; the tool said {"city":"Paris"}"#
    );
    assert_conversation(&seen);
    Ok(())
}

/// The same conversation through the tower-shaped agent: a step service
/// and `toolfan::tower::ToolRouter` under a tower timeout layer.
#[tokio::test]
async fn the_tower_agent_example_completes_the_same_conversation() -> anyhow::Result<()> {
    let (stdout, seen) = converse("examples/tower_agent").await?;
    assert_eq!(
        stdout.trim(),
        r#"Sunny in Paris; the tool said {"city":"Paris"}"#
    );
    assert_conversation(&seen);
    Ok(())
}

/// Two rounds; the fleet's tools offered; tool messages in call order.
fn assert_conversation(seen: &[Value]) {
    assert_eq!(seen.len(), 2, "two rounds");
    // The model was offered the fleet's tools with their schemas.
    let offered: Vec<&str> = seen[0]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        offered,
        ["approve", "echo", "fail", "flaky", "sleep", "span"]
    );
    assert_eq!(
        seen[0]["tools"][4]["function"]["parameters"]["required"],
        json!(["ms"])
    );
    let second: Vec<&Value> = seen[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .collect();
    let ids: Vec<&str> = second
        .iter()
        .map(|m| m["tool_call_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["call_1", "call_2"],
        "tool messages answer the calls in order"
    );
    assert_eq!(second[1]["content"], r#"{"slept_ms":20}"#);
}
