"""The watch transport the project owns: one HTTP/1.1 GET per watch (or streaming list)
on its own connection, its body handed on as raw bytes, one socket read at a time.

    async with open_watch(client.watch_endpoint(), path, params, idle_timeout=330) as body:
        core.begin(body.head)                    # the core reads the framing from the head
        while not core.body_done:
            data = await body.receive()          # b"": the server closed the connection
            core.feed(data, now)                 # de-framing + lines + apply, Rust

Over native TLS (`body.tls` is the rustls session) the body's bytes need not be decrypted
here: after the plaintext that came with the head (`body.take_first()`), each
`receive_encrypted()` is one socket read's TLS records, and `core.feed_tls(body.tls, data,
now)` decrypts and applies them in one call; a failure it raises becomes our error through
`body.tls_error(exc)`.

Why not httpx here: the apiserver sends one HTTP chunk per event, and httpx → httpcore →
h11 → SSLStream cost a stack of Python steps per chunk, i.e. per event. Here the request
is written once, the response head parsed once (Rust, httparse), and the body's chunked
framing is undone by the Rust decoder together with the lines it carries.

The idle timeout is one cancel scope per stream whose deadline slides forward on every
read; when it fires the stream ends with `Timeout`. An error status is read in full (a
small Status body) and raised as the matching `ApiError`; a 401 re-asks the credential
provider once (token file rotated, exec plugin re-run) and retries. Every OS, TLS and
Trio error goes through `map_exceptions`, as for httpx requests. A client built with a
`watch_connector` reads watches from the streams it opens instead of sockets.
"""

from __future__ import annotations

import logging
import math
import ssl
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from trio_controller._native import (
    BodyDecoder,
    DecodeError,
    ResponseHead,
    TlsSession,
    TlsSessionError,
)
from trio_controller.errors import Timeout, TransportError, from_response
from trio_controller.transport.connection import (
    ByteConnection,
    StreamConnection,
    as_ssl_error,
    authority,
    open_connection,
    read_head,
)
from trio_controller.transport.errors import map_exceptions, transport_error

__all__ = ["Observed", "WatchBody", "WatchEndpoint", "open_watch"]

log = logging.getLogger(__name__)

MAX_ERROR_BODY = 64 * 1024


class Observed(Protocol):
    """One timed request for the request hooks: the response status is set on it."""

    status: int | None


@dataclass(frozen=True)
class WatchEndpoint:
    """Everything a watch needs from the client that opens it, as one value (the client
    builds it: `Client.watch_endpoint()`; this module never sees the client).

    `credentials()` gives the current credentials (None: anonymous); `invalidate(stale)`
    drops them after a 401 (True: fresh ones may differ, retry once); `observing(method,
    path)` times the opening for the request hooks; `connector` replaces dialing
    (tests, in-process servers)."""

    server: str
    proxy: str | None
    server_name: str | None
    user_agent: str
    connect_timeout: float
    ssl_context: ssl.SSLContext
    credentials: Callable[[], Awaitable[Any]]
    invalidate: Callable[[Any], Awaitable[bool]]
    observing: Callable[[str, str], AbstractContextManager[Observed]]
    connector: Callable[[], Awaitable[trio.abc.Stream]] | None = None


class WatchBody:
    """The body of one watch response, as the socket delivers it (still framed)."""

    __slots__ = (
        "_conn",
        "_first",
        "_idle",
        "_scope",
        "_server",
        "_slid",
        "head",
        "tls",
    )

    def __init__(
        self,
        conn: ByteConnection,
        head: ResponseHead,
        first: bytes,
        scope: trio.CancelScope,
        idle: float,
        server: str,
    ) -> None:
        self._conn = conn
        #: The response head (Rust): the informer core reads the body's framing from it.
        self.head = head
        self._scope = scope
        self._idle = idle
        self._slid = -math.inf
        self._server = server
        self._first: bytes | None = first or None
        #: The native (rustls) session the body arrives through, or None: the body is
        #: read with `receive` (plain, Python's ssl, or a stream).
        self.tls: TlsSession | None = conn.tls_session

    @property
    def chunked(self) -> bool:
        """The body is chunked (from the head)."""
        return self.head.chunked

    @property
    def content_length(self) -> int | None:
        """The body's Content-Length, or None (from the head)."""
        return self.head.content_length

    @property
    def status_code(self) -> int:
        return self.head.status

    async def receive(self) -> bytes:
        """The next bytes of the body; b"" once the server closed the connection."""
        first = self._first
        if first is not None:
            self._first = None
            return first
        self._slide()
        with map_exceptions(self._server):
            return await self._conn.receive()

    def take_first(self) -> bytes:
        """The body's bytes that came with the response head (plaintext), once; b"" when
        none did or they were taken (`receive` hands them out first too)."""
        first, self._first = self._first, None
        return first or b""

    async def receive_encrypted(self) -> memoryview:
        """One socket read of the body as it came, still TLS records, for
        `InformerCore.feed_tls(body.tls, data, now)`; empty once the stream ended (the
        server closed the connection or sent close_notify). Valid until the next receive.
        Only when `tls` is set; take the plaintext that came with the head first
        (`take_first`)."""
        self._slide()
        with map_exceptions(self._server):
            return await self._conn.receive_encrypted()  # type: ignore[union-attr]

    def tls_error(self, exc: TlsSessionError) -> TransportError:
        """The error to raise for a failure of the body's TLS session (`feed_tls`): the
        same one line as a failure `receive` would have met."""
        return transport_error(as_ssl_error(exc), self._server)

    def _slide(self) -> None:
        # The idle deadline slides at most once a second: moving a Trio deadline is a
        # heap operation, and at 10k events/s it would be one per read.
        now = trio.current_time()
        if now - self._slid > 1.0:
            self._slid = now
            self._scope.deadline = now + self._idle


