//! `Store` and its read-only view `StoreReader`, `ReplaceResult`, `ListAccumulator`,
//! `PageInfo`.
use super::convert::{loads, plain_schema, predicate_set, python_check, repr, store_error};
use super::errors::decode_error;
use super::guard;
use super::owner::PyOwnerMapping;
use super::queue::PyWorkQueue;
use crate::informer::{relist, Check, Fanout, QueueTarget};
use crate::store::{Key, ListAccumulator, ReplaceResult, Store};
use crate::watch::page::decode_page;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

/// List pages at least this big are decoded with the GIL released.
const DETACH_BYTES: usize = 1 << 20;

/// Objects as JSON bytes keyed by ``namespace/name`` (or ``name``), with indexes.
///
/// The namespace index is built in under the name ``"namespace"`` (cluster-scoped
/// objects are indexed under ``""``).
///
/// With ``strip_managed_fields``, ``metadata.managedFields`` is dropped at insert.
///
/// With ``compress``, objects are kept LZ4-compressed (when that makes them smaller)
/// against a shared dictionary (the first objects compressed, up to 16 KiB, then
/// frozen; ``replace`` adopts the list's) and decompressed by ``get``, ``get_raw``,
/// ``snapshot`` and tombstones; the metadata accessors, indexes and keys never
/// decompress.
#[pyclass(module = "trio_controller._native", name = "Store")]
pub struct PyStore {
    pub inner: Store,
}

/// What ``Store.replace`` (a relist) changed. The key lists are built when read; the
/// counts cost nothing.
#[pyclass(frozen, module = "trio_controller._native", name = "ReplaceResult")]
pub struct PyReplaceResult {
    added: Vec<Key>,
    updated: Vec<Key>,
    deleted: Vec<(Key, Box<[u8]>)>,
}

impl From<ReplaceResult> for PyReplaceResult {
    fn from(r: ReplaceResult) -> Self {
        PyReplaceResult {
            added: r.added,
            updated: r.updated,
            deleted: r.deleted,
        }
    }
}

fn strings(keys: &[Key]) -> Vec<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

#[pymethods]
impl PyReplaceResult {
    /// Keys that were not in the store.
    #[getter]
    fn added(&self) -> Vec<String> {
        strings(&self.added)
    }

    /// Keys that were in the store and are in the new list.
    #[getter]
    fn updated(&self) -> Vec<String> {
        strings(&self.updated)
    }

    /// Keys that vanished (tombstones the controller must still handle).
    #[getter]
    fn deleted(&self) -> Vec<String> {
        self.deleted.iter().map(|(k, _)| k.to_string()).collect()
    }

    /// The last known object bytes of each deleted key.
    #[getter]
    fn tombstones<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        for (k, raw) in &self.deleted {
            d.set_item(&**k, PyBytes::new(py, raw))?;
        }
        Ok(d)
    }

    /// How many keys were added, updated and deleted (no list built).
    #[getter]
    fn counts(&self) -> (usize, usize, usize) {
        (self.added.len(), self.updated.len(), self.deleted.len())
    }

    fn __repr__(&self) -> String {
        format!(
            "ReplaceResult(added={}, updated={}, deleted={})",
            self.added.len(),
            self.updated.len(),
            self.deleted.len()
        )
    }
}

#[pymethods]
impl PyStore {
    #[new]
    #[pyo3(signature = (strip_managed_fields = true, compress = false))]
    fn new(strip_managed_fields: bool, compress: bool) -> Self {
        PyStore {
            inner: Store::with_options(strip_managed_fields, compress),
        }
    }

    /// Index objects by a dotted field path (``"spec.nodeName"``) or a label
    /// (``"label:app"``); objects already held are indexed at once.
    ///
    /// A string value gives one index value, an array of strings one per item, a number
    /// or boolean its JSON text; null, objects and missing fields give none.
    fn add_index(&mut self, py: Python<'_>, name: &str, path: &str) -> PyResult<()> {
        guard(|| {
            self.inner
                .add_index(name, path)
                .map_err(|e| store_error(py, e))
        })
    }

    /// The last resourceVersion applied (event, bookmark or list).
    #[getter]
    fn get_resource_version(&self) -> Option<String> {
        self.inner.resource_version.clone()
    }

