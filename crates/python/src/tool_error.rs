//! A Python exception as the worker's [`ToolError`]: a `toolfan.ToolError`
//! keeps its kind (`tool_error` or `invalid_args`), message, retryability
//! and `retry_after`; any other exception is a non-retryable `tool_error`
//! whose message is the exception's type and text.

use std::time::Duration;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyType;
use toolfan_worker::ToolError;

/// `toolfan.ToolError`, looked up once.
static TOOL_ERROR: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// What `error`, raised by a tool, means to the worker.
pub(crate) fn tool_error(py: Python<'_>, error: PyErr) -> ToolError {
    let value = error.value(py);
    let ours = TOOL_ERROR
        .import(py, "toolfan._errors", "ToolError")
        .and_then(|class| value.is_instance(class))
        .unwrap_or(false);
    if !ours {
        let kind = value
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "Exception".into());
        let text = value.str().map(|s| s.to_string()).unwrap_or_default();
        return ToolError::new(if text.is_empty() {
            kind
        } else {
            format!("{kind}: {text}")
        });
    }
    let message: String = attribute(value, "message").unwrap_or_default();
    let kind: String = attribute(value, "kind").unwrap_or_default();
    let retryable: bool = attribute(value, "is_retryable").unwrap_or(false);
    let retry_after: Option<f64> = attribute(value, "retry_after").unwrap_or(None);
    let mut out = match (kind.as_str(), retryable) {
        ("invalid_args", _) => ToolError::invalid_args(message),
        (_, true) => ToolError::retryable(message),
        _ => ToolError::new(message),
    };
    if let Some(after) = retry_after.and_then(|s| Duration::try_from_secs_f64(s).ok()) {
        out = out.with_retry_after(after);
    }
    out
}

fn attribute<'py, T: FromPyObjectOwned<'py>>(value: &Bound<'py, PyAny>, name: &str) -> Option<T> {
    value.getattr(name).ok()?.extract().ok()
}
