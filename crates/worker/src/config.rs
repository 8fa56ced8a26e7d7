//! The worker binary's tools file (`toolfan-worker --config tools.toml`):
//! tools that need no Rust, with their limit keys and fleet-wide caps.
//!
//! ```toml
//! [[tools]]
//! name = "wordcount"
//! command = ["wc", "-c"]        # args arrive as JSON on stdin
//! limit_keys = ["cpu"]          # optional
//! max_in_flight = 4             # optional, fleet-wide
//! ```

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::command::CommandTool;
use crate::{WorkerBuilder, WorkerError};

/// A tools file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolsFile {
    /// The tools.
    #[serde(default)]
    pub tools: Vec<ToolDef>,
}

/// One tool of a tools file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDef {
    /// The tool's name.
    pub name: String,
    /// Program and fixed arguments; each call's args go to its stdin as JSON.
    pub command: Vec<String>,
    /// Limit keys the tool's calls are under.
    #[serde(default)]
    pub limit_keys: Vec<String>,
    /// Fleet-wide cap on the tool's calls in flight.
    pub max_in_flight: Option<i64>,
}

impl ToolsFile {
    /// Reads and checks `path`, naming the file in any error.
    pub fn load(path: &Path) -> Result<Self, WorkerError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| WorkerError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| WorkerError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses a tools file's text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: ToolsFile = toml::from_str(text).map_err(|e| e.to_string())?;
        for tool in &file.tools {
            if tool.command.is_empty() {
                return Err(format!(
                    "tool {:?}: `command` needs at least the program",
                    tool.name
                ));
            }
        }
        Ok(file)
    }

    /// Adds every tool to `builder`.
    pub fn apply(self, mut builder: WorkerBuilder) -> WorkerBuilder {
        for tool in self.tools {
            let command = CommandTool::new(tool.command).expect("checked when parsed");
            builder = builder.boxed_tool(tool.name.clone(), Arc::new(command));
            if !tool.limit_keys.is_empty() {
                builder = builder.limit_keys(tool.name.clone(), tool.limit_keys);
            }
            if let Some(max) = tool.max_in_flight {
                builder = builder.tool_max_in_flight(tool.name, max);
            }
        }
        builder
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
        assert_eq!(file.tools[0].command, ["wc", "-c"]);
        assert_eq!(file.tools[0].max_in_flight, Some(4));
        let err = ToolsFile::parse("[[tools]]\nname = \"x\"\ncommand = []\n").unwrap_err();
        assert!(err.contains("needs at least the program"), "{err}");
        let err = ToolsFile::parse("[[tools]]\nname = \"x\"\ncmd = [\"ls\"]\n").unwrap_err();
        assert!(err.contains("unknown field `cmd`"), "{err}");
    }
}