    #[setter]
    fn set_resource_version(&mut self, value: Option<String>) {
        self.inner.resource_version = value;
    }

    /// Whether ``metadata.managedFields`` is dropped at insert.
    #[getter]
    fn strip_managed_fields(&self) -> bool {
        self.inner.strip_managed_fields()
    }

    /// Whether objects are kept compressed.
    #[getter]
    fn compress(&self) -> bool {
        self.inner.compress()
    }

    /// The object as a dict (parsed by orjson on each call), or None.
    pub(crate) fn get<'py>(
        &self,
        py: Python<'py>,
        key: &str,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        match self.inner.get(key) {
            Some(e) => loads(py, &e.raw().map_err(|e| store_error(py, e))?).map(Some),
            None => Ok(None),
        }
    }

    /// The object's JSON bytes, or None.
    pub(crate) fn get_raw<'py>(
        &self,
        py: Python<'py>,
        key: &str,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        match self.inner.get(key) {
            Some(e) => {
                let raw = e.raw().map_err(|e| store_error(py, e))?;
                Ok(Some(PyBytes::new(py, &raw)))
            }
            None => Ok(None),
        }
    }

    /// The object's ``metadata.name``, or None if ``key`` is not held.
    pub(crate) fn name(&self, key: &str) -> Option<String> {
        self.inner.get(key).map(|e| e.name(key).to_string())
    }

    /// The object's ``metadata.namespace``, or None (not held, or cluster-scoped).
    pub(crate) fn namespace(&self, key: &str) -> Option<String> {
        self.inner
            .get(key)
            .and_then(|e| e.namespace(key).map(str::to_string))
    }

    /// The object's ``metadata.uid``, or None.
    pub(crate) fn uid(&self, key: &str) -> Option<String> {
        self.inner
            .get(key)
            .and_then(|e| e.uid().map(str::to_string))
    }

    /// The object's ``metadata.resourceVersion``, or None.
    pub(crate) fn object_resource_version(&self, key: &str) -> Option<String> {
        self.inner
            .get(key)
            .and_then(|e| e.resource_version().map(str::to_string))
    }

    /// The object's labels, or None if ``key`` is not held.
    pub(crate) fn labels<'py>(
        &self,
        py: Python<'py>,
        key: &str,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(e) = self.inner.get(key) else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        for (k, v) in e.labels() {
            d.set_item(k, v)?;
        }
        Ok(Some(d))
    }

    /// Whether the object has a deletionTimestamp, or None if ``key`` is not held.
    pub(crate) fn deleting(&self, key: &str) -> Option<bool> {
        self.inner.get(key).map(|e| e.deleting())
    }

    /// Every key, in no particular order.
    pub(crate) fn list_keys(&self) -> Vec<String> {
        self.inner.list_keys().map(|k| k.to_string()).collect()
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    fn __contains__(&self, key: &str) -> bool {
        self.inner.contains(key)
    }

    /// Keys whose index ``name`` holds ``value``, sorted. ValueError: no such index.
    pub(crate) fn by_index(&self, name: &str, value: &str) -> PyResult<Vec<String>> {
        self.inner
            .by_index(name, value)
            .map(|keys| keys.iter().map(|k| k.to_string()).collect())
            .ok_or_else(|| PyValueError::new_err(format!("no index named {name:?}")))
    }

    /// The values index ``name`` holds (no empty sets), sorted.
    pub(crate) fn index_values(&self, name: &str) -> PyResult<Vec<String>> {
        self.inner
            .index_values(name)
            .ok_or_else(|| PyValueError::new_err(format!("no index named {name:?}")))
    }

    /// Insert or replace one object (JSON bytes); returns its key.
    ///
    /// Raises ``DecodeError`` for malformed JSON or an object without metadata.name.
    fn upsert(&mut self, py: Python<'_>, raw: &[u8]) -> PyResult<String> {
        guard(|| {
            self.inner
                .upsert(raw)
                .map(|k| k.to_string())
                .map_err(|e| store_error(py, e))
        })
    }

    /// Remove ``key``; returns whether it was held.
    fn delete(&mut self, key: &str) -> bool {
        self.inner.delete(key).is_some()
    }

    /// Replace the whole content with ``acc``'s objects (a relist); empties ``acc``.
    ///
    /// Later objects win over earlier ones with the same key. With ``queue``, the keys
    /// of the added, updated and deleted objects are added to it at ``now`` (in Rust);
    /// with ``owner`` too, their controller owners' keys instead.
    ///
    /// ``predicates``, ``check`` and ``source`` as for ``WatchDecoder.feed_into``: an
    /// object the relist found again is an update, enqueued only if it passes them
    /// (``ReplaceResult.updated`` still lists it).
    #[pyo3(signature = (acc, resource_version, queue = None, now = 0.0, owner = None, *, predicates = 0, check = None, source = ""))]
    #[allow(clippy::too_many_arguments)]
    fn replace(
        &mut self,
        py: Python<'_>,
        acc: &Bound<'_, PyListAccumulator>,
        resource_version: Option<String>,
        mut queue: Option<PyRefMut<'_, PyWorkQueue>>,
        now: f64,
        owner: Option<Bound<'_, PyOwnerMapping>>,
        predicates: u8,
        check: Option<Bound<'_, PyAny>>,
        source: &str,
    ) -> PyResult<PyReplaceResult> {
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
        let items = acc.borrow_mut().inner.take();
        let inner = &mut self.inner;
        guard(|| {
            relist(inner, items, resource_version, &mut fan)
                .map(PyReplaceResult::from)
                .map_err(|e| store_error(py, e))
        })
    }

    /// A read-only view of this store (``StoreReader``), for its users.
    fn reader(slf: Py<Self>) -> PyStoreReader {
        PyStoreReader::new(slf)
    }

    /// Every object and the resource version, for ``restore``.
    pub(crate) fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let data = self.inner.snapshot().map_err(|e| store_error(py, e))?;
        Ok(PyBytes::new(py, &data))
    }

    /// Replace the content with a ``snapshot()``; returns how many objects it held.
    ///
    /// Raises ``ValueError`` (nothing changes) if ``data`` is not a valid snapshot.
    fn restore(&mut self, py: Python<'_>, data: &[u8]) -> PyResult<usize> {
        guard(|| self.inner.restore(data).map_err(|e| store_error(py, e)))
    }
}

