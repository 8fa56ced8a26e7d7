//! LLM tool calls in, tool messages out, through a real cluster.

use serde_json::json;
use toolfan::llm::{anthropic, openai};
use toolfan_e2e::Cluster;

#[tokio::test]
async fn five_openai_tool_calls_become_five_tool_messages_in_order() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(8).await?;
    let client = cluster.client().await?;
    let calls: Vec<openai::ToolCall> = serde_json::from_value(json!([
        {"id": "call_a", "type": "function", "function": {"name": "echo", "arguments": "{\"n\": 1}"}},
        {"id": "call_b", "type": "function", "function": {"name": "sleep", "arguments": "{\"ms\": 50}"}},
        {"id": "call_c", "type": "function", "function": {"name": "echo", "arguments": "{\"n\": 3"}},
        {"id": "call_d", "type": "function", "function": {"name": "fail", "arguments": "{\"message\": \"nope\"}"}},
        {"id": "call_e", "type": "function", "function": {"name": "echo", "arguments": "{\"n\": 5}"}}
    ]))?;
    let messages = client.answer_openai(&calls).await?;
    let ids: Vec<&str> = messages.iter().map(|m| m.tool_call_id.as_str()).collect();
    assert_eq!(ids, ["call_a", "call_b", "call_c", "call_d", "call_e"]);
    assert!(messages.iter().all(|m| m.role == "tool"));
    assert_eq!(messages[0].content, r#"{"n":1}"#);
    assert_eq!(messages[1].content, r#"{"slept_ms":50}"#);
    assert!(
        messages[2]
            .content
            .starts_with("error: invalid_args: the arguments are not valid JSON"),
        "{}",
        messages[2].content
    );
    assert_eq!(messages[3].content, "error: tool_error: nope");
    assert_eq!(messages[4].content, r#"{"n":5}"#);
    Ok(())
}

#[tokio::test]
async fn anthropic_tool_use_blocks_become_tool_results_in_order() -> anyhow::Result<()> {
    let cluster = Cluster::start().await?;
    cluster.builtin_worker(8).await?;
    let client = cluster.client().await?;
    let uses: Vec<anthropic::ToolUse> = serde_json::from_value(json!([
        {"type": "tool_use", "id": "toolu_1", "name": "echo", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "nosuchtool", "input": {}}
    ]))?;
    let results = client.answer_anthropic(&uses).await?;
    assert_eq!(results[0].tool_use_id, "toolu_1");
    assert_eq!(
        (results[0].is_error, results[0].content.as_str()),
        (false, r#"{"city":"Paris"}"#)
    );
    assert_eq!(results[1].tool_use_id, "toolu_2");
    assert!(
        results[1].is_error && results[1].content.starts_with("unknown_tool"),
        "{:?}",
        results[1]
    );
    Ok(())
}
