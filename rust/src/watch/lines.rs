//! Splitting a byte stream into lines across chunks, copying as little as possible.
//!
//! `Lines` keeps only what a chunk leaves over (a partial last line, or lines not yet
//! read when a reader stopped early). `Lines::feed(chunk)` gives a `Chunk` reader whose
//! lines come straight from the chunk when nothing is pending; dropping the reader keeps
//! the unread rest of the chunk for the next feed.
use memchr::memchr;
use std::ops::Range;

#[derive(Debug, Default)]
pub struct Lines {
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    /// Unread bytes already searched for a newline.
    searched: usize,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// Lines read so far (blank ones included).
    line_no: u64,
}

/// Where a line sits in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line {
    /// Stream offset of the line's first byte.
    pub position: u64,
    /// 1-based line number.
    pub number: u64,
}

impl Lines {
    /// A reader over the buffered bytes followed by `chunk`.
    pub fn feed<'l, 'c>(&'l mut self, chunk: &'c [u8]) -> Chunk<'l, 'c> {
        if self.start == self.buf.len() {
            self.offset += self.buf.len() as u64;
            self.buf.clear();
            self.start = 0;
            self.searched = 0;
        } else if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.offset += self.start as u64;
            self.start = 0;
        }
        let base = self.offset + self.buf.len() as u64;
        Chunk {
            lines: self,
            chunk,
            at: 0,
            base,
        }
    }

    /// Bytes buffered and not read (a partial line, or lines left after a stop).
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Lines read so far (blank ones included).
    pub fn lines_read(&self) -> u64 {
        self.line_no
    }

    /// Forgets everything: a new stream starts at offset 0, line 1.
    pub fn reset(&mut self) {
        *self = Lines::default();
    }
}

/// Reads the lines of the buffered bytes followed by one chunk.
pub struct Chunk<'l, 'c> {
    lines: &'l mut Lines,
    chunk: &'c [u8],
    /// Bytes of `chunk` consumed (read as lines or moved into the buffer).
    at: usize,
    /// Stream offset of `chunk[0]`.
    base: u64,
}

fn blank(line: &[u8]) -> bool {
    line.iter().all(|c| matches!(c, b' ' | b'\r' | b'\t'))
}

impl Chunk<'_, '_> {
    /// The next complete, non-blank line (newline excluded).
    pub fn next_line(&mut self) -> Option<(Line, &[u8])> {
        loop {
            let (line, in_buf, range) = self.next_range()?;
            let bytes = if in_buf {
                &self.lines.buf[range.clone()]
            } else {
                &self.chunk[range.clone()]
            };
            if blank(bytes) {
                continue;
            }
            let bytes = if in_buf {
                &self.lines.buf[range]
            } else {
                &self.chunk[range]
            };
            return Some((line, bytes));
        }
    }

    fn next_range(&mut self) -> Option<(Line, bool, Range<usize>)> {
        let l = &mut *self.lines;
        if l.start < l.buf.len() {
            // Finish what is buffered first: complete lines, or a partial one whose end
            // is in the chunk (only that head of the chunk is copied).
            let from = l.start + l.searched;
            if let Some(i) = memchr(b'\n', &l.buf[from..]) {
                let end = from + i;
                let range = l.start..end;
                let position = l.offset + l.start as u64;
                l.start = end + 1;
                l.searched = 0;
                l.line_no += 1;
                let line = Line {
                    position,
                    number: l.line_no,
                };
                return Some((line, true, range));
            }
            l.searched = l.buf.len() - l.start;
            let rest = &self.chunk[self.at..];
            return match memchr(b'\n', rest) {
                None => {
                    l.buf.extend_from_slice(rest);
                    self.at = self.chunk.len();
                    None
                }
                Some(j) => {
                    l.buf.extend_from_slice(&rest[..=j]);
                    self.at += j + 1;
                    self.next_range()
                }
            };
        }
        // Nothing buffered: lines come straight from the chunk.
        let rest = &self.chunk[self.at..];
        match memchr(b'\n', rest) {
            Some(j) => {
                let range = self.at..self.at + j;
                let position = self.base + self.at as u64;
                self.at += j + 1;
                l.line_no += 1;
                let line = Line {
                    position,
                    number: l.line_no,
                };
                Some((line, false, range))
            }
            None => {
                self.keep_rest();
                None
            }
        }
    }

