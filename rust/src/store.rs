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
use crate::decode::{decode_object, member_cut, Meta, Schema, SyntaxError};
use hashbrown::{HashMap, HashSet};
use std::borrow::Cow;
use std::ops::Range;
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

/// The most bytes a compression dictionary holds (the first objects seen, concatenated).
/// lz4_flex 0.11 hashes the whole dictionary on every compression (it has no prepared
/// dictionary), so this trades time for diversity: for bench pods (~3.1 KB stripped)
/// 8/16/32 KiB all give ~0.5 KB per pod, at 7.4/9.0/12.0 µs per watch event (plain LZ4
/// was 7.3). 16 KiB holds ~5 pods, for clusters whose pods differ more than bench's.
pub const DICT_MAX: usize = 16 * 1024;
/// Objects a `Compressor` learns from at most before it freezes its dictionary.
const DICT_OBJECTS: u32 = 64;
/// A dictionary smaller than this is not worth it (objects are then compressed alone).
const DICT_MIN: usize = 1024;

/// A frozen compression dictionary (bytes that logically precede each object).
#[derive(Debug)]
pub struct Dict {
    bytes: Box<[u8]>,
}

/// Compresses objects, learning its dictionary from the first ones it sees.
#[derive(Debug, Default, Clone)]
pub struct Compressor {
    training: Vec<u8>,
    seen: u32,
    frozen: bool,
    dict: Option<Arc<Dict>>,
}

impl Compressor {
    /// The frozen dictionary, if there is one.
    pub fn dict(&self) -> Option<&Arc<Dict>> {
        self.dict.as_ref()
    }

    /// Whether nothing was learnt yet (no object seen, no dictionary adopted).
    pub fn pristine(&self) -> bool {
        !self.frozen && self.seen == 0
    }

    /// Uses `dict` from now on (and stops learning).
    pub fn adopt(&mut self, dict: Arc<Dict>) {
        self.training = Vec::new();
        self.frozen = true;
        self.dict = Some(dict);
    }

    fn learn(&mut self, input: &[u8]) {
        if self.frozen {
            return;
        }
        let room = DICT_MAX.saturating_sub(self.training.len());
        self.training
            .extend_from_slice(&input[..input.len().min(room)]);
        self.seen += 1;
        if self.training.len() >= DICT_MAX || self.seen >= DICT_OBJECTS {
            self.frozen = true;
            let bytes = std::mem::take(&mut self.training);
            if bytes.len() >= DICT_MIN {
                self.dict = Some(Arc::new(Dict {
                    bytes: bytes.into_boxed_slice(),
                }));
            }
        }
    }

    /// Appends `input` LZ4-compressed (u32-LE size first) to `out` if that is smaller;
    /// returns `None` if it is not (`out` unchanged), else the dictionary used.
    fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<Option<Arc<Dict>>> {
        let dict = self.dict.clone();
        self.learn(input);
        let size = u32::try_from(input.len()).ok()?;
        let start = out.len();
        out.extend_from_slice(&size.to_le_bytes());
        out.resize(
            start + 4 + lz4_flex::block::get_maximum_output_size(input.len()),
            0,
        );
        let done = match &dict {
            Some(d) => {
                lz4_flex::block::compress_into_with_dict(input, &mut out[start + 4..], &d.bytes)
            }
            None => lz4_flex::block::compress_into(input, &mut out[start + 4..]),
        };
        match done {
            Ok(n) if 4 + n < input.len() => {
                out.truncate(start + 4 + n);
                Some(dict)
            }
            _ => {
                out.truncate(start);
                None
            }
        }
    }
}

/// "Absent" for the optional lengths of an `Entry`.
const NONE: u32 = u32::MAX;

fn len32(n: usize) -> Result<u32, StoreError> {
    u32::try_from(n)
        .ok()
        .filter(|&n| n != NONE)
        .ok_or(StoreError::TooLarge)
}

/// One cached object.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The object's bytes, then its uid, its resourceVersion and its labels (each key
    /// and value prefixed by its u32-LE length).
    buf: Box<[u8]>,
    raw_len: u32,
    /// `NONE`: the field is absent.
    uid_len: u32,
    rv_len: u32,
    /// The namespace is the key's first `ns_len` bytes (`NONE`: no namespace field).
    ns_len: u32,
    deleting: bool,
    /// The object's bytes are LZ4 (block format, u32-LE uncompressed size first).
    compressed: bool,
    /// The dictionary they were compressed with (if any).
    dict: Option<Arc<Dict>>,
    /// One list of values per user index of the schema the object was decoded with.
    index_values: Box<[Box<[Box<str>]>]>,
}

