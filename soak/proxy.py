"""An L4 (TCP) proxy with faults on cue, between the controller and kube-apiserver.

Bytes pass through untouched (TLS stays end to end: the apiserver's certificate names
127.0.0.1, so the controller verifies it through the proxy's port). On cue it

- `reset()`:      closes every live connection with SO_LINGER 0, so both peers get a RST;
- `half_close()`: sends FIN to the client (server→client direction ends mid-stream)
                  and drops the upstream, while the client may still send;
- `stall(s)`:     forwards nothing, either way, for `s` seconds (connections stay open);
- `slow(s, bps)`: reads from the apiserver at `bps` bytes/s for `s` seconds (a slow
                  reader: the apiserver sees back-pressure).

A connection the apiserver refuses (it is down) is reset at once, as a load balancer
with no backend does.

    proxy = FaultProxy("127.0.0.1", 6443)
    port = await nursery.start(proxy.serve)
"""

from __future__ import annotations

import contextlib
import socket
import struct
from dataclasses import dataclass, field

import trio

CHUNK = 65536
SLOW_PIECE = 512
HALF_CLOSE_DRAIN = 30.0
_LINGER_0 = struct.pack("ii", 1, 0)


def set_linger_zero(stream: trio.SocketStream) -> None:
    """Make the next close of `stream` send a RST instead of a FIN."""
    with contextlib.suppress(OSError):  # already gone
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)


@dataclass(eq=False)  # hashed by identity: a set of live links
class Link:
    client: trio.SocketStream
    upstream: trio.SocketStream
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    fate: str = ""  # "" (normal), "reset" or "half-close"


@dataclass
class ProxyStats:
    connections: int = 0
    refused: int = 0  # upstream down: the client got a RST
    resets: int = 0  # reset() calls that hit at least one connection
    reset_connections: int = 0
    half_closes: int = 0
    stalls: int = 0
    slows: int = 0


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.links: set[Link] = set()
        self.stats = ProxyStats()
        self._open = trio.Event()
        self._open.set()
        self._slow_bps: float | None = None
        self.port: int | None = None

    # -- serving ---------------------------------------------------------------------
    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = int(listeners[0].socket.getsockname()[1])
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.stats.connections += 1
        try:
            upstream = await trio.open_tcp_stream(*self.upstream)
        except OSError:
            self.stats.refused += 1
            set_linger_zero(client)
            await client.aclose()
            return
        link = Link(client, upstream)
        self.links.add(link)
        try:
            with link.scope:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._pump, link, client, upstream, False)
                    nursery.start_soon(self._pump, link, upstream, client, True)
        finally:
            self.links.discard(link)
            with trio.CancelScope(shield=True):
                await self._close(link)

    async def _close(self, link: Link) -> None:
        if link.fate == "half-close":
            await trio.aclose_forcefully(link.upstream)
            try:
                await link.client.send_eof()
                with trio.move_on_after(HALF_CLOSE_DRAIN):
                    while await link.client.receive_some(CHUNK):
                        pass
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass
            await trio.aclose_forcefully(link.client)
            return
        if link.fate == "reset":
            set_linger_zero(link.client)
            set_linger_zero(link.upstream)
        await trio.aclose_forcefully(link.client)
        await trio.aclose_forcefully(link.upstream)

    async def _pump(
        self, link: Link, src: trio.SocketStream, dst: trio.SocketStream, down: bool
    ) -> None:
        try:
            while True:
                await self._open.wait()
                slow = self._slow_bps if down else None
                data = await src.receive_some(SLOW_PIECE if slow else CHUNK)
                if not data:
                    await dst.send_eof()  # pass the half-close on; the other way goes on
                    return
                await self._open.wait()
                await dst.send_all(data)
                if slow:
                    await trio.sleep(len(data) / slow)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            # One side went away: the other gets a RST, as from a real middlebox.
            link.fate = link.fate or "reset"
            link.scope.cancel()

    @property
    def stalled(self) -> bool:
        return not self._open.is_set()

    # -- faults ----------------------------------------------------------------------
    def reset(self) -> int:
        """RST every live connection; returns how many."""
        return self._end_all("reset")

    def half_close(self) -> int:
        """FIN to every client (server→client stream ends), upstream dropped."""
        return self._end_all("half-close")

    def _end_all(self, fate: str) -> int:
        links = list(self.links)
        for link in links:
            link.fate = fate
            link.scope.cancel()
        if links:
            if fate == "reset":
                self.stats.resets += 1
                self.stats.reset_connections += len(links)
            else:
                self.stats.half_closes += 1
        return len(links)

    async def stall(self, seconds: float) -> None:
        """Forward nothing for `seconds`; returns when forwarding resumed."""
        self.stats.stalls += 1
        gate = self._open = trio.Event()
        try:
            await trio.sleep(seconds)
        finally:
            gate.set()

    async def slow(self, seconds: float, bytes_per_second: float) -> None:
        self.stats.slows += 1
        self._slow_bps = bytes_per_second
        try:
            await trio.sleep(seconds)
        finally:
            self._slow_bps = None
