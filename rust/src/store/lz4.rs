//! An LZ4 block encoder (the format `lz4_flex::block` decodes) against a dictionary
//! whose hash table is built once (`DictTable`), so compressing one object costs a pass
//! over the object only. lz4_flex 0.11 re-hashes the whole dictionary on every call
//! (~0.2 µs per KiB), which made a useful dictionary cost more than the object itself.
//!
//! Greedy: per position one probe into the object's own table (6-byte hashes) and, unless
//! that found 32 bytes or more, one into the dictionary's; the longer match wins. Skips
//! ahead through data that does not match (LZ4's acceleration, sooner). Block rules kept:
//! the last 5 bytes are literals, no match starts in the last 12, offsets are 1..=65535
//! into dictionary-then-object.

/// Slots of the per-object hash table (log2).
const HASH_LOG: u32 = 12;
/// Slots of a dictionary's hash table (log2).
/// (At most `HASH_LOG`: a dictionary slot is the object's hash shifted right.)
const DICT_HASH_LOG: u32 = 12;
const MIN_MATCH: usize = 4;
/// No match starts in the last `MFLIMIT` bytes.
const MFLIMIT: usize = 12;
/// The last `LAST_LITERALS` bytes are literals.
const LAST_LITERALS: usize = 5;
const MAX_DISTANCE: usize = 65_535;
/// A dictionary's last `MAX_DICT` bytes are all an encoder refers to.
pub const MAX_DICT: usize = 65_535;
/// After `1 << SKIP_TRIGGER` misses in a row the step grows by one. A probe costs ~10 ns
/// (two table loads and an unpredictable branch), and a match found late is extended
/// backwards, so skipping early is cheap: on bench pods against a 16 KiB dictionary 6
/// (LZ4's) / 2 / 1 give 445 / 446 / 451 bytes per pod at 3.6 / 2.4 / 2.2 µs.
const SKIP_TRIGGER: u32 = 1;

#[inline(always)]
fn read4(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(&[x, y, z, w]) => u32::from_le_bytes([x, y, z, w]),
        _ => 0,
    }
}

/// The part of a dictionary matches may refer to.
#[inline(always)]
fn tail(dict: &[u8]) -> &[u8] {
    &dict[dict.len().saturating_sub(MAX_DICT)..]
}

/// The hash (`HASH_LOG` bits) of the 6 bytes at `at` (`at + 8 <= b.len()`): 6 rather than 4, so that in
/// JSON `{"metadata"` and `{"mountPath"` do not share a slot.
#[inline(always)]
fn hash6(b: &[u8], at: usize) -> usize {
    let v = match b.get(at..at + 8) {
        Some(w) => u64::from_le_bytes(w.try_into().unwrap_or_default()),
        None => 0,
    };
    ((v << 16).wrapping_mul(227_718_039_650_203) >> (64 - HASH_LOG)) as usize
}

/// The hash table of a dictionary's 6-byte sequences, built once per dictionary: per
/// hash the position + 1 of the last one with it (0: none).
#[derive(Debug)]
pub struct DictTable(Box<[u16]>);

impl DictTable {
    /// Hashes every position of `dict` (of its last `MAX_DICT` bytes).
    pub fn new(dict: &[u8]) -> Self {
        let dict = tail(dict);
        let mut table = vec![0u16; 1 << DICT_HASH_LOG].into_boxed_slice();
        for i in 0..dict.len().saturating_sub(7) {
            // i + 1 <= 65,535 - 7: fits.
            table[hash6(dict, i) >> (HASH_LOG - DICT_HASH_LOG)] = (i + 1) as u16;
        }
        DictTable(table)
    }
}

/// Reusable state of the encoder: its per-object hash table, never cleared: an entry is
/// `base + position + 1` and only those above the current object's `base` are its own.
#[derive(Debug, Clone)]
pub struct Encoder {
    table: Box<[u32]>,
    base: u32,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder {
            table: vec![0u32; 1 << HASH_LOG].into_boxed_slice(),
            base: 0,
        }
    }
}

