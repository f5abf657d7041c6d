//! `InformerCore`: one store, its targets (queues, owner-mapped queues, predicates in
//! front of either) and a changes buffer for Python event handlers; one call per read.
use super::convert::{predicate_set, python_check, store_error};
use super::guard;
use super::object::PyLazyObject;
use super::owner::PyOwnerMapping;
use super::queue::PyWorkQueue;
use super::store::{PyListAccumulator, PyReplaceResult, PyStore};
use super::tls::{buffer_bytes, PyTlsSession};
use super::watch::{counts_dict, feed_decoder, head_framing, PyFeedResult, PyResponseHead};
use crate::informer::{relist, Changed, Check, Fanout, Object, QueueTarget};
use crate::queue::Change;
use crate::watch::decoder::Decoder;
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::PyValueError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyString, PyTuple};

/// One queue target as Python handed it.
struct Target {
    queue: Py<PyWorkQueue>,
    owner: Option<Py<PyOwnerMapping>>,
    predicates: u8,
    check: Option<Py<PyAny>>,
}

/// The informer core: applies each read (``feed``) or list (``relist``) to its store and
/// fans every change out in the same call: to each queue (the object's key, or with
/// ``owner`` its controller owner's key; updates only if they pass the queue's
/// predicates), and with ``changes=True`` to a buffer ``take_changes`` hands Python
/// once per read for event handlers. Every key goes in through the queue's
/// ``add_from`` with where it came from (listed or watched, via which object).
#[pyclass(module = "trio_controller._native", name = "InformerCore")]
pub struct PyInformerCore {
    store: Py<PyStore>,
    source: String,
    targets: Vec<Target>,
    changes: Option<Vec<Changed>>,
    /// The current stream's framing and line state, and the events seen by type.
    decoder: Decoder,
}

