//! The scanner: a validating JSON reader that skips what it is not asked for.
//!
//! One pass checks UTF-8 and JSON syntax of every byte; members a `Schema` node names
//! are captured as byte spans (and descended into), everything else is skipped.
use super::schema::Schema;
use super::{fail, MAX_DEPTH, R};
use memchr::memchr;
use std::borrow::Cow;
use std::ops::Range;

static ESCAPES: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'/' as usize] = true;
    t[b'b' as usize] = true;
    t[b'f' as usize] = true;
    t[b'n' as usize] = true;
    t[b'r' as usize] = true;
    t[b't' as usize] = true;
    t
};

/// The offset of the first `"`, `\\` or control character in `b` (`b.len()` if none),
/// and whether a non-ASCII byte came before it.
#[inline(always)]
fn find_string_special(b: &[u8]) -> (usize, bool) {
    let mut i = 0;
    let mut non_ascii = false;
    #[cfg(target_arch = "x86_64")]
    {
        // SSE2 is part of x86_64: 16 bytes per step.
        use std::arch::x86_64::*;
        // SAFETY: every load reads 16 bytes inside `b` (i + 16 <= b.len()).
        unsafe {
            let quote = _mm_set1_epi8(b'"' as i8);
            let slash = _mm_set1_epi8(b'\\' as i8);
            let ctl = _mm_set1_epi8(0x1f);
            while i + 16 <= b.len() {
                let v = _mm_loadu_si128(b.as_ptr().add(i) as *const __m128i);
                let special = _mm_or_si128(
                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
                    _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v),
                );
                let mask = _mm_movemask_epi8(special) as u32;
                let high = _mm_movemask_epi8(v) as u32;
                if mask != 0 {
                    let at = mask.trailing_zeros();
                    non_ascii |= high & ((1u32 << at) - 1) != 0;
                    return (i + at as usize, non_ascii);
                }
                non_ascii |= high != 0;
                i += 16;
            }
        }
    }
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    while i + 8 <= b.len() {
        let mut word = [0u8; 8];
        word.copy_from_slice(&b[i..i + 8]);
        let w = u64::from_le_bytes(word);
        let quote = w ^ (LO * b'"' as u64);
        let slash = w ^ (LO * b'\\' as u64);
        // "has a zero byte" for the two XORs, and "has a byte < 0x20"; exact for the
        // lowest flagged byte, which is the one we want.
        let hits = (quote.wrapping_sub(LO) & !quote)
            | (slash.wrapping_sub(LO) & !slash)
            | (w.wrapping_sub(LO * 0x20) & !w);
        let hits = hits & HI;
        if hits != 0 {
            let at = (hits.trailing_zeros() / 8) as usize;
            non_ascii |= b[i..i + at].iter().any(|&c| c >= 0x80);
            return (i + at, non_ascii);
        }
        non_ascii |= w & HI != 0;
        i += 8;
    }
    while i < b.len() {
        let c = b[i];
        if c == b'"' || c == b'\\' || c < 0x20 {
            return (i, non_ascii);
        }
        non_ascii |= c >= 0x80;
        i += 1;
    }
    (b.len(), non_ascii)
}

