//! What comes back: `TaskResult` (one per task, with `ok`, `value`,
//! `error`, `duration_s`), `TaskError` (its kind and message) and
//! `TaskEvent` (a task finished, in completion order).

use pyo3::prelude::*;
use pyo3::types::PyList;
use toolfan::{CacheUse, TaskError, TaskEvent, TaskResult};

use crate::convert::{ms_as_seconds, to_py};

/// Why a task failed: `kind` is one of the protocol's error kinds
/// (`tool_error`, `timeout`, `deadline_exceeded`, `cancelled`, ...).
#[pyclass(name = "TaskError", module = "toolfan", frozen, get_all)]
pub(crate) struct PyTaskError {
    kind: String,
    message: String,
    retryable: bool,
    retry_after: Option<f64>,
}

#[pymethods]
impl PyTaskError {
    fn __str__(&self) -> String {
        format!("{}: {}", self.kind, self.message)
    }

    fn __repr__(&self) -> String {
        format!(
            "TaskError(kind={:?}, message={:?})",
            self.kind, self.message
        )
    }
}

impl From<&TaskError> for PyTaskError {
    fn from(error: &TaskError) -> Self {
        Self {
            kind: error.kind.as_str().to_owned(),
            message: error.message.clone(),
            retryable: error.retryable,
            retry_after: error.retry_after_ms.map(ms_as_seconds),
        }
    }
}

/// One task's result: `value` when `ok`, else `error`.
#[pyclass(name = "TaskResult", module = "toolfan", frozen, get_all)]
pub(crate) struct PyTaskResult {
    index: u32,
    ok: bool,
    value: Py<PyAny>,
    error: Option<Py<PyTaskError>>,
    attempts: u32,
    duration_s: f64,
    worker: Option<String>,
    cache: Option<String>,
}

#[pymethods]
impl PyTaskResult {
    fn __repr__(&self, py: Python<'_>) -> String {
        match &self.error {
            None => format!(
                "TaskResult(index={}, ok=True, value={})",
                self.index,
                self.value
                    .bind(py)
                    .repr()
                    .map(|r| r.to_string())
                    .unwrap_or_default()
            ),
            Some(error) => format!(
                "TaskResult(index={}, ok=False, error={})",
                self.index,
                error.get().__repr__()
            ),
        }
    }
}

impl PyTaskResult {
    pub(crate) fn new(py: Python<'_>, result: &TaskResult) -> PyResult<Self> {
        let (value, error) = match &result.outcome {
            Ok(value) => (to_py(py, value)?, None),
            Err(error) => (py.None(), Some(Py::new(py, PyTaskError::from(error))?)),
        };
        Ok(Self {
            index: result.index,
            ok: result.is_ok(),
            value,
            error,
            attempts: result.attempts,
            duration_s: ms_as_seconds(result.duration_ms),
            worker: result.worker.clone(),
            cache: result.cache.map(|c| match c {
                CacheUse::Hit => "hit".to_owned(),
                CacheUse::Joined => "joined".to_owned(),
            }),
        })
    }
}

/// Results as a Python list of `TaskResult`, in the order given.
pub(crate) fn results(py: Python<'_>, results: &[TaskResult]) -> PyResult<Py<PyAny>> {
    let items = results
        .iter()
        .map(|r| Py::new(py, PyTaskResult::new(py, r)?))
        .collect::<PyResult<Vec<_>>>()?;
    Ok(PyList::new(py, items)?.into_any().unbind())
}

/// A task finished: its result, and how far the job has come.
#[pyclass(name = "TaskEvent", module = "toolfan", frozen, get_all)]
pub(crate) struct PyTaskEvent {
    index: u32,
    result: Py<PyTaskResult>,
    finished: usize,
    total: usize,
}

#[pymethods]
impl PyTaskEvent {
    fn __repr__(&self) -> String {
        format!(
            "TaskEvent(index={}, finished={}, total={})",
            self.index, self.finished, self.total
        )
    }
}

impl PyTaskEvent {
    pub(crate) fn new(py: Python<'_>, event: &TaskEvent) -> PyResult<Self> {
        Ok(Self {
            index: event.index,
            result: Py::new(py, PyTaskResult::new(py, &event.result)?)?,
            finished: event.finished,
            total: event.total,
        })
    }
}
