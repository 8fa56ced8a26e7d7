//! toolfan's shapes in MCP's: a fleet tool description as an MCP tool, a
//! task's result as a `tools/call` result.
//!
//! - A tool's `parameters` become its `inputSchema`; a tool without an
//!   object schema (or with a `type` other than `"object"`) gets
//!   `{"type":"object"}`, and an object schema without a `type` gets
//!   `"type":"object"` (MCP requires it).
//! - A string value is one text content; any other value is its JSON as
//!   text, and also `structuredContent` when it is an object.
//! - A failure is a result with `isError: true` whose text is
//!   `<kind>: <message>` (`tool_error: division by zero`), the kind as
//!   toolfan names it, so a model can tell a timeout from a bad argument.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde_json::Value;
use toolfan::{ErrorKind, TaskError, TaskResult};
use toolfan_protocol::ToolDescription;

/// The MCP tool for a fleet tool.
pub(crate) fn tool(description: &ToolDescription) -> Tool {
    let mut schema = match &description.parameters {
        Value::Object(schema) => schema.clone(),
        _ => JsonObject::new(),
    };
    match schema.get("type") {
        None => {
            schema.insert("type".to_owned(), Value::String("object".to_owned()));
        }
        // Not an object's schema (a foreign worker's, say): strict clients
        // refuse a whole list with one, so it reads "any object".
        Some(kind) if kind != "object" => schema = object_schema(),
        Some(_) => {}
    }
    let text = (!description.description.is_empty()).then(|| description.description.clone());
    Tool::new_with_raw(
        description.name.to_string(),
        text.map(Into::into),
        Arc::new(schema),
    )
}

/// `{"type": "object"}`.
fn object_schema() -> JsonObject {
    let mut schema = JsonObject::new();
    schema.insert("type".to_owned(), Value::String("object".to_owned()));
    schema
}

/// The `tools/call` result for a task's result.
pub(crate) fn call_result(tool: &str, result: &TaskResult) -> CallToolResult {
    match &result.outcome {
        Ok(value) => success(value),
        Err(error) => failure(tool, error),
    }
}

/// A successful call's result.
pub(crate) fn success(value: &Value) -> CallToolResult {
    match value {
        Value::String(text) => CallToolResult::success(vec![ContentBlock::text(text.clone())]),
        other => {
            let mut result = CallToolResult::success(vec![ContentBlock::text(other.to_string())]);
            if other.is_object() {
                result.structured_content = Some(other.clone());
            }
            result
        }
    }
}

/// A failed call's result: `isError` and `<kind>: <message>`; an unknown
/// tool's text names the tool.
pub(crate) fn failure(tool: &str, error: &TaskError) -> CallToolResult {
    let mut text = error.to_string();
    if error.kind == ErrorKind::UnknownTool && !error.message.contains(tool) {
        text = format!("{text} (tool `{tool}`)");
    }
    error_text(text)
}

/// An `isError` result with `text`.
pub(crate) fn error_text(text: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(text)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn described(parameters: Value) -> ToolDescription {
        serde_json::from_value(
            json!({"name": "calc", "description": "adds", "parameters": parameters}),
        )
        .expect("a description")
    }

    fn text_of(result: &CallToolResult) -> String {
        let json = serde_json::to_value(result).expect("serialises");
        json["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    #[test]
    fn schemas_are_objects() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "number"}}});
        let t = tool(&described(schema.clone()));
        assert_eq!(Value::Object((*t.input_schema).clone()), schema);
        assert_eq!(t.description.as_deref(), Some("adds"));
        let t = tool(&described(Value::Null));
        assert_eq!(
            Value::Object((*t.input_schema).clone()),
            json!({"type": "object"})
        );
        let t = tool(&described(json!({"properties": {}})));
        assert_eq!(t.input_schema["type"], json!("object"));
        let t = tool(&described(json!({"type": "array", "items": {}})));
        assert_eq!(
            Value::Object((*t.input_schema).clone()),
            json!({"type": "object"})
        );
    }

    #[test]
    fn values_become_content() {
        let r = success(&json!("hello"));
        assert_eq!(text_of(&r), "hello");
        assert_eq!(r.structured_content, None);
        let r = success(&json!({"sum": 3}));
        assert_eq!(text_of(&r), r#"{"sum":3}"#);
        assert_eq!(r.structured_content, Some(json!({"sum": 3})));
        let r = success(&json!([1, 2]));
        assert_eq!(text_of(&r), "[1,2]");
        assert_eq!(r.structured_content, None);
        assert_ne!(r.is_error, Some(true));
    }

    #[test]
    fn failures_name_their_kind() {
        let error: TaskError = serde_json::from_value(
            json!({"kind": "tool_error", "message": "division by zero", "retryable": false}),
        )
        .expect("an error");
        let r = failure("calc", &error);
        assert_eq!(r.is_error, Some(true));
        assert_eq!(text_of(&r), "tool_error: division by zero");
        let unknown: TaskError = serde_json::from_value(
            json!({"kind": "unknown_tool", "message": "no worker serves it"}),
        )
        .expect("an error");
        assert_eq!(
            text_of(&failure("nope", &unknown)),
            "unknown_tool: no worker serves it (tool `nope`)"
        );
    }
}
