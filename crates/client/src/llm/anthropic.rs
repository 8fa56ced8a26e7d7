//! Anthropic `tool_use` content blocks.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use toolfan_protocol::ToolDescription;

use super::{PreparedCalls, Unusable};
use crate::{Client, ClientError};

/// A `tool_use` block of an assistant message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolUse {
    /// Always `tool_use`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The block's id, echoed in the result.
    pub id: String,
    /// The tool's name.
    pub name: String,
    /// The arguments (a JSON object).
    pub input: Value,
}

/// A `tool_result` block answering one `tool_use`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolResult {
    /// Always `tool_result`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The id of the `tool_use` it answers.
    pub tool_use_id: String,
    /// The result (a string as is, other JSON as text) or the error.
    pub content: String,
    /// Whether the call failed.
    pub is_error: bool,
}

/// A tool offered to the model in a request's `tools`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolDefinition {
    /// The tool's name.
    pub name: String,
    /// What it does.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// JSON Schema of its input.
    pub input_schema: Value,
}

/// The fleet's tools ([`Client::tools`]) as Anthropic tool definitions.
pub fn tool_definitions(tools: &[ToolDescription]) -> Vec<ToolDefinition> {
    tools
        .iter()
        .map(|t| ToolDefinition {
            name: t.name.to_string(),
            description: t.description.clone(),
            input_schema: t.parameters.clone(),
        })
        .collect()
}

/// Turns `tool_use` blocks into a job (other content blocks are ignored by
/// the caller before this); an input that is not an object is refused.
pub fn prepare(uses: &[ToolUse]) -> PreparedCalls {
    PreparedCalls::new(uses.iter().map(|u| {
        let args = match &u.input {
            Value::Object(_) => Ok(u.input.clone()),
            other => Err(Unusable::NotAnObject {
                what: "input",
                value: other.clone(),
            }),
        };
        (u.name.clone(), args)
    }))
}

/// The `tool_result` blocks for `uses`, in their order.
pub fn results(
    uses: &[ToolUse],
    prepared: &PreparedCalls,
    results: &[toolfan_protocol::TaskResult],
) -> Vec<ToolResult> {
    uses.iter()
        .zip(prepared.answers(results))
        .map(|(u, (is_error, content))| ToolResult {
            kind: "tool_result".into(),
            tool_use_id: u.id.clone(),
            content,
            is_error,
        })
        .collect()
}

impl Client {
    /// Runs an assistant's `tool_use` blocks through the cluster and returns
    /// the `tool_result` blocks to send back, in order.
    pub async fn answer_anthropic(&self, uses: &[ToolUse]) -> Result<Vec<ToolResult>, ClientError> {
        let prepared = prepare(uses);
        let outcome = if prepared.is_empty() {
            Vec::new()
        } else {
            self.submit(prepared.job.clone()).await?.results().await?
        };
        Ok(results(uses, &prepared, &outcome))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blocks_parse_and_bad_inputs_are_refused() {
        let uses: Vec<ToolUse> = serde_json::from_value(json!([
            {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "rust"}},
            {"type": "tool_use", "id": "toolu_2", "name": "search", "input": "not an object"}
        ]))
        .unwrap();
        let prepared = prepare(&uses);
        assert_eq!(prepared.job.tasks.len(), 1);
        let out = results(
            &uses,
            &prepared,
            &[toolfan_protocol::TaskResult {
                index: 0,
                outcome: Ok(json!("found")),
                attempts: 1,
                duration_ms: 1,
                worker: None,
                cache: None,
            }],
        );
        assert_eq!(
            serde_json::to_value(&out[0]).unwrap(),
            json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "found", "is_error": false})
        );
        assert!(out[1].is_error && out[1].content.contains("must be a JSON object"));
    }
}
