//! Thin `#[pyclass]` wrappers over the plain-Rust core; no logic of their own.
pub mod decode;
pub mod errors;
pub mod queue;
pub mod store;

use pyo3::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Runs `f`, turning a Rust panic into a Python `RuntimeError` instead of letting it
/// reach the interpreter as a `PanicException`.
pub fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "internal error in trio_controller._native: {what}"
            )))
        }
    }
}
