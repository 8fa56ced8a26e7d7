//! `Worker`: Python tools served by the Rust [`toolfan_worker::Worker`].
//! The package's `Worker` (`toolfan/_worker.py`) registers each decorated
//! function here and starts the worker from its asyncio loop; the worker
//! runs on the tokio runtime until `shutdown`, then drains.

use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3_async_runtimes::tokio::get_runtime;
use serde_json::Value;
use std::collections::BTreeMap;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use toolfan_worker::{
    BatchOptions, CacheOptions, LimitSpec, LimiterOptions, Worker, WorkerBuilder, WorkerOptions,
};

use crate::convert::{from_py, seconds};
use crate::error::{self, with_causes};
use crate::tool::{batch_handler, PyFunction, PyTool};

/// One tool to serve, as registered.
struct Registration {
    name: String,
    func: Arc<Py<PyAny>>,
    description: Option<String>,
    parameters: Option<Value>,
    batch: Option<BatchOptions>,
}

/// A worker's options and the tools registered on it, until it starts.
#[pyclass(name = "Worker", module = "toolfan._native", frozen)]
pub(crate) struct PyWorker {
    options: WorkerOptions,
    tools: Mutex<Option<Vec<Registration>>>,
}

#[pymethods]
impl PyWorker {
    #[new]
    #[pyo3(signature = (nats_url="nats://127.0.0.1:4222", *, redis_url=None, concurrency=64, id=None, limits=None, limit_keys=None, tool_max_in_flight=None, drain_timeout=30.0, retry_base=0.1, retry_cap=10.0, lease_ttl=10.0, max_result_bytes=524288))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        nats_url: &str,
        redis_url: Option<&str>,
        concurrency: u32,
        id: Option<String>,
        limits: Option<BTreeMap<String, String>>,
        limit_keys: Option<BTreeMap<String, Vec<String>>>,
        tool_max_in_flight: Option<BTreeMap<String, i64>>,
        drain_timeout: f64,
        retry_base: f64,
        retry_cap: f64,
        lease_ttl: f64,
        max_result_bytes: usize,
    ) -> PyResult<Self> {
        let mut options = WorkerOptions {
            nats_url: nats_url.to_owned(),
            concurrency,
            drain_timeout: seconds("drain_timeout", drain_timeout)?,
            retry_base: seconds("retry_base", retry_base)?,
            retry_cap: seconds("retry_cap", retry_cap)?,
            max_result_bytes,
            tool_limit_keys: limit_keys.unwrap_or_default(),
            tool_max_in_flight: tool_max_in_flight.unwrap_or_default(),
            ..WorkerOptions::default()
        };
        if let Some(id) = id {
            options.id = id;
        }
        let limits = limits.unwrap_or_default();
        match redis_url {
            Some(url) => {
                let mut limiter = LimiterOptions::new(url);
                limiter.lease_ttl = seconds("lease_ttl", lease_ttl)?;
                for (key, spec) in limits {
                    let spec = LimitSpec::parse_flag(&spec)
                        .map_err(|e| PyValueError::new_err(format!("limits[{key:?}]: {e}")))?;
                    limiter.defaults.insert(key, spec);
                }
                options.limits = Some(limiter);
                options.cache = Some(CacheOptions::new(url));
            }
            None if !limits.is_empty() => {
                return Err(PyValueError::new_err(
                    "limits need redis_url: the fleet's limits are kept in Redis",
                ))
            }
            None => {}
        }
        Ok(Self {
            options,
            tools: Mutex::new(Some(Vec::new())),
        })
    }

    /// This worker's id in the fleet, as results and `toolfan workers` report it.
    #[getter]
    fn id(&self) -> &str {
        &self.options.id
    }

    /// Serves `func` (a coroutine function of `(args, context)`) as `name`.
    #[pyo3(signature = (name, func, *, description=None, parameters=None))]
    fn add_tool(
        &self,
        name: String,
        func: Py<PyAny>,
        description: Option<String>,
        parameters: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        self.register(name, func, description, parameters, None)
    }

    /// Serves `func` (a coroutine function of a list of args) as the batch tool `name`.
    #[pyo3(signature = (name, func, *, max_size, max_wait, description=None, parameters=None))]
    fn add_batch_tool(
        &self,
        name: String,
        func: Py<PyAny>,
        max_size: usize,
        max_wait: f64,
        description: Option<String>,
        parameters: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let batch = BatchOptions::new(max_size, seconds("max_wait", max_wait)?);
        self.register(name, func, description, parameters, Some(batch))
    }

    /// Builds the worker, its tools' coroutines to run on `event_loop`,
    /// and starts it; a configuration mistake is a `ValueError`.
    fn start(&self, event_loop: Py<PyAny>) -> PyResult<PyRunning> {
        let tools = self
            .lock()
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this worker was already started"))?;
        let event_loop = Arc::new(event_loop);
        let mut builder = Worker::builder().options(self.options.clone());
        for tool in tools {
            builder = add(builder, tool, &event_loop);
        }
        let worker = builder.build().map_err(error::worker)?;
        let shutdown = CancellationToken::new();
        let (tx, done) = watch::channel(None);
        let token = shutdown.clone();
        get_runtime().spawn(async move {
            let outcome = worker.run(token).await.map_err(|e| with_causes(&e));
            let _ = tx.send(Some(outcome));
        });
        Ok(PyRunning { shutdown, done })
    }
}

