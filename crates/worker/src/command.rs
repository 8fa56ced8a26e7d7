//! Command tools: a program run once per call, with the call's args as JSON
//! on its stdin and its stdout as the result. The argv is fixed by the
//! operator; args never reach a shell. The child is killed if the call
//! times out or is cancelled (its future is dropped).

use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::tool::ToolFuture;
use crate::{TaskContext, Tool, ToolError};

/// Longest stderr kept in an error message.
const STDERR_KEPT: usize = 2048;

/// A tool that runs `argv` for each call.
#[derive(Debug, Clone)]
pub struct CommandTool {
    argv: Vec<String>,
}

impl CommandTool {
    /// A tool running `argv` (program and fixed arguments); `None` if empty.
    pub fn new(argv: Vec<String>) -> Option<Self> {
        (!argv.is_empty()).then_some(Self { argv })
    }
}

impl Tool for CommandTool {
    fn call(&self, _ctx: TaskContext, args: Value) -> ToolFuture {
        let argv = self.argv.clone();
        Box::pin(async move { run(&argv, &args).await })
    }
}

async fn run(argv: &[String], args: &Value) -> Result<Value, ToolError> {
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| ToolError::new(format!("cannot start {:?}: {e}", argv[0])))?;
    if let Some(mut stdin) = child.stdin.take() {
        let input = serde_json::to_vec(args).expect("JSON values serialize");
        // A program that does not read its stdin is fine.
        let _ = stdin.write_all(&input).await;
    }
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| ToolError::new(format!("waiting for {:?}: {e}", argv[0])))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr: String = stderr.trim().chars().take(STDERR_KEPT).collect();
        return Err(ToolError::new(format!(
            "{:?} {}: {stderr}",
            argv[0], output.status
        )));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(serde_json::from_str(stdout.trim())
        .unwrap_or_else(|_| Value::String(stdout.trim().to_owned())))
}
