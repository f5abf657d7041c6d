"""HTTP and HTTPS serving on hypercorn's Trio worker: the metrics and probe routes, and
any ASGI application (the webhook server's).

    routes = {"/metrics": metrics_route, "/healthz": health.healthz}
    listeners = await nursery.start(serve_http, "127.0.0.1", 8080, routes)
    listeners = await nursery.start(serve_asgi, "127.0.0.1", 9443, app, ssl_context)

A route gets the query (`parse_qs`, blank values kept) and returns a `Response`; it runs
in the Trio thread and must not block. Only GET and HEAD reach a route (405 otherwise),
an unknown path is 404, a route that raises is 500 and one logged traceback. Keep-alive
works; a connection idle for `IDLE_TIMEOUT` seconds (also one that never finishes its
request head) is closed. `parse_bind_address` reads controller-runtime's
`--metrics-bind-address` form: `HOST:PORT`, `:PORT` (every interface), `[::1]:PORT`, and
`0` for off.

We bind the listening sockets ourselves (a port that cannot be bound is one
`TrioControllerError` naming the address; port 0 picks a free one, read back from the
listeners `nursery.start` returns) and hand them to hypercorn. hypercorn is imported when
a server starts, not when `trio_controller` is imported.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qs

import trio

from trio_controller import errors

__all__ = [
    "IDLE_TIMEOUT",
    "Response",
    "Route",
    "format_address",
    "parse_bind_address",
    "serve_asgi",
    "serve_http",
]

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 30.0  # seconds a keep-alive connection may stay silent
READ_TIMEOUT = 30.0  # seconds one read may wait once a request is under way
HANDSHAKE_TIMEOUT = 10.0  # seconds for a TLS handshake
MAX_REQUEST_HEAD = 16 * 1024  # bytes of request line and headers

ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]], Any], Awaitable[None]]


@dataclass(frozen=True)
class Response:
    """What a route answers: status, body and its content type."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


Route = Callable[[Mapping[str, list[str]]], Response]


def parse_bind_address(text: str) -> tuple[str | None, int] | None:
    """`HOST:PORT` as (host, port); host None for every interface; None for `0` (off)."""
    text = text.strip()
    if text in ("", "0"):
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"{text!r} is not HOST:PORT (or 0 for off)")
    host = host.removeprefix("[").removesuffix("]")
    return (host or None), int(port_text)


def format_address(listener: trio.SocketListener) -> str:
    """`host:port` a listener is bound to (`[v6]:port` for IPv6)."""
    host, port = listener.socket.getsockname()[:2]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_http(
    host: str | None,
    port: int,
    routes: Mapping[str, Route],
    *,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve `routes` over plain HTTP on host:port until cancelled; `nursery.start`
    returns the listeners. A port that cannot be bound is a `TrioControllerError`."""
    await serve_asgi(host, port, routes_app(routes), task_status=task_status)


def routes_app(routes: Mapping[str, Route]) -> ASGIApp:
    """An ASGI application answering GET/HEAD on `routes` (404 and 405 otherwise)."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        response = _answer(scope, routes)
        await send_response(send, response, head_only=scope["method"] == "HEAD")

    return app


def _answer(scope: dict[str, Any], routes: Mapping[str, Route]) -> Response:
    path = scope["path"]
    route = routes.get(path)
    if route is None:
        return Response(404, b"404 page not found\n")
    if scope["method"] not in ("GET", "HEAD"):
        return Response(405, b"405 method not allowed\n")
    query = parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    try:
        return route(query)
    except Exception:
        log.exception("Serving %s failed", path)
        return Response(500, b"500 internal server error\n")


async def send_response(
    send: Any,
    response: Response,
    *,
    head_only: bool = False,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send `response` through an ASGI `send` (the body left out for HEAD)."""
    head = [
        (b"content-type", response.content_type.encode("latin-1")),
        (b"content-length", str(len(response.body)).encode()),
        *(headers or ()),
    ]
    await send({"type": "http.response.start", "status": response.status, "headers": head})
    await send({"type": "http.response.body", "body": b"" if head_only else response.body})


async def lifespan(receive: Any, send: Any) -> None:
    """ASGI lifespan: nothing to start or stop."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def serve_asgi(
    host: str | None,
    port: int,
    app: ASGIApp,
    ssl_context: ssl.SSLContext | None = None,
    *,
    idle_timeout: float = IDLE_TIMEOUT,
    read_timeout: float = READ_TIMEOUT,
    task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the ASGI `app` on host:port with hypercorn until cancelled, over TLS when
    `ssl_context` is given (the context is used as is: loading a new certificate into it
    changes what new connections get). `nursery.start` returns the listeners."""
    from hypercorn.config import Sockets
    from hypercorn.trio.run import worker_serve
    from hypercorn.utils import wrap_app

    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        where = f"{host or ''}:{port}"
        raise errors.TrioControllerError(f"cannot listen on {where}: {exc.strerror}") from None
    # hypercorn serves stdlib sockets: give it duplicates we close ourselves.
    stdlib = [
        socket.socket(fileno=os.dup(listener.socket.fileno()))  # type: ignore[attr-defined]
        for listener in listeners
    ]
    config = _config(ssl_context, idle_timeout=idle_timeout, read_timeout=read_timeout)
    sockets = (
        Sockets(secure_sockets=stdlib, insecure_sockets=[], quic_sockets=[])
        if ssl_context is not None
        else Sockets(secure_sockets=[], insecure_sockets=stdlib, quic_sockets=[])
    )
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                partial(worker_serve, wrap_app(app, None, "asgi"), config, sockets=sockets)
            )
            task_status.started(listeners)
    finally:
        for sock in stdlib:
            sock.close()
        for listener in listeners:
            with contextlib.suppress(Exception):
                listener.socket.close()


_HYPERCORN_LOG = logging.getLogger("trio_controller.observe.serving.hypercorn")


def _config(ssl_context: ssl.SSLContext | None, *, idle_timeout: float, read_timeout: float) -> Any:
    from hypercorn.config import Config

    class _Config(Config):
        """hypercorn's Config with our TLS context (reloadable) instead of its files."""

        @property
        def ssl_enabled(self) -> bool:
            return ssl_context is not None

        def create_ssl_context(self) -> ssl.SSLContext | None:
            return ssl_context

    config = _Config()
    config.keep_alive_timeout = idle_timeout
    config.keep_alive_max_requests = 2**62  # hypercorn closes after 1000 by default; Go never
    config.read_timeout = read_timeout  # type: ignore[assignment]
    config.ssl_handshake_timeout = HANDSHAKE_TIMEOUT
    config.h11_max_incomplete_size = MAX_REQUEST_HEAD
    config.graceful_timeout = 0.0
    config.include_server_header = False
    config.accesslog = None
    # hypercorn's "Running on ..." lines repeat ours: only its warnings and errors.
    if _HYPERCORN_LOG.level == logging.NOTSET:
        _HYPERCORN_LOG.setLevel(logging.WARNING)
    config.errorlog = _HYPERCORN_LOG
    return config
