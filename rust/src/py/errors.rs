//! The module's exception types.
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

create_exception!(
    trio_controller._native,
    DecodeError,
    PyValueError,
    concat!(
        "A malformed watch line, list body, object, response head or body framing.\n",
        "\n",
        "``position`` is the stream byte offset (from the decoder's creation or ``reset``) of\n",
        "the start of the bad line, ``line`` its 1-based line number, and ``events`` the\n",
        "well-formed events of the same ``feed()`` call, in order (nothing is dropped\n",
        "silently). In a chunked stream a line's offset counts payload bytes; for malformed\n",
        "framing (a message starting ``chunked encoding:``) ``position`` is the body-stream\n",
        "offset of the problem and ``line`` the line being read. For a list body or a single\n",
        "object, ``position`` is the byte offset of the error in it and ``line`` is 1; for a\n",
        "response head, ``position`` is 0."
    )
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
