//! The object cache: objects as JSON bytes keyed by `namespace/name`, with the metadata
//! pulled out while decoding and indexes (namespace built in, plus field paths and labels).
//!
//! Memory: each object is one allocation (`Entry::buf`) holding its bytes (managedFields
//! stripped) followed by its uid, resourceVersion and labels; its name and namespace are
//! read from the key, which is shared with the indexes and the work queue.
//!
//! Compression: with `compress`, objects are kept LZ4-compressed (lz4_flex block format)
//! against a shared dictionary: the first objects a `Compressor` sees (up to `DICT_MAX`
//! bytes), frozen thereafter. Each compressed entry holds an `Arc` of the dictionary it
//! was compressed with, so entries move between accumulators and stores (`replace`)
//! without re-compression whatever dictionary each side has.
//!
//! ```text
//! store/ entry (one object) · compress (dictionary) · index (value -> keys)
//!        accumulator (a list waiting for replace) · snapshot · mod (the Store)
//! ```
pub mod accumulator;
pub mod compress;
pub mod entry;
mod index;
mod lz4;
mod snapshot;
#[cfg(test)]
mod tests;

pub use accumulator::{ListAccumulator, ListItem};
pub use compress::{Compressor, Dict, DICT_MAX};
pub use entry::{Entry, Labels};

use crate::json::{decode_object, Meta, Schema, SyntaxError};
use hashbrown::{HashMap, HashSet};
use index::{index_add, parse_index_path, Index};
use std::sync::Arc;

/// An object's key (`namespace/name` or `name`): one allocation shared by the store,
/// its indexes and every queue that holds it. The one definition (the queue uses it).
pub type Key = Arc<str>;

/// The name of the built-in namespace index.
pub const NAMESPACE_INDEX: &str = "namespace";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    Syntax(SyntaxError),
    NoName,
    DuplicateIndex(String),
    BadIndexPath(String),
    BadSnapshot(&'static str),
    TooLarge,
    Corrupt,
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Syntax(e) => write!(f, "malformed object: {e}"),
            StoreError::NoName => write!(f, "object has no metadata.name"),
            StoreError::DuplicateIndex(n) => write!(f, "index {n:?} already exists"),
            StoreError::BadIndexPath(p) => write!(f, "bad index path {p:?}"),
            StoreError::BadSnapshot(why) => write!(f, "bad snapshot: {why}"),
            StoreError::TooLarge => write!(f, "object too large (4 GiB or more)"),
            StoreError::Corrupt => write!(f, "a stored object does not decompress"),
        }
    }
}

impl From<SyntaxError> for StoreError {
    fn from(e: SyntaxError) -> Self {
        StoreError::Syntax(e)
    }
}

#[derive(Debug, Default, Clone)]
pub struct ReplaceResult {
    pub added: Vec<Key>,
    pub updated: Vec<Key>,
    /// With `replace_keeping(.., true)`: the entry each of `updated` replaced.
    pub old: Vec<Entry>,
    /// Keys that vanished, with their last known object (tombstones).
    pub deleted: Vec<(Key, Box<[u8]>)>,
}

pub struct Store {
    objects: HashMap<Key, Entry>,
    /// Index 0 is the namespace index; user indexes follow in `add_index` order.
    indexes: Vec<Index>,
    schema: Schema,
    /// `schema` capturing `metadata.ownerReferences` too (same id), for owner mappings.
    owner_schema: Schema,
    strip_managed_fields: bool,
    compress: bool,
    compressor: Compressor,
    pub resource_version: Option<String>,
}

impl Store {
    pub fn new(strip_managed_fields: bool) -> Self {
        Self::with_options(strip_managed_fields, false)
    }

    /// With `compress`, objects are kept LZ4-compressed (metadata stays readable as is).
    pub fn with_options(strip_managed_fields: bool, compress: bool) -> Self {
        Store {
            objects: HashMap::new(),
            indexes: vec![Index {
                name: NAMESPACE_INDEX.into(),
                path: vec!["metadata".into(), "namespace".into()],
                values: HashMap::new(),
            }],
            schema: Schema::new(&[]),
            owner_schema: Schema::with_owner_references(&[]),
            strip_managed_fields,
            compress,
            compressor: Compressor::default(),
            resource_version: None,
        }
    }

