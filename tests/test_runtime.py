"""The generic runtime over the scripted stream server: shared informers (one watch for
two controllers), owned and watched resources, metadata-only requests, handlers with a
streaming list, permanent list errors, V-level logs.

Fault injection and request counting the real apiserver cannot give on cue (how many
watches were opened, a 404 or 400 on the list, the exact Accept header sent); the same
behaviour against the real apiserver is in tests/e2e/test_runtime_e2e.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from helpers.watch import bookmark, event, pod, pod_list
from streamserver import Reply, Request, Stall, open_stream_server

from trio_controller.api.resource import CONFIGMAPS, DEPLOYMENTS, PODS, Resource
from trio_controller.cache.factory import SharedInformerFactory
from trio_controller.cache.informer import Informer, InformerOptions
from trio_controller.cache.reflector import METADATA_LIST_ACCEPT, METADATA_WATCH_ACCEPT, ListFailed
from trio_controller.cache.sink import EventHandlers
from trio_controller.config import ClusterConfig
from trio_controller.observe.log import v
from trio_controller.runtime.controller import Controller
from trio_controller.transport.client import Client

WIDGETS = Resource("example.com", "v1", "widgets", "Widget")


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0.02)


def widget(name: str, rv: int, ns: str = "default") -> dict[str, Any]:
    meta = {"name": name, "namespace": ns, "uid": f"uid-{name}", "resourceVersion": str(rv)}
    return {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": meta}


def configmap(name: str, rv: int, owner: str | None, *, controller: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": "default", "uid": f"uid-{name}",
                            "resourceVersion": str(rv)}  # fmt: skip
    if owner is not None:
        meta["ownerReferences"] = [
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": owner,
             "uid": f"uid-{owner}", "controller": controller}
        ]  # fmt: skip
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def items_list(rv: int, *objs: dict[str, Any]) -> Reply:
    return Reply.json({"kind": "List", "apiVersion": "v1",
                       "metadata": {"resourceVersion": str(rv)}, "items": list(objs)})  # fmt: skip


def watches(server: Any, path: str) -> list[Request]:
    return [r for r in server.requests if r.path == path and r.param("watch") == "true"]


class Keys:
    """A reconcile that records keys and wakes waiters."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.changed = trio.lowlevel.ParkingLot()

    def __call__(self, key: str) -> None:
        self.seen.append(key)
        self.changed.unpark_all()

    async def wait_for(self, *keys: str) -> None:
        with trio.fail_after(600):
            while not set(keys) <= set(self.seen):
                await self.changed.park()