/// Collects list pages (or a streaming list's initial events) in Rust.
///
/// With ``strip_managed_fields``, each object loses ``metadata.managedFields`` as
/// it is collected; with ``compress`` it is compressed as it is collected. Pass the
/// destination ``Store``'s settings, so a big list never holds the full objects and
/// ``Store.replace`` moves the bytes without a copy (it strips and compresses what
/// the accumulator did not, at the cost of a copy). A compressing accumulator learns
/// its dictionary from the first objects it collects (or starts with the store's
/// when ``WatchDecoder.feed_into`` fills it) and keeps it across ``replace``.
#[pyclass(module = "trio_controller._native", name = "ListAccumulator")]
#[derive(Default)]
pub struct PyListAccumulator {
    pub inner: ListAccumulator,
}

/// One list page's metadata.
#[pyclass(frozen, get_all, module = "trio_controller._native")]
pub struct PageInfo {
    /// The list's resourceVersion.
    resource_version: Option<String>,
    /// None when the list is complete (an empty token).
    continue_token: Option<String>,
    /// ``metadata.remainingItemCount``, if the server sent it.
    remaining_item_count: Option<i64>,
    /// How many items this page held.
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
            inner: ListAccumulator::with_options(strip_managed_fields, compress),
        }
    }

    /// Whether collected objects lose ``metadata.managedFields``.
    #[getter]
    fn strip_managed_fields(&self) -> bool {
        self.inner.strip_managed_fields
    }

    /// Whether collected objects are compressed.
    #[getter]
    fn compress(&self) -> bool {
        self.inner.compress
    }

    /// Decode one list response body and keep its items.
    ///
    /// Raises ``DecodeError`` (and keeps nothing of this page) if it is malformed.
    /// A body of 1 MiB or more is decoded with the GIL released, so
    /// ``await trio.to_thread.run_sync(acc.feed_page, body)`` runs it beside the loop.
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
            self.inner
                .feed_page(body, page.items)
                .map_err(|e| store_error(py, e))?;
            Ok(PageInfo {
                resource_version: page.resource_version,
                continue_token: page.continue_token,
                remaining_item_count: page.remaining_item_count,
                items: n,
            })
        })
    }

    /// Drop the collected items (and free their memory).
    fn clear(&mut self) {
        self.inner.items = Vec::new();
    }

    fn __len__(&self) -> usize {
        self.inner.items.len()
    }
}