impl PyInformerCore {
    /// Runs `f` with the store and a fan-out over every target (each queue borrowed).
    fn with_fan<T>(
        &mut self,
        py: Python<'_>,
        now: f64,
        f: impl FnOnce(&mut PyStore, &mut Fanout<'_>) -> PyResult<T>,
    ) -> PyResult<T> {
        // A check that reads the store or a queue while the core writes them gets a
        // RuntimeError (already borrowed), not a panic.
        let mut store = self.store.bind(py).try_borrow_mut()?;
        let mut queues: Vec<PyRefMut<'_, PyWorkQueue>> = self
            .targets
            .iter()
            .map(|t| t.queue.bind(py).try_borrow_mut())
            .collect::<Result<_, _>>()?;
        let owners: Vec<Option<Bound<'_, PyOwnerMapping>>> = self
            .targets
            .iter()
            .map(|t| t.owner.as_ref().map(|o| o.bind(py).clone()))
            .collect();
        let checks: Vec<Option<Bound<'_, PyAny>>> = self
            .targets
            .iter()
            .map(|t| t.check.as_ref().map(|c| c.bind(py).clone()))
            .collect();
        let mut calls: Vec<Option<_>> = checks
            .iter()
            .map(|c| c.as_ref().map(python_check))
            .collect();
        let mut fan = Fanout::none(now);
        fan.source = &self.source;
        for (((t, q), owner), call) in self
            .targets
            .iter()
            .zip(queues.iter_mut())
            .zip(&owners)
            .zip(calls.iter_mut())
        {
            fan.queues.push(QueueTarget {
                owner: owner.as_ref().map(|m| &m.get().inner),
                predicates: predicate_set(t.predicates)?,
                check: call.as_mut().map(|c| c as &mut Check<'_>),
                ..QueueTarget::new(&mut q.inner)
            });
        }
        fan.changes = self.changes.as_mut();
        f(&mut store, &mut fan)
    }
}

#[pymethods]
impl PyInformerCore {
    #[new]
    #[pyo3(signature = (store, source = "", changes = false))]
    fn new(store: Py<PyStore>, source: &str, changes: bool) -> Self {
        PyInformerCore {
            store,
            source: source.to_string(),
            targets: Vec::new(),
            changes: changes.then(Vec::new),
            decoder: Decoder::default(),
        }
    }

    /// The store this core writes.
    #[getter]
    fn store(&self, py: Python<'_>) -> Py<PyStore> {
        self.store.clone_ref(py)
    }

    /// The watched resource's name as controllers show it (``ConfigMap``).
    #[getter]
    fn source(&self) -> &str {
        &self.source
    }

    /// Whether changes are buffered for ``take_changes``.
    #[getter]
    fn get_changes(&self) -> bool {
        self.changes.is_some()
    }

    /// Start (or stop, dropping what is buffered) buffering changes for Python handlers.
    #[setter]
    fn set_changes(&mut self, on: bool) {
        if on != self.changes.is_some() {
            self.changes = on.then(Vec::new);
        }
    }

    /// Feed ``queue`` from now on: each changed object's key, or with ``owner`` its
    /// controller owner's key (old and new owner of an update); with ``predicates``
    /// (bits of ``PREDICATE_*``) and ``check`` (``(key, old, new) -> bool`` on dicts) an
    /// update only if every predicate holds and ``check`` returns true. ValueError if
    /// ``queue`` is already a target or a bit names no predicate.
    #[pyo3(signature = (queue, owner = None, *, predicates = 0, check = None))]
    fn add_queue(
        &mut self,
        py: Python<'_>,
        queue: Py<PyWorkQueue>,
        owner: Option<Py<PyOwnerMapping>>,
        predicates: u8,
        check: Option<Py<PyAny>>,
    ) -> PyResult<()> {
        predicate_set(predicates)?;
        if self.targets.iter().any(|t| t.queue.is(&queue)) {
            return Err(PyValueError::new_err(
                "this queue is already fed by this informer",
            ));
        }
        let _ = py;
        self.targets.push(Target {
            queue,
            owner,
            predicates,
            check,
        });
        Ok(())
    }

    /// How many queues this core feeds.
    #[getter]
    fn queues(&self) -> usize {
        self.targets.len()
    }

    /// Start a new watch stream: its body is framed as ``head`` (the response head the
    /// transport parsed) says: chunked, ``content_length`` bytes, or (no head) lines
    /// until the connection closes. Drops anything buffered of the previous stream; the
    /// event counts and the resourceVersion stay.
    #[pyo3(signature = (head = None))]
    fn begin(&mut self, head: Option<PyRef<'_, PyResponseHead>>) -> PyResult<()> {
        self.decoder.reset(head_framing(head.as_deref())?);
        Ok(())
    }

    /// Apply the events the socket read ``data`` completes (``WatchDecoder.feed_into``'s
    /// rules, on the stream ``begin`` started) and fan each change out to every target
    /// in the same call. With ``initial`` (a streaming list), events up to the
    /// initial-events-end bookmark go into it; that bookmark returns at once, leaving
    /// the rest buffered (``feed(b"", ...)`` continues).
    #[pyo3(signature = (data, now, initial = None))]
    fn feed(
        &mut self,
        py: Python<'_>,
        data: &[u8],
        now: f64,
        mut initial: Option<PyRefMut<'_, PyListAccumulator>>,
    ) -> PyResult<PyFeedResult> {
        let initial = initial.as_deref_mut().map(|acc| &mut acc.inner);
        let mut decoder = std::mem::take(&mut self.decoder);
        let result = self.with_fan(py, now, |store, fan| {
            feed_decoder(py, &mut decoder, data, &mut store.inner, initial, fan)
        });
        self.decoder = decoder;
        result
    }

    /// ``feed`` for a stream that arrives encrypted: ``data`` is one socket read as it
    /// came (TLS records; ``b""`` when the socket closed), decrypted in ``session`` and
    /// the plaintext it completed applied, all in this call: the plaintext never
    /// reaches Python. Raises TlsSessionError when the session fails (a bad record, an
    /// alert), after nothing of that read was applied; DecodeError as ``feed`` does.
    /// Continue after an initial-events-end bookmark with ``feed(b"", ...)``.
    #[pyo3(signature = (session, data, now, initial = None))]
    fn feed_tls(
        &mut self,
        py: Python<'_>,
        session: &Bound<'_, PyTlsSession>,
        data: PyBuffer<u8>,
        now: f64,
        initial: Option<PyRefMut<'_, PyListAccumulator>>,
    ) -> PyResult<PyFeedResult> {
        let mut session = session.try_borrow_mut()?;
        let plain = guard(|| session.decrypt(buffer_bytes(&data, "feed_tls()")?))?;
        self.feed(py, plain, now, initial)
    }

    /// The current stream's body was read to its end (the last chunk and its trailers,
    /// or ``content_length`` bytes). Always False for a body read until EOF.
    #[getter]
    fn body_done(&self) -> bool {
        self.decoder.body_done()
    }

    /// Bytes of the current stream buffered and not yet decoded.
    #[getter]
    fn pending_bytes(&self) -> usize {
        self.decoder.pending()
    }

    /// The watch position: the resourceVersion of the last list, event or bookmark
    /// applied (None before the first).
    #[getter]
    fn resource_version(&self, py: Python<'_>) -> PyResult<Option<String>> {
        Ok(self
            .store
            .bind(py)
            .try_borrow()?
            .inner
            .resource_version
            .clone())
    }

    /// Watch events seen by this core since it was created, by type: ADDED, MODIFIED,
    /// DELETED, BOOKMARK, ERROR.
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        counts_dict(py, &self.decoder)
    }

    /// Replace the store's content with ``acc``'s objects (a relist; empties ``acc``) and
    /// fan it out as listed changes: adds, updates (against the version each replaced)
    /// and deletes with each vanished object's last state.
    fn relist(
        &mut self,
        py: Python<'_>,
        acc: &Bound<'_, PyListAccumulator>,
        resource_version: Option<String>,
        now: f64,
    ) -> PyResult<PyReplaceResult> {
        let items = acc.borrow_mut().inner.take();
        self.with_fan(py, now, |store, fan| {
            guard(|| {
                relist(&mut store.inner, items, resource_version, fan)
                    .map(PyReplaceResult::from)
                    .map_err(|e| store_error(py, e))
            })
        })
    }

    /// The changes buffered since the last call, in order (``Changes``: iterate it for
    /// ``(type, key, old, new, listed)`` tuples).
    fn take_changes(&mut self) -> PyChanges {
        let items = match self.changes.as_mut() {
            Some(c) => std::mem::take(c),
            None => Vec::new(),
        };
        PyChanges { items }
    }
}

/// One read's changes for Python consumers. Iterating gives, in order,
/// ``(type, key, old, new, listed)``: type ``ADDED``/``MODIFIED``/``DELETED``, the objects
/// as ``LazyObject`` (parsed when first read; ``old`` None for an add, ``new`` None for a
/// delete), ``listed`` for a change from a list. Each iteration makes its tuples as it
/// goes (fresh objects each time), so what a consumer does not keep is freed at once.
#[pyclass(frozen, module = "trio_controller._native", name = "Changes")]
pub struct PyChanges {
    items: Vec<Changed>,
}

#[pymethods]
impl PyChanges {
    fn __len__(&self) -> usize {
        self.items.len()
    }

