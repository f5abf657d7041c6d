"""The apiserver client: one `httpx.AsyncClient` on Trio, raw bytes out, typed errors.

    async with Client(config) as client:
        body = await client.list_page("/api/v1/namespaces/default/pods", {"limit": "500"})
        async with client.stream(path, {"watch": "true", ...}, idle_timeout=330) as chunks:
            async for chunk in chunks:       # raw bytes, for the Rust WatchDecoder
                ...
        await client.request_json("POST", path, pod)

Every httpx, ssl, socket and Trio exception is translated into the `errors` hierarchy in
one place, `map_exceptions`. Error responses become `ApiError` subclasses built from the
Kubernetes Status body. Headers and tokens are never logged.
"""

from __future__ import annotations

import logging
import math
import platform
import ssl
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import httpx
import orjson
import trio

from trio_controller import __version__
from trio_controller.auth import Credentials
from trio_controller.config.cluster import ClusterConfig
from trio_controller.errors import (
    ConnectionFailed,
    ExecPluginError,
    KubeconfigError,
    Timeout,
    from_response,
)
from trio_controller.transport.errors import map_exceptions
from trio_controller.transport.http_auth import HttpxAuth
from trio_controller.transport.tls import build_ssl_context, load_client_certificate

__all__ = ["USER_AGENT", "ChunkStream", "Client"]

log = logging.getLogger(__name__)

USER_AGENT = (
    f"trio-controller/{__version__} ({sys.platform}/{platform.machine()}) "
    f"python/{platform.python_version()}"
)
MAX_ERROR_BODY = 64 * 1024
CLOSE_TIMEOUT = 5.0  # seconds to close a stream, even when cancelled

Params = Mapping[str, str | int | bool] | None


class ChunkStream:
    """The byte chunks of one streaming response, as they arrive.

    `Timeout` is raised when no chunk arrives for `idle_timeout` seconds (Trio time, so
    `MockClock` drives it); a dropped connection raises `ConnectionFailed`; the end of
    the response ends the iteration.
    """

    def __init__(self, response: httpx.Response, idle_timeout: float | None, server: str) -> None:
        self.response = response
        self.idle_timeout = idle_timeout
        self._server = server
        self._chunks: AsyncIterator[bytes] | None = None
        self._finished = False

    @property
    def status_code(self) -> int:
        return self.response.status_code

    @property
    def http_version(self) -> str:
        return self.response.http_version

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        if self._finished:
            raise StopAsyncIteration
        if self._chunks is None:
            self._chunks = self.response.aiter_bytes()
        idle = math.inf if self.idle_timeout is None else self.idle_timeout
        try:
            with map_exceptions(self._server), trio.move_on_after(idle):
                return await self._chunks.__anext__()
        except BaseException:
            self._finished = True  # the exception went through, and ended, every layer
            raise
        self._finished = True
        raise Timeout(f"stream from {self._server} idle for {idle:g}s (no data); giving up")

    async def aclose(self) -> None:
        """Stop reading. httpx and httpcore read through a stack of async generators;
        closing only the outer one would leave the inner ones to the garbage collector,
        so a pending read is cancelled instead, which unwinds and finishes all of them."""
        if self._finished or self._chunks is None:
            self._finished = True
            return
        self._finished = True
        with trio.CancelScope() as scope:
            scope.cancel()
            try:
                while True:
                    await self._chunks.__anext__()
            except StopAsyncIteration:
                pass
            except (httpx.HTTPError, OSError, trio.BrokenResourceError, ssl.SSLError):
                log.debug("error while abandoning the stream from %s", self._server)


