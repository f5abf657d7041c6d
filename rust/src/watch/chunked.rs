//! HTTP/1.1 body framing (RFC 9112 §6.3, §7.1): a body is chunked, exactly
//! Content-Length bytes, or everything until the connection closes.
//!
//! ```text
//! body bytes ─▶ Deframer::next ─▶ payload slices of the same input (zero-copy)
//! chunked:  size[;ext] CRLF  data CRLF  ...  0 CRLF  (trailer CRLF)*  CRLF
//! ```
//!
//! The apiserver sends one chunk per watch event (a ~4 KB pod), so a payload slice is
//! usually a whole line: it goes straight to `Lines` without a copy. Only a size or
//! trailer line split across two socket reads is copied (into `line`). Every split of
//! the input gives the same payload and the same error: an error is decided only once
//! the whole line (or byte) it is about has been seen.
use memchr::memchr;

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Until the connection closes (never done); also a plain line stream.
    UntilEof,
    Chunked,
    ContentLength(u64),
}

impl Framing {
    /// The framing of a body that is `chunked`, or `content_length` bytes, or (neither)
    /// until EOF; `None` when both are asked for.
    pub fn of(chunked: bool, content_length: Option<u64>) -> Option<Framing> {
        match (chunked, content_length) {
            (true, Some(_)) => None,
            (true, None) => Some(Framing::Chunked),
            (false, Some(n)) => Some(Framing::ContentLength(n)),
            (false, None) => Some(Framing::UntilEof),
        }
    }
}

/// The longest size line (with its extensions) or trailer line, CR included.
pub const MAX_LINE: usize = 4096;
/// The most trailer bytes after the last chunk.
pub const MAX_TRAILERS: usize = 64 * 1024;
/// More hex digits than this are refused (2^60 bytes is plenty; no u64 overflow).
pub const MAX_HEX_DIGITS: usize = 15;

