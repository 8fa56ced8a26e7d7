//! `Task`: one tool call, built with keyword arguments that are checked
//! at once (a wrong one is a `TypeError` or `ValueError` naming it).

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use toolfan::Task;

use crate::convert::{from_py, millis, ms_as_seconds, seconds, to_py};

/// One call of a tool the fleet serves.
#[pyclass(name = "Task", module = "toolfan", frozen)]
#[derive(Clone)]
pub(crate) struct PyTask {
    pub(crate) task: Task,
}

#[pymethods]
impl PyTask {
    #[new]
    #[pyo3(signature = (tool, args=None, *, timeout=None, retries=0, rate_key=None, cost=1, idempotency_key=None, cache=false, cache_ttl=None, cache_failures=false))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        tool: &str,
        args: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        retries: u32,
        rate_key: Option<String>,
        cost: u32,
        idempotency_key: Option<String>,
        cache: bool,
        cache_ttl: Option<f64>,
        cache_failures: bool,
    ) -> PyResult<Self> {
        toolfan_protocol::ToolName::new(tool)
            .map_err(|e| PyValueError::new_err(format!("Task tool: {e}")))?;
        let args = match args {
            Some(args) if !args.is_none() => from_py(args, "Task args")?,
            _ => serde_json::json!({}),
        };
        let mut task = Task::new(tool, args).retries(retries).cost(cost);
        if let Some(timeout) = timeout {
            task = task.timeout(seconds("Task timeout", timeout)?);
        }
        if let Some(key) = rate_key {
            task = task.rate_key(key);
        }
        if let Some(key) = idempotency_key {
            task = task.idempotency_key(key);
        }
        if cache {
            task = task.cached();
        }
        if let Some(ttl) = cache_ttl {
            task = task.cache_ttl(seconds("Task cache_ttl", ttl)?);
        }
        if cache_failures {
            task = task.cache_failures();
        }
        Ok(Self { task })
    }

    /// The tool's name.
    #[getter]
    fn tool(&self) -> String {
        self.task.tool.to_string()
    }

    /// The arguments.
    #[getter]
    fn args(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_py(py, &self.task.args)
    }

    /// The timeout of one attempt, in seconds, if set.
    #[getter]
    fn timeout(&self) -> Option<f64> {
        self.task.timeout_ms.map(ms_as_seconds)
    }

    /// How many times a retryable failure is tried again.
    #[getter]
    fn retries(&self) -> u32 {
        self.task.retries
    }

    fn __repr__(&self) -> String {
        let timeout = self
            .task
            .timeout_duration()
            .map(|t| format!(", timeout={}", millis(t) as f64 / 1000.0))
            .unwrap_or_default();
        format!(
            "Task({:?}, {}{timeout})",
            self.task.tool.to_string(),
            self.task.args
        )
    }
}

/// The tasks of a Python list, each a `Task` (a `TypeError` names the first that is not).
pub(crate) fn tasks(list: &Bound<'_, PyAny>) -> PyResult<Vec<Task>> {
    let mut out = Vec::new();
    for (i, item) in list.try_iter()?.enumerate() {
        let item = item?;
        let task = item.cast::<PyTask>().map_err(|_| {
            pyo3::exceptions::PyTypeError::new_err(format!(
                "tasks[{i}] must be a toolfan.Task, not {}",
                item.get_type()
                    .name()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ))
        })?;
        out.push(task.get().task.clone());
    }
    Ok(out)
}
