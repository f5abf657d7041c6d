"""The event recorder: Event bodies, aggregation into series, windows, drops and errors.

These talk to `tests/streamserver.py` for fault injection and virtual time: a real
apiserver cannot be made to answer 403/503 on cue, nor can it let six minutes pass in
an instant. tests/e2e/test_events_finalizers_e2e.py checks the same Events against the
real apiserver.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from streamserver import Reply, Request, StreamServer, open_stream_server

from trio_controller.api.resource import CONFIGMAPS, NAMESPACES
from trio_controller.config import ClusterConfig
from trio_controller.runtime.events import (
    NORMAL,
    WARNING,
    EventRecorder,
    micro_time,
    object_reference,
)
from trio_controller.transport.client import Client

EVENTS_PATH = "/apis/events.k8s.io/v1/namespaces/shop/events"
START = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Virtual time that jumps only after 50 ms of real idleness, so loopback I/O
    # finishes first; the client's timeout is far beyond every window used here.
    return trio.testing.MockClock(autojump_threshold=0.05)


def configmap(name: str = "web", rv: str = "7", namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "resourceVersion": rv,
        },
        "data": {"k": "v"},
    }


class WallClock:
    """A wall clock that moves one second per reading, from START."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> datetime:
        self.readings += 1
        return START + timedelta(seconds=self.readings - 1)


class FakeEvents:
    """Just enough of the events API: POST creates (409 on a taken name), a merge PATCH
    of `series` updates (404 when missing)."""

    def __init__(self) -> None:
        self.stored: dict[str, dict[str, Any]] = {}

    def __call__(self, request: Request) -> Reply:
        body = orjson.loads(request.body) if request.body else None
        if request.method == "POST":
            name = body["metadata"]["name"]
            if name in self.stored:
                return Reply.failure(409, "AlreadyExists", f'events "{name}" already exists')
            self.stored[name] = body
            return Reply.json(body, status=201)
        if request.method == "PATCH":
            name = request.path.rsplit("/", 1)[1]
            if name not in self.stored:
                return Reply.failure(404, "NotFound", f'events "{name}" not found')
            self.stored[name] = {**self.stored[name], **body}
            return Reply.json(self.stored[name])
        return Reply.failure(405, "MethodNotAllowed")


@pytest.fixture
def fake() -> FakeEvents:
    return FakeEvents()


class Arrivals(list[Request]):
    """`server.requests` that wakes whoever waits for the n-th request."""

    def __init__(self) -> None:
        super().__init__()
        self._grew = trio.Event()

    def append(self, request: Request) -> None:
        super().append(request)
        self._grew.set()
        self._grew = trio.Event()

    async def wait_for(self, n: int) -> None:
        """Until n requests came, then 10 ms (virtual) for their answers to be read."""
        with trio.fail_after(1000):
            while len(self) < n:
                await self._grew.wait()
        await trio.sleep(0.01)


def arrivals(server: StreamServer) -> Arrivals:
    requests = Arrivals()
    requests.extend(server.requests)
    server.requests = requests
    return requests