/// Malformed framing: where (body-stream offset) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramingError {
    /// Starts with `chunked encoding:`.
    pub message: String,
    /// Body-stream offset of the problem (the line's first byte, or the bad byte).
    pub position: u64,
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn error(what: &str, position: u64) -> FramingError {
    FramingError {
        message: format!("chunked encoding: {what} (body byte {position})"),
        position,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    UntilEof,
    /// Content-Length bytes still to come.
    Remaining(u64),
    /// Reading a chunk-size line.
    Size,
    /// Chunk data bytes still to come.
    Data(u64),
    /// The CR, then the LF, after a chunk's data.
    DataCr,
    DataLf,
    /// Reading trailer lines until the empty one.
    Trailer,
    Done,
    Failed(FramingError),
}

/// Turns body bytes into payload slices, one socket read at a time.
#[derive(Debug, Clone)]
pub struct Deframer {
    state: State,
    /// Body-stream offset of the next byte to read.
    offset: u64,
    /// A size or trailer line split across inputs (without its LF yet).
    line: Vec<u8>,
    /// Body-stream offset of `line`'s first byte.
    line_start: u64,
    /// Trailer bytes read so far.
    trailers: usize,
}

impl Default for Deframer {
    fn default() -> Self {
        Deframer::new(Framing::UntilEof)
    }
}

/// What a complete size or trailer line says.
enum LineKind {
    Size(u64),
    TrailerField,
    TrailersEnd,
}

impl Deframer {
    pub fn new(framing: Framing) -> Self {
        let state = match framing {
            Framing::UntilEof => State::UntilEof,
            Framing::Chunked => State::Size,
            Framing::ContentLength(0) => State::Done,
            Framing::ContentLength(n) => State::Remaining(n),
        };
        Deframer {
            state,
            offset: 0,
            line: Vec::new(),
            line_start: 0,
            trailers: 0,
        }
    }

    /// The body's end was read (the last chunk and its trailers, or Content-Length
    /// bytes); later bytes are ignored.
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Bytes held back: a size or trailer line not complete yet.
    pub fn buffered(&self) -> usize {
        self.line.len()
    }

    /// The next payload slice of `input[*at..]`, advancing `*at` past what it read;
    /// `None` once `input` is used up (or the body is done: the rest is ignored).
    /// After an error every call returns it again.
    pub fn next<'a>(
        &mut self,
        input: &'a [u8],
        at: &mut usize,
    ) -> Result<Option<&'a [u8]>, FramingError> {
        loop {
            match self.state {
                State::Failed(ref e) => return Err(e.clone()),
                State::Done => {
                    *at = input.len();
                    return Ok(None);
                }
                _ if *at >= input.len() => return Ok(None),
                State::UntilEof => return Ok(Some(self.take(input, at, u64::MAX))),
                State::Remaining(n) => {
                    let s = self.take(input, at, n);
                    let left = n - s.len() as u64;
                    self.state = if left == 0 {
                        State::Done
                    } else {
                        State::Remaining(left)
                    };
                    return Ok(Some(s));
                }
                State::Data(n) => {
                    let s = self.take(input, at, n);
                    let left = n - s.len() as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data(left)
                    };
                    return Ok(Some(s));
                }
                State::DataCr | State::DataLf => {
                    let (want, next) = if self.state == State::DataCr {
                        (b'\r', State::DataLf)
                    } else {
                        (b'\n', State::Size)
                    };
                    if input[*at] != want {
                        return Err(
                            self.fail(error("chunk data not followed by CRLF", self.offset))
                        );
                    }
                    *at += 1;
                    self.offset += 1;
                    self.state = next;
                }
                State::Size | State::Trailer => match self.read_line(input, at)? {
                    None => return Ok(None),
                    Some(LineKind::Size(0)) => self.state = State::Trailer,
                    Some(LineKind::Size(n)) => self.state = State::Data(n),
                    Some(LineKind::TrailerField) => {}
                    Some(LineKind::TrailersEnd) => self.state = State::Done,
                },
            }
        }
    }

    /// All the payload `input` holds, copied into one buffer (for small bodies).
    pub fn payload(&mut self, input: &[u8]) -> Result<Vec<u8>, FramingError> {
        let mut out = Vec::new();
        let mut at = 0;
        while let Some(s) = self.next(input, &mut at)? {
            out.extend_from_slice(s);
        }
        Ok(out)
    }

    /// Up to `max` bytes of `input[*at..]`, as a slice of it.
    fn take<'a>(&mut self, input: &'a [u8], at: &mut usize, max: u64) -> &'a [u8] {
        let rest = &input[*at..];
        let n = rest.len().min(usize::try_from(max).unwrap_or(usize::MAX));
        *at += n;
        self.offset += n as u64;
        &rest[..n]
    }

    fn fail(&mut self, e: FramingError) -> FramingError {
        self.line = Vec::new();
        self.state = State::Failed(e.clone());
        e
    }

    /// Reads a size or trailer line up to its LF; `None` if it is not complete yet.
    fn read_line(
        &mut self,
        input: &[u8],
        at: &mut usize,
    ) -> Result<Option<LineKind>, FramingError> {
        let rest = &input[*at..];
        let Some(j) = memchr(b'\n', rest) else {
            if self.line.is_empty() {
                self.line_start = self.offset;
            }
            self.line.extend_from_slice(rest);
            *at = input.len();
            self.offset += rest.len() as u64;
            if self.line.len() > MAX_LINE {
                return Err(self.fail(self.too_long(self.line_start)));
            }
            return Ok(None);
        };
        let start = if self.line.is_empty() {
            self.offset
        } else {
            self.line_start
        };
        *at += j + 1;
        self.offset += j as u64 + 1;
        let parsed = if self.line.is_empty() {
            self.parse_line(&rest[..j], start)
        } else {
            let mut line = std::mem::take(&mut self.line);
            line.extend_from_slice(&rest[..j]);
            let parsed = self.parse_line(&line, start);
            line.clear();
            self.line = line;
            parsed
        };
        parsed.map(Some).map_err(|e| self.fail(e))
    }

    fn too_long(&self, start: u64) -> FramingError {
        let what = if self.state == State::Size {
            "size line"
        } else {
            "trailer line"
        };
        error(&format!("{what} longer than {MAX_LINE} bytes"), start)
    }

    /// One complete line (without its LF) that starts at body offset `start`.
    fn parse_line(&mut self, line: &[u8], start: u64) -> Result<LineKind, FramingError> {
        if line.len() > MAX_LINE {
            return Err(self.too_long(start));
        }
        let Some(line) = line.strip_suffix(b"\r") else {
            return Err(error("line not ended by CRLF", start + line.len() as u64));
        };
        if self.state == State::Size {
            return parse_size(line)
                .map(LineKind::Size)
                .map_err(|what| error(what, start));
        }
        if line.is_empty() {
            return Ok(LineKind::TrailersEnd);
        }
        self.trailers += line.len() + 2;
        if self.trailers > MAX_TRAILERS {
            return Err(error("trailers longer than 64 KiB", start));
        }
        if !trailer_field(line) {
            return Err(error("bad trailer line", start));
        }
        Ok(LineKind::TrailerField)
    }
}

