//! OpenAI chat-completions tool calls.
//!
//! ```
//! use toolfan::llm::openai::ToolCall;
//!
//! let calls: Vec<ToolCall> = serde_json::from_str(r#"[
//!   {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{\"q\": \"rust\"}"}}
//! ]"#).unwrap();
//! let prepared = toolfan::llm::openai::prepare(&calls);
//! assert_eq!(prepared.job.tasks[0].args["q"], "rust");
//! ```

use serde::{Deserialize, Serialize};

use toolfan_protocol::ToolDescription;

use super::{PreparedCalls, Unusable};
use crate::{Client, ClientError};

/// One entry of an assistant message's `tool_calls`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, echoed in the tool message.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function")]
    pub kind: String,
    /// The function and its arguments.
    pub function: FunctionCall,
}

fn function() -> String {
    "function".into()
}

/// The function a tool call names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The tool's name.
    pub name: String,
    /// The arguments as a JSON string, as the model wrote them.
    pub arguments: String,
}

/// A `role: "tool"` message answering one call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolMessage {
    /// Always `tool`.
    pub role: String,
    /// The id of the call it answers.
    pub tool_call_id: String,
    /// The result (a string as is, other JSON as text) or the error.
    pub content: String,
}

/// A tool offered to the model in a request's `tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// Always `function`.
    #[serde(rename = "type", default = "function")]
    pub kind: String,
    /// The function.
    pub function: FunctionDefinition,
}

/// A function the model may call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    /// The tool's name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// JSON Schema of its arguments.
    pub parameters: serde_json::Value,
}

/// The fleet's tools ([`Client::tools`]) as OpenAI tool definitions.
pub fn tool_definitions(tools: &[ToolDescription]) -> Vec<ToolDefinition> {
    tools
        .iter()
        .map(|t| ToolDefinition {
            kind: function(),
            function: FunctionDefinition {
                name: t.name.to_string(),
                description: t.description.clone(),
                parameters: t.parameters.clone(),
            },
        })
        .collect()
}

/// Turns tool calls into a job; calls with arguments that are not a JSON
/// object are answered with an error without being sent.
pub fn prepare(calls: &[ToolCall]) -> PreparedCalls {
    PreparedCalls::new(calls.iter().map(|call| {
        let args = serde_json::from_str::<serde_json::Value>(&call.function.arguments)
            .map_err(Unusable::NotJson)
            .and_then(|v| match v {
                serde_json::Value::Object(_) => Ok(v),
                value => Err(Unusable::NotAnObject {
                    what: "arguments",
                    value,
                }),
            });
        (call.function.name.clone(), args)
    }))
}

/// The tool messages for `calls`, in their order, from the job's results.
pub fn messages(
    calls: &[ToolCall],
    prepared: &PreparedCalls,
    results: &[toolfan_protocol::TaskResult],
) -> Vec<ToolMessage> {
    calls
        .iter()
        .zip(prepared.answers(results))
        .map(|(call, (is_error, content))| ToolMessage {
            role: "tool".into(),
            tool_call_id: call.id.clone(),
            content: if is_error {
                format!("error: {content}")
            } else {
                content
            },
        })
        .collect()
}

impl Client {
    /// Runs an assistant's OpenAI tool calls through the cluster and returns
    /// the tool messages to send back, in call order.
    pub async fn answer_openai(&self, calls: &[ToolCall]) -> Result<Vec<ToolMessage>, ClientError> {
        let prepared = prepare(calls);
        let results = if prepared.is_empty() {
            Vec::new()
        } else {
            self.submit(prepared.job.clone()).await?.results().await?
        };
        Ok(messages(calls, &prepared, &results))
    }
}
