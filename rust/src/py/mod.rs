//! Thin `#[pyclass]` wrappers over the plain-Rust core; no logic of their own.
pub mod convert;
pub mod errors;
pub mod informer;
pub mod object;
pub mod owner;
pub mod queue;
pub mod store;
pub mod tls;
pub mod watch;

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

/// Adds every class, function and exception to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    errors::init_decode_error(py)?;
    m.add("DecodeError", py.get_type::<errors::DecodeError>())?;
    m.add("ShutDown", py.get_type::<errors::ShutDown>())?;
    m.add_class::<queue::PyRateLimiter>()?;
    m.add_class::<queue::ExponentialFailureRateLimiter>()?;
    m.add_class::<queue::BucketRateLimiter>()?;
    m.add_class::<queue::MaxOfRateLimiter>()?;
    m.add_function(wrap_pyfunction!(queue::default_controller_rate_limiter, m)?)?;
    m.add_class::<queue::PyWorkQueue>()?;
    m.add(
        "WORKQUEUE_BUCKETS",
        pyo3::types::PyTuple::new(py, crate::queue::BUCKET_BOUNDS)?,
    )?;
    m.add(
        "RECONCILE_CAUSES",
        pyo3::types::PyTuple::new(py, crate::queue::Cause::ALL.map(|c| c.name()))?,
    )?;
    use crate::informer::Predicates;
    m.add("PREDICATE_GENERATION", Predicates::GENERATION)?;
    m.add("PREDICATE_LABELS", Predicates::LABELS)?;
    m.add("PREDICATE_ANNOTATIONS", Predicates::ANNOTATIONS)?;
    m.add("PREDICATE_RESOURCE_VERSION", Predicates::RESOURCE_VERSION)?;
    m.add_class::<owner::PyOwnerMapping>()?;
    m.add_function(wrap_pyfunction!(owner::group_of, m)?)?;
    m.add_class::<store::PyStore>()?;
    m.add_class::<store::PyStoreReader>()?;
    m.add_class::<informer::PyInformerCore>()?;
    m.add_class::<informer::PyChanges>()?;
    m.add_class::<informer::PyChangesIter>()?;
    m.add_class::<object::PyLazyObject>()?;
    m.add_class::<store::PyReplaceResult>()?;
    m.add_class::<store::PyListAccumulator>()?;
    m.add_class::<store::PageInfo>()?;
    m.add_class::<watch::WatchEvent>()?;
    m.add_class::<watch::PyFeedResult>()?;
    m.add_class::<watch::PyWatchDecoder>()?;
    m.add_class::<watch::PyBodyDecoder>()?;
    m.add_class::<watch::PyResponseHead>()?;
    m.add_function(wrap_pyfunction!(watch::parse_response_head, m)?)?;
    tls::register(m)?;
    Ok(())
}
