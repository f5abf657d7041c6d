"""The apiserver client: requests through one `httpx.AsyncClient` on Trio, watches
through the project's own transport (transport/watch.py), raw bytes out, typed errors.
httpx is imported, and its client made, on the first ordinary request: a program that only
watches (a streaming-list informer) never loads it.

    async with Client(config) as client:
        body = await client.list_page("/api/v1/namespaces/default/pods", {"limit": "500"})
        async with client.watch(path, {"watch": "true", ...}, idle_timeout=330) as body:
            data = await body.receive()      # raw (chunked) bytes, for the Rust WatchDecoder
        await client.request_json("POST", path, pod)

Every httpx, ssl, socket and Trio exception is translated into the `errors` hierarchy in
one place, `map_exceptions`. Error responses become `ApiError` subclasses built from the
Kubernetes Status body. Headers and tokens are never logged. `add_request_hook` lets
metrics and logs see each request's method, path, status and duration.
"""

from __future__ import annotations

import logging
import platform
import sys
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import orjson
import trio

from trio_controller._native import __version__
from trio_controller.auth import Credentials
from trio_controller.config.cluster import ClusterConfig
from trio_controller.errors import (
    ConnectionFailed,
    ExecPluginError,
    KubeconfigError,
    from_response,
)
from trio_controller.transport.errors import map_exceptions
from trio_controller.transport.tls import build_ssl_context, load_client_certificate
from trio_controller.transport.watch import WatchBody, WatchEndpoint, open_watch

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["USER_AGENT", "Client", "RequestHook", "WatchConnector"]

log = logging.getLogger(__name__)

USER_AGENT = (
    f"trio-controller/{__version__} ({sys.platform}/{platform.machine()}) "
    f"python/{platform.python_version()}"
)
MAX_ERROR_BODY = 64 * 1024

Params = Mapping[str, str | int | bool] | None


WatchConnector = Callable[[], Awaitable[trio.abc.Stream]]
"""Opens the byte stream of one watch connection (e.g. one end of
`trio.testing.memory_stream_pair()`); used instead of TCP, TLS and proxies."""

RequestHook = Callable[[str, str, int | None, float], None]
"""Called after each request (and each watch's response head) with the method (`WATCH`
for watches), the path without query, the status (None when no response came) and the
seconds it took."""


