"""The model apiserver on the wire, in-process.

    server = ModelServer(model, faults, nursery)
    Client(config, transport=server.transport(), watch_connector=server.connect)

Watches: `connect` hands the client one end of a `trio.testing.memory_stream_pair()`
and serves the other: the request head is read, and the response written byte by byte
as the apiserver does (status line, headers, one HTTP/1.1 chunk per event
`<hex>\\r\\n<line>\\r\\n`, `0\\r\\n\\r\\n` at the end), with the watch plan's faults:
an error status, an ERROR event, the connection closed at any byte, a stall, an early
end. List pages go through `ModelTransport`, an `httpx.AsyncBaseTransport` answering
from the model with the same bodies and statuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import orjson
import trio
import trio.testing

from .faults import DROP_PLACES, Drop, Faults, ListPlan, WatchPlan
from .model import (
    Model,
    TooOld,
    bookmark,
    continue_expired,
    internal_error,
    status_failure,
    too_many_requests,
    too_old,
    watch_line,
)

PHRASES = {
    200: "OK",
    410: "Gone",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
COMMON_HEADERS = [
    ("Audit-Id", "5e3c1d2a-0000-4000-8000-000000000000"),
    ("Cache-Control", "no-cache, private"),
    ("Content-Type", "application/json"),
    ("X-Kubernetes-Pf-Flowschema-Uid", "0b6ac1f6-0000-4000-8000-000000000001"),
    ("X-Kubernetes-Pf-Prioritylevel-Uid", "0b6ac1f6-0000-4000-8000-000000000002"),
    ("Date", "Tue, 01 Dec 2026 00:00:00 GMT"),
]
LAST_CHUNK = b"0\r\n\r\n"


def status_body(code: int, retry_after: int, what: str) -> dict[str, Any]:
    if code == 410:
        return too_old(0, 0) | {"message": f"too old resource version: {what}"}
    if code == 429:
        return too_many_requests(retry_after)
    if code == 503:
        return status_failure(
            503, "ServiceUnavailable", "the server is currently unable to handle the request"
        )
    return internal_error(f"simulated failure of {what}")


def error_headers(code: int, retry_after: int) -> list[tuple[str, str]]:
    headers = list(COMMON_HEADERS)
    if code == 429:
        headers.insert(3, ("Retry-After", str(retry_after)))
    return headers


def http_head(code: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {code} {PHRASES.get(code, 'Error')}"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class Dropped(Exception):
    """The plan closed the connection here."""


class Framer:
    """Writes one response frame at a time, cutting the connection where `drop` says."""

    __slots__ = ("drop", "frame", "stream")

    def __init__(self, stream: trio.abc.Stream, drop: Drop | None) -> None:
        self.stream = stream
        self.drop = drop
        self.frame = 0

    async def send(self, frame: bytes) -> None:
        drop = self.drop
        if drop is not None and drop.frame == self.frame:
            cut = drop.offset(frame)
            if cut:
                await self.stream.send_all(frame[:cut])
            raise Dropped
        self.frame += 1
        await self.stream.send_all(frame)


class ModelServer:
    """Serves the model's watches on memory streams and its lists through httpx."""

    def __init__(self, model: Model, faults: Faults, nursery: trio.Nursery) -> None:
        self.model = model
        self.faults = faults
        self.nursery = nursery
        self.watches = 0
        self.lists = 0
        self.live: dict[Framer, None] = {}  # watches being answered now
        self.seen: dict[str, int] = {}  # what the model answered: 410s, bookmarks ...

    def saw(self, what: str) -> None:
        self.seen[what] = self.seen.get(what, 0) + 1

    def transport(self) -> ModelTransport:
        return ModelTransport(self)

    async def connect(self) -> trio.abc.Stream:
        """The `watch_connector`: a new connection, served in the background."""
        await trio.sleep(self.faults.latency())
        client_end, server_end = trio.testing.memory_stream_pair()
        self.nursery.start_soon(self._serve, server_end)
        return client_end

    def restart(self) -> None:
        """The apiserver restarts: every watch being answered is cut in its next frame
        (at the place the schedule picks), or at once."""
        rng = self.faults.rng
        for out in self.live:
            if rng.random() < 0.5:
                out.drop = Drop(out.frame, rng.choice(DROP_PLACES), rng.random())
            else:
                out.stream.send_stream.close()  # type: ignore[attr-defined]

    async def restarter(self, every: float) -> None:
        while self.faults.active:
            await trio.sleep(self.faults.rng.expovariate(1.0 / every))
            if self.faults.active:
                self.faults.count("restart")
                self.restart()

    async def _serve(self, stream: trio.StapledStream) -> None:
        out: Framer | None = None
        try:
            target = await _read_request(stream)
            if target is None:
                return
            self.watches += 1
            query = {k: v[-1] for k, v in parse_qs(urlsplit(target).query).items()}
            plan = self.faults.watch_plan()
            out = Framer(stream, plan.drop)
            self.live[out] = None
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_until_client_leaves, stream, nursery.cancel_scope)
                with contextlib.suppress(
                    trio.BrokenResourceError, trio.ClosedResourceError, Dropped
                ):
                    await self._watch(out, query, plan)
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            self.live.pop(out, None)
            stream.send_stream.close()  # type: ignore[attr-defined]
            stream.receive_stream.close()  # type: ignore[attr-defined]

    async def _error(self, out: Framer, code: int, body: dict[str, Any], retry: int) -> None:
        payload = orjson.dumps(body) + b"\n"
        headers = [*error_headers(code, retry), ("Content-Length", str(len(payload)))]
        await out.send(http_head(code, headers) + payload)

    async def _watch(self, out: Framer, query: dict[str, str], plan: WatchPlan) -> None:
        model = self.model
        if plan.status is not None:
            what = f"watch {query.get('resourceVersion', '')}"
            body = status_body(plan.status, plan.retry_after, what)
            await self._error(out, plan.status, body, plan.retry_after)
            return
        rv = query.get("resourceVersion", "")
        streaming = query.get("sendInitialEvents") == "true"
        if streaming and (
            query.get("resourceVersionMatch") != "NotOlderThan"
            or query.get("allowWatchBookmarks") != "true"
        ):
            body = status_failure(422, "Invalid", "sendInitialEvents requires bookmarks")
            await self._error(out, 422, body, 0)
            return
        now = trio.current_time()
        deadline = now + float(query.get("timeoutSeconds", "1800"))
        if plan.end_after is not None:
            deadline = min(deadline, now + plan.end_after)
        bookmarks = query.get("allowWatchBookmarks") == "true"
        initial: list[bytes] = []
        if streaming or rv in ("", "0"):
            initial = [watch_line("ADDED", e.obj) for e in model.initial_events()]
            cursor = model.rv
            if streaming:
                self.saw("streaming_list")
                initial.append(watch_line("BOOKMARK", bookmark(cursor, initial_events_end=True)))
        else:
            cursor = int(rv)
            try:
                model.events_after(cursor)
            except TooOld as exc:
                self.saw("watch_too_old")
                if plan.gone_as_status:
                    await self._error(out, 410, exc.status, 0)
                    return
                initial = [watch_line("ERROR", exc.status)]
                cursor = -1  # end after the ERROR event
        head = http_head(200, [*COMMON_HEADERS, ("Transfer-Encoding", "chunked")])
        await out.send(head)
        sent = 0

        async def send_lines(lines: list[bytes]) -> bool:
            """Send `lines` as the plan says; False once the watch ended."""
            nonlocal sent
            i = 0
            while i < len(lines):
                if plan.stall_after is not None and sent >= plan.stall_after:
                    await trio.sleep_forever()
                if plan.error_after is not None and sent >= plan.error_after:
                    status = (
                        too_old(cursor, model.compacted)
                        if plan.error_code == 410
                        else internal_error("etcdserver: request timed out")
                    )
                    self.saw("error_event_mid_initial" if sent < len(initial) else "error_event")
                    await out.send(chunk(watch_line("ERROR", status)) + LAST_CHUNK)
                    return False
                n = 2 if i + 1 < len(lines) and self.faults.rng.random() < plan.coalesce else 1
                await out.send(chunk(b"".join(lines[i : i + n])))
                sent += n
                i += n
            return True

        if not await send_lines(initial):
            return
        if cursor < 0:
            await out.send(LAST_CHUNK)
            return
        next_bookmark = trio.current_time() + plan.bookmark_every
        while True:
            try:
                events = model.events_after(cursor)
            except TooOld as exc:  # compaction overtook this watch
                self.saw("watch_overtaken")
                await send_lines([watch_line("ERROR", exc.status)])
                await out.send(LAST_CHUNK)
                return
            if events:
                cursor = events[-1].rv
                if not await send_lines([watch_line(e.type, e.obj) for e in events]):
                    return
            now = trio.current_time()
            if now >= deadline:
                await out.send(LAST_CHUNK)
                return
            if model.rv > cursor:  # written while the events above went out: send first
                continue
            if bookmarks and now >= next_bookmark:
                self.saw("bookmark")  # every event up to `cursor` was sent
                if not await send_lines([watch_line("BOOKMARK", bookmark(cursor))]):
                    return
                next_bookmark = now + plan.bookmark_every
                continue
            changed = model.changed  # no await since the check above: no write missed
            with trio.move_on_at(min(deadline, next_bookmark) if bookmarks else deadline):
                await changed.wait()


