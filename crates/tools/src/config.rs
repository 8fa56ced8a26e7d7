//! The worker binary's tools file (`toolfan-worker --config tools.toml`):
//! tools that need no Rust, with their limit keys and fleet-wide caps.
//!
//! ```toml
//! [[tools]]
//! name = "wordcount"
//! command = ["wc", "-c"]        # args arrive as JSON on stdin
//! limit_keys = ["cpu"]          # optional
//! max_in_flight = 4             # optional, fleet-wide
//! description = "Counts the bytes of its arguments' JSON."   # optional, for LLMs
//! parameters = { type = "object", properties = { text = { type = "string" } } }  # optional JSON Schema
//! batch = { max_size = 16, max_wait_ms = 20 }   # optional: one run per batch of calls
//!
//! [[tools]]
//! name = "weather"
//! http = { url = "https://api.example.com/weather?city={city}", allowed_hosts = ["api.example.com"],
//!          headers = { Authorization = "Bearer ${WEATHER_TOKEN}" }, timeout_ms = 5000 }
//!
//! [[tools]]
//! name = "chat"                 # the real cost is in the answer: charge it
//! http = { method = "POST", url = "https://api.example.com/v1/chat", allowed_hosts = ["api.example.com"],
//!          usage = { pointer = "/usage/total_tokens", key = "tokens" } }
//! limit_keys = ["tokens"]
//! ```

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use std::time::Duration;

use toolfan_worker::{any_object_schema, check_parameters, BatchOptions, Tool, WorkerBuilder};

use std::collections::BTreeSet;

use crate::command::CommandTool;
use crate::http::{HttpDef, HttpTool};
use crate::mcp::{McpDef, McpError, McpSource};
use crate::{limits_of, ToolsError};

/// A tools file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsFile {
    /// The tools.
    #[serde(default)]
    pub tools: Vec<ToolDef>,
    /// MCP servers whose tools are served (see [`crate::mcp`]).
    #[serde(default)]
    pub mcp: Vec<McpDef>,
}

/// One tool of a tools file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDef {
    /// The tool's name.
    pub name: String,
    /// Program and fixed arguments; each call's args go to its stdin as JSON.
    pub command: Option<Vec<String>>,
    /// An HTTP request per call.
    pub http: Option<HttpDef>,
    /// Limit keys the tool's calls are under.
    #[serde(default)]
    pub limit_keys: Vec<String>,
    /// Fleet-wide cap on the tool's calls in flight.
    pub max_in_flight: Option<i64>,
    /// What the tool does, for callers and their LLM.
    pub description: Option<String>,
    /// JSON Schema of the tool's arguments (an object schema). Without it a
    /// command tool takes any object and an HTTP tool requires its URL
    /// template's placeholders as strings.
    pub parameters: Option<serde_json::Value>,
    /// Run a command tool once per batch of calls (see [`crate::command`]).
    pub batch: Option<BatchDef>,
}

/// How a command tool batches its calls.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchDef {
    /// Most calls per run of the program.
    pub max_size: usize,
    /// Longest a call waits for others, in ms.
    pub max_wait_ms: u64,
}

impl ToolsFile {
    /// Reads and checks `path`, naming the file in any error.
    pub fn load(path: &Path) -> Result<Self, ToolsError> {
        let text = std::fs::read_to_string(path).map_err(|source| ToolsError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| ToolsError::InFile {
            path: path.to_owned(),
            source: Box::new(e),
        })
    }

    /// Parses a tools file's text.
    pub fn parse(text: &str) -> Result<Self, ToolsError> {
        let file: ToolsFile = toml::from_str(text)?;
        for tool in &file.tools {
            tool.check()?;
        }
        for (i, mcp) in file.mcp.iter().enumerate() {
            let named = |source| ToolsError::Mcp {
                mcp: mcp.name.clone(),
                source,
            };
            mcp.check().map_err(named)?;
            if file.mcp[..i].iter().any(|other| other.name == mcp.name) {
                return Err(named(McpError::Duplicate(mcp.name.clone())));
            }
        }
        Ok(file)
    }

