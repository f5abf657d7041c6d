"""The soak's own parts (soak/): the checker's verdict, resource flatness, the fault
schedule, and the fault proxy on loopback sockets (the network is the subject here)."""

from __future__ import annotations

import errno

import pytest
import trio

from soak.checker import check_lines, flatness, lag
from soak.faults import PROXY_KINDS, schedule
from soak.proxy import FaultProxy
from trio_controller.testing._process import free_port


def sync(name: str) -> str:
    return f"Sync/Add/Update for Pod {name}"


def gone(key: str) -> str:
    return f"Pod {key} does not exist anymore"


# -- the checker -------------------------------------------------------------------------


def test_a_deleted_key_whose_last_line_is_a_sync_is_a_missed_delete() -> None:
    final = {"ns/a-1": False, "ns/a-2": True}
    verdict = check_lines([[sync("a-1"), sync("a-2")]], final)
    assert not verdict.ok
    assert verdict.missed_deletes == ["ns/a-1"]
    assert [m.key for m in verdict.mismatches] == ["ns/a-1"]


def test_a_delete_line_before_a_later_sync_of_a_deleted_key_is_still_a_missed_delete() -> None:
    # Deleted, re-created, deleted again: the last delete was never printed.
    runs = [[sync("a-1"), gone("ns/a-1")], [sync("a-1")]]
    verdict = check_lines(runs, {"ns/a-1": False})
    assert verdict.missed_deletes == ["ns/a-1"]


def test_the_last_line_counts_across_controller_runs_in_order() -> None:
    final = {"ns/a-1": False, "ns/a-2": True, "ns/a-3": True}
    runs = [
        [sync("a-1"), sync("a-2"), gone("ns/a-3")],
        [gone("ns/a-1"), sync("a-3"), sync("a-2")],  # the restarted run's snapshot delete
    ]
    verdict = check_lines(runs, final)
    assert verdict.ok, verdict
    assert (verdict.keys, verdict.lines) == (3, 6)


def test_an_existing_key_that_was_never_printed_or_last_printed_deleted_is_a_mismatch() -> None:
    final = {"ns/a-1": True, "ns/a-2": True}
    verdict = check_lines([[sync("a-1"), gone("ns/a-1"), sync("a-2")]], final)
    assert [(m.key, m.last) for m in verdict.mismatches] == [("ns/a-1", "gone")]
    verdict = check_lines([[sync("a-2")]], final)
    assert [(m.key, m.last) for m in verdict.mismatches] == [("ns/a-1", None)]
    assert verdict.missed_deletes == []


def test_a_deleted_key_never_printed_is_fine_and_counted() -> None:
    verdict = check_lines([[]], {"ns/a-1": False})
    assert verdict.ok
    assert verdict.never_seen_deleted == 1


def test_lines_about_unknown_keys_or_of_another_shape_fail_the_verdict() -> None:
    final = {"ns/a-1": True}
    for stray in (sync("zzz"), gone("other/a-1"), "Traceback (most recent call last):", ""):
        verdict = check_lines([[sync("a-1"), stray]], final)
        assert verdict.unexpected == [stray]
        assert not verdict.ok


def test_flatness_judges_the_last_quarter_against_the_first() -> None:
    steady = [100.0] * 10 + [50.0 + (i % 3) for i in range(80)]  # warm-up, then flat
    judged = flatness(steady, warmup=10, ratio=1.2, slack=5)
    assert judged is not None and judged.flat
    growing = [50.0 + i for i in range(90)]
    judged = flatness(growing, warmup=10, ratio=1.2, slack=5)
    assert judged is not None and not judged.flat
    assert (judged.first, judged.last) == (69.5, 129.5)
    assert flatness([1.0] * 25, warmup=10, ratio=1.0, slack=0) is None  # too few to judge


def test_lag_is_the_time_from_a_write_to_the_next_line_about_its_key() -> None:
    writes = [(1.0, "ns/a-1"), (2.0, "ns/a-2"), (3.0, "ns/a-1"), (9.0, "ns/a-2")]
    lines = [(1.5, sync("a-1")), (2.25, "noise"), (7.0, gone("ns/a-2")), (3.5, sync("a-1"))]
    lines.sort()
    measured = lag(writes, lines)
    assert measured is not None
    # a-1: 0.5 and 0.5; a-2: 5.0; the last write to a-2 was never followed by a line.
    assert (measured.p50, measured.max, measured.unseen) == (0.5, 5.0, 1)
    assert lag([], lines) is None


