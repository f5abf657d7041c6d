"""The reflector and controller under faults a real apiserver cannot produce on cue.

Every test here is fault injection against the scripted stream server
(tests/streamserver.py): dropped watches, 410 after a gap, 5xx, 429, malformed lines,
stalled streams, expired continue tokens. Behaviour against the real apiserver is in
tests/e2e/.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import pytest
import trio
import trio.testing
from helpers.watch import bookmark, error_event, event, pod, pod_list
from streamserver import Close, Reply, Request, Stall, StreamServer, open_stream_server

from trio_controller._native import Store
from trio_controller.cache.reflector import Reflector
from trio_controller.cache.sink import CoreSink
from trio_controller.config import ClusterConfig
from trio_controller.errors import Forbidden
from trio_controller.programs.pods.printer import PodSyncPrinter
from trio_controller.runtime.controller import Controller, ControllerOptions
from trio_controller.runtime.workqueue import WorkQueue
from trio_controller.transport.client import Client

PODS = "/api/v1/namespaces/default/pods"


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # A little real time before each jump, so loopback bytes in flight are not mistaken
    # for idleness.
    return trio.testing.MockClock(autojump_threshold=0.02)


class Lines(io.StringIO):
    """The controller's stdout; wakes waiters on every flush."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = trio.lowlevel.ParkingLot()

    def flush(self) -> None:
        super().flush()
        self.changed.unpark_all()


class Harness:
    """A controller printing the example's lines into `out`, against `server`."""

    def __init__(self, client: Client, **reflector_args: Any) -> None:
        self.store = Store()
        self.queue = WorkQueue()
        self.out = Lines()
        sink = CoreSink(self.store)
        sink.add_queue(self.queue)
        self.reflector = Reflector(client, PODS, sink, **reflector_args)
        printer = PodSyncPrinter(self.store, self.out)
        self.controller = Controller.over(
            self.reflector, self.queue, printer, options=ControllerOptions(flush=printer.flush)
        )

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()

    async def wait_for(self, *wanted: str) -> list[str]:
        """Every line the controller printed, once all of `wanted` are among them.

        Keys are de-duplicated while queued, so how often a name is printed depends on
        timing; the tests assert on which lines appear, not on how many.
        """
        while not set(wanted) <= set(self.lines()):
            await self.out.changed.park()
        return self.lines()


def kinds(requests: list[Request]) -> list[str]:
    """`list`, or `watch@<rv>`, for every request the server saw."""
    out = []
    for r in requests:
        if r.param("watch") == "true":
            out.append(f"watch@{r.param('resourceVersion')}")
        else:
            out.append("list" + (f"+continue={r.param('continue')}" if r.param("continue") else ""))
    return out


def sync(*names: str) -> list[str]:
    return [f"Sync/Add/Update for Pod {n}" for n in names]


async def run_until(
    h: Harness, *wanted: str, server: StreamServer | None = None, requests: int = 0
) -> list[str]:
    """Run the controller until it has printed every `wanted` line (and `server` has
    received `requests` requests: a watch may still be on its way when the lines before
    it are printed), then stop it."""
    with trio.fail_after(3600):  # virtual seconds: a test that cannot finish fails quickly
        async with trio.open_nursery() as nursery:
            await nursery.start(h.controller.run)
            got = await h.wait_for(*wanted)
            # The scripted server has no event for a request's arrival: poll.
            while server is not None and len(server.requests) < requests:  # noqa: ASYNC110
                await trio.sleep(0.01)
            h.controller.stop()
    return got


async def test_a_dropped_watch_resumes_from_the_last_resource_version_without_relisting(
    clock: trio.testing.MockClock,
) -> None:
    server_replies = [
        pod_list(10, pod("a", 5), pod("b", 6)),
        Reply.chunks([event("MODIFIED", pod("a", 11)), Close()]),
        Reply.chunks([event("ADDED", pod("c", 12)), Stall()]),
    ]
    async with (
        open_stream_server(*server_replies) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        h = Harness(client)
        lines = await run_until(h, *sync("c"))
        assert set(lines) == set(sync("a", "b", "c"))
        assert h.store.object_resource_version("default/a") == "11"
        assert kinds(server.requests) == ["list", "watch@10", "watch@11"]
        assert h.store.resource_version == "12"


async def test_410_after_a_gap_relists_and_prints_the_delete_that_happened_in_the_gap(
    clock: trio.testing.MockClock,
) -> None:
    replies = [
        pod_list(10, pod("a", 5), pod("b", 6)),
        Reply.chunks([error_event(410, "Expired", "too old resource version: 10 (15)")]),
        pod_list(20, pod("a", 5)),
        Reply.chunks([Stall()]),
    ]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client)
        lines = await run_until(
            h, "Pod default/b does not exist anymore", server=server, requests=4
        )
        assert set(lines) == {*sync("a", "b"), "Pod default/b does not exist anymore"}
        assert "default/b" not in h.store
        assert kinds(server.requests) == ["list", "watch@10", "list", "watch@20"]