/// How many bytes `a` and `b` have in common from their starts.
#[inline(always)]
fn common(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or_default());
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or_default());
        let d = x ^ y;
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

fn push_len(out: &mut Vec<u8>, mut n: usize) {
    while n >= 255 {
        out.push(255);
        n -= 255;
    }
    out.push(n as u8);
}

/// One sequence: `literals`, then (unless last) a match of `len` bytes `offset` back.
fn emit(out: &mut Vec<u8>, literals: &[u8], m: Option<(usize, usize)>) {
    let lit = literals.len();
    let ml = m.map_or(0, |(_, len)| len - MIN_MATCH);
    out.push(((lit.min(15) as u8) << 4) | ml.min(15) as u8);
    if lit >= 15 {
        push_len(out, lit - 15);
    }
    out.extend_from_slice(literals);
    if let Some((offset, _)) = m {
        out.extend_from_slice(&(offset as u16).to_le_bytes());
        if ml >= 15 {
            push_len(out, ml - 15);
        }
    }
}

impl Encoder {
    /// Appends `input` as one LZ4 block (dictionary `dict` logically before it) to
    /// `out`; gives up (returns false, `out` holding a partial block) once the block
    /// would reach `limit` bytes.
    pub fn compress(
        &mut self,
        input: &[u8],
        dict: Option<(&[u8], &DictTable)>,
        out: &mut Vec<u8>,
        limit: usize,
    ) -> bool {
        let start = out.len();
        let n = input.len();
        let mut anchor = 0;
        if n > MFLIMIT {
            let Ok(span) = u32::try_from(n + 1) else {
                return false;
            };
            let base = match self.base.checked_add(span) {
                Some(_) => self.base,
                None => {
                    self.table.fill(0);
                    0
                }
            };
            // Every `base + position + 1` of this object fits; the next object's base.
            self.base = base + span;
            let dict_bytes: &[u8] = dict.map_or(&[], |(b, _)| tail(b));
            let match_end = n - LAST_LITERALS;
            let mut pos = 0;
            let mut misses: u32 = 1 << SKIP_TRIGGER;
            while pos < n - MFLIMIT {
                let seq = read4(input, pos);
                let h = hash6(input, pos);
                let cand = self.table[h].saturating_sub(base) as usize;
                self.table[h] = base + (pos + 1) as u32;
                // The best of: the object's own candidate, the dictionary's.
                let mut best: Option<(usize, usize)> = None; // (offset, len)
                if cand > 0 && pos - (cand - 1) <= MAX_DISTANCE && read4(input, cand - 1) == seq {
                    let c = cand - 1;
                    let len = MIN_MATCH
                        + common(&input[pos + MIN_MATCH..match_end], &input[c + MIN_MATCH..]);
                    best = Some((pos - c, len));
                }
                if let (Some((_, table)), true) = (dict, best.map_or(true, |(_, l)| l < 32)) {
                    let dc = table.0[h >> (HASH_LOG - DICT_HASH_LOG)];
                    if let Some(c) = (dc as usize).checked_sub(1) {
                        let offset = dict_bytes.len() - c + pos;
                        // Only a candidate that would beat `best` is measured.
                        let beats = best.map_or(true, |(_, l)| {
                            pos + l < match_end && dict_bytes.get(c + l) == Some(&input[pos + l])
                        });
                        if beats
                            && offset <= MAX_DISTANCE
                            && c + MIN_MATCH <= dict_bytes.len()
                            && read4(dict_bytes, c) == seq
                        {
                            let len = MIN_MATCH
                                + common(
                                    &input[pos + MIN_MATCH..match_end],
                                    &dict_bytes[c + MIN_MATCH..],
                                );
                            if best.map_or(true, |(_, l)| len > l) {
                                best = Some((offset, len));
                            }
                        }
                    }
                }
                let Some((offset, mut len)) = best else {
                    pos += (misses >> SKIP_TRIGGER) as usize;
                    misses += 1;
                    continue;
                };
                misses = 1 << SKIP_TRIGGER;
                // Extend backwards over literals not yet emitted.
                let mut s = pos;
                while s > anchor && offset < s + dict_bytes.len() {
                    let back = s - 1;
                    // The byte `offset` before `back` in dictionary-then-object.
                    let src = if offset <= back {
                        input[back - offset]
                    } else {
                        dict_bytes[dict_bytes.len() + back - offset]
                    };
                    if src != input[back] {
                        break;
                    }
                    s = back;
                    len += 1;
                }
                emit(out, &input[anchor..s], Some((offset, len)));
                if out.len() - start >= limit {
                    return false;
                }
                pos = s + len;
                anchor = pos;
                if pos >= 2 && pos < n - MFLIMIT {
                    let p = pos - 2;
                    self.table[hash6(input, p)] = base + (p + 1) as u32;
                }
            }
        }
        emit(out, &input[anchor..], None);
        out.len() - start < limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(input: &[u8], dict: &[u8]) -> usize {
        let table = DictTable::new(dict);
        let mut out = Vec::new();
        let d = (!dict.is_empty()).then_some((dict, &table));
        assert!(Encoder::default().compress(input, d, &mut out, usize::MAX));
        let back = if dict.is_empty() {
            lz4_flex::block::decompress(&out, input.len())
        } else {
            lz4_flex::block::decompress_with_dict(&out, input.len(), dict)
        }
        .unwrap();
        assert_eq!(back, input);
        out.len()
    }

    /// xorshift bytes: `alphabet` letters (few: repetitive, many: noise).
    fn noise(seed: u64, n: usize, alphabet: u8) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b'!' + (x % u64::from(alphabet)) as u8
            })
            .collect()
    }

    #[test]
    fn every_block_decodes_to_its_input_with_or_without_a_dictionary() {
        let json = crate::store::tests::fat_pod(3, 7).into_bytes();
        let dict: Vec<u8> = (0..12)
            .flat_map(|i| crate::store::tests::fat_pod(i, 1).into_bytes())
            .collect();
        let mut inputs: Vec<Vec<u8>> = vec![Vec::new(), b"a".to_vec(), json.clone()];
        for n in [5, 12, 13, 14, 17, 20, 64, 255, 300, 4_000, 70_000, 140_000] {
            for alphabet in [1, 2, 4, 90] {
                inputs.push(noise(n as u64, n, alphabet));
            }
            // Long runs of one byte, then a pod: matches longer than 15 + 255.
            let mut v = vec![b'x'; n];
            v.extend_from_slice(&json);
            inputs.push(v);
        }
        // A big object made of pods: dictionary matches far back are out of reach.
        inputs.push(dict.repeat(6));
        for input in &inputs {
            for d in [
                &[][..],
                &dict[..],
                &dict[..100],
                &json[..],
                &dict.repeat(5)[..],
            ] {
                roundtrip(input, d);
            }
        }
        // It pays: a pod against a dictionary of pods is mostly references.
        assert!(roundtrip(&json, &dict) * 5 < json.len());
    }

    #[test]
    fn an_encoder_gives_up_at_its_limit() {
        let input = noise(9, 3_000, 90);
        let mut out = Vec::new();
        assert!(!Encoder::default().compress(&input, None, &mut out, input.len() - 4));
        let mut out = Vec::new();
        assert!(Encoder::default().compress(&input, None, &mut out, usize::MAX));
        assert!(out.len() >= input.len());
    }

    #[test]
    fn a_tiny_object_matches_the_dictionary() {
        let dict = br#"{"metadata":{"name":"web-1","namespace":"x"}}{"metadata":{"name":"web-2"}}"#;
        let n = roundtrip(br#"{"metadata":{"name":"b"}}"#, dict);
        assert!(n < 12, "{n}");
    }
}
