"""The reflector's transitions, as the pure function `next_state(state, outcome)`: every
row of the diagram at the top of cache/reflector.py, without I/O."""

from __future__ import annotations

import logging

import pytest

from trio_controller import errors
from trio_controller._native import Store
from trio_controller.cache.reflector import (
    AUTH_RETRY,
    Failed,
    GiveUp,
    Listed,
    Next,
    Reflector,
    Relist,
    StreamList,
    StreamListUnsupported,
    Watch,
    WatchEnded,
    next_state,
    streaming_list_unsupported,
)
from trio_controller.cache.sink import CoreSink
from trio_controller.config import ClusterConfig
from trio_controller.runtime.workqueue import WorkQueue
from trio_controller.transport.client import Client


def step(state: object, outcome: object) -> Next:
    result = next_state(state, outcome)  # type: ignore[arg-type]
    assert isinstance(result, Next), result
    return result


def test_a_finished_list_watches_from_its_resource_version_at_once() -> None:
    assert step(Relist(), Listed("10")) == Next(Watch("10"))
    assert step(StreamList(), Listed("12")) == Next(Watch("12"))


def test_a_watch_that_ends_normally_resumes_from_the_last_resource_version_at_once() -> None:
    assert step(Watch("10"), WatchEnded("15", events=3, seconds=300.0)) == Next(Watch("15"))


def test_a_watch_ending_within_a_second_without_events_backs_off() -> None:
    nxt = step(Watch("10"), WatchEnded("10", events=0, seconds=0.2))
    assert (nxt.state, nxt.wait) == (Watch("10"), "backoff")
    assert "very short watch" in nxt.note
    # A long quiet watch is a normal end.
    assert step(Watch("10"), WatchEnded("10", events=0, seconds=300.0)).wait == "now"


def test_a_server_without_streaming_lists_gets_list_and_watch_for_good() -> None:
    nxt = step(StreamList(), StreamListUnsupported("no"))
    assert nxt.state == Relist() and nxt.streaming_list is False and nxt.wait == "now"


def test_410_gone_relists_at_once_from_any_state() -> None:
    gone = errors.Gone(410, "Expired", "too old resource version")
    for state in (Watch("10"), StreamList(), Relist()):
        nxt = step(state, Failed(gone, "10", synced=True))
        assert (nxt.state, nxt.wait, nxt.level) == (Relist(), "now", logging.INFO)


def test_429_waits_for_retry_after_or_backs_off_without_it() -> None:
    slow = errors.TooManyRequests(retry_after=7.0)
    assert step(Watch("10"), Failed(slow, "12", synced=True)) == Next(Watch("12"), 7.0)
    bare = errors.TooManyRequests()
    assert step(Relist(), Failed(bare, "", synced=False)).wait == "backoff"


def test_a_dropped_watch_that_delivered_events_resumes_at_once() -> None:
    dropped = errors.ConnectionFailed("reset")
    nxt = step(Watch("10"), Failed(dropped, "14", listed=True, delivered=True, synced=True))
    assert (nxt.state, nxt.wait) == (Watch("14"), "now")
    # The same drop with no event delivered backs off.
    nxt = step(Watch("10"), Failed(dropped, "10", listed=True, delivered=False, synced=True))
    assert (nxt.state, nxt.wait) == (Watch("10"), "backoff")


def test_a_quiet_watch_lost_after_a_second_or_more_resumes_at_once() -> None:
    """client-go's very-short-watch rule: only a stream under a second with no event
    backs off; one that was open longer and was reset is a normal watch end."""
    lost = errors.ConnectionLost("reset")
    quiet = Failed(lost, "10", listed=True, synced=True, lasted=10.0)
    assert step(Watch("10"), quiet).wait == "now"
    short = Failed(lost, "10", listed=True, synced=True, lasted=0.3)
    assert step(Watch("10"), short).wait == "backoff"
    never_opened = Failed(lost, "10", listed=True, synced=True)
    assert step(Watch("10"), never_opened).wait == "backoff"


def test_a_streaming_list_failing_after_its_initial_events_becomes_a_watch() -> None:
    bad = errors.ServerError(500, "InternalError", "boom")
    nxt = step(StreamList(), Failed(bad, "10", listed=True, synced=True))
    assert (nxt.state, nxt.wait) == (Watch("10"), "backoff")


