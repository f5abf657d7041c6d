//! Indexes: index value -> the set of keys holding it; empty sets are removed.
use super::{Key, StoreError};
use hashbrown::{HashMap, HashSet};

pub(super) struct Index {
    pub(super) name: String,
    pub(super) path: Vec<String>,
    pub(super) values: HashMap<Box<str>, HashSet<Key>>,
}

/// Parses `"spec.nodeName"` or `"label:app"` into object keys.
pub fn parse_index_path(path: &str) -> Result<Vec<String>, StoreError> {
    if let Some(label) = path.strip_prefix("label:") {
        if label.is_empty() {
            return Err(StoreError::BadIndexPath(path.into()));
        }
        return Ok(vec!["metadata".into(), "labels".into(), label.into()]);
    }
    let parts: Vec<String> = path.split('.').map(str::to_string).collect();
    if parts.iter().any(String::is_empty) {
        return Err(StoreError::BadIndexPath(path.into()));
    }
    Ok(parts)
}

pub(super) fn index_add(values: &mut HashMap<Box<str>, HashSet<Key>>, value: &str, key: &Key) {
    match values.get_mut(value) {
        Some(set) => {
            set.insert(key.clone());
        }
        None => {
            values.insert(value.into(), HashSet::from_iter([key.clone()]));
        }
    }
}