/// The part of an object's bytes to keep: all of it, or all but `cut`.
struct Body<'a> {
    raw: &'a [u8],
    cut: Range<usize>,
}

impl Body<'_> {
    fn len(&self) -> usize {
        self.raw.len() - self.cut.len()
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.raw[..self.cut.start]);
        out.extend_from_slice(&self.raw[self.cut.end..]);
    }

    /// Writes the bytes compressed by `comp` (size first) if that is smaller, else as
    /// they are; returns whether compressed and the dictionary used.
    fn write_compressed(
        &self,
        out: &mut Vec<u8>,
        comp: &mut Compressor,
    ) -> (bool, Option<Arc<Dict>>) {
        let joined;
        let input: &[u8] = if self.cut.is_empty() {
            self.raw
        } else {
            let mut v = Vec::with_capacity(self.len());
            self.write(&mut v);
            joined = v;
            &joined
        };
        match comp.compress(input, out) {
            Some(dict) => (true, dict),
            None => {
                out.extend_from_slice(input);
                (false, None)
            }
        }
    }
}

impl Entry {
    /// Packs `raw` (without managedFields if `strip`) and `meta` into one allocation;
    /// returns the key too.
    /// With `compress` the bytes are kept compressed by it (if that makes them smaller).
    pub fn build(
        raw: &[u8],
        meta: Meta,
        strip: bool,
        compress: Option<&mut Compressor>,
    ) -> Result<(String, Entry), StoreError> {
        let key = meta.key().ok_or(StoreError::NoName)?;
        let cut = match (&meta.managed_fields, strip) {
            (Some(mf), true) => member_cut(raw, mf),
            _ => 0..0,
        };
        let body = Body { raw, cut };
        let entry = Self::pack(&body, &meta, compress)?;
        Ok((key, entry))
    }

    fn pack(
        body: &Body<'_>,
        meta: &Meta,
        compress: Option<&mut Compressor>,
    ) -> Result<Entry, StoreError> {
        let uid = meta.uid.as_deref();
        let rv = meta.resource_version.as_deref();
        let labels_len: usize = meta.labels.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        let meta_len = uid.map_or(0, str::len) + rv.map_or(0, str::len) + labels_len;
        len32(body.len() + meta_len)?;
        let mut buf;
        let (compressed, dict) = if let Some(comp) = compress {
            buf = Vec::with_capacity(
                4 + lz4_flex::block::get_maximum_output_size(body.len()) + meta_len,
            );
            body.write_compressed(&mut buf, comp)
        } else {
            buf = Vec::with_capacity(body.len() + meta_len);
            body.write(&mut buf);
            (false, None)
        };
        let raw_len = len32(buf.len())?;
        buf.extend_from_slice(uid.unwrap_or("").as_bytes());
        buf.extend_from_slice(rv.unwrap_or("").as_bytes());
        for (k, v) in &meta.labels {
            for s in [k, v] {
                buf.extend_from_slice(&len32(s.len())?.to_le_bytes());
                buf.extend_from_slice(s.as_bytes());
            }
        }
        let ns_len = match meta.namespace.as_deref() {
            Some(ns) => len32(ns.len())?,
            None => NONE,
        };
        Ok(Entry {
            buf: buf.into_boxed_slice(),
            raw_len,
            uid_len: uid.map_or(Ok(NONE), |u| len32(u.len()))?,
            rv_len: rv.map_or(Ok(NONE), |r| len32(r.len()))?,
            ns_len,
            deleting: meta.deleting,
            compressed,
            dict,
            index_values: Self::values(&meta.index_values),
        })
    }

    fn values(v: &[Vec<String>]) -> Box<[Box<[Box<str>]>]> {
        v.iter()
            .map(|vals| vals.iter().map(|s| s.as_str().into()).collect())
            .collect()
    }