    /// Adds every tool to `builder`, connecting to each MCP server to list
    /// its tools; an HTTP tool whose header variables are not set, or whose
    /// method is unknown, an MCP server that cannot be used, or a name
    /// served twice, is an error naming it.
    pub async fn apply(self, builder: WorkerBuilder) -> Result<WorkerBuilder, ToolsError> {
        let names: Vec<String> = self.tools.iter().map(|t| t.name.clone()).collect();
        let mut builder = apply_tools(self.tools, builder)?;
        let mut taken: BTreeSet<String> = names.into_iter().collect();
        for def in self.mcp {
            let name = def.name.clone();
            let source = McpSource::connect(def).await?;
            for tool in source.tool_names() {
                if !taken.insert(tool.clone()) {
                    let source = McpError::Duplicate(tool);
                    return Err(ToolsError::Mcp { mcp: name, source });
                }
            }
            builder = source.register(builder);
        }
        Ok(builder)
    }
}

/// Adds the `[[tools]]` of a file to `builder`.
fn apply_tools(
    tools: Vec<ToolDef>,
    mut builder: WorkerBuilder,
) -> Result<WorkerBuilder, ToolsError> {
    for tool in tools {
        let parameters = match (tool.parameters, &tool.http) {
            (Some(schema), _) => schema,
            (None, Some(http)) => http.placeholder_schema(),
            (None, None) => any_object_schema(),
        };
        builder = builder.parameters(tool.name.clone(), parameters);
        if let Some(description) = tool.description {
            builder = builder.describe(tool.name.clone(), description);
        }
        if let (Some(argv), Some(batch)) = (&tool.command, tool.batch) {
            let command = Arc::new(CommandTool::new(argv.clone()).expect("checked when parsed"));
            let options =
                BatchOptions::new(batch.max_size, Duration::from_millis(batch.max_wait_ms));
            builder = builder.batch_tool(tool.name.clone(), options, move |inputs| {
                let command = command.clone();
                async move { command.run_batch(inputs).await }
            });
            builder = limits_of(builder, tool.name, tool.limit_keys, tool.max_in_flight);
            continue;
        }
        let made: Arc<dyn Tool> = match (tool.command, tool.http) {
            (Some(argv), _) => Arc::new(CommandTool::new(argv).expect("checked when parsed")),
            (None, Some(http)) => {
                Arc::new(HttpTool::new(http).map_err(|source| ToolsError::Http {
                    tool: tool.name.clone(),
                    source,
                })?)
            }
            (None, None) => unreachable!("checked when parsed"),
        };
        builder = builder.boxed_tool(tool.name.clone(), made);
        builder = limits_of(builder, tool.name, tool.limit_keys, tool.max_in_flight);
    }
    Ok(builder)
}