    /// The schema objects must be decoded with to carry this store's index values.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// `schema`, also capturing `metadata.ownerReferences` (for an owner mapping); the
    /// metadata it decodes is stored without a second decode.
    pub fn owner_schema(&self) -> &Schema {
        &self.owner_schema
    }

    pub fn strip_managed_fields(&self) -> bool {
        self.strip_managed_fields
    }

    pub fn compress(&self) -> bool {
        self.compress
    }

    /// Registers an index on a field path or label and indexes the objects already held.
    /// Nothing changes if a stored object cannot be read.
    pub fn add_index(&mut self, name: &str, path: &str) -> Result<(), StoreError> {
        if self.indexes.iter().any(|i| i.name == name) {
            return Err(StoreError::DuplicateIndex(name.into()));
        }
        let path = parse_index_path(path)?;
        let mut user_paths: Vec<Vec<String>> =
            self.indexes[1..].iter().map(|i| i.path.clone()).collect();
        user_paths.push(path.clone());
        let schema = Schema::new(&user_paths);
        let last = user_paths.len() - 1;
        // Scan the stored objects for the new index's values first.
        let mut found: Vec<(Key, Vec<String>)> = Vec::with_capacity(self.objects.len());
        for (key, entry) in &self.objects {
            let meta = decode_object(&entry.raw()?, &schema)?;
            let values = meta.index_values.into_iter().nth(last).unwrap_or_default();
            found.push((key.clone(), values));
        }
        let mut index = Index {
            name: name.into(),
            path,
            values: HashMap::new(),
        };
        for (key, values) in found {
            for v in &values {
                index_add(&mut index.values, v, &key);
            }
            if let Some(entry) = self.objects.get_mut(&key) {
                let mut all = std::mem::take(&mut entry.index_values).into_vec();
                all.push(values.into_iter().map(String::into_boxed_str).collect());
                entry.index_values = all.into_boxed_slice();
            }
        }
        self.indexes.push(index);
        self.schema = schema;
        self.owner_schema = Schema::with_owner_references(&user_paths);
        Ok(())
    }

    pub fn index_names(&self) -> Vec<&str> {
        self.indexes.iter().map(|i| i.name.as_str()).collect()
    }

