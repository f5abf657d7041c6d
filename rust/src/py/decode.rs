//! `WatchDecoder`, `WatchEvent`, `ListAccumulator` and their results.
use super::errors::decode_error;
use super::guard;
use super::queue::PyWorkQueue;
use super::store::{loads, store_error, PyStore};
use crate::apply::apply;
use crate::decode::{decode_event, decode_page, Event, EventType, Meta, Schema};
use crate::lines::Lines;
use crate::store::Accumulator;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::OnceLock;

/// List pages at least this big are decoded with the GIL released.
const DETACH_BYTES: usize = 1 << 20;

/// The schema for decoding without a store: metadata only, no user indexes.
fn plain_schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::new(&[]))
}

/// A Python-looking repr of an optional string.
fn repr(s: &Option<String>) -> String {
    match s {
        None => "None".into(),
        Some(s) => format!("{s:?}"),
    }
}

#[pyclass(frozen, get_all, module = "trio_controller._native")]
pub struct WatchEvent {
    #[pyo3(name = "type")]
    kind: &'static str,
    key: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    raw: Py<PyBytes>,
    code: Option<i64>,
    reason: Option<String>,
    message: Option<String>,
    initial_events_end: bool,
}

impl WatchEvent {
    fn new(py: Python<'_>, line: &[u8], ev: Event) -> Self {
        Self::from_parts(py, ev.kind, &line[ev.object], ev.meta)
    }

