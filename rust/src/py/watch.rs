//! `WatchDecoder`, `WatchEvent`, `FeedResult`, and `BodyDecoder`, `ResponseHead`,
//! `parse_response_head` for the owned HTTP/1.1 watch transport.
use super::convert::{loads, plain_schema, predicate_set, python_check, repr};
use super::errors::decode_error;
use super::guard;
use super::owner::PyOwnerMapping;
use super::queue::PyWorkQueue;
use super::store::{PyListAccumulator, PyStore};
use crate::informer::apply::{feed_into, Target};
use crate::informer::{Check, Fanout, QueueTarget};
use crate::json::Meta;
use crate::store::{ListAccumulator, Store};
use crate::watch::chunked::{Deframer, Framing, FramingError};
use crate::watch::decoder::{Decoder, FeedError, LineError};
use crate::watch::event::{EventType, WatchEvent as Event};
use crate::watch::head::{self, ResponseHead};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// One decoded watch event. ``raw`` is the object's bytes (for ERROR, the Status).
#[pyclass(frozen, get_all, module = "trio_controller._native")]
pub struct WatchEvent {
    /// The event type.
    #[pyo3(name = "type")]
    r#type: &'static str,
    /// ``namespace/name`` or ``name``; None for BOOKMARK and ERROR.
    key: Option<String>,
    /// The object's ``metadata.namespace``.
    namespace: Option<String>,
    /// The object's ``metadata.name``.
    name: Option<String>,
    /// The object's ``metadata.uid``.
    uid: Option<String>,
    /// The object's ``metadata.resourceVersion``.
    resource_version: Option<String>,
    /// The object's JSON bytes (for ERROR, the Status).
    raw: Py<PyBytes>,
    /// ERROR only: the Status code (410 = Gone).
    code: Option<i64>,
    /// ERROR only: the Status reason.
    reason: Option<String>,
    /// ERROR only: the Status message.
    message: Option<String>,
    /// A BOOKMARK carrying the ``k8s.io/initial-events-end`` annotation.
    initial_events_end: bool,
}

impl WatchEvent {
    fn new(py: Python<'_>, line: &[u8], ev: Event) -> Self {
        Self::from_parts(py, ev.r#type, &line[ev.object], ev.meta)
    }

    fn from_parts(py: Python<'_>, kind: EventType, raw: &[u8], m: Meta) -> Self {
        let key = match kind {
            EventType::Bookmark | EventType::Error => None,
            _ => m.key(),
        };
        WatchEvent {
            r#type: kind.as_str(),
            key,
            namespace: m.namespace,
            name: m.name,
            uid: m.uid,
            resource_version: m.resource_version,
            raw: PyBytes::new(py, raw).unbind(),
            code: m.code,
            reason: m.reason,
            message: m.message,
            initial_events_end: m.initial_events_end,
        }
    }
}

#[pymethods]
impl WatchEvent {
    /// The object as a dict (parsed by orjson on each call).
    fn object<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        loads(py, self.raw.as_bytes(py))
    }

    fn __repr__(&self) -> String {
        match self.r#type {
            "ERROR" => format!(
                "WatchEvent(type='ERROR', code={}, reason={}, message={})",
                self.code.map_or("None".into(), |c| c.to_string()),
                repr(&self.reason),
                repr(&self.message)
            ),
            "BOOKMARK" => format!(
                "WatchEvent(type='BOOKMARK', resource_version={}, initial_events_end={})",
                repr(&self.resource_version),
                if self.initial_events_end {
                    "True"
                } else {
                    "False"
                }
            ),
            kind => format!(
                "WatchEvent(type='{kind}', key={}, resource_version={})",
                repr(&self.key),
                repr(&self.resource_version)
            ),
        }
    }
}

/// What ``WatchDecoder.feed_into`` did.
#[pyclass(
    frozen,
    get_all,
    module = "trio_controller._native",
    name = "FeedResult"
)]
pub struct PyFeedResult {
    /// ADDED/MODIFIED/DELETED events applied (to the store, or the accumulator).
    applied: usize,
    /// BOOKMARK events seen.
    bookmarks: usize,
    /// The last resourceVersion seen, or None.
    resource_version: Option<String>,
    /// The first ERROR event; decoding stopped there and the rest was dropped.
    error: Option<Py<WatchEvent>>,
    /// The ``k8s.io/initial-events-end`` bookmark was seen.
    initial_events_end: bool,
    /// The body's end was read: the last chunk and its trailers, or
    /// ``content_length`` bytes.
    body_done: bool,
}

