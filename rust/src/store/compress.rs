//! Compression of stored objects: LZ4 (block format, decoded by lz4_flex) against a
//! shared dictionary learnt from the first objects a `Compressor` sees, frozen
//! thereafter. Each compressed entry holds an `Arc` of its dictionary, so entries move
//! between accumulators and stores (`replace`) without re-compression.
use super::lz4::{DictTable, Encoder};
use std::sync::Arc;

/// The dictionary's hash table is built once (`lz4::DictTable`), so its size costs no
/// time per object: 16 KiB holds ~5 pods, for clusters whose pods differ more than
/// bench's (whose ~3.1 KB stripped pods compress to ~0.5 KB with any of 4-32 KiB).
pub const DICT_MAX: usize = 16 * 1024;
/// Objects a `Compressor` learns from at most before it freezes its dictionary.
const DICT_OBJECTS: u32 = 64;
/// A dictionary smaller than this is not worth it (objects are then compressed alone).
const DICT_MIN: usize = 1024;

/// A frozen compression dictionary (bytes that logically precede each object).
#[derive(Debug)]
pub struct Dict {
    pub(super) bytes: Box<[u8]>,
    table: DictTable,
}

impl Dict {
    fn new(bytes: Box<[u8]>) -> Self {
        let table = DictTable::new(&bytes);
        Dict { bytes, table }
    }
}

/// Compresses objects, learning its dictionary from the first ones it sees.
#[derive(Debug, Default, Clone)]
pub struct Compressor {
    training: Vec<u8>,
    seen: u32,
    frozen: bool,
    dict: Option<Arc<Dict>>,
    encoder: Encoder,
    /// The last object compressed (reused: one allocation per entry, of its size).
    scratch: Vec<u8>,
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
                self.dict = Some(Arc::new(Dict::new(bytes.into_boxed_slice())));
            }
        }
    }

    /// `input` LZ4-compressed (u32-LE size first) if that is smaller, with the
    /// dictionary used; `None` if it is not.
    pub(super) fn compress(&mut self, input: &[u8]) -> Option<(&[u8], Option<Arc<Dict>>)> {
        let dict = self.dict.clone();
        self.learn(input);
        let size = u32::try_from(input.len()).ok()?;
        self.scratch.clear();
        self.scratch.extend_from_slice(&size.to_le_bytes());
        let d = dict.as_deref().map(|d| (&d.bytes[..], &d.table));
        let limit = input.len().checked_sub(4)?;
        if self.encoder.compress(input, d, &mut self.scratch, limit) {
            Some((&self.scratch, dict))
        } else {
            None
        }
    }
}