# -- the schedule ------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [45.0, 60.0, 90.0])
def test_a_short_soak_gets_every_fault_kind_and_a_quiet_end(seconds: float) -> None:
    for seed in range(20):
        faults = schedule(seed, seconds)
        kinds = {f.kind for f in faults}
        assert kinds >= {*PROXY_KINDS, "storm", "apiserver-kill", "controller-restart"}
        assert max(f.at for f in faults) < seconds * 0.9
        assert [f.at for f in faults] == sorted(f.at for f in faults)


def test_a_long_soak_is_seeded_and_its_first_controller_run_lasts_half_of_it() -> None:
    assert schedule(7, 1800) == schedule(7, 1800)
    assert schedule(7, 1800) != schedule(8, 1800)
    faults = schedule(7, 1800)
    kills = [f.at for f in faults if f.kind == "apiserver-kill"]
    restarts = [f.at for f in faults if f.kind == "controller-restart"]
    assert len(kills) >= 12
    assert len(restarts) == 3 and restarts[0] >= 1800 * 0.9 * 0.5
    assert all(abs(k - r) > 20 for k in kills for r in restarts)
    assert {f.kind for f in faults} >= set(PROXY_KINDS)
    assert max(f.at for f in faults) < 1800 * 0.9


# -- the proxy ---------------------------------------------------------------------------


async def echo(stream: trio.SocketStream) -> None:
    try:
        async for data in stream:
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def start_proxy(nursery: trio.Nursery) -> tuple[FaultProxy, trio.SocketStream]:
    listeners = await nursery.start(trio.serve_tcp, echo, 0)
    port = listeners[0].socket.getsockname()[1]
    proxy = FaultProxy("127.0.0.1", port)
    proxy_port = await nursery.start(proxy.serve)
    client = await trio.open_tcp_stream("127.0.0.1", proxy_port)
    return proxy, client


async def receive_exactly(stream: trio.SocketStream, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = await stream.receive_some(size - len(data))
        assert piece, "EOF"
        data += piece
    return data


async def test_the_proxy_passes_bytes_through_both_ways() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            proxy, client = await start_proxy(nursery)
            payload = bytes(range(256)) * 1000
            async with trio.open_nursery() as io:
                io.start_soon(client.send_all, payload)
                assert await receive_exactly(client, len(payload)) == payload
            assert proxy.stats.connections == 1
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_a_proxy_reset_gives_the_client_a_connection_reset() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            proxy, client = await start_proxy(nursery)
            await client.send_all(b"ping")
            assert await receive_exactly(client, 4) == b"ping"
            assert proxy.reset() == 1
            with pytest.raises(trio.BrokenResourceError) as caught:
                while True:  # RST, not the FIN of an orderly close (that would be b"")
                    assert await client.receive_some(100) != b"", "FIN instead of RST"
            assert isinstance(caught.value.__cause__, ConnectionResetError)
            assert caught.value.__cause__.errno == errno.ECONNRESET
            assert (proxy.stats.resets, proxy.stats.reset_connections) == (1, 1)
            assert proxy.reset() == 0  # nothing left to reset, and not counted
            assert proxy.stats.resets == 1
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_a_half_close_ends_the_servers_direction_while_the_client_may_still_send() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            proxy, client = await start_proxy(nursery)
            await client.send_all(b"ping")
            assert await receive_exactly(client, 4) == b"ping"
            assert proxy.half_close() == 1
            assert await client.receive_some(100) == b""  # FIN
            await client.send_all(b"still open")  # the proxy still reads (and drops) it
            assert proxy.stats.half_closes == 1
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_a_stall_holds_bytes_until_it_ends() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            proxy, client = await start_proxy(nursery)
            nursery.start_soon(proxy.stall, 0.5)
            await trio.sleep(0.05)
            assert proxy.stalled
            started = trio.current_time()
            await client.send_all(b"ping")
            assert await receive_exactly(client, 4) == b"ping"
            assert trio.current_time() - started >= 0.4
            assert not proxy.stalled
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_a_slow_reader_trickles_the_servers_bytes() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            proxy, client = await start_proxy(nursery)
            nursery.start_soon(proxy.slow, 5.0, 4096)  # 4 KB/s
            await trio.sleep(0.05)
            started = trio.current_time()
            await client.send_all(b"x" * 2048)
            await receive_exactly(client, 2048)
            assert trio.current_time() - started >= 0.3  # ~0.5 s at 4 KB/s
            await client.aclose()
            nursery.cancel_scope.cancel()


async def test_a_connection_the_upstream_refuses_is_reset() -> None:
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            proxy = FaultProxy("127.0.0.1", free_port())  # nothing listens there
            port = await nursery.start(proxy.serve)
            client = await trio.open_tcp_stream("127.0.0.1", port)
            with pytest.raises(trio.BrokenResourceError):
                await client.receive_some(100)
            assert proxy.stats.refused == 1
            await client.aclose()
            nursery.cancel_scope.cancel()
