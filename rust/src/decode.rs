//! Watch-stream and list-page decoding without building the whole object.
//!
//! A watch stream is JSON lines `{"type": ..., "object": {...}}`. Each line is validated
//! (UTF-8 and JSON syntax) in one pass that skips everything except the fields a `Schema`
//! asks for: the metadata the cache needs plus any index field paths. The object stays
//! bytes; its `metadata.managedFields` member is located so a store can cut it out.
use memchr::memchr;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::Mutex;

/// Nesting deeper than this is rejected (the scanner recurses; Kubernetes objects are
/// far shallower).
pub const MAX_DEPTH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Byte offset inside the line (or body) of the error.
    pub offset: usize,
    pub message: Cow<'static, str>,
}

impl std::fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} at byte {}", self.message, self.offset)
    }
}

type R<T> = Result<T, SyntaxError>;

fn fail<T>(offset: usize, message: impl Into<Cow<'static, str>>) -> R<T> {
    Err(SyntaxError {
        offset,
        message: message.into(),
    })
}

// ---------------------------------------------------------------------------------------
// Schema: which fields to capture, as a trie of object keys.

#[derive(Debug, Default)]
struct Node {
    children: Vec<(Box<str>, usize)>,
    slot: Option<usize>,
}

pub const SLOT_TYPE: usize = 0;
pub const SLOT_OBJECT: usize = 1;
const SLOT_NAMESPACE: usize = 2;
const SLOT_NAME: usize = 3;
const SLOT_UID: usize = 4;
const SLOT_RV: usize = 5;
const SLOT_LABELS: usize = 6;
const SLOT_DELETION: usize = 7;
const SLOT_INITIAL_END: usize = 8;
const SLOT_MANAGED: usize = 9;
const SLOT_CODE: usize = 10;
const SLOT_REASON: usize = 11;
const SLOT_MESSAGE: usize = 12;
const SLOT_LIST_RV: usize = 13;
const SLOT_LIST_CONTINUE: usize = 14;
const SLOT_LIST_REMAINING: usize = 15;
const FIXED_SLOTS: usize = 16;

/// The annotation that marks the end of a streaming list's initial events.
pub const INITIAL_EVENTS_END: &str = "k8s.io/initial-events-end";

/// Index path lists seen so far; a schema's id is its list's place here, so schemas
/// with the same index paths share an id (and objects decoded by one need no re-decode
/// for the other).
static SCHEMA_PATHS: Mutex<Vec<Vec<Vec<String>>>> = Mutex::new(Vec::new());

fn schema_id(index_paths: &[Vec<String>]) -> u64 {
    let mut known = SCHEMA_PATHS.lock().unwrap_or_else(|e| e.into_inner());
    let at = match known.iter().position(|p| p == index_paths) {
        Some(at) => at,
        None => {
            known.push(index_paths.to_vec());
            known.len() - 1
        }
    };
    at as u64 + 1
}

/// The fields to pull out while scanning: metadata plus user index paths.
#[derive(Debug)]
pub struct Schema {
    nodes: Vec<Node>,
    event_root: usize,
    object_root: usize,
    list_root: usize,
    index_slots: Vec<usize>,
    id: u64,
}

