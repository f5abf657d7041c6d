"""Informer with Python handlers: each change reaches the handlers as dicts, relists
included. Uses the scripted stream server for the 410 and malformed-line faults; the
real-apiserver version is in tests/e2e/test_informer_e2e.py."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
import trio.testing
from helpers.watch import error_event, event, pod, pod_list
from streamserver import Pause, Reply, Stall, open_stream_server

from trio_controller.cache.informer import EventHandlers, Informer, InformerOptions
from trio_controller.config import ClusterConfig
from trio_controller.native import Store
from trio_controller.transport.client import Client

PODS = "/api/v1/namespaces/default/pods"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.changed = trio.lowlevel.ParkingLot()

    def _note(self, kind: str, obj: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        meta = (new or obj or {})["metadata"]
        old_rv = obj["metadata"]["resourceVersion"] if obj and new else None
        self.calls.append((kind, meta["name"], old_rv))
        self.changed.unpark_all()

    def handlers(self) -> EventHandlers:
        return EventHandlers(
            on_add=lambda o: self._note("add", o, None),
            on_update=lambda old, new: self._note("update", old, new),
            on_delete=lambda o: self._note("delete", o, None),
        )

    async def wait(self, n: int) -> list[tuple[str, str, str | None]]:
        with trio.fail_after(3600):
            while len(self.calls) < n:
                await self.changed.park()
        return self.calls


async def run_informer(
    url: str, recorder: Recorder, n: int, *, streaming_list: bool = False
) -> tuple[Informer, list[Any]]:
    async with Client(ClusterConfig(url)) as client:
        informer = Informer(
            client, PODS, InformerOptions(streaming_list=streaming_list),
            handlers=recorder.handlers(),
        )  # fmt: skip
        async with trio.open_nursery() as nursery:
            await nursery.start(informer.run)
            calls = await recorder.wait(n)
            nursery.cancel_scope.cancel()
    return informer, calls


async def test_handlers_see_adds_updates_with_the_old_object_and_deletes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    replies = [
        pod_list(10, pod("a", 5)),
        Reply.chunks(
            [
                event("ADDED", pod("b", 11)) + event("MODIFIED", pod("a", 12)),
                event("DELETED", pod("b", 13)),
                Stall(),
            ]
        ),
    ]
    recorder = Recorder()
    async with open_stream_server(*replies) as server:
        informer, calls = await run_informer(server.url, recorder, 4)
    assert calls == [("add", "a", None), ("add", "b", None), ("update", "a", "5"),
                     ("delete", "b", None)]  # fmt: skip
    assert informer.has_synced
    assert informer.store.list_keys() == ["default/a"]
    assert informer.store.resource_version == "13"
    assert server.requests[0].param("watch") is None


async def test_a_relist_after_410_hands_updates_their_old_version_and_tombstones_to_on_delete(
    autojump_clock: trio.testing.MockClock,
) -> None:
    replies = [
        pod_list(10, pod("a", 5), pod("b", 6)),
        Reply.chunks([error_event(410, "Expired", "too old resource version")]),
        pod_list(20, pod("a", 15)),
        Reply.chunks([Stall()]),
    ]
    recorder = Recorder()
    async with open_stream_server(*replies) as server:
        _, calls = await run_informer(server.url, recorder, 4)
    assert sorted(calls[:2]) == [("add", "a", None), ("add", "b", None)]
    # client-go's Replace: the object found again is an update from the cached version.
    assert calls[2:] == [("update", "a", "5"), ("delete", "b", None)]


async def test_a_malformed_line_is_applied_up_to_the_bad_line_and_the_watch_resumes_after_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    replies = [
        pod_list(10),
        # A pause keeps the two chunks in two socket reads: the events before the bad
        # line are applied and handed out (one write path: the core's), the watch
        # resumes after them. This scripted server sends b again anyway: an update.
        Reply.chunks(
            [event("ADDED", pod("a", 11)), Pause(1), event("ADDED", pod("b", 12)) + b"{oops\n"]
        ),
        Reply.chunks([event("ADDED", pod("b", 12)), event("ADDED", pod("c", 13)), Stall()]),
    ]
    recorder = Recorder()
    async with open_stream_server(*replies) as server:
        _, calls = await run_informer(server.url, recorder, 4)
    assert calls == [("add", "a", None), ("add", "b", None), ("update", "b", "12"),
                     ("add", "c", None)]  # fmt: skip
    assert server.requests[2].param("resourceVersion") == "12"


def test_the_store_an_informer_gives_refuses_writes_and_shows_what_the_informer_wrote() -> None:
    client = Client(ClusterConfig(server="http://127.0.0.1:1"))
    informer = Informer(client, PODS, InformerOptions(indexes={"node": "spec.nodeName"}))
    store = informer.store
    for write in ("upsert", "delete", "replace", "restore", "add_index"):
        assert not hasattr(store, write), write
    with pytest.raises(AttributeError):
        store.resource_version = "9"  # type: ignore[misc]
    full = Store()
    full.upsert(orjson.dumps(pod("a", 7)))
    full.resource_version = "7"
    assert informer.restore(full.snapshot()) == 1
    assert "default/a" in store and len(store) == 1
    assert store.resource_version == "7"
    assert store.get("default/a")["metadata"]["name"] == "a"  # type: ignore[index]
    assert store.by_index("namespace", "default") == ["default/a"]
