//! The exceptions the engine raises: `ClientError` (a job could not be
//! submitted or answered) and `WorkerError` (a worker could not start or
//! failed); a mistake in what the caller passed is a `ValueError`.

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::PyErr;

create_exception!(
    toolfan,
    ClientError,
    PyException,
    "A job could not be submitted, or its answer did not come."
);
create_exception!(
    toolfan,
    WorkerError,
    PyException,
    "A worker could not start, or failed while serving."
);

/// Text of an error and each of its causes, once each.
pub(crate) fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// A client error as Python sees it: a refused job is a `ValueError`
/// naming the problem, anything else a `ClientError`.
pub(crate) fn client(error: toolfan::ClientError) -> PyErr {
    match error {
        toolfan::ClientError::Invalid(why) => PyValueError::new_err(why),
        other => ClientError::new_err(with_causes(&other)),
    }
}

/// A worker error as Python sees it: a configuration mistake is a
/// `ValueError`, anything else a `WorkerError`.
pub(crate) fn worker(error: toolfan_worker::WorkerError) -> PyErr {
    match error {
        toolfan_worker::WorkerError::Config(config) => PyValueError::new_err(with_causes(&config)),
        other => WorkerError::new_err(with_causes(&other)),
    }
}