    pub fn len(&self) -> usize {
        self.objects.len()
    }

    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.objects.get(key)
    }

    pub fn contains(&self, key: &str) -> bool {
        self.objects.contains_key(key)
    }

    pub fn list_keys(&self) -> impl Iterator<Item = &Key> {
        self.objects.keys()
    }

    /// Keys whose index `name` holds `value` (sorted).
    pub fn by_index(&self, name: &str, value: &str) -> Option<Vec<Key>> {
        let index = self.indexes.iter().find(|i| i.name == name)?;
        let mut keys: Vec<Key> = index
            .values
            .get(value)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default();
        keys.sort();
        Some(keys)
    }

    /// The values index `name` currently holds (sorted).
    pub fn index_values(&self, name: &str) -> Option<Vec<String>> {
        let index = self.indexes.iter().find(|i| i.name == name)?;
        let mut values: Vec<String> = index.values.keys().map(|v| v.to_string()).collect();
        values.sort();
        Some(values)
    }

    /// Decodes and stores one object; returns its key.
    pub fn upsert(&mut self, raw: &[u8]) -> Result<Key, StoreError> {
        let meta = decode_object(raw, &self.schema)?;
        self.upsert_meta(raw, meta).map(|(k, _)| k)
    }

    /// Stores an object decoded with any schema; returns its key and the entry it
    /// replaced (None: it is new).
    pub fn upsert_meta(
        &mut self,
        raw: &[u8],
        meta: Meta,
    ) -> Result<(Key, Option<Entry>), StoreError> {
        let meta = if meta.schema_id == self.schema.id() {
            meta
        } else {
            decode_object(raw, &self.schema)?
        };
        let comp = self.compress.then_some(&mut self.compressor);
        let (key, entry) = Entry::build(raw, meta, self.strip_managed_fields, comp)?;
        Ok(self.insert(&key, None, entry))
    }

    /// Stores `entry` under `key` (reusing the stored key if there is one); returns the
    /// key and the entry it replaced.
    fn insert(&mut self, key: &str, fresh: Option<Key>, entry: Entry) -> (Key, Option<Entry>) {
        let key: Key = match self.objects.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => fresh.unwrap_or_else(|| key.into()),
        };
        let old = self.objects.insert(key.clone(), entry);
        if let Some(old) = &old {
            self.unindex(&key, old);
        }
        if let Some(entry) = self.objects.get(&key) {
            let ns = entry.namespace(&key).unwrap_or("");
            index_add(&mut self.indexes[0].values, ns, &key);
            for (index, values) in self.indexes[1..].iter_mut().zip(&entry.index_values) {
                for v in values.iter() {
                    index_add(&mut index.values, v, &key);
                }
            }
        }
        (key, old)
    }

    fn unindex(&mut self, key: &str, entry: &Entry) {
        let ns = entry.namespace(key).unwrap_or("");
        Self::unindex_value(&mut self.indexes[0], key, ns);
        for (index, values) in self.indexes[1..].iter_mut().zip(&entry.index_values) {
            for v in values.iter() {
                Self::unindex_value(index, key, v);
            }
        }
    }

    fn unindex_value(index: &mut Index, key: &str, value: &str) {
        if let Some(set) = index.values.get_mut(value) {
            set.remove(key);
            if set.is_empty() {
                index.values.remove(value);
            }
        }
    }

    /// Removes `key`; returns its entry if it was there.
    pub fn delete(&mut self, key: &str) -> Option<Entry> {
        let (k, entry) = self.objects.remove_entry(key)?;
        self.unindex(&k, &entry);
        Some(entry)
    }

    /// Replaces the whole content with `items` (a relist). Keys not in `items` are
    /// deleted and reported as tombstones. Later items win over earlier ones with the
    /// same key. The items' bytes are moved, not copied (unless this store strips
    /// managedFields the items still hold).
    pub fn replace(
        &mut self,
        items: Vec<ListItem>,
        resource_version: Option<String>,
    ) -> Result<ReplaceResult, StoreError> {
        self.replace_keeping(items, resource_version, false)
    }

    /// `replace`; with `keep_old`, the entries the updated keys had are handed back
    /// (`ReplaceResult::old`), for predicates, owner mappings and event handlers.
    pub fn replace_keeping(
        &mut self,
        items: Vec<ListItem>,
        resource_version: Option<String>,
        keep_old: bool,
    ) -> Result<ReplaceResult, StoreError> {
        // Re-index (if needed) everything first, so a bad item changes nothing.
        let mut items = items;
        for p in &mut items {
            if p.schema_id != self.schema.id() {
                let meta = decode_object(&p.entry.raw()?, &self.schema)?;
                p.entry.index_values = Entry::values(&meta.index_values);
                p.schema_id = self.schema.id();
            }
        }
        let fresh: HashSet<&str> = items.iter().map(|p| &*p.key).collect();
        let gone: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| !fresh.contains(&***k))
            .cloned()
            .collect();
        drop(fresh);
        let mut out = ReplaceResult::default();
        for key in gone {
            if let Some(entry) = self.delete(&key) {
                out.deleted.push((key, entry.into_raw()?));
            }
        }
        // The list's dictionary describes the current objects: use it from now on.
        if self.compress {
            if let Some(d) = items.iter().rev().find_map(|p| p.entry.dict.clone()) {
                self.compressor.adopt(d);
            }
        }
        self.objects
            .reserve(items.len().saturating_sub(self.objects.len()));
        let mut seen: HashSet<Key> = HashSet::with_capacity(items.len());
        for p in items {
            let cut = match (&p.managed_fields, self.strip_managed_fields) {
                (Some(cut), true) => cut.clone(),
                _ => 0..0,
            };
            let comp = self.compress.then_some(&mut self.compressor);
            let entry = p.entry.reshape(cut, comp)?;
            let (key, old) = self.insert(&p.key.clone(), Some(p.key), entry);
            if seen.insert(key.clone()) {
                if let Some(old) = old {
                    if keep_old {
                        out.old.push(old);
                    }
                    out.updated.push(key);
                } else {
                    out.added.push(key);
                }
            }
        }
        self.resource_version = resource_version;
        Ok(out)
    }
}
