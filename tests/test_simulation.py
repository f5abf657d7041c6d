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
from sim import run as sim

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


CI_SEEDS = range(0, 200)  # about 10 s; `python -m tests.sim.run --seeds N` for more


def test_every_ci_seed_keeps_the_store_the_queue_and_the_reconciles_right(quiet: None) -> None:
    failed = [r for r in map(sim.run_seed, CI_SEEDS) if not r.ok]
    assert not failed, "\n".join(
        f"seed {r.seed}: {r.failures}: {sim.reproducer(r.seed)}" for r in failed
    )


def test_the_ci_seeds_inject_every_kind_of_fault(quiet: None) -> None:
    """The schedule is not silently empty: over a few seeds every fault happens."""
    seen: dict[str, int] = {}
    for seed in range(40):
        stats = sim.run_seed(seed).stats
        for kind, n in [*stats["faults"].items(), *stats["answered"].items()]:
            seen[kind] = seen.get(kind, 0) + n
    # what the model answered: continued pages, watches from a compacted rv, bookmarks
    for kind in ("continued_page", "watch_too_old", "bookmark", "streaming_list"):
        assert seen.get(kind), (kind, seen)
    for kind in ("drop", "status", "error_event", "stall", "end"):
        assert seen.get(f"watch_{kind}"), (kind, seen)
    for kind in ("410", "429", "500", "refused", "torn", "stall"):
        assert seen.get(f"list_{kind}"), (kind, seen)
    assert seen.get("compaction") and seen.get("restart"), seen


def test_the_checker_catches_a_reflector_whose_relists_forget_deletes(quiet: None) -> None:
    # These seeds all pass unpatched (they are among CI_SEEDS).
    caught = [sim.run_seed(seed, patch=sim.relists_forget_deletes) for seed in range(60)]
    caught = [r for r in caught if not r.ok]
    assert len(caught) >= 3, [r.seed for r in caught]
    for r in caught:
        assert any("!= model None" in f for f in r.failures), r.failures
        assert any("delete never observed" in f for f in r.failures), r.failures


def test_a_seed_replays_exactly(quiet: None) -> None:
    first, second = sim.run_seed(7), sim.run_seed(7)
    assert first.stats == second.stats
    assert first.stats["writes"] and first.stats["reconciles"]