impl ToolDef {
    /// Checks what can be checked before the tool is made.
    fn check(&self) -> Result<(), ToolsError> {
        let problem = |problem: &str| ToolsError::Tool {
            tool: self.name.clone(),
            problem: problem.to_owned(),
        };
        if let Some(schema) = &self.parameters {
            check_parameters(schema).map_err(|source| ToolsError::Schema {
                tool: self.name.clone(),
                source,
            })?;
        }
        if self.batch.is_some() && self.command.is_none() {
            return Err(problem("`batch` applies to command tools only"));
        }
        match (&self.command, &self.http) {
            (Some(argv), None) if argv.is_empty() => {
                Err(problem("`command` needs at least the program"))
            }
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(problem("give exactly one of `command` and `http`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tools_file_parses_and_names_its_mistakes() {
        let file = ToolsFile::parse(
            r#"
            [[tools]]
            name = "wordcount"
            command = ["wc", "-c"]
            limit_keys = ["cpu"]
            max_in_flight = 4
            "#,
        )
        .unwrap();
        assert_eq!(
            file.tools[0].command.as_deref(),
            Some(&["wc".to_owned(), "-c".to_owned()][..])
        );
        assert_eq!(file.tools[0].max_in_flight, Some(4));
        let err = ToolsFile::parse("[[tools]]\nname = \"x\"\ncommand = []\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs at least the program"), "{err}");
        let err = ToolsFile::parse("[[tools]]\nname = \"x\"\ncmd = [\"ls\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `cmd`"), "{err}");
        let err = ToolsFile::parse("[[tools]]\nname = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("exactly one of `command` and `http`"), "{err}");
        let err = ToolsFile::parse(
            "[[tools]]\nname = \"x\"\ncommand = [\"ls\"]\nparameters = { type = \"array\" }\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("tool \"x\"") && err.contains("\"type\": \"object\""),
            "{err}"
        );
    }

    #[test]
    fn mcp_entries_parse_and_their_mistakes_name_the_entry() {
        let file = ToolsFile::parse(
            r#"
            [[tools]]
            name = "wordcount"
            command = ["wc", "-w"]

            [[mcp]]
            name = "calc"
            command = ["python3", "calc_server.py"]
            limit_keys = ["calc"]

            [[mcp]]
            name = "web"
            url = "http://127.0.0.1:8000/mcp"
            headers = { Authorization = "env:WEB_TOKEN" }
            tools = ["search"]
            "#,
        )
        .unwrap();
        assert_eq!((file.tools.len(), file.mcp.len()), (1, 2));
        assert_eq!(file.mcp[0].limit_keys, ["calc"]);
        let err = ToolsFile::parse("[[mcp]]\nname = \"calc\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mcp \"calc\"") && err.contains("exactly one of `command` and `url`"),
            "{err}"
        );
        let twice = "[[mcp]]\nname = \"a\"\ncommand = [\"x\"]\n[[mcp]]\nname = \"a\"\nurl = \"http://h/\"\n";
        let err = ToolsFile::parse(twice).unwrap_err().to_string();
        assert!(err.contains("served twice"), "{err}");
    }

    #[tokio::test]
    async fn an_mcp_server_that_cannot_start_is_an_error_naming_it() {
        let file =
            ToolsFile::parse("[[mcp]]\nname = \"gone\"\ncommand = [\"/nonexistent/mcp-server\"]\n")
                .unwrap();
        let err = file.apply(WorkerBuilder::default()).await.err().unwrap();
        let err = err.to_string();
        assert!(
            err.contains("mcp \"gone\"")
                && err.contains("cannot start \"/nonexistent/mcp-server\""),
            "{err}"
        );
        let file = ToolsFile::parse(
            "[[mcp]]\nname = \"web\"\nurl = \"http://h/\"\nheaders = { A = \"env:TOOLFAN_SURELY_UNSET_MCP_VAR\" }\n",
        )
        .unwrap();
        let err = file.apply(WorkerBuilder::default()).await.err().unwrap();
        assert!(
            err.to_string().contains("TOOLFAN_SURELY_UNSET_MCP_VAR"),
            "{err}"
        );
    }

    #[test]
    fn the_shipped_example_parses() {
        let file = ToolsFile::parse(include_str!("../../../deploy/tools.toml")).unwrap();
        let wordcount = &file.tools[0];
        assert_eq!(
            wordcount.description.as_deref(),
            Some("Counts the words of a text.")
        );
        let schema = wordcount.parameters.as_ref().unwrap();
        assert_eq!(schema["required"], serde_json::json!(["text"]));
        assert!(file.tools.iter().any(|t| t.http.is_some()));
        assert!(file.tools.iter().any(|t| t.batch.is_some()));
        let err = ToolsFile::parse(
            "[[tools]]\nname = \"x\"\nhttp = { url = \"http://h/\", allowed_hosts = [\"h\"] }\nbatch = { max_size = 2, max_wait_ms = 5 }\n",
        )
        .unwrap_err().to_string();
        assert!(err.contains("command tools only"), "{err}");
    }
}
