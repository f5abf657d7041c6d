//! `StoreReader`: what users of a cache get (kube-rs's `Store` beside its `Writer`): every
//! read of a `Store`, none of its writes; only the informer core writes.
use super::store::PyStore;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

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
