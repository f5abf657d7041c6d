//! Predicates on what enters a target's queue, with controller-runtime's semantics: an
//! update (the key was already cached: a MODIFIED event, an ADDED one after a re-watch,
//! an object a relist found again) passes only if every predicate holds for (old, new);
//! adds and deletes always pass.
//!
//! The built-in ones compare what each cached entry already holds, no parse:
//! `metadata.generation` (captured by the scan), the labels, a fingerprint of the
//! annotations' bytes, the resourceVersion. A caller's own check (`Check`, a Python
//! callable behind the PyO3 edge) runs after them, only for updates they let through.
use crate::store::Entry;

/// A set of built-in predicates (all must hold: AND).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Predicates(u8);

/// A caller's predicate on an update: `(key, old, new) -> passes`.
pub type Check<'a> = dyn FnMut(&str, &Entry, &Entry) -> bool + 'a;

impl Predicates {
    /// `metadata.generation` changed (a spec change; not a status, label or annotation
    /// write): controller-runtime's GenerationChangedPredicate.
    pub const GENERATION: u8 = 1;
    /// `metadata.labels` changed.
    pub const LABELS: u8 = 2;
    /// `metadata.annotations` changed.
    pub const ANNOTATIONS: u8 = 4;
    /// `metadata.resourceVersion` changed (drops re-deliveries of the same version, e.g.
    /// a relist finding an object unchanged).
    pub const RESOURCE_VERSION: u8 = 8;
    const ALL: u8 = 15;

    /// The set with these bits; None if a bit names no predicate.
    pub fn from_bits(bits: u8) -> Option<Self> {
        (bits & !Self::ALL == 0).then_some(Predicates(bits))
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether an update from `old` to `new` passes every predicate of the set.
    pub fn update_passes(self, old: &Entry, new: &Entry) -> bool {
        self.0 == 0 || changes(old, new, self.0) & self.0 == self.0
    }
}

/// Which of the predicates in `wanted` hold between `old` and `new` (a bit per change).
fn changes(old: &Entry, new: &Entry, wanted: u8) -> u8 {
    let mut changed = 0;
    if wanted & Predicates::GENERATION != 0 && old.generation() != new.generation() {
        changed |= Predicates::GENERATION;
    }
    if wanted & Predicates::ANNOTATIONS != 0 && old.annotations() != new.annotations() {
        changed |= Predicates::ANNOTATIONS;
    }
    if wanted & Predicates::RESOURCE_VERSION != 0
        && old.resource_version() != new.resource_version()
    {
        changed |= Predicates::RESOURCE_VERSION;
    }
    if wanted & Predicates::LABELS != 0 && !same_labels(old, new) {
        changed |= Predicates::LABELS;
    }
    changed
}

/// Equal label maps (the server writes them sorted; any other order still compares).
fn same_labels(old: &Entry, new: &Entry) -> bool {
    if old.labels().eq(new.labels()) {
        return true;
    }
    let mut a: Vec<_> = old.labels().collect();
    let mut b: Vec<_> = new.labels().collect();
    a.sort_unstable();
    b.sort_unstable();
    a == b
}

/// Whether an update passes `predicates`, then `check` (when given).
pub fn update_passes(
    predicates: Predicates,
    check: &mut Option<&mut Check<'_>>,
    key: &str,
    old: &Entry,
    new: &Entry,
) -> bool {
    predicates.update_passes(old, new) && check.as_mut().map_or(true, |c| c(key, old, new))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{decode_object, Schema};

    fn entry(meta: &str) -> Entry {
        let raw = format!(r#"{{"metadata":{{"name":"w","namespace":"ns",{meta}}},"spec":{{}}}}"#);
        let m = decode_object(raw.as_bytes(), &Schema::new(&[])).unwrap();
        Entry::build(raw.as_bytes(), m, true, None).unwrap().1
    }

    fn passes(bits: u8, old: &str, new: &str) -> bool {
        Predicates::from_bits(bits)
            .unwrap()
            .update_passes(&entry(old), &entry(new))
    }

    const BASE: &str =
        r#""resourceVersion":"1","generation":1,"labels":{"a":"1"},"annotations":{"x":"1"}"#;

    #[test]
    fn a_status_write_does_not_change_the_generation() {
        let status = BASE.replace(r#""1","gen"#, r#""2","gen"#);
        assert!(!passes(Predicates::GENERATION, BASE, &status));
        assert!(passes(Predicates::RESOURCE_VERSION, BASE, &status));
        let spec = status.replace(r#""generation":1"#, r#""generation":2"#);
        assert!(passes(Predicates::GENERATION, BASE, &spec));
    }

    #[test]
    fn labels_and_annotations_are_compared_as_maps() {
        let relabelled = BASE.replace(r#"{"a":"1"}"#, r#"{"a":"2"}"#);
        assert!(passes(Predicates::LABELS, BASE, &relabelled));
        assert!(!passes(Predicates::ANNOTATIONS, BASE, &relabelled));
        let reordered = BASE.replace(r#"{"a":"1"}"#, r#"{"b":"2","a":"1"}"#);
        let other = BASE.replace(r#"{"a":"1"}"#, r#"{"a":"1","b":"2"}"#);
        assert!(!passes(Predicates::LABELS, &reordered, &other));
        let annotated = BASE.replace(r#"{"x":"1"}"#, r#"{"x":"2"}"#);
        assert!(passes(Predicates::ANNOTATIONS, BASE, &annotated));
        assert!(!passes(Predicates::LABELS, BASE, &annotated));
        let none = r#""resourceVersion":"1","generation":1,"labels":{"a":"1"}"#;
        let empty = format!(r#"{none},"annotations":{{ }}"#);
        assert!(!passes(Predicates::ANNOTATIONS, none, &empty));
        assert!(passes(Predicates::ANNOTATIONS, none, BASE));
    }

    #[test]
    fn every_predicate_of_a_set_must_hold() {
        let both = BASE
            .replace(r#""generation":1"#, r#""generation":2"#)
            .replace(r#"{"a":"1"}"#, r#"{"a":"2"}"#);
        let gen_only = BASE.replace(r#""generation":1"#, r#""generation":2"#);
        let set = Predicates::GENERATION | Predicates::LABELS;
        assert!(passes(set, BASE, &both));
        assert!(!passes(set, BASE, &gen_only));
        assert!(passes(0, BASE, BASE));
        assert_eq!(Predicates::from_bits(16), None);
    }

    #[test]
    fn an_object_without_a_generation_never_changes_it() {
        let none = r#""resourceVersion":"1""#;
        let later = r#""resourceVersion":"2""#;
        assert!(!passes(Predicates::GENERATION, none, later));
    }
}
