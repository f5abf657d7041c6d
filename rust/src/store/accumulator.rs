//! `ListAccumulator`: objects of list pages (or a streaming list's initial events)
//! packed as entries, waiting for `Store::replace`.
use super::compress::Compressor;
use super::entry::Entry;
use super::{Key, Store, StoreError};
use crate::json::{member_cut, Meta};
use std::ops::Range;

/// An object decoded elsewhere (a list page, a watch event) waiting to be stored.
#[derive(Debug, Clone)]
pub struct ListItem {
    pub key: Key,
    pub entry: Entry,
    /// The cut that drops `metadata.managedFields` if the entry still holds it.
    pub(super) managed_fields: Option<Range<usize>>,
    /// The schema `entry.index_values` were taken with.
    pub(super) schema_id: u64,
}

impl ListItem {
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
        Ok(ListItem {
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
pub struct ListAccumulator {
    pub items: Vec<ListItem>,
    pub strip_managed_fields: bool,
    /// Objects are compressed as they are collected (for a store that compresses).
    pub compress: bool,
    /// Kept across `take` (the next list shares the dictionary with the last).
    pub compressor: Compressor,
}

impl ListAccumulator {
    pub fn new(strip_managed_fields: bool) -> Self {
        Self::with_options(strip_managed_fields, false)
    }

    pub fn with_options(strip_managed_fields: bool, compress: bool) -> Self {
        ListAccumulator {
            items: Vec::new(),
            strip_managed_fields,
            compress,
            compressor: Compressor::default(),
        }
    }

    pub fn push(&mut self, raw: &[u8], meta: Meta) -> Result<(), StoreError> {
        let strip = self.strip_managed_fields;
        let comp = self.compress.then_some(&mut self.compressor);
        self.items.push(ListItem::new(raw, meta, strip, comp)?);
        Ok(())
    }

    /// Pushes a decoded list page's items (`(range in body, meta)`); keeps none of them
    /// if one cannot be packed.
    pub fn feed_page(
        &mut self,
        body: &[u8],
        items: Vec<(Range<usize>, Meta)>,
    ) -> Result<(), StoreError> {
        self.items.reserve(items.len());
        let before = self.items.len();
        for (range, meta) in items {
            let raw = body.get(range).unwrap_or_default();
            if let Err(e) = self.push(raw, meta) {
                self.items.truncate(before);
                return Err(e);
            }
        }
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
    pub fn take(&mut self) -> Vec<ListItem> {
        std::mem::take(&mut self.items)
    }
}
