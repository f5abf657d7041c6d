//! `OwnerMapping`.
use super::errors::decode_error;
use super::guard;
use crate::owner::{self, OwnerMapping};
use pyo3::prelude::*;

/// Owned objects map to the key of their controller owner of one kind, as
/// controller-runtime's ``EnqueueRequestForOwner(..., OnlyControllerOwner())``.
///
/// An object maps to ``<its namespace>/<name>`` (just ``<name>`` when the owner is not
/// ``namespaced`` or the object is cluster-scoped) of its ``metadata.ownerReferences``
/// entry with ``controller: true`` whose ``apiVersion`` has the group of
/// ``api_version`` (any version) and whose ``kind`` is ``kind``; other owners are
/// ignored and an object without such an owner maps to nothing.
#[pyclass(frozen, module = "trio_controller._native", name = "OwnerMapping")]
pub struct PyOwnerMapping {
    pub inner: OwnerMapping,
}

#[pymethods]
impl PyOwnerMapping {
    #[new]
    #[pyo3(signature = (api_version, kind, namespaced = true))]
    fn new(api_version: &str, kind: &str, namespaced: bool) -> Self {
        PyOwnerMapping {
            inner: OwnerMapping::new(api_version, kind, namespaced),
        }
    }

    /// The primary's apiVersion (only its group is compared).
    #[getter]
    fn api_version(&self) -> &str {
        self.inner.api_version()
    }

    /// The primary's kind.
    #[getter]
    fn kind(&self) -> &str {
        self.inner.kind()
    }

    /// Whether the primary is namespaced (its key carries the owned object's namespace).
    #[getter]
    fn namespaced(&self) -> bool {
        self.inner.namespaced()
    }

    /// The owner key of one object's JSON bytes, or None if it has no such owner.
    ///
    /// Only the object's ``metadata`` is read. Raises ``DecodeError`` if it is malformed.
    fn owner_key(&self, py: Python<'_>, raw: &[u8]) -> PyResult<Option<String>> {
        guard(|| {
            self.inner
                .owner_key(raw)
                .map_err(|e| decode_error(py, e.to_string(), e.offset as u64, 1, Vec::new()))
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "OwnerMapping(api_version={:?}, kind={:?}, namespaced={})",
            self.inner.api_version(),
            self.inner.kind(),
            if self.inner.namespaced() {
                "True"
            } else {
                "False"
            }
        )
    }
}

/// The API group of ``api_version``: ``example.com/v1`` → ``example.com``; ``v1`` (the
/// core group) → ``""``.
#[pyfunction]
pub fn group_of(api_version: &str) -> &str {
    owner::group_of(api_version)
}
