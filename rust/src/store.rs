//! The object cache: objects as JSON bytes keyed by `namespace/name`, with the metadata
//! pulled out while decoding and indexes (namespace built in, plus field paths and labels).
use crate::decode::{decode_object, strip_member, Meta, Schema, SyntaxError};
use hashbrown::{HashMap, HashSet};
use std::borrow::Cow;
use std::sync::Arc;

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
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Syntax(e) => write!(f, "malformed object: {e}"),
            StoreError::NoName => write!(f, "object has no metadata.name"),
            StoreError::DuplicateIndex(n) => write!(f, "index {n:?} already exists"),
            StoreError::BadIndexPath(p) => write!(f, "bad index path {p:?}"),
            StoreError::BadSnapshot(why) => write!(f, "bad snapshot: {why}"),
        }
    }
}

impl From<SyntaxError> for StoreError {
    fn from(e: SyntaxError) -> Self {
        StoreError::Syntax(e)
    }
}

/// One cached object.
#[derive(Debug, Clone)]
pub struct Entry {
    pub raw: Box<[u8]>,
    pub namespace: Option<Box<str>>,
    pub name: Box<str>,
    pub uid: Option<Box<str>>,
    pub resource_version: Option<Box<str>>,
    pub labels: Vec<(Box<str>, Box<str>)>,
    pub deleting: bool,
    /// Values per index (index 0 is the namespace index).
    index_values: Vec<Vec<String>>,
}

/// An object decoded elsewhere (a list page, a watch event) waiting to be stored.
#[derive(Debug, Clone)]
pub struct Pending {
    /// The object's bytes as received, or without managedFields if `meta.managed_fields`
    /// is `None` (an accumulator that strips).
    pub raw: Vec<u8>,
    pub meta: Meta,
}

impl Pending {
    /// Keeps `raw` (copied once, exactly sized), without managedFields if `strip`.
    pub fn new(raw: &[u8], mut meta: Meta, strip: bool) -> Self {
        let raw = match meta.managed_fields.take_if(|_| strip) {
            Some(mf) => strip_member(raw, &mf),
            None => raw.to_vec(),
        };
        Pending { raw, meta }
    }
}

/// Objects collected from list pages or a streaming list's initial events, waiting for
/// `Store::replace`. With `strip_managed_fields` each object loses `managedFields` as it
/// is collected, so a big list never holds the full objects.
#[derive(Debug, Default, Clone)]
pub struct Accumulator {
    pub items: Vec<Pending>,
    pub strip_managed_fields: bool,
}

impl Accumulator {
    pub fn new(strip_managed_fields: bool) -> Self {
        Accumulator {
            items: Vec::new(),
            strip_managed_fields,
        }
    }

    pub fn push(&mut self, raw: &[u8], meta: Meta) {
        self.items
            .push(Pending::new(raw, meta, self.strip_managed_fields));
    }

