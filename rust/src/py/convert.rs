//! Conversions the PyO3 classes share: orjson parsing, store errors as Python
//! exceptions, reprs, the metadata-only schema, predicates and Python checks.
use super::errors::decode_error;
use crate::informer::Predicates;
use crate::json::Schema;
use crate::store::{Entry, StoreError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyBytes;
use std::sync::OnceLock;

static ORJSON_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// `orjson.loads(raw)`, with `orjson.loads` looked up once.
pub fn loads<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let f = ORJSON_LOADS.get_or_try_init(py, || {
        py.import("orjson")?.getattr("loads").map(Bound::unbind)
    })?;
    f.bind(py).call1((PyBytes::new(py, raw),))
}

pub fn store_error(py: Python<'_>, e: StoreError) -> PyErr {
    match e {
        StoreError::Syntax(s) => decode_error(py, s.to_string(), s.offset as u64, 1, Vec::new()),
        StoreError::NoName => decode_error(py, e.to_string(), 0, 1, Vec::new()),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// The schema for decoding without a store: metadata only, no user indexes.
pub fn plain_schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::new(&[]))
}

/// A Python-looking repr of an optional string.
pub fn repr(s: &Option<String>) -> String {
    match s {
        None => "None".into(),
        Some(s) => format!("{s:?}"),
    }
}

/// The built-in predicates named by `bits` (ValueError for an unknown bit).
pub fn predicate_set(bits: u8) -> PyResult<Predicates> {
    Predicates::from_bits(bits)
        .ok_or_else(|| PyValueError::new_err(format!("unknown predicate bits {bits:#x}")))
}

/// A Python `(key, old, new) -> bool` as a `Check`: both objects parsed for it, only
/// for the updates the built-in predicates let through. A check that raises lets the
/// update pass (the Python side logs its errors before they get here).
pub fn python_check<'a, 'py>(
    check: &'a Bound<'py, PyAny>,
) -> impl FnMut(&str, &Entry, &Entry) -> bool + 'a {
    move |key, old, new| {
        let py = check.py();
        let call = || -> PyResult<bool> {
            let old = loads(py, &old.raw().map_err(|e| store_error(py, e))?)?;
            let new = loads(py, &new.raw().map_err(|e| store_error(py, e))?)?;
            check.call1((key, old, new))?.is_truthy()
        };
        call().unwrap_or(true)
    }
}
