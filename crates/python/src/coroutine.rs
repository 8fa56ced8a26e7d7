//! A coroutine run on the worker's asyncio loop and awaited from tokio.
//!
//! `asyncio.run_coroutine_threadsafe` hands the coroutine to the loop the
//! worker was started from; a done callback wakes the tokio side, which
//! waits without the GIL. Dropping an [`OnLoop`] before the coroutine ends
//! (the worker aborted the task: a timeout, a cancel, the deadline)
//! cancels it on the loop, so the coroutine sees `asyncio.CancelledError`.

use std::sync::Mutex;

use pyo3::prelude::*;
use tokio::sync::oneshot;

/// A coroutine running on an asyncio loop.
pub(crate) struct OnLoop {
    /// The `concurrent.futures.Future` of the coroutine; `None` once read.
    future: Option<Py<PyAny>>,
    done: oneshot::Receiver<()>,
}

/// Schedules `coroutine` on `event_loop`.
pub(crate) fn start(
    py: Python<'_>,
    event_loop: &Py<PyAny>,
    coroutine: Bound<'_, PyAny>,
) -> PyResult<OnLoop> {
    let asyncio = py.import("asyncio")?;
    let future =
        asyncio.call_method1("run_coroutine_threadsafe", (coroutine, event_loop.bind(py)))?;
    let (tx, done) = oneshot::channel();
    let callback = Done {
        tx: Mutex::new(Some(tx)),
    };
    future.call_method1("add_done_callback", (callback,))?;
    Ok(OnLoop {
        future: Some(future.unbind()),
        done,
    })
}

impl OnLoop {
    /// Waits, without the GIL, for the coroutine to end; its value, or the
    /// exception it raised.
    pub(crate) async fn outcome(mut self) -> PyResult<Py<PyAny>> {
        // The sender goes only with the callback, which runs when the
        // future is done: either way the future has its outcome now, or
        // its loop is gone and `result` says so.
        let _ = (&mut self.done).await;
        let future = self.future.take();
        Python::attach(|py| match future {
            Some(future) => future.call_method0(py, "result"),
            None => Err(pyo3::exceptions::PyRuntimeError::new_err(
                "the coroutine's outcome was read twice",
            )),
        })
    }
}

impl Drop for OnLoop {
    fn drop(&mut self) {
        if let Some(future) = self.future.take() {
            // Not at interpreter exit: there is nothing left to cancel then.
            Python::try_attach(|py| {
                let _ = future.call_method0(py, "cancel");
            });
        }
    }
}

/// The done callback: wakes the waiting tokio task.
#[pyclass(frozen)]
struct Done {
    tx: Mutex<Option<oneshot::Sender<()>>>,
}

#[pymethods]
impl Done {
    fn __call__(&self, _future: &Bound<'_, PyAny>) {
        let tx = match self.tx.lock() {
            Ok(mut tx) => tx.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }
}
