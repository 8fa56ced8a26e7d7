//! What a `tools/call` answer becomes: a task's value or its [`ToolError`]
//! (the rules are in the [module docs](super)).

use rmcp::model::{CallToolResponse, CallToolResult, ContentBlock, ErrorCode, ErrorData};
use rmcp::ServiceError;
use serde_json::Value;
use toolfan_worker::ToolError;

/// The task's outcome from the server's answer to `tools/call`.
pub(crate) fn outcome(
    server: &str,
    response: Result<CallToolResponse, ServiceError>,
) -> Result<Value, ToolError> {
    match response {
        Ok(CallToolResponse::Complete(result)) => result_value(result),
        Ok(CallToolResponse::InputRequired(_)) => Err(ToolError::new(format!(
            "MCP server {server} asked for input (elicitation or sampling), which toolfan does not provide"
        ))),
        Ok(CallToolResponse::Task(_)) => Err(ToolError::new(format!(
            "MCP server {server} answered with a task to poll, which toolfan does not follow"
        ))),
        Ok(_) => Err(ToolError::new(format!(
            "MCP server {server} gave an answer of a kind toolfan does not know"
        ))),
        Err(error) => Err(service_error(server, error)),
    }
}

/// A complete result: `isError` a `tool_error` with the server's text,
/// otherwise its structured content, or its content blocks.
pub(crate) fn result_value(result: CallToolResult) -> Result<Value, ToolError> {
    if result.is_error == Some(true) {
        let text = texts(&result.content);
        let message = match (text.is_empty(), &result.structured_content) {
            (false, _) => text,
            (true, Some(structured)) => structured.to_string(),
            (true, None) => "the MCP tool reported an error without a message".into(),
        };
        return Err(ToolError::new(message));
    }
    if let Some(structured) = result.structured_content {
        return Ok(structured);
    }
    Ok(match result.content.as_slice() {
        [] => Value::Null,
        [ContentBlock::Text(text)] => Value::String(text.text.clone()),
        blocks => Value::Array(blocks.iter().map(block_value).collect()),
    })
}

/// A text block as its text; any other block in its MCP JSON form.
fn block_value(block: &ContentBlock) -> Value {
    match block {
        ContentBlock::Text(text) => Value::String(text.text.clone()),
        other => serde_json::to_value(other).unwrap_or(Value::Null),
    }
}

/// The text blocks, one a line.
fn texts(content: &[ContentBlock]) -> String {
    let texts: Vec<&str> = content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect();
    texts.join("\n")
}

/// A failed request as a task error, retryable where another attempt may
/// help (a transport failure, a server's internal error, a timeout).
pub(crate) fn service_error(server: &str, error: ServiceError) -> ToolError {
    match error {
        ServiceError::McpError(data) => protocol_error(server, data),
        ServiceError::TransportClosed => {
            ToolError::retryable(format!("the connection to MCP server {server} closed"))
        }
        // Its own text names the transport's Rust type; its cause says what failed.
        ServiceError::TransportSend(e) => ToolError::retryable(format!(
            "sending to MCP server {server} failed: {}",
            chain(e.error.as_ref())
        )),
        ServiceError::Timeout { timeout } => ToolError::retryable(format!(
            "MCP server {server} did not answer within {} ms",
            timeout.as_millis()
        )),
        ServiceError::Cancelled { reason } => ToolError::retryable(format!(
            "MCP server {server} cancelled the call: {}",
            reason.as_deref().unwrap_or("no reason given")
        )),
        ServiceError::UnexpectedResponse => ToolError::new(format!(
            "MCP server {server} answered tools/call with something else"
        )),
        other => ToolError::new(format!("MCP server {server}: {other}")),
    }
}

/// A JSON-RPC error from the server.
fn protocol_error(server: &str, data: ErrorData) -> ToolError {
    let message = format!(
        "MCP server {server}: {} (code {})",
        data.message, data.code.0
    );
    match data.code {
        ErrorCode::INVALID_PARAMS => ToolError::invalid_args(message),
        ErrorCode::INTERNAL_ERROR => ToolError::retryable(message),
        _ => ToolError::new(message),
    }
}

/// An error and its causes, each once.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use toolfan_protocol::{ErrorKind, TaskError};

    fn kind(error: ToolError) -> (ErrorKind, bool, String) {
        let error = TaskError::from(error);
        (error.kind, error.retryable, error.message)
    }

    #[test]
    fn results_become_values() {
        let one = CallToolResult::success(vec![ContentBlock::text("{\"a\": 1}")]);
        assert_eq!(result_value(one).unwrap(), json!("{\"a\": 1}"));
        let two = CallToolResult::success(vec![ContentBlock::text("a"), ContentBlock::text("b")]);
        assert_eq!(result_value(two).unwrap(), json!(["a", "b"]));
        assert_eq!(
            result_value(CallToolResult::success(vec![])).unwrap(),
            Value::Null
        );
        let mut structured = CallToolResult::success(vec![ContentBlock::text("ignored")]);
        structured.structured_content = Some(json!({"x": 2}));
        assert_eq!(result_value(structured).unwrap(), json!({"x": 2}));
        let image = CallToolResult::success(vec![ContentBlock::image("AAAA", "image/png")]);
        let value = result_value(image).unwrap();
        assert_eq!(value[0]["mimeType"], "image/png", "{value}");
    }

    #[test]
    fn errors_get_their_kinds() {
        let failed = CallToolResult::error(vec![ContentBlock::text("no such city")]);
        let (kind_, retryable, message) = kind(result_value(failed).unwrap_err());
        assert_eq!(
            (kind_, retryable, message.as_str()),
            (ErrorKind::ToolError, false, "no such city")
        );
        let invalid = ErrorData::new(ErrorCode::INVALID_PARAMS, "b is required", None);
        let (kind_, retryable, _) = kind(service_error("calc", ServiceError::McpError(invalid)));
        assert_eq!((kind_, retryable), (ErrorKind::InvalidArgs, false));
        let internal = ErrorData::new(ErrorCode::INTERNAL_ERROR, "oops", None);
        let (kind_, retryable, message) =
            kind(service_error("calc", ServiceError::McpError(internal)));
        assert_eq!((kind_, retryable), (ErrorKind::ToolError, true));
        assert!(
            message.contains("calc") && message.contains("-32603"),
            "{message}"
        );
        let (kind_, retryable, _) = kind(service_error("calc", ServiceError::TransportClosed));
        assert_eq!((kind_, retryable), (ErrorKind::ToolError, true));
        let unexpected = kind(service_error("calc", ServiceError::UnexpectedResponse));
        assert!(!unexpected.1);
    }
}
