//! `Job`: a submitted job, the Rust [`toolfan::JobHandle`] behind it —
//! its events in completion order (`async for event in job.events()`), its
//! results in input order, its cancel. Dropping the last reference stops
//! the keepalives, so the coordinator cancels the job after the caller grace.

use std::sync::Arc;

use pyo3::exceptions::PyStopAsyncIteration;
use pyo3::prelude::*;
use pyo3_async_runtimes::tokio::future_into_py;
use tokio::sync::Mutex;
use toolfan::{Canceller, JobEvent, JobHandle};

use crate::error;
use crate::result::{self, PyTaskEvent};

/// The handle, until `results()` or `wait()` takes it.
type Shared = Arc<Mutex<Option<JobHandle>>>;

/// A submitted job.
#[pyclass(name = "Job", module = "toolfan", frozen)]
pub(crate) struct PyJob {
    id: String,
    total: usize,
    handle: Shared,
    canceller: Canceller,
}

impl PyJob {
    pub(crate) fn new(handle: JobHandle) -> Self {
        Self {
            id: handle.id().to_string(),
            total: handle.total(),
            canceller: handle.canceller(),
            handle: Arc::new(Mutex::new(Some(handle))),
        }
    }
}

#[pymethods]
impl PyJob {
    /// The job's id.
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// How many tasks the job has.
    #[getter]
    fn total(&self) -> usize {
        self.total
    }

    /// The tasks as they finish, in completion order, each once.
    fn events(&self) -> PyEvents {
        PyEvents {
            handle: self.handle.clone(),
        }
    }

    /// Waits for the end; one `TaskResult` per task, in input order.
    fn results<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        future_into_py(py, async move {
            let outcome = take(&handle).await?.wait().await.map_err(error::client)?;
            Python::attach(|py| result::results(py, &outcome.results))
        })
    }

    /// Waits for the end; `(results, summary)`, the summary a dict (status,
    /// ended_by, succeeded, failed, duration_ms, ...).
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        future_into_py(py, async move {
            let outcome = take(&handle).await?.wait().await.map_err(error::client)?;
            Python::attach(|py| {
                let results = result::results(py, &outcome.results)?;
                let summary = pythonize::pythonize(py, &outcome.summary)?.unbind();
                Ok((results, summary))
            })
        })
    }

    /// Cancels the job: queued tasks never start, running ones are aborted
    /// (their Python coroutines get `asyncio.CancelledError`), and their
    /// results read `cancelled`.
    fn cancel<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let canceller = self.canceller.clone();
        future_into_py(py, async move {
            canceller.cancel().await.map_err(error::client)
        })
    }

    fn __repr__(&self) -> String {
        format!("Job(id={:?}, total={})", self.id, self.total)
    }
}

/// The handle, taken out for good (the job's results are read once).
async fn take(handle: &Shared) -> PyResult<JobHandle> {
    handle.lock().await.take().ok_or_else(|| {
        error::ClientError::new_err("the job's results were already read (results() or wait())")
    })
}

/// `job.events()`: an async iterator of `TaskEvent`.
#[pyclass(name = "JobEvents", module = "toolfan", frozen)]
pub(crate) struct PyEvents {
    handle: Shared,
}

#[pymethods]
impl PyEvents {
    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let handle = self.handle.clone();
        future_into_py(py, async move {
            let mut guard = handle.lock().await;
            let Some(handle) = guard.as_mut() else {
                return Err(PyStopAsyncIteration::new_err(()));
            };
            loop {
                match handle.next_event().await {
                    Some(Ok(JobEvent::Task(event))) => {
                        return Python::attach(|py| PyTaskEvent::new(py, &event));
                    }
                    // (Tasks waiting for a person are not told in Python yet.)
                    Some(Ok(JobEvent::Done(_) | JobEvent::Waiting(_))) => continue,
                    Some(Err(e)) => return Err(error::client(e)),
                    None => return Err(PyStopAsyncIteration::new_err(())),
                }
            }
        })
    }
}
