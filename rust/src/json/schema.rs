//! Which fields a scan captures: a trie of object keys with a slot per captured field.
//!
//! ```text
//! event root ─ "type", "object" ─▶ object root ─ metadata.{name, namespace, ...},
//!                                                code/reason/message, index paths
//! list root ─ metadata.{resourceVersion, continue, remainingItemCount}
//! ```
//!
//! `metadata.ownerReferences` is captured only by a schema made `with_owner_references`
//! (an owner mapping is asked for), so other scans skip it as any other field.
use std::sync::Mutex;

#[derive(Debug, Default)]
pub(crate) struct Node {
    pub(crate) children: Vec<(Box<str>, usize)>,
    pub(crate) slot: Option<usize>,
}

pub const SLOT_TYPE: usize = 0;
pub const SLOT_OBJECT: usize = 1;
pub(crate) const SLOT_NAMESPACE: usize = 2;
pub(crate) const SLOT_NAME: usize = 3;
pub(crate) const SLOT_UID: usize = 4;
pub(crate) const SLOT_RV: usize = 5;
pub(crate) const SLOT_LABELS: usize = 6;
pub(crate) const SLOT_DELETION: usize = 7;
pub(crate) const SLOT_INITIAL_END: usize = 8;
pub(crate) const SLOT_MANAGED: usize = 9;
pub(crate) const SLOT_CODE: usize = 10;
pub(crate) const SLOT_REASON: usize = 11;
pub(crate) const SLOT_MESSAGE: usize = 12;
pub(crate) const SLOT_LIST_RV: usize = 13;
pub(crate) const SLOT_LIST_CONTINUE: usize = 14;
pub(crate) const SLOT_LIST_REMAINING: usize = 15;
pub(crate) const SLOT_OWNERS: usize = 16;
pub(crate) const SLOT_GENERATION: usize = 17;
pub(crate) const SLOT_ANNOTATIONS: usize = 18;
pub(crate) const FIXED_SLOTS: usize = 19;

/// The annotation that marks the end of a streaming list's initial events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Index path lists seen so far; a schema's id is its list's place here, so schemas
/// with the same index paths share an id (and objects decoded by one need no re-decode
/// for the other).
static SCHEMA_PATHS: Mutex<Vec<Vec<Vec<String>>>> = Mutex::new(Vec::new());

fn schema_id(index_paths: &[Vec<String>]) -> u64 {
    let mut known = SCHEMA_PATHS.lock().unwrap_or_else(|e| e.into_inner());
    let at = match known.iter().position(|p| p == index_paths) {
        Some(at) => at,
        None => {
            known.push(index_paths.to_vec());
            known.len() - 1
        }
    };
    at as u64 + 1
}

/// The fields to pull out while scanning: metadata plus user index paths.
#[derive(Debug)]
pub struct Schema {
    pub(crate) nodes: Vec<Node>,
    pub(crate) event_root: usize,
    pub(crate) object_root: usize,
    pub(crate) list_root: usize,
    pub(crate) index_slots: Vec<usize>,
    pub(crate) id: u64,
}

impl Schema {
    /// `index_paths`: one list of object keys per user index (e.g. `["spec", "nodeName"]`).
    pub fn new(index_paths: &[Vec<String>]) -> Self {
        Self::build(index_paths, false)
    }

    /// `new`, also capturing `metadata.ownerReferences` (for an owner mapping). It has
    /// the same id as `new(index_paths)`: the index values it yields are the same.
    pub fn with_owner_references(index_paths: &[Vec<String>]) -> Self {
        Self::build(index_paths, true)
    }