async def _read_request(stream: trio.abc.Stream) -> str | None:
    """The request target, once the head arrived (None if the client left first)."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buf += data
    method, target, _ = buf.split(b"\r\n", 1)[0].decode().split(" ", 2)
    assert method == "GET", method
    return target


async def _until_client_leaves(stream: trio.abc.Stream, scope: trio.CancelScope) -> None:
    try:
        while await stream.receive_some(65536):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


class _Torn(httpx.AsyncByteStream):
    """A body that stops part-way: the connection was lost."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        await trio.lowlevel.checkpoint()
        if self.data:
            yield self.data
        raise httpx.RemoteProtocolError(
            "peer closed connection without sending complete message body"
        )


class ModelTransport(httpx.AsyncBaseTransport):
    """List pages (GET with limit/continue) answered from the model, with list faults."""

    def __init__(self, server: ModelServer) -> None:
        self.server = server

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        server, faults = self.server, self.server.faults
        await trio.sleep(faults.latency())
        params = dict(request.url.params)
        token = params.get("continue")
        plan: ListPlan = faults.list_plan(bool(token))
        if plan.refused:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        if plan.stall:
            timeout = request.extensions.get("timeout", {}).get("read") or 60.0
            await trio.sleep(timeout)
            raise httpx.ReadTimeout("timed out")
        server.lists += 1
        if plan.status is not None:
            body = status_body(plan.status, plan.retry_after, "list")
            if plan.status == 410:
                body = continue_expired()
            return _response(request, plan.status, body, plan.retry_after)
        assert request.method == "GET", request.method
        limit = int(params["limit"]) if "limit" in params else None
        try:
            page = server.model.list_page(limit, token)
        except TooOld as exc:
            server.saw("continue_expired")
            return _response(request, 410, exc.status, 0)
        if token:
            server.saw("continued_page")
        await trio.sleep(faults.latency())
        headers = [*COMMON_HEADERS]
        if plan.torn_at is not None:
            cut = page[: int(plan.torn_at * len(page))]
            headers.append(("Content-Length", str(len(page))))
            return httpx.Response(200, headers=headers, stream=_Torn(cut), request=request)
        return httpx.Response(200, headers=headers, content=page, request=request)


def _response(
    request: httpx.Request, code: int, body: dict[str, Any], retry: int
) -> httpx.Response:
    payload = orjson.dumps(body) + b"\n"
    return httpx.Response(
        code, headers=error_headers(code, retry), content=payload, request=request
    )
