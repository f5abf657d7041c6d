"""A scripted HTTP/1.1 server on 127.0.0.1, for fault injection and benchmarks only.

Tests against Kubernetes behaviour use the real apiserver (testenv). This server is
for what a real apiserver cannot be made to do on cue: answer 410/429/500, drop a
watch mid-stream, stall, send a malformed line, or serve bytes as fast as possible.

    async with open_stream_server(Reply.failure(429, "TooManyRequests", "slow down",
                                                headers=[("Retry-After", "3")]),
                                  Reply.chunks([b'{"type":"ADDED",...}\\n', Stall()])) as server:
        server.url        # http://127.0.0.1:PORT (https:// with ssl_context=)
        server.requests   # every request received, in order

Replies are served in order, one per request; after the script, `handler` (if given)
answers, else 500. A handler receives the `Request` and returns a `Reply` (or awaits one).
A reply body is either bytes (sent with Content-Length) or a list of pieces sent with
chunked transfer encoding, each bytes piece as one flushed chunk, with actions between
them: `Pause(seconds)`, `WaitFor(event)`, `Stall()` (hang until the client goes away or
the server stops), `Close()` (drop the connection without finishing the body).
`Reply.raw(pieces)` sends its bytes pieces verbatim, status line and framing included,
then closes: for malformed heads and framing.
"""

from __future__ import annotations

import inspect
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import orjson
import trio

__all__ = [
    "Close",
    "Pause",
    "Reply",
    "Request",
    "Stall",
    "StreamServer",
    "WaitFor",
    "open_stream_server",
]


@dataclass(frozen=True)
class Pause:
    """Sleep `seconds` (Trio time) before the next piece."""

    seconds: float


@dataclass(frozen=True)
class WaitFor:
    """Wait until `event` is set before the next piece."""

    event: trio.Event


@dataclass(frozen=True)
class Stall:
    """Send nothing more, keep the connection open."""


@dataclass(frozen=True)
class Close:
    """Close the connection at once, leaving the body unfinished."""


Piece = bytes | Pause | WaitFor | Stall | Close


@dataclass
class Request:
    """A request as received."""

    method: str
    target: str
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes = b""
    peer_certificate: dict[str, Any] | None = None  # the client's TLS certificate, if any

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


@dataclass
class Reply:
    """A scripted response."""

    status: int = 200
    body: bytes | Sequence[Piece] = b""
    headers: Sequence[tuple[str, str]] = ()
    content_type: str = "application/json"
    verbatim: bool = False  # body pieces are the whole response, sent as they are

    @classmethod
    def json(cls, obj: Any, status: int = 200, headers: Sequence[tuple[str, str]] = ()) -> Reply:
        return cls(status, orjson.dumps(obj), headers)

    @classmethod
    def failure(
        cls,
        code: int,
        reason: str,
        message: str = "",
        headers: Sequence[tuple[str, str]] = (),
        details: dict[str, Any] | None = None,
    ) -> Reply:
        """A Kubernetes `Status` failure body, as the apiserver sends it."""
        status: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        if details is not None:
            status["details"] = details
        return cls(code, orjson.dumps(status), headers)

    @classmethod
    def chunks(
        cls, pieces: Sequence[Piece], status: int = 200, headers: Sequence[tuple[str, str]] = ()
    ) -> Reply:
        """A chunked body (a watch stream), sent piece by piece."""
        return cls(status, list(pieces), headers)

    @classmethod
    def raw(cls, pieces: Sequence[Piece]) -> Reply:
        """Bytes sent verbatim (head and framing are the caller's), then the connection
        is closed; actions between pieces as for `chunks`."""
        return cls(body=list(pieces), verbatim=True)


Handler = Callable[[Request], Reply | Awaitable[Reply]]


@dataclass
class StreamServer:
    url: str
    port: int
    handler: Handler | None = None
    script: deque[Reply] = field(default_factory=deque)
    requests: list[Request] = field(default_factory=list)
    connections: int = 0  # connections accepted so far

    def add(self, *replies: Reply) -> None:
        """Append replies to the script."""
        self.script.extend(replies)

    async def _reply_for(self, request: Request) -> Reply:
        if self.script:
            return self.script.popleft()
        if self.handler is not None:
            reply = self.handler(request)
            if inspect.isawaitable(reply):
                reply = await reply
            assert isinstance(reply, Reply)
            return reply
        return Reply.failure(500, "InternalError", "the stream server's script is exhausted")


