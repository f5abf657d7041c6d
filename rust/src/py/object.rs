//! `LazyObject`: one object of a change handed to Python event handlers, its JSON parsed
//! into a dict (orjson) only when a handler first reads it.
use super::convert::{loads, store_error};
use crate::informer::Object;
use crate::json::member_span;
use pyo3::basic::CompareOp;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::Arc;

/// An object's JSON bytes that read as the dict they encode (a mutable mapping),
/// parsed (orjson) only as far as they are read: ``obj[key]`` and ``obj.get(key)``
/// parse that top-level member alone (``obj["metadata"]`` is a third of a pod); any
/// other read (``in``, ``len``, iteration, ``==``, ``keys``, ``items``, ``values``,
/// ``copy``, ``pop``, ``setdefault``, ``update``, assignment) parses the whole object
/// once, keeping the members read before. A handler that never reads it never pays for
/// a parse. ``dict()`` gives the whole dict itself (for ``json.dumps`` and
/// ``isinstance(.., dict)``); ``raw`` the bytes. Each change gets objects of its own:
/// writing to one changes neither the cache nor another handler's view.
#[pyclass(module = "trio_controller._native", name = "LazyObject", mapping)]
pub struct PyLazyObject {
    /// Shared with the change batch it came from (and its other iterations); a
    /// compressed store entry until something reads it.
    object: Object,
    /// The whole object, once something needed all of it.
    parsed: Option<Py<PyDict>>,
    /// Top-level members read by key before that (each parsed alone), by name.
    members: Option<Py<PyDict>>,
}

impl PyLazyObject {
    pub fn new(object: Object) -> Self {
        PyLazyObject {
            object,
            parsed: None,
            members: None,
        }
    }

    /// The object's JSON bytes, decompressed (once) if it is still a compressed entry.
    fn bytes(&mut self, py: Python<'_>) -> PyResult<Arc<[u8]>> {
        if let Object::Entry(entry) = &self.object {
            let raw = entry.raw().map_err(|e| store_error(py, e))?;
            self.object = Object::Bytes(Arc::from(&*raw));
        }
        match &self.object {
            Object::Bytes(b) => Ok(b.clone()),
            Object::Entry(_) => Err(pyo3::exceptions::PyRuntimeError::new_err(
                "a LazyObject's entry was not decompressed",
            )),
        }
    }

    /// The whole object as a dict, parsed once; members read before keep their identity.
    fn parse<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        if let Some(d) = &self.parsed {
            return Ok(d.bind(py).clone());
        }
        let d = loads(py, &self.bytes(py)?)?.cast_into::<PyDict>()?;
        if let Some(members) = self.members.take() {
            d.update(members.bind(py).as_mapping())?;
        }
        self.parsed = Some(d.clone().unbind());
        Ok(d)
    }

    /// The top-level member `key`, or None: a string key before the whole object was
    /// parsed is found in the bytes and only its value parsed (`obj["metadata"]` reads
    /// a third of a pod).
    fn member<'py>(
        &mut self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let name = match (&self.parsed, key.cast::<pyo3::types::PyString>()) {
            (None, Ok(name)) => name,
            _ => return self.parse(py)?.get_item(key),
        };
        if let Some(members) = &self.members {
            if let Some(v) = members.bind(py).get_item(name)? {
                return Ok(Some(v));
            }
        }
        let raw = self.bytes(py)?;
        let span = match member_span(&raw, name.to_str()?) {
            Ok(Some(span)) => span,
            Ok(None) => return Ok(None),
            Err(_) => return self.parse(py)?.get_item(key), // orjson says what is wrong
        };
        let value = loads(py, &raw[span])?;
        let members = self.members.get_or_insert_with(|| PyDict::new(py).unbind());
        members.bind(py).set_item(name, &value)?;
        Ok(Some(value))
    }
}

#[pymethods]
impl PyLazyObject {
    #[new]
    fn py_new(raw: &[u8]) -> Self {
        PyLazyObject::new(Object::Bytes(raw.into()))
    }

