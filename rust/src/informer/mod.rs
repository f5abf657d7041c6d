//! The informer core's delivery rules: what of a change reaches a target.
//!
//! ```text
//! predicate  which updates pass a target (generation, labels, annotations,
//!            resourceVersion changed; a caller's check) — adds and deletes always pass
//! ```
pub mod predicate;

pub use predicate::{Check, Predicates};