    fn __iter__(slf: Bound<'_, Self>) -> PyChangesIter {
        PyChangesIter {
            batch: slf.unbind(),
            at: 0,
        }
    }

    fn __repr__(&self) -> String {
        format!("<Changes: {}>", self.items.len())
    }
}

/// An iteration over ``Changes``.
#[pyclass(module = "trio_controller._native", name = "ChangesIterator")]
pub struct PyChangesIter {
    batch: Py<PyChanges>,
    at: usize,
}

#[pymethods]
impl PyChangesIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let batch = self.batch.get();
        let Some(c) = batch.items.get(self.at) else {
            return Ok(None);
        };
        self.at += 1;
        let kind = match c.change {
            Change::Added => intern!(py, "ADDED"),
            Change::Updated => intern!(py, "MODIFIED"),
            Change::Deleted => intern!(py, "DELETED"),
        };
        let object = |b: &Option<Object>| -> PyResult<Bound<'py, PyAny>> {
            match b {
                Some(b) => Ok(Bound::new(py, PyLazyObject::new(b.clone()))?.into_any()),
                None => Ok(py.None().into_bound(py)),
            }
        };
        PyTuple::new(
            py,
            [
                kind.clone().into_any(),
                PyString::new(py, &c.key).into_any(),
                object(&c.old)?,
                object(&c.new)?,
                PyBool::new(py, c.listed).to_owned().into_any(),
            ],
        )
        .map(Some)
    }
}