impl Schema {
    /// `index_paths`: one list of object keys per user index (e.g. `["spec", "nodeName"]`).
    pub fn new(index_paths: &[Vec<String>]) -> Self {
        let mut s = Schema {
            nodes: Vec::new(),
            event_root: 0,
            object_root: 0,
            list_root: 0,
            index_slots: Vec::new(),
            id: schema_id(index_paths),
        };
        s.event_root = s.node();
        s.object_root = s.node();
        s.list_root = s.node();
        let type_node = s.child(s.event_root, "type");
        s.nodes[type_node].slot = Some(SLOT_TYPE);
        s.nodes[s.event_root]
            .children
            .push(("object".into(), s.object_root));
        s.nodes[s.object_root].slot = Some(SLOT_OBJECT);
        let fixed: &[(&[&str], usize)] = &[
            (&["metadata", "namespace"], SLOT_NAMESPACE),
            (&["metadata", "name"], SLOT_NAME),
            (&["metadata", "uid"], SLOT_UID),
            (&["metadata", "resourceVersion"], SLOT_RV),
            (&["metadata", "labels"], SLOT_LABELS),
            (&["metadata", "deletionTimestamp"], SLOT_DELETION),
            (
                &["metadata", "annotations", INITIAL_EVENTS_END],
                SLOT_INITIAL_END,
            ),
            (&["metadata", "managedFields"], SLOT_MANAGED),
            (&["code"], SLOT_CODE),
            (&["reason"], SLOT_REASON),
            (&["message"], SLOT_MESSAGE),
        ];
        for (path, slot) in fixed {
            let n = s.path(s.object_root, path.iter().copied());
            s.nodes[n].slot = Some(*slot);
        }
        let list_fixed: &[(&[&str], usize)] = &[
            (&["metadata", "resourceVersion"], SLOT_LIST_RV),
            (&["metadata", "continue"], SLOT_LIST_CONTINUE),
            (&["metadata", "remainingItemCount"], SLOT_LIST_REMAINING),
        ];
        for (path, slot) in list_fixed {
            let n = s.path(s.list_root, path.iter().copied());
            s.nodes[n].slot = Some(*slot);
        }
        let mut next = FIXED_SLOTS;
        for p in index_paths {
            let n = s.path(s.object_root, p.iter().map(String::as_str));
            let slot = match s.nodes[n].slot {
                Some(slot) => slot,
                None => {
                    s.nodes[n].slot = Some(next);
                    next += 1;
                    next - 1
                }
            };
            s.index_slots.push(slot);
        }
        s
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn index_count(&self) -> usize {
        self.index_slots.len()
    }

    fn slot_count(&self) -> usize {
        FIXED_SLOTS + self.index_slots.len()
    }

    fn node(&mut self) -> usize {
        self.nodes.push(Node::default());
        self.nodes.len() - 1
    }

    fn child(&mut self, parent: usize, key: &str) -> usize {
        if let Some(&(_, c)) = self.nodes[parent]
            .children
            .iter()
            .find(|(k, _)| &**k == key)
        {
            return c;
        }
        let c = self.node();
        self.nodes[parent].children.push((key.into(), c));
        c
    }

    fn path<'k>(&mut self, mut at: usize, keys: impl Iterator<Item = &'k str>) -> usize {
        for k in keys {
            at = self.child(at, k);
        }
        at
    }

    #[inline]
    fn lookup(&self, node: usize, key: &[u8]) -> Option<usize> {
        self.nodes[node]
            .children
            .iter()
            .find(|(k, _)| k.as_bytes() == key)
            .map(|&(_, c)| c)
    }
}

