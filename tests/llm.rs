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

mod catalog {
    use super::*;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use toolfan_worker::{TaskContext, ToolError, Worker, WorkerBuilder};

    /// Looks up the weather of a city.
    #[derive(Deserialize, JsonSchema)]
    struct WeatherArgs {
        /// The city's name.
        city: String,
        /// Days ahead, 0 for today.
        days: Option<u32>,
        unit: Unit,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    enum Unit {
        Celsius,
        Fahrenheit,
    }

    fn typed(id: &str) -> WorkerBuilder {
        Worker::builder()
            .id(id)
            .typed_tool("weather", |_ctx: TaskContext, a: WeatherArgs| async move {
                let unit = match a.unit {
                    Unit::Celsius => "C",
                    Unit::Fahrenheit => "F",
                };
                Ok::<_, ToolError>(json!({"city": a.city, "days": a.days.unwrap_or(0), "unit": unit}))
            })
            .tool("upper", |_ctx: TaskContext, args: serde_json::Value| async move {
                Ok(json!(args["text"].as_str().unwrap_or_default().to_uppercase()))
            })
            .describe("upper", "Upper-cases a text.")
            .parameters(
                "upper",
                json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}),
            )
    }

    /// Runs `toolfan tools` (without blocking the in-process workers).
    async fn cli(url: &str, format: &str) -> anyhow::Result<serde_json::Value> {
        let out = tokio::process::Command::new(toolfan_testkit::binary("toolfan")?)
            .args(["tools", "--nats-url", url, "--format", format])
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "toolfan tools failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    #[tokio::test]
    async fn the_fleets_tools_are_listed_with_schemas_in_each_llm_format() -> anyhow::Result<()> {
        let cluster = Cluster::start().await?;
        // Two workers serve the same typed tools: listed once.
        cluster.worker(typed("typed-1")).await?;
        cluster.worker(typed("typed-2")).await?;
        let (_configured, _dir) = cluster
            .configured_worker(
                "configured",
                r#"
            [[tools]]
            name = "wordcount"
            command = ["wc", "-w"]
            description = "Counts the words of a text."
            parameters = { type = "object", properties = { text = { type = "string" } }, required = ["text"] }

            [[tools]]
            name = "forecast"
            http = { url = "http://127.0.0.1:9/forecast/{city}?d={days}", allowed_hosts = ["127.0.0.1"] }
            "#,
            )
            .await?;
        let url = cluster.nats.url();

        let tools = cli(&url, "openai").await?;
        let names: Vec<&str> = tools
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["function"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["forecast", "upper", "weather", "wordcount"]);
        assert!(tools
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["type"] == "function"));
        let weather = &tools[2]["function"];
        assert_eq!(weather["description"], "Looks up the weather of a city.");
        let params = &weather["parameters"];
        assert_eq!(params["type"], "object");
        assert_eq!(params["required"], json!(["city", "unit"]));
        assert_eq!(
            params["properties"]["city"]["description"],
            "The city's name."
        );
        assert_eq!(
            params["properties"]["unit"]["enum"],
            json!(["celsius", "fahrenheit"])
        );
        assert!(!params.to_string().contains("$ref"), "{params}");
        assert_eq!(tools[1]["function"]["description"], "Upper-cases a text.");
        assert_eq!(
            tools[1]["function"]["parameters"]["required"],
            json!(["text"])
        );
        assert_eq!(
            tools[0]["function"]["parameters"],
            json!({"type": "object", "required": ["city", "days"],
                   "properties": {"city": {"type": "string"}, "days": {"type": "string"}}})
        );
        assert_eq!(
            tools[3]["function"]["description"],
            "Counts the words of a text."
        );

        let tools = cli(&url, "anthropic").await?;
        assert_eq!(tools[2]["name"], "weather");
        assert_eq!(tools[2]["description"], "Looks up the weather of a city.");
        assert_eq!(tools[2]["input_schema"], *params);
        assert_eq!(
            tools[3]["input_schema"]["properties"]["text"]["type"],
            "string"
        );

        // The schema is what the tool accepts: a call built from it runs,
        // one that breaks it is refused as invalid_args.
        let calls: Vec<openai::ToolCall> = serde_json::from_value(json!([
            {"id": "1", "type": "function", "function": {"name": "weather",
                "arguments": "{\"city\": \"Oslo\", \"unit\": \"celsius\"}"}},
            {"id": "2", "type": "function", "function": {"name": "weather",
                "arguments": "{\"city\": \"Oslo\", \"unit\": \"kelvin\"}"}},
            {"id": "3", "type": "function", "function": {"name": "wordcount",
                "arguments": "{\"text\": \"one two three\"}"}}
        ]))?;
        let messages = cluster.client().await?.answer_openai(&calls).await?;
        assert_eq!(
            messages[0].content,
            r#"{"city":"Oslo","days":0,"unit":"C"}"#
        );
        assert!(
            messages[1].content.starts_with("error: invalid_args"),
            "{}",
            messages[1].content
        );
        // wc -w counts the words of the JSON text: {"text": "one two three"} → 3.
        assert_eq!(messages[2].content, "3");
        Ok(())
    }

    #[test]
    fn a_schema_for_a_tool_not_served_or_not_an_object_is_refused() {
        let err = typed("x")
            .parameters("nothing", json!({"type": "object"}))
            .build()
            .err()
            .expect("refused");
        assert!(err.to_string().contains("\"nothing\""), "{err}");
        let err = typed("x")
            .parameters("upper", json!({"type": "string"}))
            .build()
            .err()
            .expect("refused");
        assert!(err.to_string().contains("tool \"upper\""), "{err}");
    }
}