def _target(path: str, params: Mapping[str, str | int | bool] | None) -> str:
    if not params:
        return path
    items = [(k, _param(v)) for k, v in params.items()]
    return f"{path}?{urllib.parse.urlencode(items)}"


def _param(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _proxy_for(server: urllib.parse.SplitResult, configured: str | None) -> str | None:
    """kubeconfig proxy-url, else the environment's (HTTPS_PROXY, NO_PROXY ...), as httpx
    and client-go's ProxyFromEnvironment do."""
    if configured:
        return configured
    proxies = urllib.request.getproxies_environment()
    url = proxies.get(server.scheme)
    if url and not urllib.request.proxy_bypass_environment(server.hostname or "", proxies):
        return url
    return None


class _Request:
    """The bytes of one watch request, rebuilt only for a retry with new credentials."""

    def __init__(
        self,
        user_agent: str,
        server: urllib.parse.SplitResult,
        target: str,
        accept: str | None = None,
    ) -> None:
        accept = accept or "application/json"
        if any(c in accept for c in "\r\n\0"):
            raise ValueError("an Accept header cannot hold CR, LF or NUL")
        self._head = (
            f"GET {target} HTTP/1.1\r\n"
            f"Host: {authority(server)}\r\n"
            f"User-Agent: {user_agent}\r\n"
            f"Accept: {accept}\r\n"
            # The apiserver gzips each event as a gzip member of its own.
            "Accept-Encoding: identity\r\n"
        )

    def encode(self, authorization: str | None) -> bytes:
        auth = f"Authorization: {authorization}\r\n" if authorization else ""
        return (self._head + auth + "\r\n").encode("latin-1")


async def _read_error(conn: ByteConnection, head: ResponseHead, first: bytes, server: str) -> bytes:
    """The (small) Status body of an error response, as much of it as arrives."""
    body = BodyDecoder(head.chunked, head.content_length)
    out = bytearray()
    data = first
    while True:
        if data:
            try:
                out += body.feed(data)
            except DecodeError:
                break
        if body.done or len(out) >= MAX_ERROR_BODY:
            break
        with map_exceptions(server):
            data = await conn.receive()
        if not data:
            break  # a body without framing ends when the connection does
    return bytes(out[:MAX_ERROR_BODY])


@asynccontextmanager
async def open_watch(
    client: WatchEndpoint,
    path: str,
    params: Mapping[str, str | int | bool] | None = None,
    *,
    idle_timeout: float | None = None,
    accept: str | None = None,
) -> AsyncIterator[WatchBody]:
    """GET `path` with `params` on a connection of its own; yield its body.

    `accept` replaces ``application/json`` as the Accept header (a metadata-only watch
    asks for ``application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1``).

    Raises the matching `ApiError` for an error status before anything is yielded, and
    `Timeout` when nothing arrives for `idle_timeout` seconds (the response head too).
    """
    server = client.server
    url = urllib.parse.urlsplit(server)
    proxy_url = _proxy_for(url, client.proxy)
    proxy = urllib.parse.urlsplit(proxy_url) if proxy_url else None
    # Through a plain-HTTP proxy an http:// server gets the absolute URL as target.
    target = _target(path, params)
    if proxy is not None and url.scheme == "http":
        target = f"{url.scheme}://{authority(url)}{target}"
    request = _Request(client.user_agent, url, target, accept)
    idle = math.inf if idle_timeout is None else idle_timeout
    scope = trio.CancelScope(deadline=trio.current_time() + idle)
    conn: ByteConnection | None = None
    try:
        with scope:
            retried = False
            while True:
                credentials = await client.credentials()
                with map_exceptions(server), client.observing("WATCH", path) as seen:
                    with trio.fail_after(client.connect_timeout):
                        if client.connector is not None:
                            conn = StreamConnection(await client.connector())
                        else:
                            conn = await open_connection(
                                url,
                                client.ssl_context if url.scheme == "https" else None,
                                server_name=client.server_name,
                                proxy=proxy,
                            )
                    await conn.send_all(
                        request.encode(credentials.authorization if credentials else None)
                    )
                    head, first = await read_head(conn, server, "watch")
                    seen.status = head.status
                if head.status == 200:
                    break
                body = await _read_error(conn, head, first, server)
                conn.close()
                conn = None
                err = from_response(head.status, body, head.header("retry-after"))
                if (
                    head.status == 401
                    and credentials is not None
                    and not retried
                    and await client.invalidate(credentials)
                ):
                    retried = True
                    log.debug("watch %s: 401, retrying once with fresh credentials", path)
                    continue
                raise err
            yield WatchBody(conn, head, first, scope, idle, server)
    finally:
        if conn is not None:
            conn.close()
    if scope.cancelled_caught:
        raise Timeout(f"stream from {server} idle for {idle:g}s (no data); giving up")