    fn build(index_paths: &[Vec<String>], owners: bool) -> Self {
        let mut s = Schema {
            nodes: Vec::new(),
            event_root: 0,
            object_root: 0,
            list_root: 0,
            index_slots: Vec::new(),
            id: schema_id(index_paths),
        };
        s.event_root = s.node();
        s.object_root = s.node();
        s.list_root = s.node();
        let type_node = s.child(s.event_root, "type");
        s.nodes[type_node].slot = Some(SLOT_TYPE);
        s.nodes[s.event_root]
            .children
            .push(("object".into(), s.object_root));
        s.nodes[s.object_root].slot = Some(SLOT_OBJECT);
        let fixed: &[(&[&str], usize)] = &[
            (&["metadata", "namespace"], SLOT_NAMESPACE),
            (&["metadata", "name"], SLOT_NAME),
            (&["metadata", "uid"], SLOT_UID),
            (&["metadata", "resourceVersion"], SLOT_RV),
            (&["metadata", "labels"], SLOT_LABELS),
            (&["metadata", "deletionTimestamp"], SLOT_DELETION),
            (
                &["metadata", "annotations", INITIAL_EVENTS_END],
                SLOT_INITIAL_END,
            ),
            (&["metadata", "managedFields"], SLOT_MANAGED),
            (&["metadata", "generation"], SLOT_GENERATION),
            (&["metadata", "annotations"], SLOT_ANNOTATIONS),
            (&["code"], SLOT_CODE),
            (&["reason"], SLOT_REASON),
            (&["message"], SLOT_MESSAGE),
        ];
        for (path, slot) in fixed {
            let n = s.path(s.object_root, path.iter().copied());
            s.nodes[n].slot = Some(*slot);
        }
        if owners {
            let n = s.path(s.object_root, ["metadata", "ownerReferences"].into_iter());
            s.nodes[n].slot = Some(SLOT_OWNERS);
        }
        let list_fixed: &[(&[&str], usize)] = &[
            (&["metadata", "resourceVersion"], SLOT_LIST_RV),
            (&["metadata", "continue"], SLOT_LIST_CONTINUE),
            (&["metadata", "remainingItemCount"], SLOT_LIST_REMAINING),
        ];
        for (path, slot) in list_fixed {
            let n = s.path(s.list_root, path.iter().copied());
            s.nodes[n].slot = Some(*slot);
        }
        let mut next = FIXED_SLOTS;
        for p in index_paths {
            let n = s.path(s.object_root, p.iter().map(String::as_str));
            let slot = match s.nodes[n].slot {
                Some(slot) => slot,
                None => {
                    s.nodes[n].slot = Some(next);
                    next += 1;
                    next - 1
                }
            };
            s.index_slots.push(slot);
        }
        s
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn index_count(&self) -> usize {
        self.index_slots.len()
    }

    pub(crate) fn slot_count(&self) -> usize {
        FIXED_SLOTS + self.index_slots.len()
    }

    fn node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    fn child(&mut self, parent: usize, key: &str) -> usize {
        if let Some(&(_, c)) = self.nodes[parent]
            .children
            .iter()
            .find(|(k, _)| &**k == key)
        {
            return c;
        }
        let c = self.node();
        self.nodes[parent].children.push((key.into(), c));
        c
    }

    fn path<'k>(&mut self, mut at: usize, keys: impl Iterator<Item = &'k str>) -> usize {
        for k in keys {
            at = self.child(at, k);
        }
        at
    }

    #[inline]
    pub(crate) fn lookup(&self, node: usize, key: &[u8]) -> Option<usize> {
        self.nodes[node]
            .children
            .iter()
            .find(|(k, _)| k.as_bytes() == key)
            .map(|&(_, c)| c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_with_the_same_index_paths_share_an_id() {
        let a = Schema::new(&[vec!["spec".into(), "x".into()]]);
        let b = Schema::new(&[vec!["spec".into(), "x".into()]]);
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), Schema::new(&[]).id());
        assert_eq!(Schema::new(&[]).id(), Schema::new(&[]).id());
        let owners = Schema::with_owner_references(&[vec!["spec".into(), "x".into()]]);
        assert_eq!(owners.id(), a.id());
    }
}
