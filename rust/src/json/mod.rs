//! JSON without building values: a validating scanner that captures only the fields a
//! `Schema` names, and helpers that turn those captured spans into metadata.
//!
//! ```text
//! bytes ──scanner (validate, skip)──▶ spans of the schema's fields
//!       ──extract──▶ Meta (name, namespace, uid, RV, labels, index values, ...)
//! cut: the managedFields member of an object, located for a store to drop
//! member: one top-level member's value, located for a lazy object to parse alone
//! ```
//!
//! `watch` (events, list pages) and `store` build on it; nothing here knows about HTTP.
pub mod cut;
pub mod extract;
pub mod member;
pub mod scanner;
pub mod schema;

pub use cut::{member_cut, strip_member};
pub use extract::{decode_object, Meta};
pub use member::member_span;
pub use schema::{Schema, INITIAL_EVENTS_END};

use std::borrow::Cow;

/// Nesting deeper than this is rejected (the scanner recurses; Kubernetes objects are
/// far shallower).
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset inside the line (or body) of the error.
    pub offset: usize,
    pub message: Cow<'static, str>,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

pub(crate) type R<T> = Result<T, SyntaxError>;

pub(crate) fn fail<T>(offset: usize, message: impl Into<Cow<'static, str>>) -> R<T> {
    Err(SyntaxError {
        offset,
        message: message.into(),
    })
}