    /// The same entry with `cut` removed from its object bytes and compressed if asked
    /// (and not yet, or cut); `self` if there is nothing to do. An entry compressed
    /// elsewhere keeps its bytes and dictionary.
    fn reshape(
        self,
        cut: Range<usize>,
        compress: Option<&mut Compressor>,
    ) -> Result<Entry, StoreError> {
        if cut.is_empty() && (compress.is_none() || self.compressed) {
            return Ok(self);
        }
        let raw = self.raw()?;
        let cut = if cut.end <= raw.len() { cut } else { 0..0 };
        let body = Body { raw: &raw, cut };
        let meta = self.buf.get(self.raw_len as usize..).unwrap_or_default();
        let mut buf = Vec::with_capacity(body.len() + meta.len());
        let (compressed, dict) = if let Some(comp) = compress {
            body.write_compressed(&mut buf, comp)
        } else {
            body.write(&mut buf);
            (false, None)
        };
        let raw_len = len32(buf.len())?;
        buf.extend_from_slice(meta);
        Ok(Entry {
            buf: buf.into_boxed_slice(),
            raw_len,
            compressed,
            dict,
            index_values: self.index_values.clone(),
            ..self
        })
    }

    fn raw_bytes(&self) -> &[u8] {
        self.buf.get(..self.raw_len as usize).unwrap_or_default()
    }

    /// The object's JSON bytes (decompressed if need be).
    pub fn raw(&self) -> Result<Cow<'_, [u8]>, StoreError> {
        if !self.compressed {
            return Ok(Cow::Borrowed(self.raw_bytes()));
        }
        match &self.dict {
            Some(d) => {
                lz4_flex::block::decompress_size_prepended_with_dict(self.raw_bytes(), &d.bytes)
            }
            None => lz4_flex::block::decompress_size_prepended(self.raw_bytes()),
        }
        .map(Cow::Owned)
        .map_err(|_| StoreError::Corrupt)
    }

    /// Whether the object's bytes are kept compressed.
    pub fn compressed(&self) -> bool {
        self.compressed
    }

    /// The dictionary the object's bytes were compressed with.
    pub fn dict(&self) -> Option<&Arc<Dict>> {
        self.dict.as_ref()
    }

    /// The object's bytes, consuming the entry (no copy when possible).
    pub fn into_raw(self) -> Result<Box<[u8]>, StoreError> {
        if self.compressed {
            return self.raw().map(|r| r.into_owned().into_boxed_slice());
        }
        let mut v = self.buf.into_vec();
        v.truncate(self.raw_len as usize);
        Ok(v.into_boxed_slice())
    }

    fn field(&self, start: usize, len: u32) -> Option<&str> {
        if len == NONE {
            return None;
        }
        let b = self.buf.get(start..start + len as usize)?;
        std::str::from_utf8(b).ok()
    }

    fn opt_len(len: u32) -> usize {
        if len == NONE {
            0
        } else {
            len as usize
        }
    }

    pub fn uid(&self) -> Option<&str> {
        self.field(self.raw_len as usize, self.uid_len)
    }

    pub fn resource_version(&self) -> Option<&str> {
        self.field(
            self.raw_len as usize + Self::opt_len(self.uid_len),
            self.rv_len,
        )
    }

    /// The labels, in the object's order.
    pub fn labels(&self) -> Labels<'_> {
        let start =
            self.raw_len as usize + Self::opt_len(self.uid_len) + Self::opt_len(self.rv_len);
        Labels {
            rest: self.buf.get(start..).unwrap_or_default(),
        }
    }

    pub fn deleting(&self) -> bool {
        self.deleting
    }

    /// The namespace of the object stored under `key` (`None`: no namespace field).
    pub fn namespace<'k>(&self, key: &'k str) -> Option<&'k str> {
        if self.ns_len == NONE {
            return None;
        }
        key.get(..self.ns_len as usize)
    }

    /// The name of the object stored under `key`.
    pub fn name<'k>(&self, key: &'k str) -> &'k str {
        match self.ns_len {
            0 | NONE => key,
            n => key.get(n as usize + 1..).unwrap_or(key),
        }
    }
}

/// An entry's labels.
pub struct Labels<'a> {
    rest: &'a [u8],
}

impl<'a> Labels<'a> {
    fn take(&mut self) -> Option<&'a str> {
        let (len, rest) = self.rest.split_first_chunk::<4>()?;
        let len = u32::from_le_bytes(*len) as usize;
        let s = rest.get(..len)?;
        self.rest = &rest[len..];
        std::str::from_utf8(s).ok()
    }
}

impl<'a> Iterator for Labels<'a> {
    type Item = (&'a str, &'a str);
    fn next(&mut self) -> Option<Self::Item> {
        let k = self.take()?;
        let v = self.take()?;
        Some((k, v))
    }
}

/// An object decoded elsewhere (a list page, a watch event) waiting to be stored.
#[derive(Debug, Clone)]
pub struct Pending {
    pub key: Key,
    pub entry: Entry,
    /// The cut that drops `metadata.managedFields` if the entry still holds it.
    managed_fields: Option<Range<usize>>,
    /// The schema `entry.index_values` were taken with.
    schema_id: u64,
}