/// A read-only view of a ``Store``: what ``Informer.store`` and ``Controller.store``
/// give. It has every read of the store it views and always shows its current content;
/// ``upsert``, ``delete``, ``replace``, ``restore``, ``add_index`` and setting
/// ``resource_version`` are not there: the informer that owns the store is its only
/// writer.
#[pyclass(frozen, module = "trio_controller._native", name = "StoreReader")]
pub struct PyStoreReader {
    store: Py<PyStore>,
}

impl PyStoreReader {
    pub fn new(store: Py<PyStore>) -> Self {
        PyStoreReader { store }
    }

    fn with<T>(&self, py: Python<'_>, f: impl FnOnce(&PyStore) -> T) -> T {
        f(&self.store.bind(py).borrow())
    }
}

#[pymethods]
impl PyStoreReader {
    /// The last resourceVersion applied (event, bookmark or list).
    #[getter]
    fn resource_version(&self, py: Python<'_>) -> Option<String> {
        self.with(py, |s| s.inner.resource_version.clone())
    }

    /// Whether ``metadata.managedFields`` is dropped at insert.
    #[getter]
    fn strip_managed_fields(&self, py: Python<'_>) -> bool {
        self.with(py, |s| s.inner.strip_managed_fields())
    }

    /// Whether objects are kept compressed.
    #[getter]
    fn compress(&self, py: Python<'_>) -> bool {
        self.with(py, |s| s.inner.compress())
    }

    /// The object as a dict (parsed by orjson on each call), or None.
    fn get<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.with(py, |s| s.get(py, key))
    }

    /// The object's JSON bytes, or None.
    fn get_raw<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyBytes>>> {
        self.with(py, |s| s.get_raw(py, key))
    }

    /// The object's ``metadata.name``, or None if ``key`` is not held.
    fn name(&self, py: Python<'_>, key: &str) -> Option<String> {
        self.with(py, |s| s.name(key))
    }

    /// The object's ``metadata.namespace``, or None (not held, or cluster-scoped).
    fn namespace(&self, py: Python<'_>, key: &str) -> Option<String> {
        self.with(py, |s| s.namespace(key))
    }

    /// The object's ``metadata.uid``, or None.
    fn uid(&self, py: Python<'_>, key: &str) -> Option<String> {
        self.with(py, |s| s.uid(key))
    }

    /// The object's ``metadata.resourceVersion``, or None.
    fn object_resource_version(&self, py: Python<'_>, key: &str) -> Option<String> {
        self.with(py, |s| s.object_resource_version(key))
    }

    /// The object's labels, or None if ``key`` is not held.
    fn labels<'py>(&self, py: Python<'py>, key: &str) -> PyResult<Option<Bound<'py, PyDict>>> {
        self.with(py, |s| s.labels(py, key))
    }

    /// Whether the object has a deletionTimestamp, or None if ``key`` is not held.
    fn deleting(&self, py: Python<'_>, key: &str) -> Option<bool> {
        self.with(py, |s| s.deleting(key))
    }

    /// Every key, in no particular order.
    fn list_keys(&self, py: Python<'_>) -> Vec<String> {
        self.with(py, |s| s.list_keys())
    }

    fn __len__(&self, py: Python<'_>) -> usize {
        self.with(py, |s| s.inner.len())
    }

    fn __contains__(&self, py: Python<'_>, key: &str) -> bool {
        self.with(py, |s| s.inner.contains(key))
    }

    /// Keys whose index ``name`` holds ``value``, sorted. ValueError: no such index.
    fn by_index(&self, py: Python<'_>, name: &str, value: &str) -> PyResult<Vec<String>> {
        self.with(py, |s| s.by_index(name, value))
    }

    /// The values index ``name`` holds (no empty sets), sorted.
    fn index_values(&self, py: Python<'_>, name: &str) -> PyResult<Vec<String>> {
        self.with(py, |s| s.index_values(name))
    }

    /// Every object and the resource version (for ``--cache-snapshot``).
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        self.with(py, |s| s.snapshot(py))
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        self.with(py, |s| format!("StoreReader({} objects)", s.inner.len()))
    }
}