pub(crate) struct Scanner<'a> {
    pub(crate) b: &'a [u8],
    pub(crate) pos: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Scanner { b, pos: 0 }
    }

    #[inline]
    pub(crate) fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    pub(crate) fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    pub(crate) fn unexpected<T>(&self, wanted: &'static str) -> R<T> {
        match self.peek() {
            None => fail(
                self.pos,
                format!("unexpected end of input, expected {wanted}"),
            ),
            Some(c) => fail(
                self.pos,
                format!("unexpected {:?}, expected {wanted}", c as char),
            ),
        }
    }

    /// At a `"`: consumes the string; returns the range of its contents and whether it
    /// holds escapes.
    #[inline]
    pub(crate) fn string_span(&mut self) -> R<(Range<usize>, bool)> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.pos += 1;
        let start = self.pos;
        let mut escaped = false;
        let mut non_ascii = false;
        loop {
            let (i, high) = find_string_special(&self.b[self.pos..]);
            let at = self.pos + i;
            non_ascii |= high;
            match self.b.get(at) {
                None => return fail(self.b.len(), "unterminated string"),
                Some(b'"') => {
                    self.pos = at + 1;
                    // Bytes outside strings are ASCII or a syntax error, so checking
                    // the strings that hold non-ASCII bytes validates the UTF-8.
                    if non_ascii {
                        if let Err(e) = std::str::from_utf8(&self.b[start..at]) {
                            return fail(start + e.valid_up_to(), "invalid UTF-8");
                        }
                    }
                    return Ok((start..at, escaped));
                }
                Some(b'\\') => {}
                Some(_) => return fail(at, "control character in string"),
            }
            escaped = true;
            match self.b.get(at + 1) {
                Some(b'u') => {
                    let hex = self.b.get(at + 2..at + 6);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return fail(at, "bad \\u escape");
                    }
                    self.pos = at + 6;
                }
                Some(&c) if ESCAPES[c as usize] => self.pos = at + 2,
                Some(_) => return fail(at, "bad escape"),
                None => return fail(self.b.len(), "unterminated string"),
            }
        }
    }

    /// At a `"`: the decoded string.
    #[inline]
    pub(crate) fn string(&mut self) -> R<Cow<'a, str>> {
        let at = self.pos;
        let (span, escaped) = self.string_span()?;
        let raw = &self.b[span];
        if !escaped {
            // The input was checked to be UTF-8 and the span ends at ASCII quotes.
            return match std::str::from_utf8(raw) {
                Ok(s) => Ok(Cow::Borrowed(s)),
                Err(_) => fail(at, "invalid UTF-8 in string"),
            };
        }
        unescape(raw)
            .map(Cow::Owned)
            .or_else(|off| fail(at + 1 + off, "bad escape"))
    }

    pub(crate) fn literal(&mut self, word: &'static [u8]) -> R<()> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            fail(self.pos, "invalid literal")
        }
    }

    pub(crate) fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    pub(crate) fn number(&mut self) -> R<()> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return fail(start, "invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return fail(start, "invalid number");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return fail(start, "invalid number");
            }
        }
        Ok(())
    }

    /// At a `{` or `[`: checks the nesting depth and steps inside; true when the
    /// container is empty (its `close` byte is consumed too).
    #[inline(always)]
    pub(crate) fn enter(&mut self, depth: usize, close: u8) -> R<bool> {
        if depth >= MAX_DEPTH {
            return fail(self.pos, "nesting too deep");
        }
        self.pos += 1;
        self.ws();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(true);
        }
        Ok(false)
    }

    /// Skips one value (after optional whitespace), validating it.
    pub(crate) fn skip_value(&mut self, depth: usize) -> R<()> {
        self.ws();
        match self.peek() {
            Some(b'"') => self.skip_string(),
            Some(b'{') => self.skip_object(depth),
            Some(b'[') => {
                if self.enter(depth, b']')? {
                    return Ok(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return self.unexpected("',' or ']'"),
                    }
                }
            }
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.unexpected("a value"),
        }
    }

    /// At a `"`: skips a string, validating it (the fast twin of `string_span`).
    #[inline(always)]
    pub(crate) fn skip_string(&mut self) -> R<()> {
        let start = self.pos + 1;
        let (i, non_ascii) = find_string_special(&self.b[start..]);
        let at = start + i;
        match self.b.get(at) {
            Some(b'"') => {
                self.pos = at + 1;
                if non_ascii {
                    if let Err(e) = std::str::from_utf8(&self.b[start..at]) {
                        return fail(start + e.valid_up_to(), "invalid UTF-8");
                    }
                }
                Ok(())
            }
            // Escapes are rare: let the full scanner validate this string.
            Some(b'\\') => self.string_span().map(|_| ()),
            None => fail(self.b.len(), "unterminated string"),
            Some(_) => fail(at, "control character in string"),
        }
    }

    /// At a `{`: skips an object, validating it.
    pub(crate) fn skip_object(&mut self, depth: usize) -> R<()> {
        if self.enter(depth, b'}')? {
            return Ok(());
        }
        loop {
            if self.peek() != Some(b'"') {
                self.ws();
                if self.peek() != Some(b'"') {
                    return self.unexpected("a string key");
                }
            }
            self.skip_string()?;
            if self.peek() != Some(b':') {
                self.ws();
                if self.peek() != Some(b':') {
                    return self.unexpected("':'");
                }
            }
            self.pos += 1;
            self.skip_value(depth + 1)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => {
                    self.ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return self.unexpected("',' or '}'"),
                    }
                }
            }
        }
    }

    /// At a `{`: scans an object. With `walk = Some((schema, node))`, members whose key
    /// is a child of `node` are captured into `spans` (and descended into when the child
    /// has children of its own).
    pub(crate) fn object(
        &mut self,
        walk: Option<(&Schema, usize)>,
        spans: &mut [Option<Range<usize>>],
        depth: usize,
    ) -> R<()> {
        if self.enter(depth, b'}')? {
            return Ok(());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return self.unexpected("a string key");
            }
            let child = match walk {
                None => {
                    self.string_span()?;
                    None
                }
                Some((schema, node)) => {
                    let (span, escaped) = self.string_span()?;
                    if escaped {
                        let key = unescape(&self.b[span.clone()])
                            .or_else(|off| fail(span.start + off, "bad escape"))?;
                        schema.lookup(node, key.as_bytes())
                    } else {
                        schema.lookup(node, &self.b[span])
                    }
                }
            };
            self.ws();
            if self.peek() != Some(b':') {
                return self.unexpected("':'");
            }
            self.pos += 1;
            self.ws();
            match (walk, child) {
                (Some((schema, _)), Some(c)) => {
                    let start = self.pos;
                    let n = &schema.nodes[c];
                    if !n.children.is_empty() && self.peek() == Some(b'{') {
                        self.object(Some((schema, c)), spans, depth + 1)?;
                    } else {
                        self.skip_value(depth + 1)?;
                    }
                    if let Some(slot) = n.slot {
                        if let Some(s) = spans.get_mut(slot) {
                            *s = Some(start..self.pos);
                        }
                    }
                }
                _ => self.skip_value(depth + 1)?,
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return self.unexpected("',' or '}'"),
            }
        }
    }

    pub(crate) fn end(&mut self) -> R<()> {
        self.ws();
        if self.pos != self.b.len() {
            return fail(self.pos, "trailing characters after the JSON value");
        }
        Ok(())
    }
}