    /// Moves the unread rest of the chunk into the buffer (and keeps the buffer's stream
    /// offset right after lines were read straight from the chunk).
    fn keep_rest(&mut self) {
        let l = &mut *self.lines;
        if l.start == l.buf.len() {
            l.buf.clear();
            l.start = 0;
            l.searched = 0;
            l.offset = self.base + self.at as u64;
        }
        l.buf.extend_from_slice(&self.chunk[self.at..]);
        self.at = self.chunk.len();
    }

    /// Drops everything buffered and the rest of the chunk (they still count towards
    /// stream positions).
    pub fn drop_pending(&mut self) {
        let l = &mut *self.lines;
        l.buf.clear();
        l.start = 0;
        l.searched = 0;
        l.offset = self.base + self.chunk.len() as u64;
        self.at = self.chunk.len();
    }

    /// Bytes not read yet, buffered or in the chunk.
    pub fn pending(&self) -> usize {
        self.lines.pending() + (self.chunk.len() - self.at)
    }
}

impl Drop for Chunk<'_, '_> {
    fn drop(&mut self) {
        self.keep_rest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(lines: &mut Lines, chunk: &[u8]) -> Vec<(Vec<u8>, u64, u64)> {
        let mut c = lines.feed(chunk);
        let mut out = Vec::new();
        while let Some((line, bytes)) = c.next_line() {
            out.push((bytes.to_vec(), line.position, line.number));
        }
        out
    }

    #[test]
    fn lines_split_across_chunks_are_joined() {
        let mut lines = Lines::default();
        assert!(read_all(&mut lines, b"ab").is_empty());
        assert_eq!(lines.pending(), 2);
        assert_eq!(
            read_all(&mut lines, b"c\n\nde\r\nf"),
            [(b"abc".to_vec(), 0, 1), (b"de\r".to_vec(), 5, 3)]
        );
        assert_eq!(lines.pending(), 1);
        assert_eq!(read_all(&mut lines, b"\n"), [(b"f".to_vec(), 9, 4)]);
        assert_eq!(lines.pending(), 0);
    }

    #[test]
    fn every_split_of_a_stream_gives_the_same_lines() {
        let stream = b"one\ntwo two\n\n  \nthree\r\nfour\n";
        let whole = read_all(&mut Lines::default(), stream);
        assert_eq!(whole.len(), 4);
        for a in 0..=stream.len() {
            for b in a..=stream.len() {
                let mut lines = Lines::default();
                let mut got = read_all(&mut lines, &stream[..a]);
                got.extend(read_all(&mut lines, &stream[a..b]));
                got.extend(read_all(&mut lines, &stream[b..]));
                assert_eq!(got, whole, "split at {a}, {b}");
            }
        }
    }

    #[test]
    fn a_reader_stopped_early_keeps_the_rest_for_the_next_feed() {
        let mut lines = Lines::default();
        {
            let mut c = lines.feed(b"x\ny\nz");
            assert_eq!(c.next_line().unwrap().1, b"x");
            assert_eq!(c.pending(), 3);
        }
        assert_eq!(lines.pending(), 3);
        assert_eq!(
            read_all(&mut lines, b"z\n"),
            [(b"y".to_vec(), 2, 2), (b"zz".to_vec(), 4, 3)]
        );
    }

    #[test]
    fn dropping_pending_bytes_keeps_counting_positions() {
        let mut lines = Lines::default();
        {
            let mut c = lines.feed(b"ab\ncd\nef");
            c.next_line();
            c.drop_pending();
            assert!(c.next_line().is_none());
        }
        assert_eq!(lines.pending(), 0);
        assert_eq!(read_all(&mut lines, b"g\n"), [(b"g".to_vec(), 8, 2)]);
        lines.reset();
        assert_eq!(read_all(&mut lines, b"h\n"), [(b"h".to_vec(), 0, 1)]);
    }
}