#[pymethods]
impl PyFeedResult {
    fn __repr__(&self) -> String {
        let b = |v: bool| if v { "True" } else { "False" };
        format!(
            "FeedResult(applied={}, bookmarks={}, resource_version={}, error={}, initial_events_end={}, body_done={})",
            self.applied,
            self.bookmarks,
            repr(&self.resource_version),
            if self.error.is_some() { "<WatchEvent>" } else { "None" },
            b(self.initial_events_end),
            b(self.body_done),
        )
    }
}

/// Feeds `data` through `decoder` to `store` and `fan` (and `initial`); the Python
/// result. Shared by `WatchDecoder.feed_into` and the informer core's `feed`.
pub fn feed_decoder(
    py: Python<'_>,
    decoder: &mut Decoder,
    data: &[u8],
    store: &mut Store,
    initial: Option<&mut ListAccumulator>,
    fan: &mut Fanout<'_>,
) -> PyResult<PyFeedResult> {
    guard(|| {
        let mut to = Target {
            store,
            initial,
            fan,
        };
        let out = match feed_into(decoder, data, &mut to) {
            Ok(out) => out,
            Err(FeedError::Read(e)) => return Err(line_error(py, e, Vec::new())),
            Err(FeedError::Framing(e)) => {
                let line = decoder.line_number();
                return Err(framing_error(py, e, line, Vec::new()));
            }
        };
        let error = match out.error {
            Some((raw, meta)) => Some(Py::new(
                py,
                WatchEvent::from_parts(py, EventType::Error, &raw, meta),
            )?),
            None => None,
        };
        Ok(PyFeedResult {
            applied: out.applied,
            bookmarks: out.bookmarks,
            resource_version: out.resource_version,
            error,
            initial_events_end: out.initial_events_end,
            body_done: out.body_done,
        })
    })
}

/// The events seen by `decoder`, by type, as a dict.
pub fn counts_dict<'py>(py: Python<'py>, decoder: &Decoder) -> PyResult<Bound<'py, PyDict>> {
    let counts = decoder.counts();
    let d = PyDict::new(py);
    for kind in EventType::ALL {
        d.set_item(kind.as_str(), counts.get(kind))?;
    }
    Ok(d)
}

/// The framing of a body with response head `head` (None: lines until EOF).
pub fn head_framing(head: Option<&PyResponseHead>) -> PyResult<Framing> {
    match head {
        Some(h) => framing(h.inner.chunked, h.inner.content_length),
        None => Ok(Framing::UntilEof),
    }
}

/// The framing `reset` and `BodyDecoder` were asked for.
fn framing(chunked: bool, content_length: Option<u64>) -> PyResult<Framing> {
    Framing::of(chunked, content_length)
        .ok_or_else(|| PyValueError::new_err("a body is chunked or has a content_length, not both"))
}

fn framing_error(py: Python<'_>, e: FramingError, line: u64, events: Vec<Py<PyAny>>) -> PyErr {
    decode_error(py, e.message, e.position, line, events)
}

fn line_error(py: Python<'_>, e: LineError, events: Vec<Py<PyAny>>) -> PyErr {
    decode_error(py, e.message, e.position, e.line, events)
}

/// Decodes a watch response body: de-frames it (chunked or Content-Length, if
/// ``reset`` says so), splits it into lines and decodes them; reads may end anywhere.
#[pyclass(module = "trio_controller._native", name = "WatchDecoder")]
#[derive(Default)]
pub struct PyWatchDecoder {
    inner: Decoder,
}

