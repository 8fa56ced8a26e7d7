//! toolfan for Python: the Rust client ([`toolfan`]) and worker
//! ([`toolfan_worker`]) bound with PyO3 as the extension module
//! `toolfan._native`, which the pure-Python package `toolfan`
//! (`python/toolfan`) wraps with decorators and the `Scheduler` facade.
//!
//! Everything that waits on the network runs on one tokio runtime (that of
//! `pyo3-async-runtimes`) without the GIL; Python awaits it as asyncio
//! futures. A Python tool's coroutine runs on the asyncio loop its worker
//! was started from, and a cancelled task cancels it there
//! (`asyncio.CancelledError`).
//!
//! # Layout
//! - `task` — `Task`, one tool call to make.
//! - `result` — `TaskResult`, `TaskError`, `TaskEvent`: what comes back.
//! - `client` — `Client`: connect, fanout, submit, the fleet's tools, the LLM adapters.
//! - `job` — `Job`: a submitted job's events, results and cancel.
//! - `worker` — `Worker`: Python tools registered on a Rust worker, run until shut down.
//! - `tool` — a Python function as a worker `Tool` (and as a batch handler).
//! - `coroutine` — a coroutine run on the worker's asyncio loop, awaited from tokio.
//! - `tool_error` — a Python exception as the worker's `ToolError`.
//! - `convert` — JSON values and durations between Python and Rust.
//! - `error` — `ClientError` and `WorkerError`, the Python exceptions.

use pyo3::prelude::*;

mod client;
mod convert;
mod coroutine;
mod error;
mod job;
mod result;
mod task;
mod tool;
mod tool_error;
mod worker;

/// The extension module `toolfan._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<task::PyTask>()?;
    m.add_class::<result::PyTaskResult>()?;
    m.add_class::<result::PyTaskError>()?;
    m.add_class::<result::PyTaskEvent>()?;
    m.add_class::<client::PyClient>()?;
    m.add_class::<job::PyJob>()?;
    m.add_class::<job::PyEvents>()?;
    m.add_class::<worker::PyWorker>()?;
    m.add_class::<worker::PyRunning>()?;
    m.add_class::<tool::PyTaskContext>()?;
    m.add("ClientError", py.get_type::<error::ClientError>())?;
    m.add("WorkerError", py.get_type::<error::WorkerError>())?;
    Ok(())
}