class _Dropped(Exception):
    pass


async def _receive_request(
    conn: h11.Connection, stream: trio.abc.Stream
) -> tuple[h11.Request, bytes] | None:
    head: h11.Request | None = None
    body = b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            data = await stream.receive_some(65536)
            conn.receive_data(data)
            continue
        if isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return head, body
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def _send(conn: h11.Connection, stream: trio.abc.Stream, event: Any) -> None:
    data = conn.send(event)
    if data:
        await stream.send_all(data)


async def _serve_connection(server: StreamServer, stream: trio.abc.Stream) -> None:
    server.connections += 1
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            received = await _receive_request(conn, stream)
            if received is None:
                return
            head, body = received
            peer = None
            if isinstance(stream, trio.SSLStream):
                peer = stream.getpeercert() or None
            request = Request(
                method=head.method.decode(),
                target=head.target.decode(),
                headers={k.decode().lower(): v.decode() for k, v in head.headers},
                body=body,
                peer_certificate=peer,
            )
            server.requests.append(request)
            reply = await server._reply_for(request)
            if not await _send_reply(conn, stream, reply):
                return
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, _Dropped):
        return
    finally:
        await trio.aclose_forcefully(stream)


async def _send_reply(conn: h11.Connection, stream: trio.abc.Stream, reply: Reply) -> bool:
    """Send `reply`; False if the connection must be dropped afterwards."""
    if reply.verbatim:
        assert not isinstance(reply.body, bytes)
        for piece in reply.body:
            if isinstance(piece, bytes):
                await stream.send_all(piece)
            elif not await _act(piece, stream):
                return False
        return False
    headers = [("Content-Type", reply.content_type), *reply.headers]
    if isinstance(reply.body, bytes):
        headers.append(("Content-Length", str(len(reply.body))))
        await _send(conn, stream, h11.Response(status_code=reply.status, headers=headers))
        if reply.body:
            await _send(conn, stream, h11.Data(data=reply.body))
        await _send(conn, stream, h11.EndOfMessage())
        return True
    headers.append(("Transfer-Encoding", "chunked"))
    await _send(conn, stream, h11.Response(status_code=reply.status, headers=headers))
    for piece in reply.body:
        if isinstance(piece, bytes):
            if piece:
                await _send(conn, stream, h11.Data(data=piece))
        elif not await _act(piece, stream):
            return False
    await _send(conn, stream, h11.EndOfMessage())
    return True


async def _act(piece: Pause | WaitFor | Stall | Close, stream: trio.abc.Stream) -> bool:
    """Do what an action piece says; False when the connection ends with it."""
    if isinstance(piece, Pause):
        await trio.sleep(piece.seconds)
    elif isinstance(piece, WaitFor):
        await piece.event.wait()
    elif isinstance(piece, Stall):
        await _wait_until_client_leaves(stream)
        return False
    elif isinstance(piece, Close):
        return False
    return True


async def _wait_until_client_leaves(stream: trio.abc.Stream) -> None:
    while True:
        try:
            data = await stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return
        if not data:
            return


@asynccontextmanager
async def open_stream_server(
    *replies: Reply,
    handler: Handler | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[StreamServer]:
    """Serve `replies` (then `handler`) on 127.0.0.1 until the block exits."""
    listeners: list[Any] = list(await trio.open_tcp_listeners(0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    scheme = "http"
    if ssl_context is not None:
        listeners = [
            trio.SSLListener(listener, ssl_context, https_compatible=True) for listener in listeners
        ]
        scheme = "https"
    server = StreamServer(url=f"{scheme}://127.0.0.1:{port}", port=port, handler=handler)
    server.add(*replies)

    async def serve(stream: trio.abc.Stream) -> None:
        await _serve_connection(server, stream)

    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, serve, listeners)
            try:
                yield server
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The caller's own exception, not wrapped in this server's nursery group.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
