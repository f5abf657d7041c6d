//! Compression of stored objects: LZ4 (lz4_flex block format) against a shared
//! dictionary learnt from the first objects a `Compressor` sees, frozen thereafter.
//! Each compressed entry holds an `Arc` of its dictionary, so entries move between
//! accumulators and stores (`replace`) without re-compression.
use std::sync::Arc;

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
    pub(super) bytes: Box<[u8]>,
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
    pub(super) fn compress(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Option<Option<Arc<Dict>>> {
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
