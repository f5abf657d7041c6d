//! One cached object: a single allocation holding its bytes (managedFields cut, maybe
//! compressed) followed by its uid, resourceVersion and labels; name and namespace are
//! read from the key, which is shared with the indexes and the work queue.
use super::compress::{Compressor, Dict};
use super::StoreError;
use crate::json::{member_cut, Meta};
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Arc;

/// "Absent" for the optional lengths of an `Entry`.
const NONE: u32 = u32::MAX;

pub(super) fn len32(n: usize) -> Result<u32, StoreError> {
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
    pub(super) buf: Box<[u8]>,
    pub(super) raw_len: u32,
    /// `NONE`: the field is absent.
    pub(super) uid_len: u32,
    pub(super) rv_len: u32,
    /// The namespace is the key's first `ns_len` bytes (`NONE`: no namespace field).
    pub(super) ns_len: u32,
    pub(super) deleting: bool,
    /// `metadata.generation` (0: absent).
    pub(super) generation: i64,
    /// The fingerprint of `metadata.annotations` (0: none; see `json::Meta::annotations`).
    pub(super) annotations: u64,
    /// The object's bytes are LZ4 (block format, u32-LE uncompressed size first).
    pub(super) compressed: bool,
    /// The dictionary they were compressed with (if any).
    pub(super) dict: Option<Arc<Dict>>,
    /// One list of values per user index of the schema the object was decoded with.
    pub(super) index_values: Box<[Box<[Box<str>]>]>,
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

    /// `out` with room for `extra` more bytes after the bytes compressed by `comp` (size
    /// first) if that is smaller, else as they are; whether compressed, and the
    /// dictionary used.
    fn write_compressed(&self, comp: &mut Compressor, extra: usize) -> Packed {
        let joined;
        let input: &[u8] = if self.cut.is_empty() {
            self.raw
        } else {
            let mut v = Vec::with_capacity(self.len());
            self.write(&mut v);
            joined = v;
            &joined
        };
        let (bytes, compressed, dict) = match comp.compress(input) {
            Some((bytes, dict)) => (bytes, true, dict),
            None => (input, false, None),
        };
        let mut out = Vec::with_capacity(bytes.len() + extra);
        out.extend_from_slice(bytes);
        (out, compressed, dict)
    }
}

/// An entry's bytes so far, whether they are compressed, and their dictionary.
type Packed = (Vec<u8>, bool, Option<Arc<Dict>>);

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
        let (mut buf, compressed, dict) = if let Some(comp) = compress {
            body.write_compressed(comp, meta_len)
        } else {
            let mut buf = Vec::with_capacity(body.len() + meta_len);
            body.write(&mut buf);
            (buf, false, None)
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
            generation: meta.generation,
            annotations: meta.annotations,
            compressed,
            dict,
            index_values: Self::values(&meta.index_values),
        })
    }

    pub(super) fn values(v: &[Vec<String>]) -> Box<[Box<[Box<str>]>]> {
        v.iter()
            .map(|vals| vals.iter().map(|s| s.as_str().into()).collect())
            .collect()
    }

    /// The same entry with `cut` removed from its object bytes and compressed if asked
    /// (and not yet, or cut); `self` if there is nothing to do. An entry compressed
    /// elsewhere keeps its bytes and dictionary.
    pub(super) fn reshape(
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
        let (mut buf, compressed, dict) = if let Some(comp) = compress {
            body.write_compressed(comp, meta.len())
        } else {
            let mut buf = Vec::with_capacity(body.len() + meta.len());
            body.write(&mut buf);
            (buf, false, None)
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

    pub(super) fn raw_bytes(&self) -> &[u8] {
        self.buf.get(..self.raw_len as usize).unwrap_or_default()
    }

    /// The object's JSON bytes (decompressed if need be).
    pub fn raw(&self) -> Result<Cow<'_, [u8]>, StoreError> {
        if !self.compressed {
            return Ok(Cow::Borrowed(self.raw_bytes()));
        }
        let bytes = self.raw_bytes();
        let out = match &self.dict {
            Some(d) => lz4_flex::block::decompress_size_prepended_with_dict(bytes, &d.bytes),
            None => lz4_flex::block::decompress_size_prepended(bytes),
        }
        .map_err(|_| StoreError::Corrupt)?;
        // A block cut short can decode "successfully" to fewer bytes than its prefix
        // promised: that is damage too, not a shorter object.
        let promised = bytes
            .get(..4)
            .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]]) as usize);
        if promised != Some(out.len()) {
            return Err(StoreError::Corrupt);
        }
        Ok(Cow::Owned(out))
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

    /// `metadata.generation` (0 when the object has none).
    pub fn generation(&self) -> i64 {
        self.generation
    }

    /// A fingerprint of `metadata.annotations` (0: none); equal annotations give equal
    /// fingerprints within one process.
    pub fn annotations(&self) -> u64 {
        self.annotations
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
