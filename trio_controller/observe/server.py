"""A tiny HTTP/1.1 server on Trio (h11) that answers GETs on a few paths: /metrics, probes.

    routes = {"/metrics": metrics_route, "/healthz": health.healthz}
    listeners = await nursery.start(serve_http, "127.0.0.1", 8080, routes)

A route gets the query (`parse_qs`, blank values kept) and returns a `Response`; it runs
in the Trio thread and must not block. Keep-alive works; a connection that sends nothing
for `IDLE_TIMEOUT` seconds is closed. `parse_bind_address` reads controller-runtime's
`--metrics-bind-address` form: `HOST:PORT`, `:PORT` (every interface), `[::1]:PORT`,
and `0` for off.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from trio_controller import errors

__all__ = ["Response", "Route", "parse_bind_address", "serve_http"]

log = logging.getLogger(__name__)

IDLE_TIMEOUT = 30.0
MAX_REQUEST = 16 * 1024  # request head and body: probes and scrapes send a few hundred bytes


@dataclass(frozen=True)
class Response:
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
    """Serve `routes` on host:port until cancelled; `nursery.start` returns the listeners.

    A port that cannot be bound is a `TrioControllerError` naming the address.
    """
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        where = f"{host or ''}:{port}"
        raise errors.TrioControllerError(f"cannot listen on {where}: {exc.strerror}") from None
    task_status.started(listeners)

    async def handle(stream: trio.SocketStream) -> None:
        try:
            await _serve_connection(stream, routes)
        except Exception as exc:  # one bad connection never stops the server
            log.debug("HTTP connection from %s: %r", _peer(stream), exc)

    await trio.serve_listeners(handle, listeners)


async def _serve_connection(stream: trio.abc.Stream, routes: Mapping[str, Route]) -> None:
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST)
    try:
        while True:
            with trio.move_on_after(IDLE_TIMEOUT):
                request = await _read_request(conn, stream)
            if request is None:  # closed, or idle for too long
                return
            response = _answer(request, routes)
            head_only = request.method == b"HEAD"
            await _send(conn, stream, response, head_only=head_only)
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            status = exc.error_status_hint
            body = f"{status} {exc}\n".encode()
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                await _send(conn, stream, Response(status, body), head_only=False, close=True)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        await stream.aclose()


def _peer(stream: trio.SocketStream) -> str:
    try:
        return str(stream.socket.getpeername())
    except OSError:
        return "a closed socket"


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream) -> h11.Request | None:
    """The next request, its body (if any) read and dropped; None once the peer is gone."""
    request: h11.Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(MAX_REQUEST)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None


def _answer(request: h11.Request, routes: Mapping[str, Route]) -> Response:
    target = urlsplit(request.target.decode("ascii", "replace"))
    route = routes.get(target.path)
    if route is None:
        return Response(404, b"404 page not found\n")
    if request.method not in (b"GET", b"HEAD"):
        return Response(405, b"405 method not allowed\n")
    try:
        return route(parse_qs(target.query, keep_blank_values=True))
    except Exception:
        log.exception("Serving %s failed", target.path)
        return Response(500, b"500 internal server error\n")


async def _send(
    conn: h11.Connection,
    stream: trio.abc.Stream,
    response: Response,
    *,
    head_only: bool,
    close: bool = False,
) -> None:
    headers = [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
    ]
    if close:
        headers.append(("Connection", "close"))
    events: list[h11.Event] = [h11.Response(status_code=response.status, headers=headers)]
    if not head_only:
        events.append(h11.Data(data=response.body))
    events.append(h11.EndOfMessage())
    await stream.send_all(b"".join(conn.send(event) or b"" for event in events))