    /// Takes the items out, leaving the accumulator empty (its setting stays).
    pub fn take(&mut self) -> Vec<Pending> {
        std::mem::take(&mut self.items)
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplaceOutcome {
    pub added: Vec<Key>,
    pub updated: Vec<Key>,
    /// Keys that vanished, with their last known object (tombstones).
    pub deleted: Vec<(Key, Box<[u8]>)>,
}

struct Index {
    name: String,
    path: Vec<String>,
    values: HashMap<String, HashSet<Key>>,
}

pub struct Store {
    objects: HashMap<Key, Entry>,
    /// Index 0 is the namespace index; user indexes follow in `add_index` order.
    indexes: Vec<Index>,
    schema: Schema,
    strip_managed_fields: bool,
    pub resource_version: Option<String>,
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

impl Store {
    pub fn new(strip_managed_fields: bool) -> Self {
        Store {
            objects: HashMap::new(),
            indexes: vec![Index {
                name: NAMESPACE_INDEX.into(),
                path: vec!["metadata".into(), "namespace".into()],
                values: HashMap::new(),
            }],
            schema: Schema::new(&[]),
            strip_managed_fields,
            resource_version: None,
        }
    }

    /// The schema objects must be decoded with to carry this store's index values.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    pub fn strip_managed_fields(&self) -> bool {
        self.strip_managed_fields
    }

    /// Registers an index on a field path or label and indexes the objects already held.
    pub fn add_index(&mut self, name: &str, path: &str) -> Result<(), StoreError> {
        if self.indexes.iter().any(|i| i.name == name) {
            return Err(StoreError::DuplicateIndex(name.into()));
        }
        let path = parse_index_path(path)?;
        self.indexes.push(Index {
            name: name.into(),
            path,
            values: HashMap::new(),
        });
        let user_paths: Vec<Vec<String>> =
            self.indexes[1..].iter().map(|i| i.path.clone()).collect();
        self.schema = Schema::new(&user_paths);
        // Re-scan the stored objects for the new index's values.
        let last = self.indexes.len() - 1;
        let keys: Vec<Key> = self.objects.keys().cloned().collect();
        for key in keys {
            let entry = self.objects.get_mut(&key).expect("key listed above");
            let meta = decode_object(&entry.raw, &self.schema)?;
            let values = meta.index_values[last - 1].clone();
            for v in &values {
                self.indexes[last]
                    .values
                    .entry_ref(v.as_str())
                    .or_default()
                    .insert(key.clone());
            }
            entry.index_values.push(values);
        }
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

    pub fn keys(&self) -> impl Iterator<Item = &Key> {
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
        let mut values: Vec<String> = index.values.keys().cloned().collect();
        values.sort();
        Some(values)
    }

    /// Decodes and stores one object; returns its key.
    pub fn upsert_raw(&mut self, raw: &[u8]) -> Result<Key, StoreError> {
        let meta = decode_object(raw, &self.schema)?;
        self.upsert(raw, meta).map(|(k, _)| k)
    }

    /// Stores an object decoded with any schema; returns its key and whether it existed.
    pub fn upsert(&mut self, raw: &[u8], meta: Meta) -> Result<(Key, bool), StoreError> {
        self.upsert_cow(Cow::Borrowed(raw), meta)
    }

    /// `upsert` of bytes the store may keep as they are (no copy unless stripped).
    pub fn upsert_owned(&mut self, raw: Vec<u8>, meta: Meta) -> Result<(Key, bool), StoreError> {
        self.upsert_cow(Cow::Owned(raw), meta)
    }

    fn upsert_cow(&mut self, raw: Cow<'_, [u8]>, meta: Meta) -> Result<(Key, bool), StoreError> {
        let meta = if meta.schema_id == self.schema.id() {
            meta
        } else {
            decode_object(&raw, &self.schema)?
        };
        let key_string = meta.key().ok_or(StoreError::NoName)?;
        let raw: Box<[u8]> = match (&meta.managed_fields, self.strip_managed_fields) {
            (Some(mf), true) => strip_member(&raw, mf).into_boxed_slice(),
            _ => match raw {
                // `into_boxed_slice` reallocates only if the Vec has spare capacity.
                Cow::Owned(v) => v.into_boxed_slice(),
                Cow::Borrowed(b) => b.into(),
            },
        };
        let mut index_values = Vec::with_capacity(self.indexes.len());
        index_values.push(vec![meta.namespace.clone().unwrap_or_default()]);
        index_values.extend(meta.index_values);
        let entry = Entry {
            raw,
            namespace: meta.namespace.map(Into::into),
            name: meta.name.map(Into::into).unwrap_or_default(),
            uid: meta.uid.map(Into::into),
            resource_version: meta.resource_version.map(Into::into),
            labels: meta
                .labels
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            deleting: meta.deleting,
            index_values,
        };
        let key: Key = match self.objects.get_key_value(key_string.as_str()) {
            Some((k, _)) => k.clone(),
            None => key_string.into(),
        };
        let existed = match self.objects.insert(key.clone(), entry) {
            Some(old) => {
                self.unindex(&key, &old);
                true
            }
            None => false,
        };
        let entry = &self.objects[&key];
        for (index, values) in self.indexes.iter_mut().zip(&entry.index_values) {
            for v in values {
                index
                    .values
                    .entry_ref(v.as_str())
                    .or_default()
                    .insert(key.clone());
            }
        }
        Ok((key, existed))
    }

    fn unindex(&mut self, key: &str, entry: &Entry) {
        for (index, values) in self.indexes.iter_mut().zip(&entry.index_values) {
            for v in values {
                if let Some(set) = index.values.get_mut(v.as_str()) {
                    set.remove(key);
                    if set.is_empty() {
                        index.values.remove(v.as_str());
                    }
                }
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
    /// same key.
    pub fn replace(
        &mut self,
        items: Vec<Pending>,
        resource_version: Option<String>,
    ) -> Result<ReplaceOutcome, StoreError> {
        // Decode (if needed) and key everything first, so a bad item changes nothing.
        let mut keyed: Vec<(String, Pending)> = Vec::with_capacity(items.len());
        for mut p in items {
            if p.meta.schema_id != self.schema.id() {
                p.meta = decode_object(&p.raw, &self.schema)?;
            }
            let key = p.meta.key().ok_or(StoreError::NoName)?;
            keyed.push((key, p));
        }
        let fresh: HashSet<&str> = keyed.iter().map(|(k, _)| k.as_str()).collect();
        let gone: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| !fresh.contains(&***k))
            .cloned()
            .collect();
        drop(fresh);
        let mut out = ReplaceOutcome::default();
        for key in gone {
            if let Some(entry) = self.delete(&key) {
                out.deleted.push((key, entry.raw));
            }
        }
        let mut seen: HashSet<Key> = HashSet::with_capacity(keyed.len());
        for (_, p) in keyed {
            let (key, existed) = self.upsert_owned(p.raw, p.meta)?;
            if seen.insert(key.clone()) {
                if existed {
                    out.updated.push(key);
                } else {
                    out.added.push(key);
                }
            }
        }
        self.resource_version = resource_version;
        Ok(out)
    }

    /// All objects and the resource version as bytes: `TCSNAP1\n`, then u32-LE-length
    /// prefixed fields: the resource version (empty = none), then each object's JSON.
    pub fn snapshot(&self) -> Vec<u8> {
        let total: usize = self.objects.values().map(|e| e.raw.len() + 4).sum();
        let mut out = Vec::with_capacity(total + 64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        let rv = self.resource_version.as_deref().unwrap_or("");
        out.extend_from_slice(&(rv.len() as u32).to_le_bytes());
        out.extend_from_slice(rv.as_bytes());
        for e in self.objects.values() {
            out.extend_from_slice(&(e.raw.len() as u32).to_le_bytes());
            out.extend_from_slice(&e.raw);
        }
        out
    }

    /// Replaces the content with a `snapshot()`; returns how many objects it held.
    /// Nothing changes if the snapshot is bad.
    pub fn restore(&mut self, data: &[u8]) -> Result<usize, StoreError> {
        let rest = data
            .strip_prefix(SNAPSHOT_MAGIC)
            .ok_or(StoreError::BadSnapshot("not a trio-controller snapshot"))?;
        let mut fields = SnapshotFields { rest };
        let rv = fields
            .next()
            .ok_or(StoreError::BadSnapshot("truncated"))??;
        let rv = std::str::from_utf8(rv)
            .map_err(|_| StoreError::BadSnapshot("resource version is not UTF-8"))?;
        let mut items = Vec::new();
        for raw in fields {
            let raw = raw?;
            let meta = decode_object(raw, &self.schema)?;
            items.push(Pending {
                raw: raw.to_vec(),
                meta,
            });
        }
        let n = items.len();
        let rv = (!rv.is_empty()).then(|| rv.to_string());
        self.replace(items, rv)?;
        Ok(n)
    }
}

const SNAPSHOT_MAGIC: &[u8] = b"TCSNAP1\n";

struct SnapshotFields<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for SnapshotFields<'a> {
    type Item = Result<&'a [u8], StoreError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((len, rest)) = self.rest.split_first_chunk::<4>() else {
            self.rest = &[];
            return Some(Err(StoreError::BadSnapshot("truncated")));
        };
        let len = u32::from_le_bytes(*len) as usize;
        if rest.len() < len {
            self.rest = &[];
            return Some(Err(StoreError::BadSnapshot("truncated")));
        }
        let (field, rest) = rest.split_at(len);
        self.rest = rest;
        Some(Ok(field))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(ns: &str, name: &str, rv: &str, node: &str, app: &str) -> String {
        format!(
            r#"{{"metadata":{{"name":"{name}","namespace":"{ns}","uid":"uid-{name}","resourceVersion":"{rv}","labels":{{"app":"{app}"}},"managedFields":[{{"manager":"m"}}]}},"spec":{{"nodeName":"{node}"}}}}"#
        )
    }

    fn keys(v: &[Key]) -> Vec<&str> {
        v.iter().map(|k| &**k).collect()
    }

    #[test]
    fn upsert_keys_objects_by_namespace_and_name() {
        let mut s = Store::new(true);
        let k = s
            .upsert_raw(pod("ns", "a", "1", "n1", "web").as_bytes())
            .unwrap();
        assert_eq!(&*k, "ns/a");
        let k = s.upsert_raw(br#"{"metadata":{"name":"node-1"}}"#).unwrap();
        assert_eq!(&*k, "node-1");
        assert_eq!(s.len(), 2);
        let e = s.get("ns/a").unwrap();
        assert_eq!(e.uid.as_deref(), Some("uid-a"));
        assert_eq!(e.resource_version.as_deref(), Some("1"));
        assert_eq!(e.labels, vec![("app".into(), "web".into())]);
    }

    #[test]
    fn an_object_without_a_name_is_refused() {
        let mut s = Store::new(true);
        assert_eq!(
            s.upsert_raw(br#"{"metadata":{"namespace":"x"}}"#),
            Err(StoreError::NoName)
        );
    }

    #[test]
    fn managed_fields_are_stripped_only_when_asked() {
        let raw = pod("ns", "a", "1", "n1", "web");
        let mut s = Store::new(true);
        s.upsert_raw(raw.as_bytes()).unwrap();
        let stored = std::str::from_utf8(&s.get("ns/a").unwrap().raw)
            .unwrap()
            .to_string();
        assert!(!stored.contains("managedFields"));
        assert!(stored.contains(r#""labels":{"app":"web"}}"#));
        let mut s = Store::new(false);
        s.upsert_raw(raw.as_bytes()).unwrap();
        assert_eq!(&*s.get("ns/a").unwrap().raw, raw.as_bytes());
    }

    #[test]
    fn the_namespace_index_is_built_in_and_empty_sets_are_removed() {
        let mut s = Store::new(true);
        s.upsert_raw(pod("ns1", "a", "1", "n1", "web").as_bytes())
            .unwrap();
        s.upsert_raw(pod("ns1", "b", "1", "n1", "web").as_bytes())
            .unwrap();
        s.upsert_raw(pod("ns2", "c", "1", "n1", "web").as_bytes())
            .unwrap();
        assert_eq!(
            keys(&s.by_index("namespace", "ns1").unwrap()),
            ["ns1/a", "ns1/b"]
        );
        s.delete("ns2/c");
        assert_eq!(s.index_values("namespace").unwrap(), ["ns1"]);
        assert_eq!(s.by_index("namespace", "ns2").unwrap().len(), 0);
        assert_eq!(s.by_index("nope", "x"), None);
    }

    #[test]
    fn field_and_label_indexes_follow_updates() {
        let mut s = Store::new(true);
        s.upsert_raw(pod("ns", "a", "1", "n1", "web").as_bytes())
            .unwrap();
        s.add_index("node", "spec.nodeName").unwrap();
        s.add_index("app", "label:app").unwrap();
        assert_eq!(keys(&s.by_index("node", "n1").unwrap()), ["ns/a"]);
        s.upsert_raw(pod("ns", "a", "2", "n2", "db").as_bytes())
            .unwrap();
        assert_eq!(s.index_values("node").unwrap(), ["n2"]);
        assert_eq!(s.index_values("app").unwrap(), ["db"]);
        assert_eq!(
            s.add_index("node", "spec.x"),
            Err(StoreError::DuplicateIndex("node".into()))
        );
        assert!(s.add_index("bad", "spec..x").is_err());
        s.delete("ns/a");
        assert!(s.index_values("node").unwrap().is_empty());
        assert!(s.index_values("app").unwrap().is_empty());
    }

    #[test]
    fn replace_reports_added_updated_and_tombstones() {
        let mut s = Store::new(true);
        s.upsert_raw(pod("ns", "a", "1", "n1", "web").as_bytes())
            .unwrap();
        s.upsert_raw(pod("ns", "b", "1", "n1", "web").as_bytes())
            .unwrap();
        let schema = Schema::new(&[]);
        let items: Vec<Pending> = [
            pod("ns", "b", "2", "n1", "web"),
            pod("ns", "c", "2", "n1", "web"),
        ]
        .into_iter()
        .map(|raw| Pending {
            meta: decode_object(raw.as_bytes(), &schema).unwrap(),
            raw: raw.into_bytes(),
        })
        .collect();
        let out = s.replace(items, Some("9".into())).unwrap();
        assert_eq!(keys(&out.added), ["ns/c"]);
        assert_eq!(keys(&out.updated), ["ns/b"]);
        assert_eq!(out.deleted.len(), 1);
        assert_eq!(&*out.deleted[0].0, "ns/a");
        assert_eq!(s.len(), 2);
        assert_eq!(s.resource_version.as_deref(), Some("9"));
        assert_eq!(
            s.get("ns/b").unwrap().resource_version.as_deref(),
            Some("2")
        );
    }

    #[test]
    fn an_accumulator_that_strips_hands_over_stripped_bytes() {
        let schema = Schema::new(&[]);
        let raw = pod("ns", "a", "1", "n1", "web");
        let mut acc = Accumulator::new(true);
        acc.push(
            raw.as_bytes(),
            decode_object(raw.as_bytes(), &schema).unwrap(),
        );
        let kept = std::str::from_utf8(&acc.items[0].raw).unwrap().to_string();
        assert!(!kept.contains("managedFields"));
        assert_eq!(acc.items[0].meta.managed_fields, None);
        let mut keep = Accumulator::new(false);
        keep.push(
            raw.as_bytes(),
            decode_object(raw.as_bytes(), &schema).unwrap(),
        );
        assert_eq!(keep.items[0].raw, raw.as_bytes());
        // Stored as collected (a store that keeps managedFields keeps what it is given).
        let mut s = Store::new(false);
        s.replace(acc.take(), None).unwrap();
        assert!(acc.items.is_empty());
        assert_eq!(&*s.get("ns/a").unwrap().raw, kept.as_bytes());
        let mut s = Store::new(true);
        s.replace(keep.take(), None).unwrap();
        assert_eq!(&*s.get("ns/a").unwrap().raw, kept.as_bytes());
    }

    #[test]
    fn snapshot_and_restore_round_trip() {
        let mut s = Store::new(true);
        s.add_index("node", "spec.nodeName").unwrap();
        s.upsert_raw(pod("ns", "a", "1", "n1", "web").as_bytes())
            .unwrap();
        s.upsert_raw(pod("ns", "b", "1", "n2", "web").as_bytes())
            .unwrap();
        s.resource_version = Some("5".into());
        let snap = s.snapshot();
        let mut t = Store::new(true);
        t.add_index("node", "spec.nodeName").unwrap();
        assert_eq!(t.restore(&snap).unwrap(), 2);
        assert_eq!(t.resource_version.as_deref(), Some("5"));
        assert_eq!(keys(&t.by_index("node", "n2").unwrap()), ["ns/b"]);
        assert_eq!(t.get("ns/a").unwrap().raw, s.get("ns/a").unwrap().raw);
        assert!(t.restore(b"nope").is_err());
        assert!(t.restore(&snap[..snap.len() - 3]).is_err());
        assert_eq!(t.len(), 2);
    }
}