// ---------------------------------------------------------------------------------------
// The scanner: a validating JSON reader that skips what it is not asked for.

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

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Self {
        Scanner { b, pos: 0 }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(&c) = self.b.get(self.pos) {
            if c == b' ' || c == b'\n' || c == b'\r' || c == b'\t' {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn unexpected<T>(&self, wanted: &'static str) -> R<T> {
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
    fn string_span(&mut self) -> R<(Range<usize>, bool)> {
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
    fn string(&mut self) -> R<Cow<'a, str>> {
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

    fn literal(&mut self, word: &'static [u8]) -> R<()> {
        if self.b[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            fail(self.pos, "invalid literal")
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self) -> R<()> {
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
    fn enter(&mut self, depth: usize, close: u8) -> R<bool> {
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
    fn skip_value(&mut self, depth: usize) -> R<()> {
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
    fn skip_string(&mut self) -> R<()> {
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
    fn skip_object(&mut self, depth: usize) -> R<()> {
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
    fn object(
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

    fn end(&mut self) -> R<()> {
        self.ws();
        if self.pos != self.b.len() {
            return fail(self.pos, "trailing characters after the JSON value");
        }
        Ok(())
    }
}

/// Decodes the escapes of a JSON string body; Err(offset) on a bad one.
fn unescape(raw: &[u8]) -> Result<String, usize> {
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

/// A string value at `span` (None if the span is absent or not a string).
fn string_at(b: &[u8], span: &Option<Range<usize>>) -> R<Option<String>> {
    let Some(span) = span else { return Ok(None) };
    if b.get(span.start) != Some(&b'"') {
        return Ok(None);
    }
    let mut s = Scanner {
        b: &b[..span.end],
        pos: span.start,
    };
    s.string().map(|c| Some(c.into_owned()))
}

/// Index values of the value at `span`: a string, each string of an array, or the text
/// of a number or boolean. Null, objects and absent fields give none.
fn index_values_at(b: &[u8], span: &Option<Range<usize>>) -> R<Vec<String>> {
    let Some(span) = span else {
        return Ok(Vec::new());
    };
    let v = &b[span.clone()];
    match v.first() {
        Some(b'"') => Ok(string_at(b, &Some(span.clone()))?.into_iter().collect()),
        Some(b'[') => {
            let mut out = Vec::new();
            let mut s = Scanner {
                b: &b[..span.end],
                pos: span.start + 1,
            };
            loop {
                s.ws();
                match s.peek() {
                    Some(b']') | None => break,
                    Some(b',') => s.pos += 1,
                    Some(b'"') => out.push(s.string()?.into_owned()),
                    Some(_) => {
                        let start = s.pos;
                        s.skip_value(1)?;
                        let text = &b[start..s.pos];
                        if !matches!(text.first(), Some(b'{' | b'[' | b'n')) {
                            out.push(String::from_utf8_lossy(text).into_owned());
                        }
                    }
                }
            }
            Ok(out)
        }
        Some(b'{' | b'n') | None => Ok(Vec::new()),
        Some(_) => Ok(vec![String::from_utf8_lossy(v).into_owned()]),
    }
}

/// The string members of the object at `span` (labels).
fn string_map_at(b: &[u8], span: &Option<Range<usize>>) -> R<Vec<(String, String)>> {
    let Some(span) = span else {
        return Ok(Vec::new());
    };
    if b.get(span.start) != Some(&b'{') {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut s = Scanner {
        b: &b[..span.end],
        pos: span.start + 1,
    };
    loop {
        s.ws();
        match s.peek() {
            Some(b'}') | None => break,
            Some(b',') => s.pos += 1,
            Some(b'"') => {
                let k = s.string()?.into_owned();
                s.ws();
                s.pos += 1; // ':' (validated by the first pass)
                s.ws();
                if s.peek() == Some(b'"') {
                    out.push((k, s.string()?.into_owned()));
                } else {
                    s.skip_value(1)?;
                }
            }
            Some(_) => return s.unexpected("a string key"),
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------
// Decoded objects and events.

/// What the scan pulled out of one object. Ranges are relative to the object's bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Meta {
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    pub labels: Vec<(String, String)>,
    pub deleting: bool,
    pub initial_events_end: bool,
    /// The value of `metadata.managedFields`, if present.
    pub managed_fields: Option<Range<usize>>,
    /// One list of values per user index of the schema this was decoded with.
    pub index_values: Vec<Vec<String>>,
    pub schema_id: u64,
    /// Status fields (ERROR events).
    pub code: Option<i64>,
    pub reason: Option<String>,
    pub message: Option<String>,
}

impl Meta {
    /// `namespace/name`, or `name` for cluster-scoped objects.
    pub fn key(&self) -> Option<String> {
        let name = self.name.as_deref()?;
        Some(match self.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
            _ => name.to_string(),
        })
    }
}

fn meta_from_spans(
    obj: &[u8],
    base: usize,
    spans: &[Option<Range<usize>>],
    schema: &Schema,
) -> R<Meta> {
    // Spans are relative to the buffer the object was scanned in; `obj` starts at `base`.
    let rel = |i: usize| -> Option<Range<usize>> {
        spans[i].as_ref().map(|r| (r.start - base)..(r.end - base))
    };
    let code = rel(SLOT_CODE).and_then(|r| std::str::from_utf8(&obj[r]).ok()?.parse().ok());
    let mut index_values = Vec::with_capacity(schema.index_slots.len());
    for &slot in &schema.index_slots {
        index_values.push(index_values_at(obj, &rel(slot))?);
    }
    Ok(Meta {
        namespace: string_at(obj, &rel(SLOT_NAMESPACE))?,
        name: string_at(obj, &rel(SLOT_NAME))?,
        uid: string_at(obj, &rel(SLOT_UID))?,
        resource_version: string_at(obj, &rel(SLOT_RV))?,
        labels: string_map_at(obj, &rel(SLOT_LABELS))?,
        deleting: rel(SLOT_DELETION).is_some_and(|r| obj[r] != *b"null"),
        initial_events_end: string_at(obj, &rel(SLOT_INITIAL_END))?.as_deref() == Some("true"),
        managed_fields: rel(SLOT_MANAGED),
        index_values,
        schema_id: schema.id,
        code,
        reason: string_at(obj, &rel(SLOT_REASON))?,
        message: string_at(obj, &rel(SLOT_MESSAGE))?,
    })
}

/// Decodes one JSON object (e.g. a list item or a stored object) with `schema`.
pub fn decode_object(raw: &[u8], schema: &Schema) -> Result<Meta, SyntaxError> {
    let mut s = Scanner::new(raw);
    s.ws();
    if s.peek() != Some(b'{') {
        return s.unexpected("an object");
    }
    let start = s.pos;
    let mut spans = vec![None; schema.slot_count()];
    s.object(Some((schema, schema.object_root)), &mut spans, 0)?;
    let end = s.pos;
    s.end()?;
    meta_from_spans(&raw[start..end], start, &spans, schema)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
            EventType::Bookmark => "BOOKMARK",
            EventType::Error => "ERROR",
        }
    }
}

/// One watch event; `object` is the range of the object's bytes in the line.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub kind: EventType,
    pub object: Range<usize>,
    pub meta: Meta,
}

/// Decodes one watch line `{"type": ..., "object": {...}}`.
pub fn decode_event(line: &[u8], schema: &Schema) -> Result<Event, SyntaxError> {
    let mut s = Scanner::new(line);
    s.ws();
    if s.peek() != Some(b'{') {
        return s.unexpected("an object");
    }
    let mut spans = vec![None; schema.slot_count()];
    s.object(Some((schema, schema.event_root)), &mut spans, 0)?;
    s.end()?;
    let kind = match string_at(line, &spans[SLOT_TYPE])?.as_deref() {
        Some("ADDED") => EventType::Added,
        Some("MODIFIED") => EventType::Modified,
        Some("DELETED") => EventType::Deleted,
        Some("BOOKMARK") => EventType::Bookmark,
        Some("ERROR") => EventType::Error,
        Some(other) => return fail(0, format!("unknown watch event type {other:?}")),
        None => return fail(0, "watch event without a \"type\""),
    };
    let Some(object) = spans[SLOT_OBJECT].clone() else {
        return fail(0, "watch event without an \"object\"");
    };
    if line[object.start] != b'{' {
        return fail(object.start, "watch event \"object\" is not an object");
    }
    let meta = meta_from_spans(&line[object.clone()], object.start, &spans, schema)?;
    if matches!(
        kind,
        EventType::Added | EventType::Modified | EventType::Deleted
    ) && meta.name.is_none()
    {
        return fail(object.start, "object without metadata.name");
    }
    Ok(Event { kind, object, meta })
}

/// One list page: its metadata and the items' ranges and metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub resource_version: Option<String>,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<i64>,
    pub items: Vec<(Range<usize>, Meta)>,
}

/// Decodes a list response body (`{"metadata": {...}, "items": [...]}`).
pub fn decode_page(body: &[u8], schema: &Schema) -> Result<Page, SyntaxError> {
    let mut s = Scanner::new(body);
    s.ws();
    if s.peek() != Some(b'{') {
        return s.unexpected("an object");
    }
    let mut spans = vec![None; FIXED_SLOTS];
    let mut items = Vec::new();
    s.pos += 1;
    s.ws();
    if s.peek() == Some(b'}') {
        s.pos += 1;
    } else {
        loop {
            s.ws();
            if s.peek() != Some(b'"') {
                return s.unexpected("a string key");
            }
            let key = s.string()?;
            s.ws();
            if s.peek() != Some(b':') {
                return s.unexpected("':'");
            }
            s.pos += 1;
            s.ws();
            if key == "items" && s.peek() == Some(b'[') {
                s.pos += 1;
                s.ws();
                if s.peek() == Some(b']') {
                    s.pos += 1;
                } else {
                    loop {
                        s.ws();
                        if s.peek() != Some(b'{') {
                            return s.unexpected("an object in \"items\"");
                        }
                        let start = s.pos;
                        let mut item_spans = vec![None; schema.slot_count()];
                        s.object(Some((schema, schema.object_root)), &mut item_spans, 2)?;
                        let meta =
                            meta_from_spans(&body[start..s.pos], start, &item_spans, schema)?;
                        if meta.name.is_none() {
                            return fail(start, "list item without metadata.name");
                        }
                        items.push((start..s.pos, meta));
                        s.ws();
                        match s.peek() {
                            Some(b',') => s.pos += 1,
                            Some(b']') => {
                                s.pos += 1;
                                break;
                            }
                            _ => return s.unexpected("',' or ']'"),
                        }
                    }
                }
            } else if key == "metadata" && s.peek() == Some(b'{') {
                let node = schema
                    .lookup(schema.list_root, b"metadata")
                    .unwrap_or(schema.list_root);
                s.object(Some((schema, node)), &mut spans, 1)?;
            } else {
                s.skip_value(1)?;
            }
            s.ws();
            match s.peek() {
                Some(b',') => s.pos += 1,
                Some(b'}') => {
                    s.pos += 1;
                    break;
                }
                _ => return s.unexpected("',' or '}'"),
            }
        }
    }
    s.end()?;
    let remaining = spans[SLOT_LIST_REMAINING]
        .clone()
        .and_then(|r| std::str::from_utf8(&body[r]).ok()?.parse().ok());
    Ok(Page {
        resource_version: string_at(body, &spans[SLOT_LIST_RV])?,
        continue_token: string_at(body, &spans[SLOT_LIST_CONTINUE])?.filter(|c| !c.is_empty()),
        remaining_item_count: remaining,
        items,
    })
}

/// The object's bytes without its `metadata.managedFields` member (`value` is the range
/// of that member's value in `obj`).
pub fn strip_member(obj: &[u8], value: &Range<usize>) -> Vec<u8> {
    let cut = member_cut(obj, value);
    let mut out = Vec::with_capacity(obj.len() - cut.len());
    out.extend_from_slice(&obj[..cut.start]);
    out.extend_from_slice(&obj[cut.end..]);
    out
}

/// The bytes to cut out of `obj` to drop the member whose value is at `value` (with its
/// key and one separating comma); an empty range if the key cannot be found.
pub fn member_cut(obj: &[u8], value: &Range<usize>) -> Range<usize> {
    let ws = |c: u8| matches!(c, b' ' | b'\n' | b'\r' | b'\t');
    if value.start > value.end || value.end > obj.len() {
        return 0..0;
    }
    // Walk back over `"key" :` to the key's opening quote.
    let mut p = value.start;
    while p > 0 && ws(obj[p - 1]) {
        p -= 1;
    }
    // obj[p - 1] is ':'.
    p = p.saturating_sub(1);
    while p > 0 && ws(obj[p - 1]) {
        p -= 1;
    }
    // obj[p - 1] is the key's closing quote; the key holds no raw quote.
    p = p.saturating_sub(1);
    let key_start = match obj[..p].iter().rposition(|&c| c == b'"') {
        Some(q) => q,
        None => return 0..0,
    };
    let mut before = key_start;
    while before > 0 && ws(obj[before - 1]) {
        before -= 1;
    }
    if before > 0 && obj[before - 1] == b',' {
        // `, "managedFields": [...]` → cut from the comma.
        (before - 1)..value.end
    } else {
        // `{"managedFields": [...], ...` → cut through the following comma, if any.
        let mut after = value.end;
        while after < obj.len() && ws(obj[after]) {
            after += 1;
        }
        if obj.get(after) == Some(&b',') {
            after += 1;
            while after < obj.len() && ws(obj[after]) {
                after += 1;
            }
        } else {
            after = value.end;
        }
        key_start..after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Schema {
        Schema::new(&[])
    }

    const POD: &str = r#"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"web-1","namespace":"default","uid":"u-1","resourceVersion":"42","labels":{"app":"web","tier":"front"},"managedFields":[{"manager":"kubectl","fieldsV1":{"f:metadata":{}}}],"annotations":{"a":"b"}},"spec":{"nodeName":"node-a","containers":[{"name":"c","image":"nginx","ports":[{"containerPort":80}]}]},"status":{"phase":"Running","message":"ok","reason":"x"}}"#;

    #[test]
    fn an_added_event_yields_its_metadata_and_object_bytes() {
        let line = format!(r#"{{"type":"ADDED","object":{POD}}}"#);
        let ev = decode_event(line.as_bytes(), &schema()).unwrap();
        assert_eq!(ev.kind, EventType::Added);
        assert_eq!(&line.as_bytes()[ev.object.clone()], POD.as_bytes());
        let m = &ev.meta;
        assert_eq!(m.key().as_deref(), Some("default/web-1"));
        assert_eq!(m.uid.as_deref(), Some("u-1"));
        assert_eq!(m.resource_version.as_deref(), Some("42"));
        assert_eq!(
            m.labels,
            vec![
                ("app".into(), "web".into()),
                ("tier".into(), "front".into())
            ]
        );
        assert!(!m.deleting);
        // Nested status.message/reason are not the Status fields of an ERROR event.
        assert_eq!(m.message, None);
    }

    #[test]
    fn the_object_may_come_before_the_type() {
        let line = format!(r#"{{"object":{POD},"type":"DELETED"}}"#);
        let ev = decode_event(line.as_bytes(), &schema()).unwrap();
        assert_eq!(ev.kind, EventType::Deleted);
        assert_eq!(ev.meta.name.as_deref(), Some("web-1"));
    }

    #[test]
    fn escaped_keys_and_values_are_decoded() {
        let line = br#"{"type":"ADDED","object":{"metadata":{"n\u0061me":"a\"b\u00e9\ud83d\ude00","namespace":"ns"}}}"#;
        let ev = decode_event(line, &schema()).unwrap();
        assert_eq!(ev.meta.name.as_deref(), Some("a\"b\u{e9}\u{1F600}"));
    }

    #[test]
    fn a_bookmark_carries_its_resource_version_and_initial_events_end() {
        let line = br#"{"type":"BOOKMARK","object":{"kind":"Pod","metadata":{"resourceVersion":"99","annotations":{"k8s.io/initial-events-end":"true"}}}}"#;
        let ev = decode_event(line, &schema()).unwrap();
        assert_eq!(ev.kind, EventType::Bookmark);
        assert_eq!(ev.meta.resource_version.as_deref(), Some("99"));
        assert!(ev.meta.initial_events_end);
    }

    #[test]
    fn an_error_event_carries_the_status_code_reason_and_message() {
        let line = br#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version: 1 (2)","reason":"Expired","code":410}}"#;
        let ev = decode_event(line, &schema()).unwrap();
        assert_eq!(ev.kind, EventType::Error);
        assert_eq!(ev.meta.code, Some(410));
        assert_eq!(ev.meta.reason.as_deref(), Some("Expired"));
        assert_eq!(
            ev.meta.message.as_deref(),
            Some("too old resource version: 1 (2)")
        );
    }

    #[test]
    fn a_deletion_timestamp_marks_the_object_as_deleting() {
        let line = br#"{"type":"MODIFIED","object":{"metadata":{"name":"a","deletionTimestamp":"2024-01-01T00:00:00Z"}}}"#;
        assert!(decode_event(line, &schema()).unwrap().meta.deleting);
        let line =
            br#"{"type":"MODIFIED","object":{"metadata":{"name":"a","deletionTimestamp":null}}}"#;
        assert!(!decode_event(line, &schema()).unwrap().meta.deleting);
    }

    #[test]
    fn schemas_with_the_same_index_paths_share_an_id() {
        let a = Schema::new(&[vec!["spec".into(), "x".into()]]);
        let b = Schema::new(&[vec!["spec".into(), "x".into()]]);
        assert_eq!(a.id(), b.id());
        assert_ne!(a.id(), schema().id());
        assert_eq!(schema().id(), schema().id());
    }

    #[test]
    fn index_paths_capture_strings_arrays_and_scalars() {
        let s = Schema::new(&[
            vec!["spec".into(), "nodeName".into()],
            vec!["metadata".into(), "labels".into(), "app".into()],
            vec!["spec".into(), "hosts".into()],
            vec!["spec".into(), "replicas".into()],
            vec!["spec".into(), "missing".into()],
        ]);
        let obj = br#"{"metadata":{"name":"a","labels":{"app":"web"}},"spec":{"nodeName":"n1","hosts":["x","y"],"replicas":3}}"#;
        let m = decode_object(obj, &s).unwrap();
        assert_eq!(m.labels, vec![("app".into(), "web".into())]);
        assert_eq!(
            m.index_values,
            vec![
                vec!["n1".to_string()],
                vec!["web".to_string()],
                vec!["x".to_string(), "y".to_string()],
                vec!["3".to_string()],
                vec![],
            ]
        );
    }

    #[test]
    fn malformed_lines_are_errors_with_a_position() {
        let bad: &[&[u8]] = &[
            b"{",
            b"{\"type\":\"ADDED\"",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"}}}x",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":tru}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"},\"x\":01}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\\q\"}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\tb\"}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"\xff\"}}}",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{}}}",
            b"{\"type\":\"NOPE\",\"object\":{\"metadata\":{\"name\":\"a\"}}}",
            b"{\"type\":\"ADDED\",\"object\":[]}",
            b"[]",
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"\\ud800\"}}}",
        ];
        for line in bad {
            let r = decode_event(line, &schema());
            assert!(
                r.is_err(),
                "{:?} should fail",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn skipped_values_are_validated_too() {
        let ok: &[&[u8]] = &[
            b"{\"x\":\"a\\\"b\\u00e9\\n\",\"y\":[1,-2.5e3,true,false,null,{}],\"z\":\"\xc3\xa9\"}",
            br#"{ "x" : [ ] , "y" : { "a" : 1 } }"#,
        ];
        let bad: &[&[u8]] = &[
            br#"{"x":"\q"}"#,
            br#"{"x":"\u12"}"#,
            b"{\"x\":\"a\x01b\"}",
            b"{\"x\":\"\xc3\x28\"}",
            b"{\"x\":\"\xff\"}",
            br#"{"x":[1,]}"#,
            br#"{"x":{"a":1,}}"#,
            br#"{"x":{"a" 1}}"#,
            br#"{"x":-}"#,
            br#"{"x":1.}"#,
            br#"{"x":1e}"#,
            br#"{"x":nul}"#,
            br#"{"x":"unterminated}"#,
            br#"{"x":[1 2]}"#,
        ];
        for (objects, valid) in [(ok, true), (bad, false)] {
            for obj in objects {
                let line = [
                    br#"{"type":"ADDED","object":{"metadata":{"name":"a"},"spec":"#,
                    *obj,
                    b"}}",
                ]
                .concat();
                assert_eq!(
                    decode_event(&line, &schema()).is_ok(),
                    valid,
                    "{}",
                    String::from_utf8_lossy(obj)
                );
            }
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let mut line =
            b"{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"name\":\"a\"},\"x\":".to_vec();
        line.extend(std::iter::repeat_n(b'[', 100_000));
        let err = decode_event(&line, &schema()).unwrap_err();
        assert!(err.message.contains("deep"));
    }

    #[test]
    fn strip_member_removes_managed_fields_wherever_it_sits() {
        let cases: &[(&str, &str)] = &[
            (
                r#"{"metadata":{"name":"a","managedFields":[{"x":1}],"uid":"u"}}"#,
                r#"{"metadata":{"name":"a","uid":"u"}}"#,
            ),
            (
                r#"{"metadata":{"managedFields":[{"x":1}], "name":"a"}}"#,
                r#"{"metadata":{"name":"a"}}"#,
            ),
            (
                r#"{"metadata":{"name":"a" , "managedFields" : [] }}"#,
                r#"{"metadata":{"name":"a"  }}"#,
            ),
            (
                r#"{"metadata":{"managedFields":[]},"x":1}"#,
                r#"{"metadata":{},"x":1}"#,
            ),
        ];
        for (input, want) in cases {
            let m = decode_object(input.as_bytes(), &schema()).unwrap();
            let stripped = strip_member(input.as_bytes(), m.managed_fields.as_ref().unwrap());
            assert_eq!(std::str::from_utf8(&stripped).unwrap(), *want);
        }
    }

    #[test]
    fn a_list_page_yields_its_items_and_continue_token() {
        let body = format!(
            r#"{{"kind":"PodList","apiVersion":"v1","metadata":{{"resourceVersion":"7","continue":"abc","remainingItemCount":3}},"items":[{POD},{POD}]}}"#
        );
        let page = decode_page(body.as_bytes(), &schema()).unwrap();
        assert_eq!(page.resource_version.as_deref(), Some("7"));
        assert_eq!(page.continue_token.as_deref(), Some("abc"));
        assert_eq!(page.remaining_item_count, Some(3));
        assert_eq!(page.items.len(), 2);
        assert_eq!(&body.as_bytes()[page.items[1].0.clone()], POD.as_bytes());
        let body = br#"{"metadata":{"resourceVersion":"8","continue":""},"items":[]}"#;
        let page = decode_page(body, &schema()).unwrap();
        assert_eq!(page.continue_token, None);
        assert!(page.items.is_empty());
    }
}
