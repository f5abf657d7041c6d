//! The `trio_controller._native` extension module: declarations only. The logic lives
//! in plain Rust modules (`queue`, `ratelimit`, `store`, `decode`, `lines`, `apply`) and the thin
//! `#[pyclass]` wrappers in `py`.
pub mod apply;
pub mod decode;
pub mod lines;
mod py;
pub mod queue;
pub mod ratelimit;
pub mod store;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    py::errors::init_decode_error(py)?;
    m.add("DecodeError", py.get_type::<py::errors::DecodeError>())?;
    m.add("ShutDown", py.get_type::<py::errors::ShutDown>())?;
    m.add_class::<py::queue::PyRateLimiter>()?;
    m.add_class::<py::queue::ExponentialFailureRateLimiter>()?;
    m.add_class::<py::queue::BucketRateLimiter>()?;
    m.add_class::<py::queue::MaxOfRateLimiter>()?;
    m.add_function(wrap_pyfunction!(
        py::queue::default_controller_rate_limiter,
        m
    )?)?;
    m.add_class::<py::queue::PyWorkQueue>()?;
    m.add_class::<py::store::PyStore>()?;
    m.add_class::<py::store::ReplaceResult>()?;
    m.add_class::<py::decode::PyListAccumulator>()?;
    m.add_class::<py::decode::PageInfo>()?;
    m.add_class::<py::decode::WatchEvent>()?;
    m.add_class::<py::decode::FeedResult>()?;
    m.add_class::<py::decode::PyWatchDecoder>()?;
    Ok(())
}