impl Pending {
    /// Packs `raw` (copied once), without managedFields if `strip`, compressed by
    /// `compress` if given.
    pub fn new(
        raw: &[u8],
        meta: Meta,
        strip: bool,
        compress: Option<&mut Compressor>,
    ) -> Result<Self, StoreError> {
        let managed_fields = match &meta.managed_fields {
            Some(mf) if !strip => Some(member_cut(raw, mf)),
            _ => None,
        };
        let schema_id = meta.schema_id;
        let (key, entry) = Entry::build(raw, meta, strip, compress)?;
        Ok(Pending {
            key: key.into(),
            entry,
            managed_fields,
            schema_id,
        })
    }
}

/// Objects collected from list pages or a streaming list's initial events, waiting for
/// `Store::replace`. With `strip_managed_fields` each object loses `managedFields` as it
/// is collected, so a big list never holds the full objects.
#[derive(Debug, Default, Clone)]
pub struct Accumulator {
    pub items: Vec<Pending>,
    pub strip_managed_fields: bool,
    /// Objects are compressed as they are collected (for a store that compresses).
    pub compress: bool,
    /// Kept across `take` (the next list shares the dictionary with the last).
    pub compressor: Compressor,
}

impl Accumulator {
    pub fn new(strip_managed_fields: bool) -> Self {
        Self::with_options(strip_managed_fields, false)
    }

    pub fn with_options(strip_managed_fields: bool, compress: bool) -> Self {
        Accumulator {
            items: Vec::new(),
            strip_managed_fields,
            compress,
            compressor: Compressor::default(),
        }
    }

    pub fn push(&mut self, raw: &[u8], meta: Meta) -> Result<(), StoreError> {
        let strip = self.strip_managed_fields;
        let comp = self.compress.then_some(&mut self.compressor);
        self.items.push(Pending::new(raw, meta, strip, comp)?);
        Ok(())
    }

    /// Starts with `store`'s dictionary if this accumulator has learnt nothing yet (so
    /// its objects and the store's share one).
    pub fn share_dict(&mut self, store: &Store) {
        if let (true, Some(d)) = (self.compressor.pristine(), store.compressor.dict()) {
            self.compressor.adopt(d.clone());
        }
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
    values: HashMap<Box<str>, HashSet<Key>>,
}

pub struct Store {
    objects: HashMap<Key, Entry>,
    /// Index 0 is the namespace index; user indexes follow in `add_index` order.
    indexes: Vec<Index>,
    schema: Schema,
    strip_managed_fields: bool,
    compress: bool,
    compressor: Compressor,
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

fn index_add(values: &mut HashMap<Box<str>, HashSet<Key>>, value: &str, key: &Key) {
    match values.get_mut(value) {
        Some(set) => {
            set.insert(key.clone());
        }
        None => {
            values.insert(value.into(), HashSet::from_iter([key.clone()]));
        }
    }
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
        let mut values: Vec<String> = index.values.keys().map(|v| v.to_string()).collect();
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
        let meta = if meta.schema_id == self.schema.id() {
            meta
        } else {
            decode_object(raw, &self.schema)?
        };
        let comp = self.compress.then_some(&mut self.compressor);
        let (key, entry) = Entry::build(raw, meta, self.strip_managed_fields, comp)?;
        Ok(self.insert(&key, None, entry))
    }

