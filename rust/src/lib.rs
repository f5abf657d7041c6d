//! The `trio_controller._native` extension module: declarations only.
//!
//! Layers, each using only those above it (no cycles):
//!
//! ```text
//! json/      validating scanner, field-path Schema, value extraction, managedFields cut
//! watch/     HTTP/1.1 head and chunked body framing, lines, watch events, list pages
//! store/     the object cache: entries, indexes, compression, list accumulator, snapshots
//! owner      owned objects mapped to their controller owner's key (ownerReferences)
//! queue      the rate-limited work queue;  ratelimit  client-go's rate limiters
//! tls/       TLS client sessions over buffers (rustls): socket bytes in, plaintext out
//! informer/  the informer core: events and relists applied to the store and fanned
//!            out to queues (own or owner keys, behind predicates) and a changes buffer
//! py/        thin `#[pyclass]` wrappers over the above, no logic of their own
//! ```
pub mod informer;
pub mod json;
pub mod owner;
mod py;
pub mod queue;
pub mod ratelimit;
pub mod store;
pub mod tls;
pub mod watch;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    py::register(m)
}
