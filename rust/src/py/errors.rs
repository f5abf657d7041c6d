//! The module's exception types.
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

create_exception!(
    trio_controller._native,
    DecodeError,
    PyValueError,
    "A malformed watch line, list body or object."
);
create_exception!(
    trio_controller._native,
    ShutDown,
    PyException,
    "The work queue is shut down and empty."
);

/// A `DecodeError` carrying `position`, `line` and the well-formed `events`.
pub fn decode_error(
    py: Python<'_>,
    message: String,
    position: u64,
    line: u64,
    events: Vec<Py<PyAny>>,
) -> PyErr {
    let err = DecodeError::new_err(message);
    let value = err.value(py);
    let set = || -> PyResult<()> {
        value.setattr("position", position)?;
        value.setattr("line", line)?;
        value.setattr("events", PyList::new(py, events)?)?;
        Ok(())
    };
    match set() {
        Ok(()) => err,
        Err(e) => e,
    }
}

/// Class-level defaults so the attributes exist on every instance.
pub fn init_decode_error(py: Python<'_>) -> PyResult<()> {
    let cls = py.get_type::<DecodeError>();
    cls.setattr("position", 0)?;
    cls.setattr("line", 0)?;
    cls.setattr("events", ())?;
    Ok(())
}
