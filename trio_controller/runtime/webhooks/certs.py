"""The webhook server's TLS certificate, read from a cert dir and re-read when it changes.

    watcher = CertWatcher("/tmp/k8s-webhook-server/serving-certs")   # tls.crt, tls.key
    context = watcher.load()            # an ssl.SSLContext, TLS 1.2 or newer
    nursery.start_soon(watcher.watch)   # polls the files; a new valid pair is loaded

cert-manager (and a Secret volume) replace the two files in place; controller-runtime's
certwatcher notices and serves the new pair to new connections. Here `watch` looks at
the files' identity (inode, size, mtime) every `interval` seconds; when it changed, both
files are read, checked on a scratch context, and only then loaded into the serving
context, so a half-written or invalid pair keeps the old certificate serving and logs one
error line (once per change of the files, not per poll).
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from pathlib import Path

import trio

from trio_controller import errors
from trio_controller.runtime.flags import DEFAULT_WEBHOOK_CERT_DIR

__all__ = ["CERT_NAME", "DEFAULT_CERT_DIR", "KEY_NAME", "CertWatcher"]

log = logging.getLogger(__name__)

CERT_NAME = "tls.crt"
KEY_NAME = "tls.key"
DEFAULT_CERT_DIR = DEFAULT_WEBHOOK_CERT_DIR  # controller-runtime's default
POLL_INTERVAL = 1.0

_Identity = tuple[tuple[int, int, int, int] | None, ...]


class CertWatcher:
    """`tls.crt`/`tls.key` in `cert_dir` as a server-side SSLContext kept up to date."""

    def __init__(
        self,
        cert_dir: str | os.PathLike[str] = DEFAULT_CERT_DIR,
        *,
        cert_name: str = CERT_NAME,
        key_name: str = KEY_NAME,
        interval: float = POLL_INTERVAL,
    ) -> None:
        self.cert_path = Path(cert_dir) / cert_name
        self.key_path = Path(cert_dir) / key_name
        self.interval = interval
        self.context: ssl.SSLContext | None = None
        self.reloads = 0  # new pairs loaded after the first
        self._seen: _Identity = ()

    def load(self) -> ssl.SSLContext:
        """The serving context with the current pair; `TrioControllerError` (one line) when
        the files are missing or not a matching certificate and key."""
        self._seen = self._identity()
        context = _server_context()
        try:
            _load_pair(context, self.cert_path.read_bytes(), self.key_path.read_bytes())
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise errors.TrioControllerError(
                f"cannot load the webhook serving certificate {self.cert_path} "
                f"and key {self.key_path}: {_why(exc)}"
            ) from None
        self.context = context
        return context

    def reload_if_changed(self) -> bool:
        """Load the pair into the serving context if the files changed since last seen;
        True when a new pair is serving. An unreadable or invalid pair logs one error."""
        identity = self._identity()
        if identity == self._seen:
            return False
        self._seen = identity
        if self.context is None:
            self.load()
            return True
        try:
            cert, key = self.cert_path.read_bytes(), self.key_path.read_bytes()
            _load_pair(_server_context(), cert, key)  # check first: a bad pair changes nothing
            _load_pair(self.context, cert, key)
        except (OSError, ssl.SSLError, ValueError) as exc:
            log.error(
                "Keeping the current webhook certificate: cannot load %s and %s: %s",
                self.cert_path,
                self.key_path,
                _why(exc),
            )
            return False
        self.reloads += 1
        log.info("Loaded a new webhook serving certificate from %s", self.cert_path)
        return True

    async def watch(self) -> None:
        """Poll the files every `interval` seconds until cancelled."""
        while True:
            await trio.sleep(self.interval)
            self.reload_if_changed()

    def _identity(self) -> _Identity:
        out = []
        for path in (self.cert_path, self.key_path):
            try:
                st = path.stat()
            except OSError:
                out.append(None)
            else:
                out.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(out)


def _server_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


def _load_pair(context: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """`load_cert_chain` from bytes already read (both from one moment), via private
    temporary files that are removed at once."""
    with tempfile.TemporaryDirectory(prefix="trio-controller-cert-") as scratch:
        cert_file, key_file = Path(scratch) / CERT_NAME, Path(scratch) / KEY_NAME
        cert_file.write_bytes(cert)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key)
        context.load_cert_chain(cert_file, key_file)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
        return f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else "")
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return str(exc)
