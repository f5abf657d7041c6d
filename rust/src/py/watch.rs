//! `WatchDecoder`, `WatchEvent` and `FeedResult`.
use super::errors::decode_error;
use super::guard;
use super::queue::PyWorkQueue;
use super::store::{loads, PyListAccumulator, PyStore};
use crate::json::{Meta, Schema};
use crate::watch::apply::apply;
use crate::watch::event::{decode_event, Event, EventType};
use crate::watch::lines::Lines;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use std::sync::OnceLock;

/// The schema for decoding without a store: metadata only, no user indexes.
pub fn plain_schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| Schema::new(&[]))
}

/// A Python-looking repr of an optional string.
pub fn repr(s: &Option<String>) -> String {
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

#[pyclass(
    frozen,
    get_all,
    module = "trio_controller._native",
    name = "FeedResult"
)]
pub struct PyFeedResult {
    applied: usize,
    bookmarks: usize,
    resource_version: Option<String>,
    error: Option<Py<WatchEvent>>,
    initial_events_end: bool,
}

#[pymethods]
impl PyFeedResult {
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
    ) -> PyResult<PyFeedResult> {
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
            Ok(PyFeedResult {
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
