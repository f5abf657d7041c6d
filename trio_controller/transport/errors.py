"""The one place where httpx, ssl, socket and Trio errors become trio-controller errors.

`map_exceptions(server)` wraps every exchange with the apiserver; the exception it raises
names the root cause in one line (TLS verification, refused, unresolvable host, proxy,
timeout, dropped connection). HTTP error statuses are mapped by `errors.from_response`.
"""

from __future__ import annotations

import socket
import ssl
import sys
import urllib.parse
from collections.abc import Iterator
from types import TracebackType

import trio

from trio_controller.errors import (
    ConnectionFailed,
    ConnectionLost,
    Timeout,
    TLSError,
    TransportError,
    TrioControllerError,
)

__all__ = ["map_exceptions", "transport_error"]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, its causes and contexts, and the members of exception groups among them."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)
        cause = current.__cause__ or current.__context__
        if cause is not None:
            todo.append(cause)


def transport_error(exc: BaseException, server: str) -> TransportError:
    """Name the root cause of a failed exchange with `server` in one line."""
    # httpx is imported on a client's first ordinary request (transport/client.py): until
    # then no httpx exception can exist, and watches alone never import it.
    httpx = sys.modules.get("httpx")
    for cause in _chain(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or cause.reason or "certificate verify failed"
            return TLSError(f"TLS verification of {server} failed: {reason}")
        if isinstance(cause, ssl.SSLError):
            reason = cause.reason or str(cause)
            return TLSError(f"TLS handshake with {server} failed: {reason}")
        if isinstance(cause, socket.gaierror):
            host = urllib.parse.urlsplit(server).hostname
            return ConnectionFailed(f"cannot resolve host {host!r} of {server}: {cause.strerror}")
        if isinstance(cause, ConnectionRefusedError):
            return ConnectionFailed(f"connection to {server} refused")
        if httpx is not None and isinstance(cause, httpx.ProxyError):
            return ConnectionFailed(f"proxy error reaching {server}: {cause}")
        if "ConnectionTerminated" in str(cause):
            return ConnectionLost(f"{server} closed the HTTP/2 connection (GOAWAY)")
        if isinstance(cause, ConnectionResetError | BrokenPipeError | ConnectionAbortedError):
            return ConnectionLost(f"connection to {server} lost: {cause.strerror or 'reset'}")
        if httpx is not None and isinstance(
            cause, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError
        ):
            detail = _os_reason(cause) or str(cause) or "closed mid-response"
            return ConnectionLost(f"connection to {server} lost: {detail}")
    if isinstance(exc, trio.TooSlowError):
        return Timeout(f"timed out talking to {server}")
    if httpx is not None and isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "connecting to",
            httpx.ReadTimeout: "reading from",
            httpx.WriteTimeout: "writing to",
            httpx.PoolTimeout: "waiting for a connection to",
        }.get(type(exc), "talking to")
        return Timeout(f"timed out {what} {server}")
    if httpx is not None and isinstance(exc, httpx.ConnectError):
        detail = _os_reason(exc) or str(exc) or "connection failed"
        return ConnectionFailed(f"cannot connect to {server}: {detail}")
    detail = _os_reason(exc) or str(exc) or type(exc).__name__
    return ConnectionFailed(f"connection to {server} failed: {detail}")


def _os_reason(exc: BaseException) -> str | None:
    for cause in _chain(exc):
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return None


class map_exceptions:
    """The one place where httpx, ssl, socket and Trio errors become our errors.

    A class rather than a generator-based context manager: it wraps every chunk of every
    watch stream, so it should cost no more than a try/except.
    """

    __slots__ = ("server",)

    def __init__(self, server: str) -> None:
        self.server = server

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc is None or isinstance(exc, TrioControllerError):
            return False
        server = self.server
        if isinstance(exc, ssl.SSLError | OSError | trio.TooSlowError):
            raise transport_error(exc, server) from exc
        if isinstance(exc, trio.BrokenResourceError | trio.ClosedResourceError):
            raise ConnectionLost(f"connection to {server} lost") from exc
        httpx = sys.modules.get("httpx")  # not imported: no httpx error to map
        if httpx is None:
            return False
        if isinstance(exc, httpx.TransportError):
            raise transport_error(exc, server) from exc
        if isinstance(exc, httpx.DecodingError):
            raise ConnectionFailed(f"invalid response encoding from {server}: {exc}") from exc
        return False
