//! JSON values and durations between Python and Rust. A value that is not
//! JSON, or a duration that is not a non-negative number of seconds, is a
//! `TypeError` or `ValueError` naming the field.

use std::time::Duration;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use serde_json::Value;

/// `value` as a Python object (dict, list, str, int, float, bool, None).
pub(crate) fn to_py(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(pythonize::pythonize(py, value)?.unbind())
}

/// A Python object as a JSON value; `field` names it in the error.
pub(crate) fn from_py(object: &Bound<'_, PyAny>, field: &str) -> PyResult<Value> {
    pythonize::depythonize::<Value>(object).map_err(|e| {
        PyTypeError::new_err(format!(
            "{field} must be JSON (dict, list, str, number, bool or None): {e}"
        ))
    })
}

/// Some seconds as a duration; `field` names them in the error.
pub(crate) fn seconds(field: &str, seconds: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(seconds).map_err(|_| {
        PyValueError::new_err(format!(
            "{field} must be a finite, non-negative number of seconds, not {seconds}"
        ))
    })
}

/// Milliseconds as float seconds.
pub(crate) fn ms_as_seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

/// Whole milliseconds of a duration, saturating.
pub(crate) fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