async def test_a_410_response_to_the_watch_request_relists(clock: trio.testing.MockClock) -> None:
    replies = [
        pod_list(10, pod("a", 5)),
        Reply.failure(410, "Expired", "too old resource version"),
        pod_list(30, pod("a", 25), pod("z", 29)),
        Reply.chunks([Stall()]),
    ]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client)
        lines = await run_until(h, *sync("z"), server=server, requests=4)
        assert set(lines) == set(sync("a", "z"))
        assert kinds(server.requests) == ["list", "watch@10", "list", "watch@30"]


async def test_repeated_500s_back_off_exponentially_then_recover(
    clock: trio.testing.MockClock,
) -> None:
    times: list[float] = []
    failures = 4

    def handler(request: Request) -> Reply:
        times.append(trio.current_time())
        if len(times) <= failures:
            return Reply.failure(500, "InternalError", "etcd is sad")
        if request.param("watch") == "true":
            return Reply.chunks([Stall()])
        return pod_list(10, pod("a", 5))

    async with (
        open_stream_server(handler=handler) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        h = Harness(client)
        lines = await run_until(h, *sync("a"))
        assert lines == sync("a")
        gaps = [b - a for a, b in itertools.pairwise(times[: failures + 1])]
        # 0.8 s doubling, each with up to 100% jitter.
        for gap, base in zip(gaps, [0.8, 1.6, 3.2, 6.4], strict=True):
            assert base <= gap <= 2 * base + 0.1


async def test_429_waits_for_retry_after(clock: trio.testing.MockClock) -> None:
    times: list[float] = []

    def handler(request: Request) -> Reply:
        times.append(trio.current_time())
        if len(times) == 1:
            return Reply.failure(
                429, "TooManyRequests", "slow down", headers=[("Retry-After", "7")]
            )
        if request.param("watch") == "true":
            return Reply.chunks([Stall()])
        return pod_list(10, pod("a", 5))

    async with (
        open_stream_server(handler=handler) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        h = Harness(client)
        await run_until(h, *sync("a"))
        assert 7.0 <= times[1] - times[0] < 7.5


async def test_a_malformed_line_restarts_the_watch_from_the_last_good_event(
    clock: trio.testing.MockClock,
) -> None:
    replies = [
        pod_list(10),
        Reply.chunks(
            [
                event("ADDED", pod("a", 11))
                + b'{"type":"ADDED","object":{broken\n'
                + event("ADDED", pod("c", 13)),
                Stall(),
            ]
        ),
        Reply.chunks([event("ADDED", pod("b", 12)), event("ADDED", pod("c", 13)), Stall()]),
    ]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client)
        lines = await run_until(h, *sync("c"))
        assert set(lines) == set(sync("a", "b", "c"))
        assert kinds(server.requests) == ["list", "watch@10", "watch@11"]


async def test_a_stalled_watch_is_abandoned_after_the_idle_timeout(
    clock: trio.testing.MockClock,
) -> None:
    replies = [
        pod_list(10),
        Reply.chunks([event("ADDED", pod("a", 11)), Stall()]),
        Reply.chunks([event("ADDED", pod("b", 12)), Stall()]),
    ]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client)
        start = trio.current_time()
        await run_until(h, *sync("b"))
        assert kinds(server.requests) == ["list", "watch@10", "watch@11"]
        # The server was asked to end the watch within 5-10 minutes; the client gave it
        # 30 s more before calling it stuck.
        timeout = int(server.requests[1].param("timeoutSeconds") or 0)
        assert 300 <= timeout <= 600
        assert trio.current_time() - start >= timeout + 30