/// The size of a chunk-size line (CRLF removed); extensions are ignored.
fn parse_size(line: &[u8]) -> Result<u64, &'static str> {
    let size = match memchr(b';', line) {
        Some(i) => &line[..i],
        None => line,
    };
    // Whitespace may come before the ';' of an extension (RFC 9112 BWS).
    let end = size
        .iter()
        .rposition(|c| !matches!(c, b' ' | b'\t'))
        .map_or(0, |i| i + 1);
    let size = &size[..end];
    match size.first() {
        None => return Err("empty chunk size"),
        Some(b'-') => return Err("negative chunk size"),
        _ => {}
    }
    if !size.iter().all(u8::is_ascii_hexdigit) {
        return Err("chunk size is not hexadecimal");
    }
    if size.len() > MAX_HEX_DIGITS {
        return Err("chunk size has more than 15 hex digits");
    }
    let mut n: u64 = 0;
    for &c in size {
        let d = (c as char).to_digit(16).unwrap_or(0);
        n = (n << 4) | u64::from(d);
    }
    Ok(n)
}

/// `name: value` with a token name (RFC 9110 §5.1) and no control bytes but tab.
fn trailer_field(line: &[u8]) -> bool {
    let Some(colon) = memchr(b':', line) else {
        return false;
    };
    let name = &line[..colon];
    let tchar = |c: &u8| c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(c);
    !name.is_empty()
        && name.iter().all(tchar)
        && line[colon + 1..]
            .iter()
            .all(|&c| c == b'\t' || (c >= 0x20 && c != 0x7f))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `parts` in order; the payload, whether done, and the first error.
    fn run(framing: Framing, parts: &[&[u8]]) -> (Vec<u8>, bool, Option<FramingError>) {
        let mut d = Deframer::new(framing);
        let mut out = Vec::new();
        for part in parts {
            let mut at = 0;
            loop {
                match d.next(part, &mut at) {
                    Ok(Some(s)) => out.extend_from_slice(s),
                    Ok(None) => break,
                    Err(e) => return (out, d.done(), Some(e)),
                }
            }
        }
        (out, d.done(), None)
    }

    fn chunked(body: &[u8]) -> (Vec<u8>, bool, Option<FramingError>) {
        run(Framing::Chunked, &[body])
    }

    const BODY: &[u8] = b"5\r\nhello\r\n7;ext=1;x=\"y\"\r\n, world\r\n1 ; e\r\n\n\r\n0\r\nX-Sum: 1\r\nOther:\tv\r\n\r\nignored";

    #[test]
    fn a_chunked_body_gives_its_payload_and_ends_after_the_trailers() {
        let (payload, done, err) = chunked(BODY);
        assert_eq!(err, None);
        assert_eq!(payload, b"hello, world\n");
        assert!(done);
    }

    #[test]
    fn every_split_into_three_parts_gives_the_whole_feed_result() {
        let whole = chunked(BODY);
        for a in 0..=BODY.len() {
            for b in a..=BODY.len() {
                let got = run(Framing::Chunked, &[&BODY[..a], &BODY[a..b], &BODY[b..]]);
                assert_eq!(got, whole, "split at {a}, {b}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time_gives_the_whole_feed_result() {
        let parts: Vec<&[u8]> = BODY.chunks(1).collect();
        assert_eq!(run(Framing::Chunked, &parts), chunked(BODY));
    }

    #[test]
    fn payload_slices_borrow_the_input_when_a_chunk_is_whole() {
        let body = b"4\r\nab\n\n\r\n";
        let mut d = Deframer::new(Framing::Chunked);
        let mut at = 0;
        let s = d.next(body, &mut at).unwrap().unwrap();
        assert_eq!(s, b"ab\n\n");
        assert_eq!(s.as_ptr(), body[3..].as_ptr());
        assert_eq!(d.buffered(), 0);
    }

    fn error_of(body: &[u8]) -> FramingError {
        let (_, done, err) = chunked(body);
        assert!(!done);
        err.unwrap_or_else(|| panic!("{:?} should fail", String::from_utf8_lossy(body)))
    }

    #[test]
    fn a_size_line_that_is_not_hex_is_an_error_at_its_start() {
        let e = error_of(b"2\r\nab\r\nzz\r\n");
        assert!(e
            .message
            .starts_with("chunked encoding: chunk size is not hex"));
        assert_eq!(e.position, 7);
        assert!(error_of(b"0x5\r\nhello\r\n").message.contains("not hex"));
        assert!(error_of(b" 5\r\nhello\r\n").message.contains("not hex"));
    }

    #[test]
    fn an_empty_or_negative_size_is_an_error() {
        assert!(error_of(b"\r\n").message.contains("empty chunk size"));
        assert!(error_of(b";ext\r\n").message.contains("empty chunk size"));
        let e = error_of(b"-1\r\nx\r\n");
        assert!(e.message.contains("negative chunk size"));
        assert_eq!(e.position, 0);
    }

    #[test]
    fn a_size_of_more_than_15_hex_digits_is_an_error() {
        let (payload, _, err) = chunked(b"000000000000001\r\nx\r\n0\r\n\r\n");
        assert_eq!((payload, err), (b"x".to_vec(), None));
        let e = error_of(b"0000000000000001\r\nx\r\n");
        assert!(e.message.contains("more than 15 hex digits"));
        assert!(error_of(b"ffffffffffffffffff\r\n")
            .message
            .contains("15 hex"));
    }

    #[test]
    fn a_size_line_over_4_kib_without_crlf_is_an_error_however_it_is_split() {
        let mut body = b"1\r\nx\r\n1;".to_vec();
        body.extend(std::iter::repeat_n(b'a', MAX_LINE));
        let e = error_of(&body);
        assert!(e.message.contains("size line longer than 4096"));
        assert_eq!(e.position, 6);
        let parts: Vec<&[u8]> = body.chunks(1000).collect();
        let (payload, _, err) = run(Framing::Chunked, &parts);
        assert_eq!((payload, err), (b"x".to_vec(), Some(e)));
        // Just under the limit, and then ended: fine.
        let mut ok = b"1".to_vec();
        ok.push(b';');
        ok.extend(std::iter::repeat_n(b'a', MAX_LINE - 3));
        ok.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert_eq!(chunked(&ok), (b"x".to_vec(), true, None));
    }

    #[test]
    fn chunk_data_not_followed_by_crlf_is_an_error_at_that_byte() {
        let e = error_of(b"3\r\nabcd\r\n");
        assert!(e.message.contains("chunk data not followed by CRLF"));
        assert_eq!(e.position, 6);
        let e = error_of(b"3\r\nabc\rX");
        assert_eq!(e.position, 7);
        assert!(error_of(b"3\r\nabc\n")
            .message
            .contains("not followed by CRLF"));
    }

    #[test]
    fn a_size_line_ended_by_a_bare_lf_is_an_error() {
        assert!(error_of(b"3\nabc\r\n")
            .message
            .contains("not ended by CRLF"));
    }

    #[test]
    fn bad_trailer_lines_are_errors() {
        for body in [
            &b"0\r\nno colon\r\n\r\n"[..],
            b"0\r\n: empty name\r\n\r\n",
            b"0\r\n folded: x\r\n\r\n",
            b"0\r\nbad\x01: x\r\n\r\n",
            b"0\r\nname: \x00\r\n\r\n",
        ] {
            let e = error_of(body);
            assert!(e.message.contains("bad trailer line"), "{e:?}");
            assert_eq!(e.position, 3);
        }
    }

    #[test]
    fn an_error_is_returned_again_until_the_deframer_is_replaced() {
        let mut d = Deframer::new(Framing::Chunked);
        let mut at = 0;
        let e = d.next(b"zz\r\n", &mut at).unwrap_err();
        let mut at = 0;
        assert_eq!(d.next(b"5\r\nhello\r\n", &mut at), Err(e));
    }

    #[test]
    fn a_body_that_ends_mid_chunk_is_not_done() {
        for cut in 1..BODY.len() - b"\r\nignored".len() {
            let (_, done, err) = chunked(&BODY[..cut]);
            assert_eq!((done, err), (false, None), "cut at {cut}");
        }
    }

    #[test]
    fn a_content_length_body_is_exactly_that_many_bytes() {
        assert_eq!(
            run(Framing::ContentLength(5), &[b"he", b"llo, more"]),
            (b"hello".to_vec(), true, None)
        );
        assert_eq!(
            run(Framing::ContentLength(5), &[b"hell"]),
            (b"hell".to_vec(), false, None)
        );
        assert_eq!(
            run(Framing::ContentLength(0), &[b"x"]),
            (Vec::new(), true, None)
        );
    }

    #[test]
    fn a_body_is_chunked_or_has_a_content_length_not_both() {
        assert_eq!(Framing::of(true, None), Some(Framing::Chunked));
        assert_eq!(Framing::of(false, Some(3)), Some(Framing::ContentLength(3)));
        assert_eq!(Framing::of(false, None), Some(Framing::UntilEof));
        assert_eq!(Framing::of(true, Some(3)), None);
        let mut d = Deframer::new(Framing::Chunked);
        assert_eq!(d.payload(&BODY[..30]).unwrap(), b"hello, wor");
        assert_eq!(d.payload(&BODY[30..]).unwrap(), b"ld\n");
    }

    #[test]
    fn an_unframed_body_is_passed_through_and_never_done() {
        assert_eq!(
            run(Framing::UntilEof, &[b"a\n", b"", b"b"]),
            (b"a\nb".to_vec(), false, None)
        );
    }

    /// xorshift64*: deterministic, no dev-dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Random bytes drawn mostly from framing characters, so framing paths are hit.
    fn noise(rng: &mut Rng) -> Vec<u8> {
        const ALPHABET: &[u8] = b"0123456789abcdefABCDEF;= \t:\r\n\r\n\r\nxz-";
        let len = rng.below(200);
        (0..len)
            .map(|_| match rng.below(10) {
                0 => rng.next() as u8,
                _ => ALPHABET[rng.below(ALPHABET.len())],
            })
            .collect()
    }

    #[test]
    fn random_bytes_split_anywhere_never_panic_and_agree_with_the_whole_feed() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for round in 0..3000 {
            let mut body = Vec::new();
            // A few well-formed chunks first, then noise.
            for _ in 0..rng.below(3) {
                let n = rng.below(20);
                body.extend_from_slice(format!("{n:x}\r\n").as_bytes());
                body.extend((0..n).map(|_| b'a' + rng.below(26) as u8));
                body.extend_from_slice(b"\r\n");
            }
            body.extend(noise(&mut rng));
            let whole = chunked(&body);
            if let Some(e) = &whole.2 {
                assert!(e.message.starts_with("chunked encoding: "), "{e:?}");
                assert!(e.position <= body.len() as u64);
            }
            let mut parts = Vec::new();
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = 1 + rng.below(rest.len().min(40));
                parts.push(&rest[..n]);
                rest = &rest[n..];
            }
            assert_eq!(run(Framing::Chunked, &parts), whole, "round {round}");
        }
    }
}
