//! LLM tool-call adapters: an assistant's tool calls in, one job out, and
//! the tool messages back in the order of the calls.
//!
//! - [`openai`] — chat-completions `tool_calls` → `role: "tool"` messages.
//! - [`anthropic`] — `tool_use` content blocks → `tool_result` blocks.
//!
//! A call the model got wrong (arguments that are not JSON, a tool name that
//! cannot be a tool) is answered with an error for that call alone; the
//! other calls still run.

pub mod anthropic;
pub mod openai;

use serde_json::Value;
use toolfan_protocol::{Job, Task, TaskResult, ToolName};

/// Why a call the model made cannot be sent (it is answered with this).
#[derive(Debug, thiserror::Error)]
enum Unusable {
    /// The arguments string is not JSON.
    #[error("the arguments are not valid JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// The arguments (`what`: "arguments" or "input") are not a JSON object.
    #[error("the {what} must be a JSON object, not {value}")]
    NotAnObject { what: &'static str, value: Value },
}

/// One model call's place in a job: sent as task `n`, or refused up front.
#[derive(Debug, Clone, PartialEq)]
enum Slot {
    Sent(usize),
    Refused(String),
}

/// Tool calls turned into a job, remembering which call became which task.
#[derive(Debug, Clone)]
pub struct PreparedCalls {
    /// The job of the calls that could be sent (the caller may set its
    /// window, deadline and policy before submitting).
    pub job: Job,
    slots: Vec<Slot>,
}

impl PreparedCalls {
    /// Prepares calls given as (tool name, arguments or why they are unusable).
    fn new<E: std::fmt::Display>(
        calls: impl IntoIterator<Item = (String, Result<Value, E>)>,
    ) -> Self {
        let mut tasks = Vec::new();
        let mut slots = Vec::new();
        for (name, args) in calls {
            let slot = match (ToolName::new(name.as_str()), args) {
                (Ok(_), Ok(args)) => {
                    tasks.push(Task::new(name, args));
                    Slot::Sent(tasks.len() - 1)
                }
                (Err(e), _) => Slot::Refused(format!("invalid_args: {e}")),
                (_, Err(why)) => Slot::Refused(format!("invalid_args: {why}")),
            };
            slots.push(slot);
        }
        Self {
            job: Job::new(tasks),
            slots,
        }
    }

    /// Whether any call needs the cluster (else answer with `answers(&[])`).
    pub fn is_empty(&self) -> bool {
        self.job.tasks.is_empty()
    }

    /// One (is_error, content) per call, in call order, from the job's
    /// results in input order.
    fn answers(&self, results: &[TaskResult]) -> Vec<(bool, String)> {
        self.slots
            .iter()
            .map(|slot| match slot {
                Slot::Refused(why) => (true, why.clone()),
                Slot::Sent(i) => match results.get(*i).map(|r| &r.outcome) {
                    Some(Ok(Value::String(text))) => (false, text.clone()),
                    Some(Ok(value)) => (false, value.to_string()),
                    Some(Err(error)) => (true, error.to_string()),
                    None => (true, "internal: no result for this call".into()),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use toolfan_protocol::{ErrorKind, TaskError};

    #[test]
    fn refused_calls_keep_their_place_and_the_rest_run() {
        let prepared = PreparedCalls::new([
            ("echo".to_owned(), Ok(json!({"a": 1}))),
            ("echo".to_owned(), Err("arguments are not JSON".to_owned())),
            ("a.b".to_owned(), Ok(json!({}))),
            ("search".to_owned(), Ok(json!({"q": "x"}))),
        ]);
        assert_eq!(prepared.job.tasks.len(), 2);
        let results = vec![
            TaskResult {
                index: 0,
                outcome: Ok(json!({"a": 1})),
                attempts: 1,
                duration_ms: 1,
                worker: None,
                cache: None,
            },
            TaskResult::decided(1, TaskError::new(ErrorKind::Timeout, "slow")),
        ];
        let answers = prepared.answers(&results);
        assert_eq!(answers[0], (false, r#"{"a":1}"#.to_owned()));
        assert_eq!(
            answers[1],
            (true, "invalid_args: arguments are not JSON".to_owned())
        );
        assert!(answers[2].0 && answers[2].1.contains("invalid tool name \"a.b\""));
        assert_eq!(answers[3], (true, "timeout: slow".to_owned()));
    }
}
