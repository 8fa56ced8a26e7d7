//! An agent loop over toolfan: ask an OpenAI-compatible chat endpoint,
//! fan the tool calls it returns out through the cluster, send the tool
//! messages back, and repeat until the model answers in words.
//!
//! ```sh
//! cargo run --example agent -- --chat-url http://127.0.0.1:8080/v1/chat/completions \
//!     --nats-url nats://127.0.0.1:4222 "What is the weather in Paris?"
//! ```
//!
//! The model is offered the tools the fleet serves, as the workers describe
//! them (`toolfan tools --format openai` prints the same list); an API
//! key, if needed, comes from `OPENAI_API_KEY`.

use anyhow::Context;
use serde_json::{json, Value};
use toolfan::llm::openai::ToolCall;
use toolfan::{Client, ClientOptions};

/// Most rounds of tool calls before giving up.
const MAX_ROUNDS: usize = 8;

fn usage() -> anyhow::Error {
    anyhow::anyhow!("usage: agent --chat-url URL --nats-url URL [--model NAME] QUESTION")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut chat_url, mut nats_url, mut model, mut question) =
        (None, None, "gpt-4o-mini".to_owned(), None);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--chat-url" => chat_url = args.next(),
            "--nats-url" => nats_url = args.next(),
            "--model" => model = args.next().ok_or_else(usage)?,
            _ => question = Some(arg),
        }
    }
    let (chat_url, nats_url, question) = (
        chat_url.ok_or_else(usage)?,
        nats_url.ok_or_else(usage)?,
        question.ok_or_else(usage)?,
    );
    let client = Client::connect(ClientOptions::new(nats_url).caller("agent")?).await?;
    // reqwest uses rustls with the ring provider (as the NATS client does).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let described = client.tools(std::time::Duration::from_millis(500)).await?;
    anyhow::ensure!(!described.is_empty(), "no worker answered with its tools");
    let tools = toolfan::llm::openai::tool_definitions(&described);
    let mut messages = vec![json!({"role": "user", "content": question})];
    for round in 1..=MAX_ROUNDS {
        let mut request = http
            .post(&chat_url)
            .json(&json!({"model": model, "messages": messages, "tools": tools}));
        if let Ok(key) = std::env::var("OPENAI_API_KEY") {
            request = request.bearer_auth(key);
        }
        let response: Value = request
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .context("the chat endpoint's answer is not JSON")?;
        let message = response["choices"][0]["message"].clone();
        let calls: Vec<ToolCall> = match message.get("tool_calls") {
            Some(calls) if !calls.is_null() => {
                serde_json::from_value(calls.clone()).context("malformed tool_calls")?
            }
            _ => Vec::new(),
        };
        if calls.is_empty() {
            println!("{}", message["content"].as_str().unwrap_or_default());
            return Ok(());
        }
        eprintln!("round {round}: {} tool call(s)", calls.len());
        messages.push(message);
        for answer in client.answer_openai(&calls).await? {
            messages.push(serde_json::to_value(answer)?);
        }
    }
    anyhow::bail!("no answer after {MAX_ROUNDS} rounds of tool calls")
}