/// Decodes the escapes of a JSON string body; Err(offset) on a bad one.
pub(crate) fn unescape(raw: &[u8]) -> Result<String, usize> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let Some(j) = memchr(b'\\', &raw[i..]) else {
            out.extend_from_slice(&raw[i..]);
            break;
        };
        out.extend_from_slice(&raw[i..i + j]);
        i += j;
        let c = *raw.get(i + 1).ok_or(i)?;
        match c {
            b'"' | b'\\' | b'/' => out.push(c),
            b'b' => out.push(8),
            b'f' => out.push(12),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'u' => {
                let hi = hex4(raw, i + 2).ok_or(i)?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if raw.get(i + 6..i + 8) != Some(b"\\u") {
                        return Err(i);
                    }
                    let lo = hex4(raw, i + 8).ok_or(i)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err(i);
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err(i);
                } else {
                    hi
                };
                let ch = char::from_u32(code).ok_or(i)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                i += 4;
            }
            _ => return Err(i),
        }
        i += 2;
    }
    String::from_utf8(out).map_err(|_| 0)
}

fn hex4(raw: &[u8], at: usize) -> Option<u32> {
    let h = raw.get(at..at + 4)?;
    let s = std::str::from_utf8(h).ok()?;
    u32::from_str_radix(s, 16).ok()
}
