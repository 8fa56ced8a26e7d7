//! A Python function as a worker [`Tool`], and as a batch handler.
//!
//! The function is the package's wrapper (`toolfan/_worker.py`): always a
//! coroutine function of `(args, context)`, which runs a sync tool in a
//! thread of its own pool. Its coroutine runs on the asyncio loop the
//! worker was started from ([`crate::coroutine`]); everything else — the
//! limits, the cache, the timeout, retries — is the worker pipeline's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use pyo3::exceptions::PyBaseException;
use pyo3::prelude::*;
use pyo3::types::PyList;
use serde_json::Value;
use toolfan_worker::{BatchOutcome, TaskContext, Tool, ToolError, ToolFuture};

use crate::convert::{from_py, to_py};
use crate::coroutine::{self, OnLoop};
use crate::tool_error::tool_error;

/// What a tool knows about the task it runs.
#[pyclass(name = "TaskContext", module = "toolfan", frozen, get_all)]
pub(crate) struct PyTaskContext {
    job: String,
    index: u32,
    attempt: u32,
    worker: String,
}

impl From<&TaskContext> for PyTaskContext {
    fn from(ctx: &TaskContext) -> Self {
        Self {
            job: ctx.job().to_string(),
            index: ctx.index(),
            attempt: ctx.attempt(),
            worker: ctx.worker().to_owned(),
        }
    }
}

/// A Python coroutine function and the loop its coroutines run on.
#[derive(Clone)]
pub(crate) struct PyFunction {
    pub(crate) func: Arc<Py<PyAny>>,
    pub(crate) event_loop: Arc<Py<PyAny>>,
}

impl PyFunction {
    /// Calls the function with `args` and starts its coroutine on the loop.
    fn start(
        &self,
        args: impl for<'py> FnOnce(Python<'py>) -> PyResult<Vec<Py<PyAny>>>,
    ) -> Result<OnLoop, ToolError> {
        Python::attach(|py| {
            let started = args(py).and_then(|args| {
                let args = pyo3::types::PyTuple::new(py, args)?;
                let coroutine = self.func.bind(py).call1(args)?;
                coroutine::start(py, &self.event_loop, coroutine)
            });
            started.map_err(|e| tool_error(py, e))
        })
    }
}

/// A Python tool.
pub(crate) struct PyTool(pub(crate) PyFunction);

impl Tool for PyTool {
    fn call(&self, ctx: TaskContext, args: Value) -> ToolFuture {
        let function = self.0.clone();
        Box::pin(async move {
            let running = function.start(|py| {
                let context = Py::new(py, PyTaskContext::from(&ctx))?.into_any();
                Ok(vec![to_py(py, &args)?, context])
            })?;
            let outcome = running.outcome().await;
            Python::attach(|py| match outcome {
                Ok(value) => json(value.bind(py)),
                Err(e) => Err(tool_error(py, e)),
            })
        })
    }
}

/// A tool's value as JSON.
fn json(value: &Bound<'_, PyAny>) -> Result<Value, ToolError> {
    from_py(value, "the tool's value").map_err(|e| ToolError::new(e.to_string()))
}

/// The future a batch handler returns.
pub(crate) type BatchFuture = Pin<Box<dyn Future<Output = BatchOutcome<Value>> + Send>>;

/// A Python batch tool as the worker's batch handler: a list of args in,
/// one value (or `ToolError` instance) per args out, in order.
pub(crate) fn batch_handler(
    function: PyFunction,
) -> impl Fn(Vec<Value>) -> BatchFuture + Send + Sync + 'static {
    move |batch: Vec<Value>| {
        let function = function.clone();
        Box::pin(async move {
            let running = function.start(|py| {
                let items = batch
                    .iter()
                    .map(|a| to_py(py, a))
                    .collect::<PyResult<Vec<_>>>()?;
                Ok(vec![PyList::new(py, items)?.into_any().unbind()])
            })?;
            let outcome = running.outcome().await;
            Python::attach(|py| match outcome {
                Ok(values) => outcomes(values.bind(py)),
                Err(e) => Err(tool_error(py, e)),
            })
        })
    }
}

/// One outcome per item a batch tool returned.
fn outcomes(values: &Bound<'_, PyAny>) -> BatchOutcome<Value> {
    let py = values.py();
    let items = values
        .try_iter()
        .map_err(|_| ToolError::new("a batch tool must return a list, one item per call"))?;
    items
        .map(|item| {
            let item = item.map_err(|e| tool_error(py, e))?;
            if item.is_instance_of::<PyBaseException>() {
                Ok(Err(tool_error(py, PyErr::from_value(item))))
            } else {
                Ok(json(&item))
            }
        })
        .collect()
}
