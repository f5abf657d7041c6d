//! `TlsConfig` / `TlsSession`: thin wrappers over `crate::tls`.
use pyo3::buffer::PyBuffer;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use super::guard;
use crate::tls::{self, TlsSession};

create_exception!(
    trio_controller._native,
    TlsSessionError,
    PyException,
    concat!(
        "A TLS session failed. ``verification`` is True when the server's certificate was\n",
        "refused (the message is OpenSSL's verify message for the same case), False for any\n",
        "other handshake or record-layer failure (the message is OpenSSL's reason)."
    )
);

fn to_py(err: tls::TlsSessionError) -> PyErr {
    let verification = matches!(err, tls::TlsSessionError::Verification(_));
    Python::attach(|py| {
        let e = TlsSessionError::new_err(err.message().to_owned());
        if let Err(set) = e.value(py).setattr("verification", verification) {
            return set;
        }
        e
    })
}

/// The bytes of a buffer (``bytes``, ``bytearray``, a ``memoryview`` of a socket
/// read) without copying; ValueError (naming `what`) for one that is not contiguous.
pub(crate) fn buffer_bytes<'a>(data: &'a PyBuffer<u8>, what: &str) -> PyResult<&'a [u8]> {
    if !data.is_c_contiguous() {
        return Err(PyValueError::new_err(format!(
            "{what} needs a contiguous buffer"
        )));
    }
    // SAFETY: a C-contiguous buffer of `len_bytes()` bytes, exported to `data` for as
    // long as the slice borrows it; the GIL stays held (no `allow_threads`) meanwhile,
    // so no Python code can resize or free it.
    Ok(unsafe { std::slice::from_raw_parts(data.buf_ptr() as *const u8, data.len_bytes()) })
}

/// TLS client settings for watches (rustls, ring): the PEM CA bundle to trust, a
/// PEM client certificate chain and its unencrypted key (PKCS#8, PKCS#1 RSA, SEC1 EC),
/// or ``insecure`` (no verification). Sessions offer ALPN ``http/1.1`` only.
///
/// Raises ValueError (one line) for PEM it cannot use.
#[pyclass(name = "TlsConfig", module = "trio_controller._native", frozen)]
pub struct PyTlsConfig {
    inner: tls::TlsConfig,
}

#[pymethods]
impl PyTlsConfig {
    #[new]
    #[pyo3(signature = (*, ca_pem=None, cert_pem=None, key_pem=None, insecure=false))]
    fn new(
        ca_pem: Option<&[u8]>,
        cert_pem: Option<&[u8]>,
        key_pem: Option<&[u8]>,
        insecure: bool,
    ) -> PyResult<Self> {
        guard(|| {
            let client = match (cert_pem, key_pem) {
                (Some(c), Some(k)) => Some((c, k)),
                _ => None,
            };
            tls::TlsConfig::new(ca_pem, client, insecure)
                .map(|inner| PyTlsConfig { inner })
                .map_err(PyValueError::new_err)
        })
    }

    /// A new session to ``server_name`` (a DNS name: SNI and the name to verify; an
    /// IP address: matched against IP SANs, no SNI). ``now`` is wall-clock seconds since
    /// the Unix epoch (``time.time()``; certificate validity needs the calendar, not
    /// Trio's clock). Raises TlsSessionError for a name that is neither.
    fn session(&self, server_name: &str, now: f64) -> PyResult<PyTlsSession> {
        guard(|| {
            self.inner
                .session(server_name, now)
                .map(|inner| PyTlsSession {
                    inner,
                    plain: Vec::new(),
                })
                .map_err(to_py)
        })
    }
}

/// One TLS client connection over buffers: send ``take_output()``, feed every
/// socket read to ``receive``. Not thread-safe.
#[pyclass(name = "TlsSession", module = "trio_controller._native", unsendable)]
pub struct PyTlsSession {
    inner: TlsSession,
    plain: Vec<u8>,
}

impl PyTlsSession {
    /// The plaintext `input` (one socket read) completed, in a buffer reused from call
    /// to call: `InformerCore.feed_tls` decodes this slice in the same FFI call, so the
    /// plaintext never reaches Python.
    pub(crate) fn decrypt(&mut self, input: &[u8]) -> PyResult<&[u8]> {
        self.plain.clear();
        self.inner.receive(input, &mut self.plain).map_err(to_py)?;
        Ok(&self.plain)
    }
}

#[pymethods]
impl PyTlsSession {
    /// Feed the bytes of one socket read (``b""`` when the peer closed the socket);
    /// the plaintext the records in them completed, ``b""`` if none (a record torn
    /// across reads waits inside). Raises TlsSessionError, then again on every later
    /// call.
    fn receive<'py>(
        &mut self,
        py: Python<'py>,
        data: PyBuffer<u8>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| {
            let input = buffer_bytes(&data, "receive()")?;
            Ok(PyBytes::new(py, self.decrypt(input)?))
        })
    }

    /// Queue plaintext ``data`` to send; ``take_output()`` hands out its records.
    fn write(&mut self, data: &[u8]) -> PyResult<()> {
        guard(|| self.inner.write(data).map_err(to_py))
    }

    /// The bytes to write to the socket now (handshake, alerts, encrypted data).
    fn take_output<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        guard(|| Ok(PyBytes::new(py, &self.inner.take_output())))
    }

    /// True when records wait to be sent (``take_output()``): after the handshake, only
    /// answers to the server's TLS 1.3 key updates.
    #[getter]
    fn wants_write(&self) -> bool {
        self.inner.wants_write()
    }

    /// True until the handshake completed.
    #[getter]
    fn handshaking(&self) -> bool {
        self.inner.is_handshaking()
    }

    /// True once the stream ended (close_notify, or the peer closed the socket).
    #[getter]
    fn eof(&self) -> bool {
        self.inner.eof()
    }

    /// The protocol the server chose by ALPN (``"http/1.1"``), or None.
    #[getter]
    fn alpn_protocol(&self) -> Option<String> {
        self.inner
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// The negotiated cipher suite (``"TLS13_AES_256_GCM_SHA384"``), None before the
    /// handshake.
    #[getter]
    fn cipher(&self) -> Option<String> {
        self.inner.cipher()
    }
}

/// Adds the TLS classes and their exception to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("TlsSessionError", m.py().get_type::<TlsSessionError>())?;
    m.add_class::<PyTlsConfig>()?;
    m.add_class::<PyTlsSession>()?;
    Ok(())
}