    fn from_parts(py: Python<'_>, kind: EventType, raw: &[u8], m: Meta) -> Self {
        let key = match kind {
            EventType::Bookmark | EventType::Error => None,
            _ => m.key(),
        };
        WatchEvent {
            kind: kind.as_str(),
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
        match self.kind {
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

#[pyclass(module = "trio_controller._native", name = "ListAccumulator")]
#[derive(Default)]
pub struct PyListAccumulator {
    pub inner: Accumulator,
}

#[pyclass(frozen, get_all, module = "trio_controller._native")]
pub struct PageInfo {
    resource_version: Option<String>,
    continue_token: Option<String>,
    remaining_item_count: Option<i64>,
    items: usize,
}

#[pymethods]
impl PageInfo {
    fn __repr__(&self) -> String {
        format!(
            "PageInfo(resource_version={}, continue_token={}, remaining_item_count={}, items={})",
            repr(&self.resource_version),
            repr(&self.continue_token),
            self.remaining_item_count
                .map_or("None".into(), |n| n.to_string()),
            self.items
        )
    }
}

#[pymethods]
impl PyListAccumulator {
    #[new]
    #[pyo3(signature = (strip_managed_fields = false, compress = false))]
    fn new(strip_managed_fields: bool, compress: bool) -> Self {
        PyListAccumulator {
            inner: Accumulator::with_options(strip_managed_fields, compress),
        }
    }

    #[getter]
    fn strip_managed_fields(&self) -> bool {
        self.inner.strip_managed_fields
    }

    #[getter]
    fn compress(&self) -> bool {
        self.inner.compress
    }

    /// Decodes one list page and keeps its items; nothing is kept if the page is bad.
    fn feed_page(&mut self, py: Python<'_>, body: &[u8]) -> PyResult<PageInfo> {
        guard(|| {
            // A big page is decoded without the GIL, so `trio.to_thread.run_sync(
            // acc.feed_page, body)` can use a second core while the Trio loop runs.
            let page = if body.len() >= DETACH_BYTES {
                py.detach(|| decode_page(body, plain_schema()))
            } else {
                decode_page(body, plain_schema())
            }
            .map_err(|e| decode_error(py, e.to_string(), e.offset as u64, 1, Vec::new()))?;
            let n = page.items.len();
            self.inner.items.reserve(n);
            let before = self.inner.items.len();
            for (range, meta) in page.items {
                if let Err(e) = self.inner.push(&body[range], meta) {
                    self.inner.items.truncate(before);
                    return Err(store_error(py, e));
                }
            }
            Ok(PageInfo {
                resource_version: page.resource_version,
                continue_token: page.continue_token,
                remaining_item_count: page.remaining_item_count,
                items: n,
            })
        })
    }

    fn clear(&mut self) {
        self.inner.items = Vec::new();
    }

    fn __len__(&self) -> usize {
        self.inner.items.len()
    }
}

#[pyclass(frozen, get_all, module = "trio_controller._native")]
pub struct FeedResult {
    applied: usize,
    bookmarks: usize,
    resource_version: Option<String>,
    error: Option<Py<WatchEvent>>,
    initial_events_end: bool,
}

#[pymethods]
impl FeedResult {
    fn __repr__(&self) -> String {
        format!(
            "FeedResult(applied={}, bookmarks={}, resource_version={}, error={}, initial_events_end={})",
            self.applied,
            self.bookmarks,
            repr(&self.resource_version),
            if self.error.is_some() { "<WatchEvent>" } else { "None" },
            if self.initial_events_end { "True" } else { "False" }
        )
    }
}

#[pyclass(module = "trio_controller._native", name = "WatchDecoder")]
#[derive(Default)]
pub struct PyWatchDecoder {
    lines: Lines,
}

#[pymethods]
impl PyWatchDecoder {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// The events `chunk` completes. A malformed line raises `DecodeError` after the
    /// whole chunk was read; its `events` holds every well-formed event of the chunk.
    fn feed(&mut self, py: Python<'_>, chunk: &[u8]) -> PyResult<Vec<Py<WatchEvent>>> {
        guard(|| {
            let mut lines = self.lines.feed(chunk);
            let mut events = Vec::new();
            let mut first_err: Option<(String, u64, u64)> = None;
            while let Some((line, bytes)) = lines.next_line() {
                match decode_event(bytes, plain_schema()) {
                    Ok(ev) => events.push(Py::new(py, WatchEvent::new(py, bytes, ev))?),
                    Err(e) => {
                        if first_err.is_none() {
                            first_err = Some((
                                format!("line {}: {e}", line.number),
                                line.position,
                                line.number,
                            ));
                        }
                    }
                }
            }
            match first_err {
                None => Ok(events),
                Some((msg, position, line)) => {
                    let events = events.into_iter().map(|e| e.into_any()).collect();
                    Err(decode_error(py, msg, position, line, events))
                }
            }
        })
    }

    /// Applies the events `chunk` completes to `store` (and `queue`): see the contract.
    #[pyo3(signature = (chunk, store, queue, now, initial = None))]
    fn feed_into(
        &mut self,
        py: Python<'_>,
        chunk: &[u8],
        mut store: PyRefMut<'_, PyStore>,
        mut queue: Option<PyRefMut<'_, PyWorkQueue>>,
        now: f64,
        mut initial: Option<PyRefMut<'_, PyListAccumulator>>,
    ) -> PyResult<FeedResult> {
        guard(|| {
            let applied = apply(
                &mut self.lines.feed(chunk),
                &mut store.inner,
                queue.as_deref_mut().map(|q| &mut q.inner),
                now,
                initial.as_deref_mut().map(|acc| &mut acc.inner),
            )
            .map_err(|e| decode_error(py, e.message, e.position, e.line, Vec::new()))?;
            let error = match applied.error {
                Some((raw, meta)) => Some(Py::new(
                    py,
                    WatchEvent::from_parts(py, EventType::Error, &raw, meta),
                )?),
                None => None,
            };
            Ok(FeedResult {
                applied: applied.applied,
                bookmarks: applied.bookmarks,
                resource_version: applied.resource_version,
                error,
                initial_events_end: applied.initial_events_end,
            })
        })
    }

    /// Drops any partial line; positions and line numbers start again from zero.
    fn reset(&mut self) {
        self.lines.reset();
    }

    #[getter]
    fn pending_bytes(&self) -> usize {
        self.lines.pending()
    }
}