#[pymethods]
impl PyWatchDecoder {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// The events ``data`` completes.
    ///
    /// A malformed line raises ``DecodeError`` once the whole of ``data`` was read; its
    /// ``events`` holds every well-formed event of it, and the decoder stays usable.
    /// Malformed framing raises ``DecodeError`` (``chunked encoding: ...``) with the
    /// events before it; the decoder then needs ``reset``.
    fn feed(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<Vec<Py<WatchEvent>>> {
        guard(|| {
            let mut events = Vec::new();
            let result = self.inner.feed(data, plain_schema(), |line, ev| {
                events.push(Py::new(py, WatchEvent::new(py, line, ev))?);
                Ok::<_, PyErr>(())
            });
            let any =
                |events: Vec<Py<WatchEvent>>| events.into_iter().map(|e| e.into_any()).collect();
            match result {
                Ok(None) => Ok(events),
                Ok(Some(bad)) => Err(line_error(py, bad, any(events))),
                Err(FeedError::Framing(e)) => {
                    Err(framing_error(py, e, self.inner.line_number(), any(events)))
                }
                Err(FeedError::Read(e)) => Err(e),
            }
        })
    }

    /// Apply the events ``data`` completes to ``store`` and add their keys to ``queue``.
    ///
    /// BOOKMARK only moves ``store.resource_version``. ERROR stops and is returned; the
    /// rest is dropped. With ``initial``, ADDED/MODIFIED go into the accumulator and the
    /// initial-events-end bookmark returns at once, leaving the rest buffered (call
    /// ``feed_into(b"", ...)`` to continue). A malformed line raises ``DecodeError``
    /// after applying the events before it; the buffered bytes are dropped. Malformed
    /// framing raises ``DecodeError`` (``chunked encoding: ...``) after applying the
    /// events before it; the decoder then needs ``reset``.
    ///
    /// With ``owner``, each object still goes into ``store`` but ``queue`` gets its
    /// controller owner's key instead of its own (nothing if it has none): for ADDED and
    /// MODIFIED the owners of the new object and of the stored one it replaces, for
    /// DELETED the owner of the deleted object.
    ///
    /// With ``predicates`` (bits of ``PREDICATE_*``) and ``check`` (a callable
    /// ``(key, old, new) -> bool`` on dicts), an update (the key was cached) reaches
    /// ``queue`` only if every predicate holds and then ``check`` returns true; adds and
    /// deletes always do. ``source`` names the watched resource for owner-mapped keys.
    #[pyo3(signature = (data, store, queue, now, initial = None, owner = None, *, predicates = 0, check = None, source = ""))]
    #[allow(clippy::too_many_arguments)]
    fn feed_into(
        &mut self,
        py: Python<'_>,
        data: &[u8],
        mut store: PyRefMut<'_, PyStore>,
        mut queue: Option<PyRefMut<'_, PyWorkQueue>>,
        now: f64,
        mut initial: Option<PyRefMut<'_, PyListAccumulator>>,
        owner: Option<Bound<'_, PyOwnerMapping>>,
        predicates: u8,
        check: Option<Bound<'_, PyAny>>,
        source: &str,
    ) -> PyResult<PyFeedResult> {
        let predicates = predicate_set(predicates)?;
        let mut call = check.as_ref().map(python_check);
        let mut fan = Fanout::none(now);
        fan.source = source;
        if let Some(q) = queue.as_deref_mut() {
            fan.queues.push(QueueTarget {
                owner: owner.as_ref().map(|m| &m.get().inner),
                predicates,
                check: call.as_mut().map(|c| c as &mut Check<'_>),
                ..QueueTarget::new(&mut q.inner)
            });
        }
        let initial = initial.as_deref_mut().map(|acc| &mut acc.inner);
        feed_decoder(
            py,
            &mut self.inner,
            data,
            &mut store.inner,
            initial,
            &mut fan,
        )
    }

    /// Start a new stream (position 0, line 1), dropping anything buffered.
    ///
    /// Its body is HTTP/1.1 ``chunked``, or exactly ``content_length`` bytes, or (neither)
    /// lines until the connection closes. ValueError if both are given.
    #[pyo3(signature = (*, chunked = false, content_length = None))]
    fn reset(&mut self, chunked: bool, content_length: Option<u64>) -> PyResult<()> {
        self.inner.reset(framing(chunked, content_length)?);
        Ok(())
    }

    /// Bytes buffered and not yet decoded.
    #[getter]
    fn pending_bytes(&self) -> usize {
        self.inner.pending()
    }

    /// The body's end was read (the last chunk and its trailers, or ``content_length``
    /// bytes); bytes after it are ignored. Always False for a body read until EOF.
    #[getter]
    fn body_done(&self) -> bool {
        self.inner.body_done()
    }

    /// Events seen by this decoder since it was created (``reset`` keeps them), by
    /// type: ADDED, MODIFIED, DELETED, BOOKMARK, ERROR.
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        counts_dict(py, &self.inner)
    }
}

/// De-frames a small non-watch body (an error Status): chunked, or exactly
/// ``content_length`` bytes, or (neither) everything until the connection closes.
#[pyclass(module = "trio_controller._native", name = "BodyDecoder")]
pub struct PyBodyDecoder {
    inner: Deframer,
}

#[pymethods]
impl PyBodyDecoder {
    #[new]
    fn new(chunked: bool, content_length: Option<u64>) -> PyResult<Self> {
        Ok(PyBodyDecoder {
            inner: Deframer::new(framing(chunked, content_length)?),
        })
    }