    /// Stores `entry` under `key` (reusing the stored key if there is one).
    fn insert(&mut self, key: &str, fresh: Option<Key>, entry: Entry) -> (Key, bool) {
        let key: Key = match self.objects.get_key_value(key) {
            Some((k, _)) => k.clone(),
            None => fresh.unwrap_or_else(|| key.into()),
        };
        let existed = match self.objects.insert(key.clone(), entry) {
            Some(old) => {
                self.unindex(&key, &old);
                true
            }
            None => false,
        };
        if let Some(entry) = self.objects.get(&key) {
            let ns = entry.namespace(&key).unwrap_or("");
            index_add(&mut self.indexes[0].values, ns, &key);
            for (index, values) in self.indexes[1..].iter_mut().zip(&entry.index_values) {
                for v in values.iter() {
                    index_add(&mut index.values, v, &key);
                }
            }
        }
        (key, existed)
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
        items: Vec<Pending>,
        resource_version: Option<String>,
    ) -> Result<ReplaceOutcome, StoreError> {
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
        let mut out = ReplaceOutcome::default();
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
            let (key, existed) = self.insert(&p.key.clone(), Some(p.key), entry);
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
    pub fn snapshot(&self) -> Result<Vec<u8>, StoreError> {
        let total: usize = self.objects.values().map(|e| e.raw_len as usize + 4).sum();
        let mut out = Vec::with_capacity(total + 64);
        out.extend_from_slice(SNAPSHOT_MAGIC);
        let rv = self.resource_version.as_deref().unwrap_or("");
        out.extend_from_slice(&len32(rv.len())?.to_le_bytes());
        out.extend_from_slice(rv.as_bytes());
        for e in self.objects.values() {
            let raw = e.raw()?;
            out.extend_from_slice(&len32(raw.len())?.to_le_bytes());
            out.extend_from_slice(&raw);
        }
        Ok(out)
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
            let comp = self.compress.then_some(&mut self.compressor);
            items.push(Pending::new(raw, meta, self.strip_managed_fields, comp)?);
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
    use crate::decode::strip_member;

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
        assert_eq!(e.uid(), Some("uid-a"));
        assert_eq!(e.resource_version(), Some("1"));
        assert_eq!(e.labels().collect::<Vec<_>>(), [("app", "web")]);
        assert_eq!((e.namespace("ns/a"), e.name("ns/a")), (Some("ns"), "a"));
        assert!(!e.deleting());
        let e = s.get("node-1").unwrap();
        assert_eq!((e.namespace("node-1"), e.name("node-1")), (None, "node-1"));
        assert_eq!((e.uid(), e.resource_version()), (None, None));
        assert_eq!(e.labels().count(), 0);
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
        let stored = String::from_utf8(s.get("ns/a").unwrap().raw().unwrap().into_owned()).unwrap();
        assert!(!stored.contains("managedFields"));
        assert!(stored.contains(r#""labels":{"app":"web"}}"#));
        let mut s = Store::new(false);
        s.upsert_raw(raw.as_bytes()).unwrap();
        assert_eq!(&*s.get("ns/a").unwrap().raw().unwrap(), raw.as_bytes());
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
        .map(|raw| {
            let meta = decode_object(raw.as_bytes(), &schema).unwrap();
            Pending::new(raw.as_bytes(), meta, false, None).unwrap()
        })
        .collect();
        let out = s.replace(items, Some("9".into())).unwrap();
        assert_eq!(keys(&out.added), ["ns/c"]);
        assert_eq!(keys(&out.updated), ["ns/b"]);
        assert_eq!(out.deleted.len(), 1);
        assert_eq!(&*out.deleted[0].0, "ns/a");
        assert_eq!(s.len(), 2);
        assert_eq!(s.resource_version.as_deref(), Some("9"));
        assert_eq!(s.get("ns/b").unwrap().resource_version(), Some("2"));
    }

    #[test]
    fn an_accumulator_that_strips_hands_over_stripped_bytes() {
        let schema = Schema::new(&[]);
        let raw = pod("ns", "a", "1", "n1", "web");
        let mut acc = Accumulator::new(true);
        acc.push(
            raw.as_bytes(),
            decode_object(raw.as_bytes(), &schema).unwrap(),
        )
        .unwrap();
        let kept = String::from_utf8(acc.items[0].entry.raw().unwrap().into_owned()).unwrap();
        assert!(!kept.contains("managedFields"));
        assert_eq!(acc.items[0].managed_fields, None);
        let mut keep = Accumulator::new(false);
        keep.push(
            raw.as_bytes(),
            decode_object(raw.as_bytes(), &schema).unwrap(),
        )
        .unwrap();
        assert_eq!(&*keep.items[0].entry.raw().unwrap(), raw.as_bytes());
        // Stored as collected (a store that keeps managedFields keeps what it is given).
        let mut s = Store::new(false);
        s.replace(acc.take(), None).unwrap();
        assert!(acc.items.is_empty());
        assert_eq!(&*s.get("ns/a").unwrap().raw().unwrap(), kept.as_bytes());
        let mut s = Store::new(true);
        s.replace(keep.take(), None).unwrap();
        assert_eq!(&*s.get("ns/a").unwrap().raw().unwrap(), kept.as_bytes());
        assert_eq!(s.get("ns/a").unwrap().uid(), Some("uid-a"));
    }

    #[test]
    fn a_compressing_store_keeps_metadata_readable_and_objects_intact() {
        let big = "x".repeat(2000);
        let raw = format!(
            r#"{{"metadata":{{"name":"a","namespace":"ns","uid":"u","resourceVersion":"7","labels":{{"app":"web"}},"managedFields":[{{"manager":"m"}}]}},"spec":{{"nodeName":"n1","pad":"{big}"}}}}"#
        );
        let want = String::from_utf8(strip_member(
            raw.as_bytes(),
            &decode_object(raw.as_bytes(), &Schema::new(&[]))
                .unwrap()
                .managed_fields
                .unwrap(),
        ))
        .unwrap();
        let mut s = Store::with_options(true, true);
        s.add_index("node", "spec.nodeName").unwrap();
        s.upsert_raw(raw.as_bytes()).unwrap();
        // Too small to gain: kept as is.
        s.upsert_raw(br#"{"metadata":{"name":"b"}}"#).unwrap();
        let e = s.get("ns/a").unwrap();
        assert!(e.compressed());
        assert!(e.raw_bytes().len() < 200);
        assert_eq!(&*e.raw().unwrap(), want.as_bytes());
        assert_eq!((e.uid(), e.resource_version()), (Some("u"), Some("7")));
        assert_eq!(e.labels().collect::<Vec<_>>(), [("app", "web")]);
        assert!(!s.get("b").unwrap().compressed());
        assert_eq!(keys(&s.by_index("node", "n1").unwrap()), ["ns/a"]);
        s.add_index("app", "label:app").unwrap();
        assert_eq!(keys(&s.by_index("app", "web").unwrap()), ["ns/a"]);
        // Accumulated uncompressed, compressed by replace; tombstones come back whole.
        let mut acc = Accumulator::new(false);
        acc.push(
            raw.as_bytes(),
            decode_object(raw.as_bytes(), s.schema()).unwrap(),
        )
        .unwrap();
        let mut t = Store::with_options(true, true);
        t.replace(acc.take(), None).unwrap();
        assert!(t.get("ns/a").unwrap().compressed());
        assert_eq!(&*t.get("ns/a").unwrap().raw().unwrap(), want.as_bytes());
        let out = t.replace(Vec::new(), None).unwrap();
        assert_eq!(&*out.deleted[0].1, want.as_bytes());
        // Snapshots hold plain JSON.
        let snap = s.snapshot().unwrap();
        assert!(snap.windows(want.len()).any(|w| w == want.as_bytes()));
        let mut u = Store::new(true);
        assert_eq!(u.restore(&snap).unwrap(), 2);
        assert_eq!(&*u.get("ns/a").unwrap().raw().unwrap(), want.as_bytes());
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
        let snap = s.snapshot().unwrap();
        let mut t = Store::new(true);
        t.add_index("node", "spec.nodeName").unwrap();
        assert_eq!(t.restore(&snap).unwrap(), 2);
        assert_eq!(t.resource_version.as_deref(), Some("5"));
        assert_eq!(keys(&t.by_index("node", "n2").unwrap()), ["ns/b"]);
        assert_eq!(
            t.get("ns/a").unwrap().raw().unwrap(),
            s.get("ns/a").unwrap().raw().unwrap()
        );
        assert!(t.restore(b"nope").is_err());
        assert!(t.restore(&snap[..snap.len() - 3]).is_err());
        assert_eq!(t.len(), 2);
    }

    /// A pod of ~1.7 KB, like the others but for its name, uid, rv, node and a hash.
    fn fat_pod(i: usize, rv: usize) -> String {
        let h = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        format!(
            r#"{{"metadata":{{"name":"web-{h:016x}-{i}","namespace":"ns-{ns}","uid":"{h:016x}-1111-2222-3333-{i:012}","resourceVersion":"{rv}","labels":{{"app":"web","pod-template-hash":"{h:08x}"}},"ownerReferences":[{{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-{h:08x}","uid":"{h:016x}","controller":true,"blockOwnerDeletion":true}}],"managedFields":[{{"manager":"kube-controller-manager","operation":"Update"}}]}},"spec":{{"nodeName":"node-{node}","containers":[{{"name":"app","image":"registry.example.com/team/web:1.2.3","ports":[{{"containerPort":8080,"protocol":"TCP"}}],"env":[{{"name":"POD_NAME","valueFrom":{{"fieldRef":{{"fieldPath":"metadata.name"}}}}}},{{"name":"LOG_LEVEL","value":"info"}}],"resources":{{"requests":{{"cpu":"100m","memory":"128Mi"}},"limits":{{"memory":"256Mi"}}}},"volumeMounts":[{{"name":"kube-api-access","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}}],"terminationMessagePath":"/dev/termination-log","imagePullPolicy":"IfNotPresent"}}],"restartPolicy":"Always","dnsPolicy":"ClusterFirst","serviceAccountName":"default","schedulerName":"default-scheduler","tolerations":[{{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}}]}},"status":{{"phase":"Running","podIP":"10.{a}.{b}.{c}","hostIP":"192.168.{a}.{b}","startTime":"2026-11-27T10:{m:02}:00Z","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"2026-11-27T10:{m:02}:07Z"}}],"containerStatuses":[{{"name":"app","ready":true,"restartCount":0,"image":"registry.example.com/team/web:1.2.3","containerID":"containerd://{h:016x}{h:016x}"}}]}}}}"#,
            ns = i % 7,
            node = i % 13,
            a = i % 250,
            b = (i / 250) % 250,
            c = (i * 7) % 250,
            m = i % 60,
        )
    }

    fn stripped(raw: &str) -> Vec<u8> {
        let meta = decode_object(raw.as_bytes(), &Schema::new(&[])).unwrap();
        strip_member(raw.as_bytes(), &meta.managed_fields.unwrap())
    }

    fn accumulate(acc: &mut Accumulator, pods: impl IntoIterator<Item = String>) {
        for raw in pods {
            let meta = decode_object(raw.as_bytes(), &Schema::new(&[])).unwrap();
            acc.push(raw.as_bytes(), meta).unwrap();
        }
    }

    #[test]
    fn a_compressing_store_learns_a_dictionary_from_its_first_objects() {
        let mut s = Store::with_options(true, true);
        let mut plain = 0;
        let mut with_dict = 0;
        for i in 0..200 {
            s.upsert_raw(fat_pod(i, 1).as_bytes()).unwrap();
        }
        for key in s.keys() {
            let e = s.get(key).unwrap();
            assert!(e.compressed());
            match e.dict() {
                Some(_) => with_dict = with_dict.max(e.raw_bytes().len()),
                None => plain = plain.max(e.raw_bytes().len()),
            }
        }
        let d = s.compressor.dict().expect("a frozen dictionary").clone();
        assert!(d.bytes.len() <= DICT_MAX && d.bytes.len() > DICT_MAX / 2);
        // Objects compressed before the dictionary froze are LZ4 alone.
        assert!(
            plain > 0 && with_dict > 0 && with_dict * 3 < plain,
            "{with_dict} {plain}"
        );
        // Every object reads back whole after many updates and deletes.
        for i in (0..200).step_by(3) {
            let k = s.upsert_raw(fat_pod(i, 2).as_bytes()).unwrap();
            assert!(Arc::ptr_eq(s.get(&k).unwrap().dict().unwrap(), &d));
        }
        for i in (0..200).step_by(5) {
            let raw = fat_pod(i, 1);
            let k = decode_object(raw.as_bytes(), &Schema::new(&[]))
                .unwrap()
                .key()
                .unwrap();
            assert!(s.delete(&k).is_some());
        }
        for i in 0..200 {
            let raw = fat_pod(i, if i % 3 == 0 { 2 } else { 1 });
            let k = decode_object(raw.as_bytes(), &Schema::new(&[]))
                .unwrap()
                .key()
                .unwrap();
            match s.get(&k) {
                Some(e) => assert_eq!(&*e.raw().unwrap(), &stripped(&raw)[..]),
                None => assert!(i % 5 == 0 && i % 3 != 0 || i % 15 == 0),
            }
        }
    }

    #[test]
    fn replace_moves_entries_with_their_dictionary_and_the_store_adopts_it() {
        let mut acc = Accumulator::with_options(true, true);
        accumulate(&mut acc, (0..100).map(|i| fat_pod(i, 1)));
        let d1 = acc.compressor.dict().unwrap().clone();
        let mut s = Store::with_options(true, true);
        s.upsert_raw(fat_pod(1000, 1).as_bytes()).unwrap();
        let out = s.replace(acc.take(), Some("1".into())).unwrap();
        assert_eq!((out.added.len(), out.updated.len()), (100, 0));
        assert_eq!(&*out.deleted[0].1, &stripped(&fat_pod(1000, 1))[..]);
        assert!(Arc::ptr_eq(s.compressor.dict().unwrap(), &d1));
        // Upserts now use the list's dictionary.
        let k = s.upsert_raw(fat_pod(5000, 1).as_bytes()).unwrap();
        assert!(Arc::ptr_eq(s.get(&k).unwrap().dict().unwrap(), &d1));
        // A relist whose accumulator learnt another dictionary, into a store that has
        // one: entries keep the dictionary they were compressed with.
        let mut acc2 = Accumulator::with_options(true, true);
        accumulate(&mut acc2, (50..150).rev().map(|i| fat_pod(i, 2)));
        let d2 = acc2.compressor.dict().unwrap().clone();
        assert!(!Arc::ptr_eq(&d1, &d2));
        let out = s.replace(acc2.take(), Some("2".into())).unwrap();
        assert_eq!((out.added.len(), out.updated.len()), (50, 50));
        assert_eq!(out.deleted.len(), 51);
        for (k, raw) in &out.deleted {
            let i: usize = k.rsplit('-').next().unwrap().parse().unwrap();
            assert_eq!(&**raw, &stripped(&fat_pod(i, 1))[..], "{k}");
        }
        assert!(Arc::ptr_eq(s.compressor.dict().unwrap(), &d2));
        for i in 50..150 {
            let raw = fat_pod(i, 2);
            let k = decode_object(raw.as_bytes(), &Schema::new(&[]))
                .unwrap()
                .key()
                .unwrap();
            assert_eq!(&*s.get(&k).unwrap().raw().unwrap(), &stripped(&raw)[..]);
        }
        // The accumulator keeps its dictionary for the next list; a plain accumulator's
        // items get the store's.
        accumulate(&mut acc2, [fat_pod(7, 3)]);
        assert!(Arc::ptr_eq(acc2.items[0].entry.dict().unwrap(), &d2));
        let mut plain = Accumulator::new(false);
        accumulate(&mut plain, (0..20).map(|i| fat_pod(i, 4)));
        s.replace(plain.take(), None).unwrap();
        assert_eq!(s.len(), 20);
        for i in 0..20 {
            let raw = fat_pod(i, 4);
            let k = decode_object(raw.as_bytes(), &Schema::new(&[]))
                .unwrap()
                .key()
                .unwrap();
            let e = s.get(&k).unwrap();
            assert!(Arc::ptr_eq(e.dict().unwrap(), &d2));
            assert_eq!(&*e.raw().unwrap(), &stripped(&raw)[..]);
        }
        // Only the dictionaries still used are alive.
        drop((acc, acc2));
        assert_eq!(Arc::strong_count(&d1), 1);
    }

    #[test]
    fn compressed_snapshots_restore_and_odd_objects_survive() {
        let mut s = Store::with_options(true, true);
        s.add_index("node", "spec.nodeName").unwrap();
        for i in 0..60 {
            s.upsert_raw(fat_pod(i, 1).as_bytes()).unwrap();
        }
        // Incompressible objects gain nothing.
        let mut x: u64 = 1;
        let noise: String = (0..3000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'!' + (x % 90) as u8 + u8::from(x % 90 >= 1))
            })
            .filter(|c| *c != '"' && *c != '\\')
            .collect();
        let odd = format!(r#"{{"metadata":{{"name":"noise"}},"data":"{noise}"}}"#);
        s.upsert_raw(odd.as_bytes()).unwrap();
        s.upsert_raw(br#"{"metadata":{"name":"b"}}"#).unwrap();
        assert!(s.get("noise").unwrap().raw_bytes().len() > odd.len() - 20);
        // (Even a tiny object gains with the dictionary.)
        assert!(s.get("b").unwrap().compressed());
        assert_eq!(
            &*s.get("b").unwrap().raw().unwrap(),
            br#"{"metadata":{"name":"b"}}"#
        );
        assert_eq!(&*s.get("noise").unwrap().raw().unwrap(), odd.as_bytes());
        let snap = s.snapshot().unwrap();
        for restored in [Store::with_options(true, true), Store::new(true)] {
            let mut t = restored;
            t.add_index("node", "spec.nodeName").unwrap();
            assert_eq!(t.restore(&snap).unwrap(), 62);
            for k in s.keys() {
                assert_eq!(
                    t.get(k).unwrap().raw().unwrap(),
                    s.get(k).unwrap().raw().unwrap()
                );
            }
            assert_eq!(t.by_index("node", "node-3"), s.by_index("node", "node-3"));
        }
        // Damaged bytes are an error, not a panic.
        let key = s
            .keys()
            .find(|k| s.get(k).unwrap().dict().is_some())
            .unwrap();
        for len in [9, s.get(key).unwrap().raw_len - 1] {
            let mut e = s.get(key).unwrap().clone();
            e.raw_len = len;
            assert_eq!(e.raw(), Err(StoreError::Corrupt));
        }
    }
}
