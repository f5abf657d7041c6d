"""TLS settings to an `ssl.SSLContext`: the CA (or the system's), client certificates.

The same context serves httpx requests and the owned watch transport. Each context built
here has a native twin (`native_config`): the same settings for the watch transport's
rustls sessions (`_native.TlsConfig`), used when `NATIVE_TLS` is on (the default; the
environment variable ``TRIO_CONTROLLER_NATIVE_TLS=0`` turns it off) and the settings name a
CA bundle or insecure-skip-tls-verify. Without a CA (the system's store) or with a key
rustls cannot use, the watch stays on Python's ssl.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
import weakref
from dataclasses import dataclass

from trio_controller._native import TlsConfig
from trio_controller.config.cluster import TLSConfig
from trio_controller.errors import KubeconfigError

__all__ = [
    "NATIVE_TLS",
    "build_ssl_context",
    "drop_native",
    "load_client_certificate",
    "native_config",
]

log = logging.getLogger(__name__)

_warned_insecure = False

NATIVE_TLS = os.environ.get("TRIO_CONTROLLER_NATIVE_TLS", "1") != "0"
"""Whether contexts built from now on get a native (rustls) twin for watches."""


@dataclass(frozen=True)
class _Twin:
    ca_pem: bytes | None
    insecure: bool
    config: TlsConfig


_twins: weakref.WeakKeyDictionary[ssl.SSLContext, _Twin] = weakref.WeakKeyDictionary()


def native_config(ctx: ssl.SSLContext) -> TlsConfig | None:
    """The rustls settings equivalent to `ctx` (built here), or None: use `ctx` itself."""
    twin = _twins.get(ctx)
    return twin.config if twin is not None else None


def drop_native(ctx: ssl.SSLContext) -> None:
    """Forget `ctx`'s native twin: its watches use `ctx` itself from now on."""
    _twins.pop(ctx, None)


def _set_twin(
    ctx: ssl.SSLContext,
    ca_pem: bytes | None,
    insecure: bool,
    cert_pem: bytes | None = None,
    key_pem: bytes | None = None,
) -> None:
    _twins.pop(ctx, None)
    if not NATIVE_TLS or (ca_pem is None and not insecure):
        return
    try:
        config = TlsConfig(ca_pem=ca_pem, cert_pem=cert_pem, key_pem=key_pem, insecure=insecure)
    except ValueError as exc:  # OpenSSL took it (checked first); rustls did not
        log.debug("watches use Python's ssl: %s", exc)
        return
    _twins[ctx] = _Twin(ca_pem, insecure, config)


def build_ssl_context(tls: TLSConfig) -> ssl.SSLContext:
    """An `ssl.SSLContext` for `tls`: its CA (or the system's), its client certificate."""
    global _warned_insecure
    if tls.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if not _warned_insecure:
            _warned_insecure = True
            log.warning("insecure-skip-tls-verify is set: the server's certificate is not verified")
    elif tls.ca_pem is not None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        _load_ca(ctx, tls.ca_pem, tls.ca_source or "certificate-authority")
    else:
        ctx = ssl.create_default_context()
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.cert_pem is not None and tls.key_pem is not None:
        load_client_certificate(
            ctx,
            tls.cert_pem,
            tls.key_pem,
            cert_source=tls.cert_source or "client-certificate",
            key_source=tls.key_source or "client-key",
        )
    _set_twin(ctx, tls.ca_pem, tls.insecure, tls.cert_pem, tls.key_pem)
    return ctx


def _load_ca(ctx: ssl.SSLContext, ca_pem: bytes, where: str) -> None:
    """Trust the PEM certificates `ca_pem`. OpenSSL reads them directly; only PEM it
    refuses goes through `cryptography` (imported then), for a readable error."""
    try:
        ctx.load_verify_locations(cadata=ca_pem.decode("ascii"))
        return
    except (ssl.SSLError, ValueError):
        pass  # look closer below
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        certs = x509.load_pem_x509_certificates(ca_pem)
    except ValueError:
        raise KubeconfigError(f"{where}: not a PEM certificate") from None
    cadata = "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)
    try:
        ctx.load_verify_locations(cadata=cadata)
    except ssl.SSLError as exc:
        raise KubeconfigError(f"{where}: unusable certificate ({exc.reason})") from None


def load_client_certificate(
    ctx: ssl.SSLContext,
    cert_pem: bytes,
    key_pem: bytes,
    *,
    cert_source: str = "client-certificate",
    key_source: str = "client-key",
) -> None:
    """Load a PEM certificate (chain) and key (RSA, EC, Ed25519) into `ctx`.

    The pair is handed to OpenSSL through an in-memory file (or a private temporary file)
    and never logged. An encrypted key, or a pair OpenSSL refuses, is checked with
    `cryptography` (imported only then) so the error says what is wrong. The context's
    native twin, if it has one, presents the same pair from now on.
    """
    _load_client_certificate(ctx, cert_pem, key_pem, cert_source, key_source)
    twin = _twins.get(ctx)
    if twin is not None:
        _set_twin(ctx, twin.ca_pem, twin.insecure, cert_pem, key_pem)


def _load_client_certificate(
    ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes, cert_source: str, key_source: str
) -> None:
    if b"ENCRYPTED" not in key_pem:  # OpenSSL would ask a terminal for the passphrase
        try:
            _load_cert_chain(ctx, cert_pem, key_pem)
            return
        except ssl.SSLError:
            pass  # look closer below
    from cryptography import x509
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization

    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    except ValueError:
        raise KubeconfigError(f"{cert_source}: not a PEM certificate") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise KubeconfigError(f"{key_source}: the key is encrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise KubeconfigError(f"{key_source}: not a PEM private key") from None
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if leaf.public_key().public_bytes(*spki) != key.public_key().public_bytes(*spki):
        raise KubeconfigError(
            f"{cert_source} and {key_source} do not match (the key is not the certificate's)"
        )
    try:
        _load_cert_chain(ctx, cert_pem, key_pem)
    except ssl.SSLError as exc:
        raise KubeconfigError(
            f"{cert_source}: unusable certificate or key ({exc.reason})"
        ) from None


def _load_cert_chain(ctx: ssl.SSLContext, cert_pem: bytes, key_pem: bytes) -> None:
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is not None and os.path.isdir("/proc/self/fd"):
        fds = []
        try:
            paths = []
            for data in (cert_pem, key_pem):
                fd = memfd_create("trio-controller-tls", getattr(os, "MFD_CLOEXEC", 0))
                fds.append(fd)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
                paths.append(f"/proc/self/fd/{fd}")
            ctx.load_cert_chain(paths[0], paths[1])
        finally:
            for fd in fds:
                os.close(fd)
        return
    with tempfile.TemporaryDirectory(prefix="trio-controller-tls-") as tmp:
        cert_path = os.path.join(tmp, "cert.pem")
        key_path = os.path.join(tmp, "key.pem")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert_path, key_path)