async def test_an_expired_continue_token_falls_back_to_a_full_list(
    clock: trio.testing.MockClock,
) -> None:
    replies = [
        pod_list(10, pod("a", 5), cont="page2"),
        Reply.failure(410, "Expired", "The provided continue parameter is too old"),
        pod_list(12, pod("a", 5), pod("b", 11)),
        Reply.chunks([Stall()]),
    ]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client, page_size=1)
        lines = await run_until(h, *sync("a", "b"))
        assert sorted(lines) == sync("a", "b")
        assert kinds(server.requests) == ["list", "list+continue=page2", "list", "watch@12"]
        assert server.requests[0].param("limit") == "1"
        assert server.requests[2].param("limit") is None


async def test_streaming_list_syncs_at_the_initial_events_end_bookmark(
    clock: trio.testing.MockClock,
) -> None:
    replies = [
        Reply.chunks([
            event("ADDED", pod("a", 5)),
            event("ADDED", pod("b", 6)),
            bookmark(10, initial_end=True) + event("MODIFIED", pod("a", 11)),
            Stall(),
        ]),
    ]  # fmt: skip
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client, streaming_list=True)
        lines = await run_until(h, *sync("a", "b"))
        assert set(lines) == set(sync("a", "b"))
        first = server.requests[0]
        assert first.param("sendInitialEvents") == "true"
        assert first.param("resourceVersionMatch") == "NotOlderThan"
        assert h.store.resource_version == "11"
        assert h.store.object_resource_version("default/a") == "11"


async def test_streaming_list_falls_back_to_list_and_watch_when_the_server_refuses_it(
    clock: trio.testing.MockClock,
) -> None:
    replies = [
        Reply.failure(422, "Invalid", "sendInitialEvents is forbidden for watch"),
        pod_list(10, pod("a", 5)),
        Reply.chunks([Stall()]),
    ]  # fmt: skip
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client, streaming_list=True)
        lines = await run_until(h, *sync("a"))
        assert lines == sync("a")
        assert kinds(server.requests) == ["watch@", "list", "watch@10"]


async def test_a_server_that_ignores_send_initial_events_gets_list_and_watch(
    clock: trio.testing.MockClock,
) -> None:
    """An old apiserver treats the streaming list as a plain watch: no bookmark ever ends
    the initial events. When that watch ends, the reflector lists instead, for good."""
    replies = [
        Reply.chunks([event("ADDED", pod("a", 5))]),
        pod_list(10, pod("a", 5), pod("b", 6)),
        Reply.chunks([Stall()]),
    ]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client, streaming_list=True)
        lines = await run_until(h, *sync("a", "b"))
        assert set(lines) == set(sync("a", "b"))
        assert kinds(server.requests)[:2] == ["watch@", "list"]
        assert h.reflector.streaming_list is False