impl PyWorker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<Registration>>> {
        match self.tools.lock() {
            Ok(tools) => tools,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    fn register(
        &self,
        name: String,
        func: Py<PyAny>,
        description: Option<String>,
        parameters: Option<&Bound<'_, PyAny>>,
        batch: Option<BatchOptions>,
    ) -> PyResult<()> {
        toolfan_protocol::ToolName::new(name.as_str())
            .map_err(|e| PyValueError::new_err(format!("tool name: {e}")))?;
        let parameters = match parameters {
            Some(p) if !p.is_none() => Some(from_py(p, "parameters")?),
            _ => None,
        };
        let mut tools = self.lock();
        let tools = tools.as_mut().ok_or_else(|| {
            PyRuntimeError::new_err("tools must be added before the worker starts")
        })?;
        tools.push(Registration {
            name,
            func: Arc::new(func),
            description,
            parameters,
            batch,
        });
        Ok(())
    }
}

/// `builder` with `tool` served on it.
fn add(
    mut builder: WorkerBuilder,
    tool: Registration,
    event_loop: &Arc<Py<PyAny>>,
) -> WorkerBuilder {
    let function = PyFunction {
        func: tool.func,
        event_loop: event_loop.clone(),
    };
    builder = match tool.batch {
        Some(options) => builder.batch_tool(tool.name.clone(), options, batch_handler(function)),
        None => builder.boxed_tool(tool.name.clone(), Arc::new(PyTool(function))),
    };
    if let Some(description) = tool.description {
        builder = builder.describe(tool.name.clone(), description);
    }
    if let Some(parameters) = tool.parameters {
        builder = builder.parameters(tool.name, parameters);
    }
    builder
}

/// A started worker: shut it down, wait for it to end.
#[pyclass(name = "RunningWorker", module = "toolfan._native", frozen)]
pub(crate) struct PyRunning {
    shutdown: CancellationToken,
    done: watch::Receiver<Option<Result<(), String>>>,
}

#[pymethods]
impl PyRunning {
    /// Stops pulling tasks; running ones drain (up to the drain timeout).
    fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Blocks, without the GIL, until the worker has stopped; raises
    /// `WorkerError` if it failed. For a Python thread: `run()` calls it in
    /// an executor, so that no runtime thread has to reach into Python to
    /// say the worker ended while the interpreter may be finalizing (a
    /// worker process SIGTERMed then aborted in `PyGILState_Release`).
    fn join(&self, py: Python<'_>) -> PyResult<()> {
        let mut done = self.done.clone();
        let outcome = py.detach(|| {
            get_runtime()
                .block_on(async move { done.wait_for(Option::is_some).await.map(|o| o.clone()) })
        });
        match outcome {
            Ok(Some(Err(why))) => Err(error::WorkerError::new_err(why)),
            Ok(_) => Ok(()),
            Err(_) => Err(error::WorkerError::new_err(
                "the worker ended without an outcome",
            )),
        }
    }
}
