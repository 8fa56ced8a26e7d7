//! An agent loop in the shape tower-based agent stacks use: a *step*
//! service asks the model, a *tool router* service runs the tool calls it
//! returns — here [`toolfan::tower::ToolRouter`], so the calls run on the
//! fleet as one job per round, answered in call order — and the loop
//! repeats until the model answers in words.
//!
//! ```sh
//! cargo run --example tower_agent -- --chat-url http://127.0.0.1:8080/v1/chat/completions \
//!     --nats-url nats://127.0.0.1:4222 "What is the weather in Paris?"
//! ```

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};
use toolfan::tower::{ToolInvocation, ToolOutput, ToolRouter};
use toolfan::{Client, ClientOptions};
use tower::{BoxError, Service, ServiceBuilder, ServiceExt};

/// Most rounds of tool calls before giving up.
const MAX_ROUNDS: usize = 8;

/// What the step service answers: the model's words, or calls to make.
enum Step {
    Answer(String),
    Calls(Value, Vec<ToolInvocation>),
}

/// The step service: one chat-completions request per conversation state.
fn step_service(
    chat_url: String,
    model: String,
    tools: Value,
) -> impl Service<Vec<Value>, Response = Step, Error = BoxError> + Clone {
    let http = reqwest::Client::new();
    tower::service_fn(move |messages: Vec<Value>| {
        let (http, url) = (http.clone(), chat_url.clone());
        let body = json!({"model": model, "messages": messages, "tools": tools});
        async move {
            let mut request = http.post(&url).json(&body);
            if let Ok(key) = std::env::var("OPENAI_API_KEY") {
                request = request.bearer_auth(key);
            }
            let response: Value = request.send().await?.error_for_status()?.json().await?;
            read_step(response["choices"][0]["message"].clone()).map_err(BoxError::from)
        }
    })
}

/// The model's message as a step: its tool calls, or its words.
fn read_step(message: Value) -> anyhow::Result<Step> {
    let Some(calls) = message["tool_calls"].as_array().filter(|c| !c.is_empty()) else {
        let words = message["content"].as_str().unwrap_or_default();
        return Ok(Step::Answer(words.to_owned()));
    };
    let invocations = calls
        .iter()
        .map(|call| {
            let arguments = call["function"]["arguments"].as_str().unwrap_or("{}");
            let arguments: Value = serde_json::from_str(arguments)
                .with_context(|| format!("the arguments of call {} are not JSON", call["id"]))?;
            let id = call["id"].as_str().unwrap_or_default();
            let name = call["function"]["name"].as_str().unwrap_or_default();
            Ok(ToolInvocation::new(id, name, arguments))
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(Step::Calls(message, invocations))
}

/// A tool output as the chat API's tool message.
fn tool_message(output: &ToolOutput) -> Value {
    json!({"role": "tool", "tool_call_id": output.id, "content": output.content()})
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (chat_url, nats_url, model, question) = args()?;
    let client = Client::connect(ClientOptions::new(nats_url).caller("agent")?).await?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let described = client.tools(Duration::from_millis(500)).await?;
    anyhow::ensure!(!described.is_empty(), "no worker answered with its tools");
    let tools = json!(toolfan::llm::openai::tool_definitions(&described));
    let mut step = step_service(chat_url, model, tools);
    // The router under ordinary tower layers: a bound on each round.
    let router = ToolRouter::new(client).max_concurrency(16);
    let mut tools = ServiceBuilder::new()
        .timeout(Duration::from_secs(60))
        .service(router);
    let mut messages = vec![json!({"role": "user", "content": question})];
    for round in 1..=MAX_ROUNDS {
        let calls = match step
            .ready()
            .await
            .map_err(anyhow::Error::from_boxed)?
            .call(messages.clone())
            .await
        {
            Ok(Step::Answer(words)) => {
                println!("{words}");
                return Ok(());
            }
            Ok(Step::Calls(message, calls)) => {
                messages.push(message);
                calls
            }
            Err(e) => return Err(anyhow::Error::from_boxed(e)),
        };
        eprintln!("round {round}: {} tool call(s)", calls.len());
        let ready = ServiceExt::<Vec<ToolInvocation>>::ready(&mut tools)
            .await
            .map_err(anyhow::Error::from_boxed)?;
        let outputs: Vec<ToolOutput> =
            ready.call(calls).await.map_err(anyhow::Error::from_boxed)?;
        messages.extend(outputs.iter().map(tool_message));
    }
    anyhow::bail!("no answer after {MAX_ROUNDS} rounds of tool calls")
}

/// `--chat-url URL --nats-url URL [--model NAME] QUESTION`.
fn args() -> anyhow::Result<(String, String, String, String)> {
    let usage = || {
        anyhow::anyhow!("usage: tower_agent --chat-url URL --nats-url URL [--model NAME] QUESTION")
    };
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
    Ok((
        chat_url.ok_or_else(usage)?,
        nats_url.ok_or_else(usage)?,
        model,
        question.ok_or_else(usage)?,
    ))
}