async def test_two_controllers_of_one_resource_share_one_watch_and_each_get_every_key(
    clock: trio.testing.MockClock,
) -> None:
    path = PODS.path(namespace="default")

    def serve(request: Request) -> Reply:
        if request.param("watch") != "true":
            return pod_list(10, pod("a", 5))
        return Reply.chunks([event("ADDED", pod("b", 11)), Stall()])

    async with (
        open_stream_server(handler=serve) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        factory = SharedInformerFactory(client, InformerOptions(streaming_list=False))
        first, second = Keys(), Keys()
        one = Controller(client, PODS, first, namespace="default", factory=factory, name="One")
        two = Controller(client, PODS, second, namespace="default", factory=factory, name="Two")
        assert one.informer is two.informer
        assert one.store is two.store
        async with trio.open_nursery() as nursery:
            await nursery.start(factory.run)
            await nursery.start(one.run)
            await nursery.start(two.run)
            await first.wait_for("default/a", "default/b")
            await second.wait_for("default/a", "default/b")
            one.stop()
            two.stop()
            nursery.cancel_scope.cancel()
    lists = [r for r in server.requests if r.param("watch") != "true"]
    assert len(lists) == 1 and len(watches(server, path)) == 1
    # Two queues on one informer: the core feeds both in Rust, no Python consumer.
    assert one.informer is not None and one.informer.sink.core.queues == 2
    assert not one.informer.sink.core.changes


async def test_owner_mapped_and_shared_informers_stay_on_the_rust_path() -> None:
    async with Client(ClusterConfig("http://127.0.0.1:1")) as client:
        controller = Controller(client, PODS, lambda key: None)
        controller.owns(CONFIGMAPS)
        owned = controller.factory.informer(CONFIGMAPS)  # type: ignore[union-attr]
        assert owned.sink.core.queues == 1 and not owned.sink.core.changes
        # Shared with a second controller's owner mapping: both mapped in Rust.
        other = Controller(client, DEPLOYMENTS, lambda key: None, factory=controller.factory)
        other.owns(CONFIGMAPS)
        assert owned.sink.core.queues == 2 and not owned.sink.core.changes
        # A Python mapper reads the changes buffer (once per read).
        other.watches(CONFIGMAPS, lambda obj: [])
        assert owned.sink.core.changes


async def test_owned_objects_enqueue_their_controller_owner_and_nothing_else(
    clock: trio.testing.MockClock,
) -> None:
    widgets_path = WIDGETS.path()
    cms_path = CONFIGMAPS.path()

    def serve(request: Request) -> Reply:
        watch = request.param("watch") == "true"
        if request.path == widgets_path:
            if watch:
                return Reply.chunks([Stall()])
            return items_list(10, widget("w1", 5), widget("w2", 6))
        if request.path == cms_path:
            if watch:
                return Reply.chunks(
                    [
                        event("MODIFIED", configmap("w2-config", 21, "w2")),
                        event("ADDED", configmap("loose", 22, "w3", controller=False)),
                        event("DELETED", configmap("w1-config", 23, "w1")),
                        Stall(),
                    ]
                )
            return items_list(20, configmap("w1-config", 7, "w1"), configmap("other", 8, None))
        return Reply.failure(404, "NotFound", "no")

    async with (
        open_stream_server(handler=serve) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        keys = Keys()
        controller = Controller(
            client, WIDGETS, keys, informer_options=InformerOptions(streaming_list=False)
        ).owns(CONFIGMAPS)
        async with trio.open_nursery() as nursery:
            await nursery.start(controller.run)
            await keys.wait_for("default/w1", "default/w2")
            while len(watches(server, cms_path)) < 1:  # noqa: ASYNC110
                await trio.sleep(0.01)
            await trio.sleep(1)
            controller.stop()
    assert set(keys.seen) == {"default/w1", "default/w2"}  # never "default/w3", never a cm


async def test_watches_maps_objects_to_keys_with_any_mapper(
    clock: trio.testing.MockClock,
) -> None:
    def by_label(obj: dict[str, Any]) -> list[str]:
        target = (obj["metadata"].get("labels") or {}).get("widget")
        return [f"default/{target}"] if target else []

    cm = configmap("settings", 7, None)
    cm["metadata"]["labels"] = {"widget": "w9"}

    def serve(request: Request) -> Reply:
        watch = request.param("watch") == "true"
        if watch:
            return Reply.chunks([Stall()])
        if request.path == WIDGETS.path():
            return items_list(10)
        return items_list(20, cm, configmap("plain", 8, None))

    async with (
        open_stream_server(handler=serve) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        keys = Keys()
        controller = Controller(
            client, WIDGETS, keys, informer_options=InformerOptions(streaming_list=False)
        )
        controller.watches(CONFIGMAPS, by_label)
        async with trio.open_nursery() as nursery:
            await nursery.start(controller.run)
            await keys.wait_for("default/w9")
            controller.stop()
    assert keys.seen == ["default/w9"]


async def test_a_metadata_only_informer_asks_for_partial_object_metadata(
    clock: trio.testing.MockClock,
) -> None:
    replies = [pod_list(10, pod("a", 5)), Reply.chunks([Stall()])]
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        informer = Informer(client, PODS, InformerOptions(metadata_only=True, streaming_list=False))
        async with trio.open_nursery() as nursery:
            await nursery.start(informer.run)
            await informer.wait_for_cache_sync()
            while len(server.requests) < 2:  # noqa: ASYNC110
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    listed, watched = server.requests
    assert listed.headers["accept"] == METADATA_LIST_ACCEPT
    assert watched.headers["accept"] == METADATA_WATCH_ACCEPT
    # An ordinary informer asks for plain JSON.
    assert METADATA_WATCH_ACCEPT == "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"


async def test_handlers_with_a_streaming_list_see_the_initial_events_after_the_replace(
    clock: trio.testing.MockClock,
) -> None:
    calls: list[tuple[str, str, bool]] = []
    synced_at_first_call: list[bool] = []
    informer: Informer | None = None

    def note(kind: str, obj: dict[str, Any], old: dict[str, Any] | None = None) -> None:
        assert informer is not None
        synced_at_first_call.append(informer.has_synced or len(informer.store) > 0)
        calls.append((kind, obj["metadata"]["name"], old is not None))

    handlers = EventHandlers(
        on_add=lambda o: note("add", o),
        on_update=lambda old, new: note("update", new, old),
        on_delete=lambda o: note("delete", o),
    )
    replies = [
        Reply.chunks([
            event("ADDED", pod("a", 5)),
            event("ADDED", pod("b", 6)),
            bookmark(10, initial_end=True) + event("MODIFIED", pod("a", 11)),
            event("DELETED", pod("b", 12)),
            Stall(),
        ]),
    ]  # fmt: skip
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        informer = Informer(client, PODS, InformerOptions(streaming_list=True), handlers=handlers)
        async with trio.open_nursery() as nursery:
            await nursery.start(informer.run)
            with trio.fail_after(600):
                while len(calls) < 4:  # noqa: ASYNC110
                    await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert server.requests[0].param("sendInitialEvents") == "true"
    assert len(server.requests) == 1  # no list: the streaming list served the sync
    assert sorted(calls[:2]) == [("add", "a", False), ("add", "b", False)]
    assert calls[2:] == [("update", "a", True), ("delete", "b", False)]
    assert all(synced_at_first_call)  # the store held the whole list before any handler
    assert informer.store.list_keys() == ["default/a"]


@pytest.mark.parametrize(
    ("status", "reason", "message", "selector"),
    [
        (404, "NotFound", "the server could not find the requested resource", None),
        (400, "BadRequest", "unable to parse requirement: found '=', expected: !, identifier",
         "==bad"),
    ],
    ids=["404-plural", "400-selector"],
)  # fmt: skip
async def test_a_permanent_list_error_ends_the_controller_with_one_clear_error(
    status: int,
    reason: str,
    message: str,
    selector: str | None,
    clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    misspelt = Resource("example.com", "v1", "widgetz", "Widget")

    def refuse(request: Request) -> Reply:
        return Reply.failure(status, reason, message)

    async with (
        open_stream_server(handler=refuse) as server,
        Client(ClusterConfig(server.url)) as client,
    ):
        controller = Controller(client, misspelt, lambda key: None, label_selector=selector)
        start = trio.current_time()
        with trio.fail_after(120), pytest.raises(ListFailed) as failed:
            await controller.run()
        waited = trio.current_time() - start
    assert str(failed.value) == (
        f"cannot list *example.com/v1.Widget at /apis/example.com/v1/widgetz: "
        f"{status} {reason}: {message}"
    )
    assert 10 <= waited < 45  # the grace period for a CRD being established, with backoff
    assert server.requests[0].param("sendInitialEvents") == "true"
    assert 3 <= len(server.requests) <= 8
    if selector is not None:
        assert all(r.param("labelSelector") == selector for r in server.requests)
    messages = [r.getMessage() for r in caplog.records]
    assert not any("Streaming list is not supported" in m for m in messages)
    assert any(m.startswith("Failed to list *example.com/v1.Widget") for m in messages)


async def test_relists_and_watch_restarts_are_logged_at_v2_and_pages_at_v4(
    clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    replies = [
        pod_list(10, pod("a", 5), cont="p2"),
        pod_list(10, pod("b", 6)),
        Reply.chunks([event("ADDED", pod("c", 11)) + bookmark(12)]),
        Reply.chunks([Stall()]),
    ]
    caplog.set_level(v(4), logger="trio_controller")
    async with open_stream_server(*replies) as server, Client(ClusterConfig(server.url)) as client:
        informer = Informer(client, PODS, InformerOptions(streaming_list=False, page_size=1))
        async with trio.open_nursery() as nursery:
            await nursery.start(informer.run)
            while len(server.requests) < 4:  # noqa: ASYNC110
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    at = {r.getMessage(): r.levelno for r in caplog.records}
    v2 = [m for m, level in at.items() if level == v(2)]
    v4 = [m for m, level in at.items() if level == v(4)]
    assert v2 == [
        "Listed *v1.Pod at /api/v1/pods: 2 objects at resourceVersion 10 (2 new, 0 updated, "
        "0 deleted; list 1)",
        "Restarting the watch of *v1.Pod at /api/v1/pods from resourceVersion 12 (restart 1; "
        "the last stream delivered 2 events)",
    ]
    assert v4 == [
        "List page 1 of *v1.Pod at /api/v1/pods: 1 items at resourceVersion 10, more to come",
        "List page 2 of *v1.Pod at /api/v1/pods: 1 items at resourceVersion 10",
        "Watching *v1.Pod at /api/v1/pods from resourceVersion 10 (timeoutSeconds "
        f"{server.requests[2].param('timeoutSeconds')})",
        "Watch stream of *v1.Pod ended after 2 events (1 bookmarks), at resourceVersion 12",
        "Watching *v1.Pod at /api/v1/pods from resourceVersion 12 (timeoutSeconds "
        f"{server.requests[3].param('timeoutSeconds')})",
    ]
    assert not any(level < v(4) for level in at.values())  # nothing per event