    /// The payload ``data`` holds (bytes after the body's end are ignored).
    ///
    /// Malformed framing raises ``DecodeError`` (``chunked encoding: ...``), and again
    /// on every later call.
    fn feed<'py>(&mut self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| match self.inner.payload(data) {
            Ok(payload) => Ok(PyBytes::new(py, &payload)),
            Err(e) => Err(framing_error(py, e, 1, Vec::new())),
        })
    }

    /// The body's end was read. Always False for a body read until EOF.
    #[getter]
    fn done(&self) -> bool {
        self.inner.done()
    }
}

/// An HTTP/1.1 response head (also a CONNECT proxy's reply).
#[pyclass(frozen, module = "trio_controller._native", name = "ResponseHead")]
pub struct PyResponseHead {
    inner: ResponseHead,
}

#[pymethods]
impl PyResponseHead {
    /// The status code.
    #[getter]
    fn status(&self) -> u16 {
        self.inner.status
    }

    /// The reason phrase.
    #[getter]
    fn reason(&self) -> &str {
        &self.inner.reason
    }

    /// ``(name, value)`` pairs in the order received; names lower-cased, values
    /// decoded as Latin-1.
    #[getter]
    fn headers(&self) -> Vec<(String, String)> {
        self.inner.headers.clone()
    }

    /// Bytes of the head, the blank line included: the body starts at ``buf[length:]``.
    #[getter]
    fn length(&self) -> usize {
        self.inner.length
    }

    /// Transfer-Encoding's last coding is ``chunked``.
    #[getter]
    fn chunked(&self) -> bool {
        self.inner.chunked
    }

    /// The Content-Length, or None.
    #[getter]
    fn content_length(&self) -> Option<u64> {
        self.inner.content_length
    }

    /// The first value of header ``name`` (any case), or None.
    fn header(&self, name: &str) -> Option<&str> {
        self.inner.header(name)
    }

    fn __repr__(&self) -> String {
        format!(
            "ResponseHead(status={}, reason={:?}, length={}, chunked={}, content_length={})",
            self.inner.status,
            self.inner.reason,
            self.inner.length,
            if self.inner.chunked { "True" } else { "False" },
            self.inner
                .content_length
                .map_or("None".into(), |n| n.to_string())
        )
    }
}

/// The response head at the start of ``buf``, or None while it is incomplete.
///
/// Raises ``DecodeError`` for a malformed head, a head over 64 KiB with no end, an
/// invalid or conflicting Content-Length (Content-Length with Transfer-Encoding is a
/// conflict), or a Transfer-Encoding other than chunked/identity. A 1xx head is
/// returned like any other: the caller skips it and parses the next.
#[pyfunction]
pub fn parse_response_head(py: Python<'_>, buf: &[u8]) -> PyResult<Option<PyResponseHead>> {
    guard(|| match head::parse_response_head(buf) {
        Ok(h) => Ok(h.map(|inner| PyResponseHead { inner })),
        Err(e) => Err(decode_error(py, e.message, 0, 1, Vec::new())),
    })
}