@asynccontextmanager
async def running(
    server: StreamServer, **options: Any
) -> AsyncIterator[tuple[EventRecorder, Callable[[int], Awaitable[None]]]]:
    """A recorder on `server`, running; yields it and `arrived(n)`, which waits until
    the server has seen n requests."""
    options.setdefault("wall_clock", WallClock())
    requests = arrivals(server)
    async with Client(ClusterConfig(server=server.url), timeout=10_000.0) as client:
        recorder = EventRecorder(
            client, "example.com/shop-controller", reporting_instance="shop-1", **options
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            yield recorder, requests.wait_for
            nursery.cancel_scope.cancel()


def bodies(server: StreamServer) -> list[tuple[str, str, Any]]:
    return [(r.method, r.path, orjson.loads(r.body)) for r in server.requests]


@pytest.fixture
def caplog_events(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG, logger="trio_controller.runtime.events"):
        yield caplog


# -- the Event --------------------------------------------------------------------------


def test_micro_time_is_rfc3339_in_utc_with_microseconds() -> None:
    east = datetime(2026, 1, 2, 5, 4, 5, 6, tzinfo=UTC).astimezone()
    assert micro_time(START) == "2026-01-02T03:04:05.000006Z"
    assert micro_time(east) == "2026-01-02T05:04:05.000006Z"


def test_an_object_reference_names_the_object_and_needs_a_kind() -> None:
    listed = {"metadata": {"name": "web", "namespace": "shop", "uid": "u", "resourceVersion": "3"}}
    assert object_reference(listed, CONFIGMAPS) == {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "namespace": "shop",
        "name": "web",
        "uid": "u",
        "resourceVersion": "3",
    }
    with pytest.raises(ValueError, match="apiVersion, kind"):
        object_reference(listed)


async def test_the_first_occurrence_creates_an_event_about_the_object(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with open_stream_server(handler=fake) as server, running(server) as (recorder, arrived):
        recorder.event(configmap(), WARNING, "FailedSync", "bucket is gone", action="Sync")
        await arrived(1)
    ((method, path, body),) = bodies(server)
    assert (method, path) == ("POST", EVENTS_PATH)
    assert server.requests[0].headers["content-type"] == "application/json"
    nanoseconds = int(START.timestamp()) * 10**9 + 6000
    assert body == {
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {"name": f"web.{nanoseconds:x}", "namespace": "shop"},
        "eventTime": "2026-01-02T03:04:05.000006Z",
        "reportingController": "example.com/shop-controller",
        "reportingInstance": "shop-1",
        "action": "Sync",
        "reason": "FailedSync",
        "type": "Warning",
        "note": "bucket is gone",
        "regarding": {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "namespace": "shop",
            "name": "web",
            "uid": "uid-web",
            "resourceVersion": "7",
        },
    }


async def test_events_about_cluster_scoped_objects_go_to_the_default_namespace(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    ns = {"metadata": {"name": "shop", "uid": "u1"}}
    async with open_stream_server(handler=fake) as server, running(server) as (recorder, arrived):
        recorder.event(ns, NORMAL, "Labelled", "ok", action="Label", resource=NAMESPACES)
        await arrived(1)
    ((_, path, body),) = bodies(server)
    assert path == "/apis/events.k8s.io/v1/namespaces/default/events"
    assert body["regarding"] == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "name": "shop",
        "uid": "u1",
    }


async def test_the_default_reporting_instance_is_controller_dash_hostname() -> None:
    async with Client(ClusterConfig(server="http://127.0.0.1:1")) as client:
        recorder = EventRecorder(client, "example.com/c")
    assert recorder.reporting_instance.startswith("example.com/c-")
    assert len(recorder.reporting_instance) > len("example.com/c-")


async def test_arguments_the_apiserver_would_refuse_raise_at_once() -> None:
    async with Client(ClusterConfig(server="http://127.0.0.1:1")) as client:
        recorder = EventRecorder(client, "example.com/c")
        with pytest.raises(ValueError, match="'Normal' or 'Warning'"):
            recorder.event(configmap(), "Info", "Synced", "ok", action="Sync")
        with pytest.raises(ValueError, match="reason and an action"):
            recorder.event(configmap(), NORMAL, "Synced", "ok", action="")
    assert recorder.statistics()["waiting"] == 0


async def test_a_long_note_is_cut_to_one_kilobyte_on_a_character_boundary(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with open_stream_server(handler=fake) as server, running(server) as (recorder, arrived):
        recorder.event(configmap(), NORMAL, "Synced", "é" * 1000, action="Sync")
        await arrived(1)
    note = bodies(server)[0][2]["note"]
    assert note == "é" * 512 and len(note.encode()) == 1024


# -- aggregation ------------------------------------------------------------------------


async def test_repeats_become_one_event_whose_series_is_patched(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with open_stream_server(handler=fake) as server, running(server) as (recorder, arrived):
        for rv in ("7", "8", "9"):  # a new resourceVersion is the same object
            recorder.event(configmap(rv=rv), WARNING, "FailedSync", "gone", action="Sync")
        await arrived(2)
        # The second makes it a series at once; the third waits for the refresh.
        (post, _, created), (patch, path, series) = bodies(server)
        assert (post, patch) == ("POST", "PATCH")
        assert path == f"{EVENTS_PATH}/{created['metadata']['name']}"
        assert server.requests[1].headers["content-type"] == "application/merge-patch+json"
        assert series == {"series": {"count": 2, "lastObservedTime": "2026-01-02T03:04:06.000006Z"}}
        await trio.sleep(29)
        assert len(server.requests) == 2
        await trio.sleep(2)
        await arrived(3)
        assert bodies(server)[2][2] == {
            "series": {"count": 3, "lastObservedTime": "2026-01-02T03:04:07.000006Z"}
        }
        await trio.sleep(100)  # nothing changed: nothing written
    assert len(server.requests) == 3
    (stored,) = fake.stored.values()
    assert stored["series"]["count"] == 3
    assert stored["regarding"]["resourceVersion"] == "7"


async def test_a_different_note_reason_type_or_object_is_another_event(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with open_stream_server(handler=fake) as server, running(server) as (recorder, arrived):
        recorder.event(configmap(), WARNING, "FailedSync", "gone", action="Sync")
        recorder.event(configmap(), WARNING, "FailedSync", "still gone", action="Sync")
        recorder.event(configmap(), WARNING, "Failed", "gone", action="Sync")
        recorder.event(configmap(), NORMAL, "FailedSync", "gone", action="Sync")
        recorder.event(configmap(), WARNING, "FailedSync", "gone", action="Delete")
        recorder.event(configmap("db"), WARNING, "FailedSync", "gone", action="Sync")
        await arrived(6)
    assert [method for method, _, _ in bodies(server)] == ["POST"] * 6
    assert len(fake.stored) == 6


async def test_an_occurrence_after_six_quiet_minutes_creates_a_new_event(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with open_stream_server(handler=fake) as server, running(server) as (recorder, arrived):
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        await arrived(2)
        await trio.sleep(359)
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")  # 359 s: same series
        await arrived(3)
        await trio.sleep(360)
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")  # 360 s quiet: new
        await arrived(4)
    methods = [method for method, _, _ in bodies(server)]
    # POST, PATCH 2, (refresh after 30 s) PATCH 3, then the new Event.
    assert methods == ["POST", "PATCH", "PATCH", "POST"], methods
    assert bodies(server)[2][2]["series"]["count"] == 3
    first, second = fake.stored.values()
    assert first["series"]["count"] == 3 and "series" not in second
    assert recorder.statistics()["series"] == 1


async def test_the_window_is_measured_when_event_was_called_not_when_it_was_sent(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with (
        open_stream_server(handler=fake) as server,
        Client(ClusterConfig(server=server.url), timeout=10_000.0) as client,
    ):
        recorder = EventRecorder(client, "example.com/c", wall_clock=WallClock())
        # Both wait in the channel (the recorder is busy, or not started): 400 s apart.
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        await trio.sleep(400)
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        requests = arrivals(server)
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            await requests.wait_for(2)
            nursery.cancel_scope.cancel()
    assert [method for method, _, _ in bodies(server)] == ["POST", "POST"]


async def test_a_quiet_series_writes_its_final_count_when_it_finishes(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with (
        open_stream_server(handler=fake) as server,
        running(server, refresh_interval=3600.0) as (recorder, arrived),
    ):
        for _ in range(5):
            recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        await arrived(2)
        await trio.sleep(359)
        assert len(server.requests) == 2
        await trio.sleep(2)
        await arrived(3)
        assert recorder.statistics()["series"] == 0
    assert bodies(server)[2][2]["series"]["count"] == 5


async def test_cancelling_run_writes_the_counts_not_yet_written(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with open_stream_server(handler=fake) as server:
        async with running(server) as (recorder, arrived):
            for _ in range(4):
                recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
            await arrived(2)
        assert [method for method, _, _ in bodies(server)] == ["POST", "PATCH", "PATCH"]
    (stored,) = fake.stored.values()
    assert stored["series"]["count"] == 4


# -- not blocking, not raising --------------------------------------------------------


async def test_a_full_channel_drops_events_with_a_log_line(
    fake: FakeEvents, clock: trio.testing.MockClock, caplog_events: pytest.LogCaptureFixture
) -> None:
    async with (
        open_stream_server(handler=fake) as server,
        Client(ClusterConfig(server=server.url), timeout=10_000.0) as client,
    ):
        recorder = EventRecorder(client, "example.com/c", capacity=2, wall_clock=WallClock())
        for n in range(5):  # not running yet: two wait, three are dropped
            recorder.event(configmap(f"cm{n}"), NORMAL, "Synced", "ok", action="Sync")
        assert recorder.statistics() == {"waiting": 2, "dropped": 3, "series": 0}
        full = [r for r in caplog_events.records if "channel full" in r.getMessage()]
        assert len(full) == 1 and full[0].levelno == logging.WARNING
        assert "cm2" in full[0].getMessage()
        requests = arrivals(server)
        async with trio.open_nursery() as nursery:
            await nursery.start(recorder.run)
            await requests.wait_for(2)
            nursery.cancel_scope.cancel()
    assert [body["regarding"]["name"] for _, _, body in bodies(server)] == ["cm0", "cm1"]
    assert "dropped 3 events" in caplog_events.text


async def test_event_returns_without_waiting_for_a_stalled_apiserver(
    clock: trio.testing.MockClock,
) -> None:
    stalled = trio.Event()

    async def never(request: Request) -> Reply:
        await stalled.wait()
        return Reply.failure(500, "InternalError")

    async with open_stream_server(handler=never) as server, running(server) as (recorder, arrived):
        await arrived(0)
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        await arrived(1)
        started = trio.current_time()
        for n in range(50):
            recorder.event(configmap(f"cm{n}"), NORMAL, "Synced", "ok", action="Sync")
        assert trio.current_time() == started
        assert recorder.statistics()["waiting"] == 50
        stalled.set()


@pytest.mark.parametrize(
    ("reply", "logged"),
    [
        (Reply.failure(403, "Forbidden", 'events is forbidden: User "x"'), "403 Forbidden"),
        (Reply.failure(404, "NotFound", 'namespaces "shop" not found'), "namespace gone"),
        (Reply.failure(409, "AlreadyExists", "already exists"), "409 AlreadyExists"),
        (Reply.failure(422, "Invalid", "note: Too long"), "422 Invalid"),
    ],
)
async def test_a_rejected_event_is_logged_and_the_next_one_is_still_sent(
    reply: Reply,
    logged: str,
    fake: FakeEvents,
    clock: trio.testing.MockClock,
    caplog_events: pytest.LogCaptureFixture,
) -> None:
    async with (
        open_stream_server(reply, handler=fake) as server,
        running(server) as (
            recorder,
            arrived,
        ),
    ):
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        await arrived(2)
    # The refused Event is forgotten, so its repeat is created, not patched.
    assert [method for method, _, _ in bodies(server)] == ["POST", "POST"]
    assert len(fake.stored) == 1
    assert logged in caplog_events.text and "will not retry" in caplog_events.text


async def test_an_unanswered_event_is_retried_after_ten_seconds(
    fake: FakeEvents, clock: trio.testing.MockClock, caplog_events: pytest.LogCaptureFixture
) -> None:
    script = [Reply.failure(503, "ServiceUnavailable"), Reply.failure(500, "InternalError")]
    async with (
        open_stream_server(*script, handler=fake) as server,
        running(server) as (
            recorder,
            arrived,
        ),
    ):
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        await arrived(1)
        first = trio.current_time()
        await arrived(3)
        waited = trio.current_time() - first
    assert [method for method, _, _ in bodies(server)] == ["POST"] * 3
    assert 20.0 <= waited <= 25.0  # two waits of 10 s + up to 25% jitter
    assert len(fake.stored) == 1
    assert caplog_events.text.count("will retry") == 2


async def test_an_event_that_never_gets_an_answer_is_given_up_after_max_tries(
    clock: trio.testing.MockClock, caplog_events: pytest.LogCaptureFixture
) -> None:
    async with (
        open_stream_server(handler=lambda r: Reply.failure(503, "ServiceUnavailable")) as server,
        running(server, max_tries=3) as (recorder, arrived),
    ):
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        await arrived(3)
        await trio.sleep(60)
    assert len(server.requests) == 3
    assert "after 3 tries" in caplog_events.text


async def test_a_series_whose_event_vanished_is_created_again_with_its_count(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with open_stream_server(handler=fake) as server, running(server) as (recorder, arrived):
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        await arrived(1)
        fake.stored.clear()  # expired after an hour, or deleted
        recorder.event(configmap(), NORMAL, "Synced", "ok", action="Sync")
        await arrived(3)
    (post, _, created), (patch, _, _), (again, _, recreated) = bodies(server)
    assert (post, patch, again) == ("POST", "PATCH", "POST")
    assert recreated == {
        **created,
        "series": {"count": 2, "lastObservedTime": recreated["series"]["lastObservedTime"]},
    }
    (stored,) = fake.stored.values()
    assert stored["series"]["count"] == 2


# -- closing: what is waiting is sent -----------------------------------------------------


async def test_closing_sends_every_waiting_event_and_run_returns(
    fake: FakeEvents, clock: trio.testing.MockClock
) -> None:
    async with open_stream_server(handler=fake) as server:
        requests = arrivals(server)
        async with Client(ClusterConfig(server=server.url), timeout=10_000.0) as client:
            recorder = EventRecorder(client, "example.com/shop-controller", wall_clock=WallClock())
            async with trio.open_nursery() as nursery:
                await nursery.start(recorder.run)
                for i in range(5):
                    recorder.event(configmap(f"cm{i}"), NORMAL, "Made", "made", action="Make")
                assert recorder.statistics()["waiting"] >= 4  # run may hold the first
                recorder.close()
                with trio.fail_after(100):
                    await recorder.closed()  # run returned by itself: nothing to cancel
                recorder.event(configmap("late"), NORMAL, "Made", "late", action="Make")
    assert len(requests) == 5
    assert {orjson.loads(r.body)["regarding"]["name"] for r in requests} == {
        f"cm{i}" for i in range(5)
    }


async def test_closed_returns_at_once_for_a_recorder_that_never_ran() -> None:
    async with Client(ClusterConfig(server="http://127.0.0.1:1")) as client:
        recorder = EventRecorder(client, "example.com/x")
        recorder.close()
        with trio.fail_after(1):
            await recorder.closed()


def test_the_docstring_names_the_event_types_as_strings() -> None:
    assert '"Normal"' in (EventRecorder.__doc__ or "")
    assert '"Warning"' in (EventRecorder.event.__doc__ or "")
