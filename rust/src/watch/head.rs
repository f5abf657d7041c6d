//! An HTTP/1.1 response head (status line and header fields) parsed by `httparse`, with
//! the body framing it announces (RFC 9112 §6.3). Also read for a CONNECT proxy's reply.
//!
//! ```text
//! socket bytes ─▶ parse_response_head ─▶ None (need more) | ResponseHead { status, headers,
//!                                         length, chunked, content_length } | HeadError
//! ```
//! The caller reads the body from `buf[length..]`; a 1xx head is followed by another.
use super::chunked::Framing;

/// A head that has not ended within this many bytes is refused.
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header fields a head may have.
pub const MAX_HEADERS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    /// Names lower-cased, values decoded as Latin-1, in the order received.
    pub headers: Vec<(String, String)>,
    /// Bytes of the head, the blank line included.
    pub length: usize,
    /// Transfer-Encoding's last coding is `chunked`.
    pub chunked: bool,
    pub content_length: Option<u64>,
}

impl ResponseHead {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// How the body that follows is delimited.
    pub fn framing(&self) -> Framing {
        match (self.chunked, self.content_length) {
            (true, _) => Framing::Chunked,
            (false, Some(n)) => Framing::ContentLength(n),
            (false, None) => Framing::UntilEof,
        }
    }
}

/// A malformed head, or framing headers this transport does not take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadError {
    pub message: String,
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

fn error<T>(message: impl Into<String>) -> Result<T, HeadError> {
    Err(HeadError {
        message: message.into(),
    })
}

/// The head at the start of `buf`, or `None` while it is incomplete.
pub fn parse_response_head(buf: &[u8]) -> Result<Option<ResponseHead>, HeadError> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let mut fields = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut fields);
    let length = match resp.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return error("response head longer than 64 KiB")
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return error(format!("response head has more than {MAX_HEADERS} fields"))
        }
        Err(e) => return error(format!("malformed response head: {e}")),
    };
    let headers: Vec<(String, String)> = resp
        .headers
        .iter()
        .map(|h| {
            let value = h.value.iter().map(|&c| char::from(c)).collect();
            (h.name.to_ascii_lowercase(), value)
        })
        .collect();
    let chunked = transfer_coding(&headers)?;
    let content_length = content_length(&headers)?;
    if content_length.is_some() && headers.iter().any(|(n, _)| n == "transfer-encoding") {
        return error("response has both Transfer-Encoding and Content-Length");
    }
    Ok(Some(ResponseHead {
        status: resp.code.unwrap_or(0),
        reason: resp.reason.unwrap_or("").to_string(),
        headers,
        length,
        chunked,
        content_length,
    }))
}

/// Whether the last transfer coding is `chunked`; only chunked and identity are taken.
fn transfer_coding(headers: &[(String, String)]) -> Result<bool, HeadError> {
    let mut last = None;
    let mut chunked = 0;
    for (_, value) in headers.iter().filter(|(n, _)| n == "transfer-encoding") {
        for coding in value.split(',').map(|c| c.trim_matches([' ', '\t'])) {
            if coding.is_empty() {
                continue;
            }
            if coding.eq_ignore_ascii_case("chunked") {
                chunked += 1;
            } else if !coding.eq_ignore_ascii_case("identity") {
                return error(format!("unsupported Transfer-Encoding {coding:?}"));
            }
            last = Some(coding);
        }
    }
    if chunked > 1 {
        return error("Transfer-Encoding applies chunked more than once");
    }
    Ok(last.is_some_and(|c| c.eq_ignore_ascii_case("chunked")))
}

/// The Content-Length, if any: every value (of every field) must be the same number.
fn content_length(headers: &[(String, String)]) -> Result<Option<u64>, HeadError> {
    let mut found: Option<u64> = None;
    for (_, value) in headers.iter().filter(|(n, _)| n == "content-length") {
        for v in value.split(',').map(|v| v.trim_matches([' ', '\t'])) {
            let n = match v.parse::<u64>() {
                Ok(n) if v.bytes().all(|c| c.is_ascii_digit()) => n,
                _ => return error(format!("invalid Content-Length {v:?}")),
            };
            if found.is_some_and(|f| f != n) {
                return error("conflicting Content-Length values");
            }
            found = Some(n);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Option<ResponseHead>, HeadError> {
        parse_response_head(text.as_bytes())
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nAudit-Id: a\r\nAudit-Id: b\r\n\r\n";

    #[test]
    fn a_watch_response_head_announces_a_chunked_body() {
        let h = head(&format!("{OK}5\r\nhello")).unwrap().unwrap();
        assert_eq!((h.status, h.reason.as_str()), (200, "OK"));
        assert_eq!(h.length, OK.len());
        assert!(h.chunked);
        assert_eq!(h.content_length, None);
        assert_eq!(h.framing(), Framing::Chunked);
        assert_eq!(
            h.headers[0],
            ("content-type".into(), "application/json".into())
        );
        assert_eq!(h.header("AUDIT-ID"), Some("a"));
        assert_eq!(h.header("x-missing"), None);
    }

    #[test]
    fn an_incomplete_head_is_none_at_every_length() {
        for n in 0..OK.len() {
            assert_eq!(head(&OK[..n]), Ok(None), "{n} bytes");
        }
    }

    #[test]
    fn an_error_status_with_content_length_and_retry_after() {
        let text = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 3\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}";
        let h = head(text).unwrap().unwrap();
        assert_eq!(h.status, 429);
        assert_eq!(h.content_length, Some(2));
        assert_eq!(h.framing(), Framing::ContentLength(2));
        assert_eq!(h.header("retry-after"), Some("3"));
        assert_eq!(&text[h.length..], "{}");
        let h = head("HTTP/1.0 200 Connection established\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((h.chunked, h.content_length), (false, None));
        assert_eq!(h.framing(), Framing::UntilEof);
    }

    #[test]
    fn malformed_heads_and_unsupported_framing_are_errors() {
        for text in [
            "HTTP/1.1 2OO OK\r\n\r\n",
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
            "garbage\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
        ] {
            assert!(head(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn the_last_coding_decides_whether_the_body_is_chunked() {
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, Chunked\r\n\r\n");
        assert!(h.unwrap().unwrap().chunked);
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, identity\r\n\r\n");
        assert!(!h.unwrap().unwrap().chunked);
    }

    #[test]
    fn a_head_over_64_kib_without_its_end_is_an_error() {
        let mut text = String::from("HTTP/1.1 200 OK\r\n");
        while text.len() < MAX_HEAD {
            text.push_str(&format!("X-Pad: {}\r\n", "a".repeat(1000)));
        }
        assert!(head(&text[..MAX_HEAD - 1]).unwrap().is_none());
        let e = head(&text).unwrap_err();
        assert!(e.message.contains("longer than 64 KiB"), "{e}");
        let many: String = (0..300).map(|i| format!("X-{i}: v\r\n")).collect();
        let e = head(&format!("HTTP/1.1 200 OK\r\n{many}\r\n")).unwrap_err();
        assert!(e.message.contains("more than 256 fields"));
    }
}
