//! Command tools: a program run once per call, with the call's args as JSON
//! on its stdin and its stdout as the result. The argv is fixed by the
//! operator; args never reach a shell. The child is killed if the call
//! times out or is cancelled (its future is dropped).
//!
//! As a batch tool (`batch = {..}` in the tools file) the program gets a
//! JSON array of the calls' args and prints a JSON array of as many
//! outcomes, in order, each `{"ok": <value>}` or `{"error": "<message>"}`.

use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

use toolfan_worker::{BatchOutcome, TaskContext, Tool, ToolError, ToolFuture};

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

    /// Runs the program once with `args` on its stdin.
    pub async fn run(&self, args: &Value) -> Result<Value, ToolError> {
        run(&self.argv, args).await
    }

    /// Runs the program once for a batch: the calls' args as one array in,
    /// one outcome per call out (see the module docs).
    pub async fn run_batch(&self, inputs: Vec<Value>) -> BatchOutcome<Value> {
        let count = inputs.len();
        let printed = self.run(&Value::Array(inputs)).await?;
        batch_outcomes(printed, count)
    }
}

/// Reads a batch program's output: an array of `count` outcomes.
fn batch_outcomes(printed: Value, count: usize) -> BatchOutcome<Value> {
    let Value::Array(items) = printed else {
        return Err(ToolError::new(
            "the batch program must print a JSON array of outcomes",
        ));
    };
    if items.len() != count {
        return Err(ToolError::new(format!(
            "the batch program printed {} outcomes for {count} calls",
            items.len()
        )));
    }
    Ok(items
        .into_iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::Object(mut outcome) if outcome.len() == 1 => {
                match (outcome.remove("ok"), outcome.remove("error")) {
                    (Some(value), _) => Ok(value),
                    (_, Some(Value::String(message))) => Err(ToolError::new(message)),
                    _ => Err(malformed(i)),
                }
            }
            _ => Err(malformed(i)),
        })
        .collect())
}

fn malformed(i: usize) -> ToolError {
    ToolError::new(format!(
        "outcome {i} of the batch program is neither {{\"ok\": ..}} nor {{\"error\": \"..\"}}"
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn batch_output_is_one_outcome_per_call() {
        let out =
            batch_outcomes(json!([{"ok": 1}, {"error": "no"}, {"ok": {"a": null}}]), 3).unwrap();
        assert_eq!(out[0], Ok(json!(1)));
        assert_eq!(out[1], Err(ToolError::new("no")));
        assert_eq!(out[2], Ok(json!({"a": null})));
        let out = batch_outcomes(json!([{"value": 1}]), 1).unwrap();
        assert!(out[0]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("outcome 0"));
        assert!(batch_outcomes(json!([{"ok": 1}]), 2)
            .unwrap_err()
            .to_string()
            .contains("1 outcomes for 2 calls"));
        assert!(batch_outcomes(json!("text"), 1).is_err());
    }
}
