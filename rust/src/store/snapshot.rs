//! Snapshots for `--cache-snapshot`: `TCSNAP1\n`, then u32-LE-length prefixed fields:
//! the resource version (empty = none), then each object's JSON.
use super::accumulator::ListItem;
use super::entry::len32;
use super::{Store, StoreError};
use crate::json::decode_object;

impl Store {
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
            items.push(ListItem::new(raw, meta, self.strip_managed_fields, comp)?);
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