async def test_watches_that_close_at_once_are_retried_with_backoff_not_in_a_loop(
    clock: trio.testing.MockClock,
) -> None:
    times: list[float] = []

    def handler(request: Request) -> Reply:
        times.append(trio.current_time())
        if request.param("watch") != "true":
            return pod_list(10, pod("a", 5))
        if len(times) < 6:
            return Reply.chunks([])  # 200, then the body ends at once
        return Reply.chunks([event("ADDED", pod("b", 11)), Stall()])

    async with (
        open_stream_server(handler=handler) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        h = Harness(client)
        await run_until(h, *sync("a", "b"))
        watch_gaps = [b - a for a, b in itertools.pairwise(times[1:6])]
        for gap, base in zip(watch_gaps, [0.8, 1.6, 3.2, 6.4], strict=True):
            assert base <= gap <= 2 * base + 0.1


async def test_after_a_reset_of_a_watch_that_delivered_events_the_next_watch_starts_at_once(
    clock: trio.testing.MockClock,
) -> None:
    """Issue 11: a broken stream that had delivered events is a normal watch end for
    client-go, which re-watches at once; backing off here left the cache blind for up to
    47 s after single resets."""
    times: list[float] = []
    rv = itertools.count(11)

    def handler(request: Request) -> Reply:
        times.append(trio.current_time())
        if request.param("watch") != "true":
            return pod_list(10)
        if len(times) <= 6:  # five watches, each one event then a reset
            return Reply.chunks([event("ADDED", pod(f"p{len(times)}", next(rv))), Close()])
        return Reply.chunks([event("ADDED", pod("last", next(rv))), Stall()])

    async with (
        open_stream_server(handler=handler) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        h = Harness(client)
        await run_until(h, *sync("p2", "p3", "p4", "p5", "p6", "last"))
    gaps = [b - a for a, b in itertools.pairwise(times[1:])]
    assert len(gaps) == 5 and max(gaps) < 1.0
    assert kinds(server.requests)[1:] == [f"watch@{n}" for n in ["10", *map(str, range(11, 16))]]


async def test_a_403_that_clears_within_the_grace_period_ends_in_a_normal_sync(
    clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 11: a starting apiserver answers 403 until its RBAC is loaded."""
    replies = [
        Reply.failure(403, "Forbidden", 'pods is forbidden: cannot list resource "pods"'),
        Reply.failure(403, "Forbidden", 'pods is forbidden: cannot list resource "pods"'),
        pod_list(10, pod("a", 5)),
        Reply.chunks([Stall()]),
    ]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client)
        start = trio.current_time()
        lines = await run_until(h, *sync("a"))
        assert lines == sync("a")
        assert trio.current_time() - start < 5
    retries = [r for r in caplog.records if "retrying in 1.0s" in r.getMessage()]
    assert len(retries) == 2 and "403" in retries[0].getMessage()


async def test_a_403_that_lasts_past_the_grace_period_is_raised(
    clock: trio.testing.MockClock,
) -> None:
    def forbid(request: Request) -> Reply:
        return Reply.failure(403, "Forbidden", "no")

    async with (
        open_stream_server(handler=forbid) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        h = Harness(client)
        start = trio.current_time()
        with pytest.raises(Forbidden):
            await h.reflector.run()
        assert 10 <= trio.current_time() - start < 12
        assert 10 <= len(server.requests) <= 12


async def test_an_error_on_a_streaming_list_after_its_initial_events_is_a_watch_error(
    clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    replies = [
        Reply.chunks(
            [
                event("ADDED", pod("a", 5)),
                bookmark(10, initial_end=True),
                b'{"type":"ADDED","object":{broken\n',
                Stall(),
            ]
        ),
        Reply.chunks([event("ADDED", pod("b", 11)), Stall()]),
    ]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client, streaming_list=True)
        await run_until(h, *sync("a", "b"))
    failures = [r.getMessage() for r in caplog.records if "Failed to" in r.getMessage()]
    assert failures and all(m.startswith("Failed to watch") for m in failures)


BROKEN_FRAMING = {
    "size-not-hex": b"zz\r\n",
    "size-negative": b"-5\r\n",
    "size-too-long": b"1" * 40 + b"\r\n",
    "data-without-crlf": b"3\r\nabcXY",
}


@pytest.mark.parametrize("case", list(BROKEN_FRAMING))
async def test_broken_chunked_framing_is_logged_and_the_watch_resumes(
    case: str, clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    good = event("ADDED", pod("a", 11))
    head = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    framed = b"%x\r\n%s\r\n" % (len(good), good)
    replies = [
        pod_list(10),
        Reply.raw([head + framed + BROKEN_FRAMING[case], Stall()]),
        Reply.chunks([event("ADDED", pod("b", 12)), Stall()]),
    ]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        h = Harness(client)
        await run_until(h, *sync("a", "b"))
        assert kinds(server.requests) == ["list", "watch@10", "watch@11"]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("chunked encoding" in m for m in warnings), warnings


async def test_a_watch_body_split_at_every_byte_still_applies_every_event(
    clock: trio.testing.MockClock,
) -> None:
    """The chunk framing of three events and a bookmark, sent one byte per TCP write."""
    body = b"".join(
        b"%x;ext=1\r\n%s\r\n" % (len(line), line)
        for line in [
            event("ADDED", pod("a", 11)),
            event("MODIFIED", pod("a", 12)),
            event("ADDED", pod("b", 13)),
            bookmark(14),
        ]
    )
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    pieces = [bytes([c]) for c in head + body] + [b"0\r\nX-Trailer: 1\r\n\r\n"]
    rewatched = trio.Event()

    def after_the_body(request: Request) -> Reply:
        rewatched.set()
        return Reply.chunks([Stall()])

    replies = [pod_list(10), Reply.raw(pieces)]
    async with (
        open_stream_server(*replies, handler=after_the_body) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        h = Harness(client)
        with trio.fail_after(600):
            async with trio.open_nursery() as nursery:
                await nursery.start(h.controller.run)
                await h.wait_for(*sync("a", "b"))
                await rewatched.wait()
                h.controller.stop()
        assert h.store.resource_version == "14"
        assert kinds(server.requests) == ["list", "watch@10", "watch@14"]