class Client:
    """An apiserver client for one `ClusterConfig` (one connection pool).

    Use as an async context manager; the constructor only builds settings (it may raise
    `KubeconfigError` for unusable TLS material) and starts nothing. `http2=True` lets
    TLS servers that offer HTTP/2 use it (ALPN); plain-HTTP servers get HTTP/1.1.
    HTTP/2 is off by default: the apiserver ends an HTTP/2 connection with GOAWAY after
    each unauthenticated request (its HTTP/2 DoS mitigation), and httpcore 1.0.9 turns
    that GOAWAY into an error for the request in flight, hiding the 401/403 answer
    (encode/httpcore#1054).
    `timeout` bounds each read and write of ordinary requests; watch streams have no
    read timeout but the caller's `idle_timeout`.
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        http2: bool = False,
        timeout: float = 60.0,
        connect_timeout: float = 30.0,
        user_agent: str = USER_AGENT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.server = config.server
        self.ssl_context = build_ssl_context(config.tls)
        self._client_certificate: tuple[bytes, bytes] | None = None  # loaded from credentials
        auth = HttpxAuth(config.auth, self._on_credentials) if config.auth is not None else None
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if config.disable_compression:
            headers["Accept-Encoding"] = "identity"
        self._extensions: dict[str, Any] = {}
        if config.tls.server_name:
            self._extensions["sni_hostname"] = config.tls.server_name
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._stream_timeout = httpx.Timeout(timeout, connect=connect_timeout, read=None)
        self._http = httpx.AsyncClient(
            base_url=config.server,
            auth=auth,
            verify=self.ssl_context,
            http2=http2,
            timeout=self._timeout,
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            proxy=config.proxy,
            headers=headers,
            transport=transport,
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"Client({self.server!r})"

    async def __aenter__(self) -> Self:
        await self._http.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def credentials(self) -> Credentials | None:
        """The credentials to send now (None without auth), once per request or watch.

        A client certificate among them (from an exec plugin) is loaded into
        `ssl_context` first: connections made from now on present it.
        """
        if self.config.auth is None:
            await trio.lowlevel.checkpoint()
            return None
        credentials = await self.config.auth.credentials()
        self._on_credentials(credentials)
        return credentials

    async def invalidate(self, stale: Credentials) -> bool:
        """`stale` was answered with 401: True when fresh credentials differ (retry once)."""
        if self.config.auth is None:
            await trio.lowlevel.checkpoint()
            return False
        return await self.config.auth.invalidate(stale)

    def _on_credentials(self, credentials: Credentials) -> None:
        certificate = credentials.client_certificate
        if certificate is None or certificate == self._client_certificate:
            return
        # Affects connections made from now on; pooled ones keep their certificate.
        try:
            load_client_certificate(
                self.ssl_context,
                *certificate,
                cert_source="clientCertificateData",
                key_source="clientKeyData",
            )
        except KubeconfigError as exc:
            raise ExecPluginError(
                f"{self.config.auth!r} returned an unusable client certificate: {exc}"
            ) from None
        self._client_certificate = certificate

    async def _raise_for_status(self, response: httpx.Response) -> None:
        if response.is_success:
            return
        with map_exceptions(self.server):
            body = await response.aread()  # a Status object: small
        err = from_response(
            response.status_code, body[:MAX_ERROR_BODY], response.headers.get("Retry-After")
        )
        log.debug("%s %s -> %s", response.request.method, response.request.url.path, err)
        raise err

    async def _send(
        self,
        method: str,
        path: str,
        params: Params,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            path,
            params=params,
            content=content,
            headers=headers,
            extensions=self._extensions,
        )
        with map_exceptions(self.server):
            response = await self._http.send(request, stream=True)
        try:
            await self._raise_for_status(response)
            with map_exceptions(self.server):
                await response.aread()
        finally:
            await response.aclose()
        return response

    async def list_page(self, path: str, params: Params = None) -> bytes:
        """GET `path` (a list) and return the raw body, for the Rust decoder.

        `params`: limit, continue, resourceVersion, resourceVersionMatch, labelSelector,
        fieldSelector, ...; booleans are sent as true/false.
        """
        response = await self._send("GET", path, params)
        return response.content

    async def request_json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Params = None,
        content_type: str = "application/json",
    ) -> Any:
        """A small JSON call (create, delete, patch, leases): the parsed answer or None."""
        content = None
        headers = None
        if body is not None:
            content = body if isinstance(body, bytes) else orjson.dumps(body)
            headers = {"Content-Type": content_type}
        response = await self._send(method, path, params, content, headers)
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ConnectionFailed(f"invalid JSON from {self.server}{path}") from None

    @asynccontextmanager
    async def stream(
        self, path: str, params: Params = None, *, idle_timeout: float | None = None
    ) -> AsyncIterator[ChunkStream]:
        """Open a streaming GET (a watch) and yield its `ChunkStream`.

        An error status raises the matching `ApiError` before anything is yielded. The
        response headers must also arrive within `idle_timeout` seconds.
        """
        # Uncompressed: the apiserver gzips a watch event by event, each a gzip member
        # of its own, and httpx's decoder stops after the first member, dropping every
        # later event without an error.
        request = self._http.build_request(
            "GET",
            path,
            params=params,
            headers={"Accept-Encoding": "identity"},
            extensions=self._extensions,
            timeout=self._stream_timeout,
        )
        idle = math.inf if idle_timeout is None else idle_timeout
        with map_exceptions(self.server):
            with trio.fail_after(idle):
                response = await self._http.send(request, stream=True)
        chunks = ChunkStream(response, idle_timeout, self.server)
        try:
            await self._raise_for_status(response)
            yield chunks
        finally:
            with trio.move_on_after(CLOSE_TIMEOUT, shield=True):
                await chunks.aclose()
                try:
                    await response.aclose()
                except (httpx.HTTPError, OSError, trio.BrokenResourceError):
                    log.debug("closing the stream from %s failed", self.server, exc_info=True)