    /// The parsed object (parsed now if it was not yet); the same dict on every call.
    fn dict<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.parse(py)
    }

    /// The object's JSON bytes as the cache holds them.
    #[getter]
    fn raw<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, &self.bytes(py)?))
    }

    /// Whether any of it was parsed (read) already.
    #[getter]
    fn parsed(&self) -> bool {
        self.parsed.is_some() || self.members.is_some()
    }

    fn __getitem__<'py>(
        &mut self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        match self.member(py, key)? {
            Some(v) => Ok(v),
            None => Err(pyo3::exceptions::PyKeyError::new_err(key.clone().unbind())),
        }
    }

    fn __setitem__(
        &mut self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        self.parse(py)?.set_item(key, value)
    }

    fn __delitem__(&mut self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<()> {
        self.parse(py)?.as_any().del_item(key)
    }

    fn __contains__(&mut self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<bool> {
        self.parse(py)?.contains(key)
    }

    fn __len__(&mut self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.parse(py)?.len())
    }

    fn __iter__<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(self.parse(py)?.as_any().try_iter()?.into_any())
    }

    /// ``dict.get`` on the parsed object.
    #[pyo3(signature = (key, default = None))]
    fn get<'py>(
        &mut self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match self.member(py, key)? {
            Some(v) => v,
            None => default.unwrap_or_else(|| py.None().into_bound(py)),
        })
    }

    /// ``dict.keys`` of the parsed object.
    fn keys<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.parse(py)?.call_method0("keys")
    }

    /// ``dict.values`` of the parsed object.
    fn values<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.parse(py)?.call_method0("values")
    }

    /// ``dict.items`` of the parsed object.
    fn items<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.parse(py)?.call_method0("items")
    }

    /// A shallow copy of the parsed object, as a dict.
    fn copy<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.parse(py)?.copy()
    }

    /// ``dict.pop`` on the parsed object.
    #[pyo3(signature = (key, *default))]
    fn pop<'py>(
        &mut self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: &Bound<'py, pyo3::types::PyTuple>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let d = self.parse(py)?;
        let mut args = vec![key.clone()];
        args.extend(default.iter());
        d.call_method1("pop", pyo3::types::PyTuple::new(py, args)?)
    }

    /// ``dict.setdefault`` on the parsed object.
    #[pyo3(signature = (key, default = None))]
    fn setdefault<'py>(
        &mut self,
        py: Python<'py>,
        key: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let default = default.unwrap_or_else(|| py.None().into_bound(py));
        self.parse(py)?.call_method1("setdefault", (key, default))
    }

    /// ``dict.update`` on the parsed object.
    #[pyo3(signature = (*args, **kwargs))]
    fn update(
        &mut self,
        py: Python<'_>,
        args: &Bound<'_, pyo3::types::PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<()> {
        self.parse(py)?.call_method("update", args, kwargs)?;
        Ok(())
    }

    fn __richcmp__<'py>(
        &mut self,
        py: Python<'py>,
        other: &Bound<'py, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let mine = self.parse(py)?;
        let other = match other.cast::<PyLazyObject>() {
            // Borrowed already: it is this object.
            Ok(o) => match o.try_borrow_mut() {
                Ok(mut o) => o.parse(py)?.into_any(),
                Err(_) => mine.clone().into_any(),
            },
            Err(_) => other.clone(),
        };
        match op {
            CompareOp::Eq | CompareOp::Ne => Ok(mine.as_any().rich_compare(other, op)?.unbind()),
            _ => Ok(py.NotImplemented()),
        }
    }

    fn __hash__(&self) -> PyResult<isize> {
        Err(pyo3::exceptions::PyTypeError::new_err(
            "unhashable type: 'LazyObject'",
        ))
    }

    fn __copy__<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        self.parse(py)?.copy()
    }

    fn __deepcopy__<'py>(
        &mut self,
        py: Python<'py>,
        memo: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let d = self.parse(py)?;
        py.import("copy")?.getattr("deepcopy")?.call1((d, memo))
    }

    fn __repr__(&mut self, py: Python<'_>) -> PyResult<String> {
        Ok(self.parse(py)?.repr()?.to_string())
    }
}