def test_other_errors_retry_the_same_state_after_backoff() -> None:
    bad = errors.ServerError(500, "InternalError", "boom")
    assert step(Relist(), Failed(bad, "", synced=False)) == Next(Relist(), "backoff")


def test_a_streaming_list_failing_before_its_initial_events_end_falls_back_to_a_list() -> None:
    for exc in (
        errors.ServerError(500, "InternalError", "boom"),
        errors.Timeout("stream idle for 330s"),
    ):
        nxt = step(StreamList(), Failed(exc, "", delivered=True))
        assert (nxt.state, nxt.wait) == (Relist(), "now")


def test_a_streaming_list_dropped_before_its_initial_events_end_asks_for_it_again() -> None:
    lost = errors.ConnectionLost("reset")
    assert step(StreamList(), Failed(lost, "", delivered=True)).wait == "now"
    nxt = step(StreamList(), Failed(lost, "", delivered=False))
    assert (nxt.state, nxt.wait) == (StreamList(), "backoff")
    # A 429 is still waited out on the streaming list itself.
    slow = errors.TooManyRequests(retry_after=3.0)
    assert step(StreamList(), Failed(slow, "")) == Next(StreamList(), 3.0)


def test_403_before_the_first_sync_is_retried_each_second_during_the_grace_period() -> None:
    forbidden = errors.Forbidden(403, "Forbidden", "no")
    nxt = step(Relist(), Failed(forbidden, "", waited=3.0))
    assert (nxt.state, nxt.wait) == (Relist(), AUTH_RETRY)
    assert next_state(Relist(), Failed(forbidden, "", waited=10.0)) == GiveUp(forbidden)
    # After the first sync a 403 is one more error to back off from.
    assert step(Watch("9"), Failed(forbidden, "9", synced=True, waited=99.0)).wait == "backoff"


def test_tls_and_unreachable_servers_before_the_first_sync_give_up_at_once() -> None:
    for exc in (errors.TLSError("bad cert"), errors.ConnectionFailed("refused")):
        assert next_state(Relist(), Failed(exc, "")) == GiveUp(exc)
        # Unless told not to fail fast.
        assert step(Relist(), Failed(exc, "", fail_fast=False)).wait == "backoff"


@pytest.mark.parametrize(
    "exc",
    [
        errors.NotFound(404, "NotFound", "the server could not find the requested resource"),
        errors.ApiError(400, "BadRequest", "unable to parse requirement: found '=', expected"),
        errors.ApiError(422, "Invalid", "fieldSelector: Invalid value"),
    ],
    ids=["404", "400", "422"],
)
def test_permanent_list_errors_back_off_during_the_grace_period_then_give_up(
    exc: errors.ApiError,
) -> None:
    for state in (Relist(), StreamList()):
        assert step(state, Failed(exc, "", waited=4.0)).wait == "backoff"
        assert next_state(state, Failed(exc, "", waited=10.0)) == GiveUp(exc)
    # Once synced (a CRD deleted under a running controller), retry forever.
    assert step(Watch("5"), Failed(exc, "5", synced=True, waited=500.0)).wait == "backoff"


def test_only_a_status_about_the_streaming_list_means_it_is_unsupported() -> None:
    assert streaming_list_unsupported(
        errors.ApiError(422, "Invalid", "sendInitialEvents is forbidden for watch")
    )
    assert streaming_list_unsupported(
        errors.ApiError(400, "BadRequest", "resourceVersionMatch is forbidden for watch")
    )
    assert not streaming_list_unsupported(
        errors.ApiError(400, "BadRequest", "unable to parse requirement: bad label")
    )
    assert not streaming_list_unsupported(errors.NotFound(404, "NotFound", "sendInitialEvents"))


def test_a_reflector_writes_through_its_sink_only() -> None:
    client = Client(ClusterConfig("http://127.0.0.1:1"))
    store, queue = Store(), WorkQueue()
    sink = CoreSink(store)
    sink.add_queue(queue)
    reflector = Reflector(client, "/api/v1/pods", sink)
    assert reflector.store is store and reflector.kind == "/api/v1/pods"
    with pytest.raises(ValueError, match="already fed"):
        sink.add_queue(queue)
