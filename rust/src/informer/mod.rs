//! The informer core's delivery rules: what of a change reaches which target.
//!
//! ```text
//! apply      a read's watch events applied to the store (or a streaming list's
//!            accumulator), each change handed to the fan-out
//! predicate  which updates pass a target (generation, labels, annotations,
//!            resourceVersion changed; a caller's check); adds and deletes always pass
//! fanout     one change to every target: queues (own key or controller owner's key),
//!            the changes buffer for Python event handlers
//! relist     a list replacing the store, fanned out as adds, updates and tombstones
//! ```
pub mod apply;
pub mod fanout;
pub mod predicate;
pub mod relist;

pub use fanout::{Changed, Fanout, Object, QueueTarget};
pub use predicate::{Check, Predicates};
pub use relist::relist;
