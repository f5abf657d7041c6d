"""Deterministic simulation (issue 11, part 2): the reflector, workqueue and controller
against the in-process model apiserver (tests/sim/) under seeded fault schedules.

This is fault injection the real apiserver cannot do on cue (drops at any byte, 410 in
the middle of a page sequence or a streaming list, 429 storms, stalls), in virtual time.
`python -m tests.sim.run --seeds N` runs more seeds than CI does.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from trio_controller.config import ClusterConfig
from trio_controller.transport.client import Client

PODS = "/api/v1/namespaces/default/pods"


async def _serve_one_watch(stream: trio.abc.Stream, response: bytes) -> bytes:
    """Read one request head from `stream`, answer `response`, close; the head read."""
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive_some(65536)
    await stream.send_all(response)
    await stream.aclose()
    return head


@pytest.mark.parametrize(
    "pair", [trio.testing.memory_stream_pair, trio.testing.lockstep_stream_pair]
)
async def test_a_watch_runs_over_any_trio_stream_given_by_the_watch_connector(
    pair: Callable[[], tuple[trio.abc.Stream, trio.abc.Stream]],
) -> None:
    line = b'{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"3"}}}\n'
    response = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        + f"{len(line):x}\r\n".encode()
        + line
        + b"\r\n0\r\n\r\n"
    )
    heads: list[bytes] = []
    async with trio.open_nursery() as nursery:

        async def connect() -> trio.abc.Stream:
            client_end, server_end = pair()

            async def serve() -> None:
                heads.append(await _serve_one_watch(server_end, response))

            nursery.start_soon(serve)
            return client_end

        config = ClusterConfig("http://sim.invalid")
        async with (
            Client(config, watch_connector=connect) as client,
            client.watch(PODS, {"watch": "true"}, idle_timeout=5) as body,
        ):
            assert body.chunked
            data = b""
            while chunk := await body.receive():
                data += chunk
    assert data.endswith(line + b"\r\n0\r\n\r\n")
    assert heads[0].startswith(b"GET /api/v1/namespaces/default/pods?watch=true HTTP/1.1\r\n")