class _Observed:
    """One request being timed for the request hooks; `status` is set on a response."""

    __slots__ = ("_client", "_method", "_path", "_started", "status")

    def __init__(self, client: Client, method: str, path: str) -> None:
        self._client = client
        self._method = method
        self._path = path
        self.status: int | None = None

    def __enter__(self) -> Self:
        self._started = trio.current_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        hooks = self._client._request_hooks
        if hooks:
            seconds = trio.current_time() - self._started
            for hook in hooks:
                hook(self._method, self._path, self.status, seconds)


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
    In-process servers (tests, the simulation in tests/sim/): `transport` answers the
    httpx requests, and `watch_connector` opens each watch's connection as a
    `trio.abc.Stream` (plain HTTP/1.1 on it, no TLS or proxy) instead of a socket.
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
        watch_connector: WatchConnector | None = None,
    ) -> None:
        self.config = config
        self.server = config.server
        self.user_agent = user_agent
        self.connect_timeout = connect_timeout
        self.watch_connector = watch_connector
        self._request_hooks: list[RequestHook] = []
        self._http2 = http2
        self._timeout = timeout
        self._transport = transport
        self._closed = False
        # Two contexts from the same settings: httpx sets ALPN (h2) on the one it is given,
        # and the watch transport speaks HTTP/1.1 only, so it offers just that. The watch
        # context is built now (it checks the TLS material); httpx and its context on the
        # first ordinary request: a watch or streaming list alone never imports httpx.
        self.watch_ssl_context = build_ssl_context(config.tls)
        self.watch_ssl_context.set_alpn_protocols(["http/1.1"])
        self._ssl_context: ssl.SSLContext | None = None
        self._http_client: httpx.AsyncClient | None = None
        self._client_certificate: tuple[bytes, bytes] | None = None  # loaded from credentials
        self._extensions: dict[str, Any] = {}
        if config.tls.server_name:
            self._extensions["sni_hostname"] = config.tls.server_name

    def __repr__(self) -> str:
        return f"Client({self.server!r})"

    async def __aenter__(self) -> Self:
        await trio.lowlevel.cancel_shielded_checkpoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        if self._http_client is not None:
            await self._http_client.aclose()
        elif self._transport is not None:  # httpx would have closed it
            await self._transport.aclose()
        else:
            # Never raise Cancelled here: leaving a cancelled scope on an error (a watch
            # that failed) must keep that error, as closing an unused httpx client does.
            await trio.lowlevel.cancel_shielded_checkpoint()

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The SSL context of ordinary (httpx) requests: the kubeconfig's CA and client
        certificate, ALPN as httpx sets it. Built on first use."""
        if self._ssl_context is None:
            context = build_ssl_context(self.config.tls)
            if self._client_certificate is not None:
                self._load_certificate(context, self._client_certificate)
            self._ssl_context = context
        return self._ssl_context

    @property
    def _http(self) -> httpx.AsyncClient:
        """The httpx client of ordinary requests, made (and httpx imported) on first use."""
        if self._http_client is None:
            if self._closed:
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            self._http_client = self._make_http()
        return self._http_client

    def _make_http(self) -> httpx.AsyncClient:
        import httpx

        from trio_controller.transport.http_auth import HttpxAuth

        config = self.config
        auth = HttpxAuth(config.auth, self._on_credentials) if config.auth is not None else None
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        if config.disable_compression:
            headers["Accept-Encoding"] = "identity"
        return httpx.AsyncClient(
            base_url=config.server,
            auth=auth,
            verify=self.ssl_context,
            http2=self._http2,
            timeout=httpx.Timeout(self._timeout, connect=self.connect_timeout),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=32),
            proxy=config.proxy,
            headers=headers,
            transport=self._transport,
            follow_redirects=False,
        )

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
        for context in (self._ssl_context, self.watch_ssl_context):
            if context is not None:  # the httpx context, once built, loads it itself
                self._load_certificate(context, certificate)
        self._client_certificate = certificate

    def _load_certificate(self, context: ssl.SSLContext, certificate: tuple[bytes, bytes]) -> None:
        try:
            load_client_certificate(
                context,
                *certificate,
                cert_source="clientCertificateData",
                key_source="clientKeyData",
            )
        except KubeconfigError as exc:
            raise ExecPluginError(
                f"{self.config.auth!r} returned an unusable client certificate: {exc}"
            ) from None

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
        with map_exceptions(self.server), self.observing(method, path) as seen:
            response = await self._http.send(request, stream=True)
            seen.status = response.status_code
        try:
            await self._raise_for_status(response)
            with map_exceptions(self.server):
                await response.aread()
        finally:
            await response.aclose()
        return response

    async def list_page(
        self, path: str, params: Params = None, *, accept: str | None = None
    ) -> bytes:
        """GET `path` (a list) and return the raw body, for the Rust decoder.

        `params`: limit, continue, resourceVersion, resourceVersionMatch, labelSelector,
        fieldSelector, ...; booleans are sent as true/false. `accept` replaces
        ``application/json`` (a metadata-only list asks for
        ``application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1``).
        """
        headers = {"Accept": accept} if accept is not None else None
        response = await self._send("GET", path, params, headers=headers)
        return response.content

    async def request_json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Params = None,
        content_type: str = "application/json",
        accept: str | None = None,
    ) -> Any:
        """A small JSON call (create, delete, patch, leases): the parsed answer or None.

        `content_type` names the body's media type (patches need theirs); `accept`
        replaces the default ``application/json`` (aggregated discovery asks for more)."""
        content = None
        headers: dict[str, str] = {}
        if body is not None:
            content = body if isinstance(body, bytes) else orjson.dumps(body)
            headers["Content-Type"] = content_type
        if accept is not None:
            headers["Accept"] = accept
        response = await self._send(method, path, params, content, headers or None)
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise ConnectionFailed(f"invalid JSON from {self.server}{path}") from None

    def watch(
        self,
        path: str,
        params: Params = None,
        *,
        idle_timeout: float | None = None,
        accept: str | None = None,
    ) -> AbstractAsyncContextManager[WatchBody]:
        """Open a watch (or streaming list) on a connection of its own; see
        `transport.watch.open_watch`. An error status raises the matching `ApiError`
        before anything is yielded; no data for `idle_timeout` seconds raises `Timeout`.
        `accept` replaces ``application/json`` (metadata-only watches)."""
        return open_watch(
            self.watch_endpoint(), path, params, idle_timeout=idle_timeout, accept=accept
        )

    def watch_endpoint(self) -> WatchEndpoint:
        """What `transport.watch.open_watch` needs of this client, as one value."""
        return WatchEndpoint(
            server=self.server,
            proxy=self.config.proxy,
            server_name=self.config.tls.server_name,
            user_agent=self.user_agent,
            connect_timeout=self.connect_timeout,
            ssl_context=self.watch_ssl_context,
            credentials=self.credentials,
            invalidate=self.invalidate,
            observing=self.observing,
            connector=self.watch_connector,
        )

    def add_request_hook(self, hook: RequestHook) -> None:
        """Call `hook` after every request and watch opening (metrics, -v 6 logs)."""
        self._request_hooks.append(hook)

    def observing(self, method: str, path: str) -> _Observed:
        """Times one request for the request hooks (set `.status` on a response)."""
        return _Observed(self, method, path)
