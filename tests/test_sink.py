"""The reflector's two sinks, fed by hand (no network): the same store and the same keys
from the native sink (Rust) and the Python-handler sink, for reads and for relists,
with owner mapping on both paths."""

from __future__ import annotations

from typing import Any

import orjson
import trio
import trio.testing
from helpers.watch import bookmark, event

from trio_controller._native import ListAccumulator, OwnerMapping, Store, WatchDecoder
from trio_controller.cache.mappers import controller_owner
from trio_controller.cache.sink import HandlerSink, NativeSink, QueueKeys, QueueMapped
from trio_controller.runtime.workqueue import WorkQueue


def cm(name: str, rv: int, owner: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": name,
        "namespace": "ns",
        "uid": name,
        "resourceVersion": str(rv),
    }
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "example.com/v2", "kind": "Widget",
                                    "name": owner, "uid": owner, "controller": True}]  # fmt: skip
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def ready(queue: WorkQueue) -> list[str]:
    """The queued keys, taken and done (so a later add queues them again)."""
    keys = queue.native.get_many_nowait(100, trio.current_time())
    queue.done_many(keys)
    return sorted(keys)


def list_of(*objs: dict[str, Any]) -> ListAccumulator:
    acc = ListAccumulator(strip_managed_fields=True)
    acc.feed_page(orjson.dumps({"kind": "List", "metadata": {"resourceVersion": "50"},
                                "items": list(objs)}))  # fmt: skip
    return acc


READ = (
    event("ADDED", cm("a", 11, owner="w1"))
    + event("ADDED", cm("b", 12))
    + event("MODIFIED", cm("a", 13, owner="w2"))
    + bookmark(14)
)


async def test_both_sinks_give_the_same_store_and_keys_for_a_read(
    autojump_clock: trio.testing.MockClock,
) -> None:
    native_store, native_queue = Store(), WorkQueue()
    native = NativeSink(native_store, native_queue)
    py_store, py_queue = Store(), WorkQueue()
    python = HandlerSink(py_store, [QueueKeys(py_queue)])
    for sink in (native, python):
        fed = sink.apply(WatchDecoder(), READ, trio.current_time(), None)
        assert (fed.applied, fed.bookmarks, fed.resource_version) == (3, 1, "14")
        assert fed.error is None
    assert ready(native_queue) == ready(py_queue) == ["ns/a", "ns/b"]
    assert sorted(native_store.list_keys()) == sorted(py_store.list_keys()) == ["ns/a", "ns/b"]
    assert native_store.resource_version == py_store.resource_version == "14"


async def test_owner_mapping_enqueues_old_and_new_owners_in_rust_and_in_python(
    autojump_clock: trio.testing.MockClock,
) -> None:
    owner = OwnerMapping("example.com/v1", "Widget")
    native_queue, py_queue = WorkQueue(), WorkQueue()
    native = NativeSink(Store(), native_queue, owner)
    python = HandlerSink(
        Store(), [QueueMapped(py_queue, controller_owner("example.com/v1", "Widget"))]
    )
    for sink in (native, python):
        sink.apply(WatchDecoder(), READ, trio.current_time(), None)
    # a moved from w1 to w2 (any version of the group maps); b has no owner.
    assert ready(native_queue) == ready(py_queue) == ["ns/w1", "ns/w2"]


async def test_a_relist_enqueues_owners_of_added_updated_and_vanished_objects(
    autojump_clock: trio.testing.MockClock,
) -> None:
    owner = OwnerMapping("example.com/v1", "Widget")
    results = []
    mapper = controller_owner("example.com/v1", "Widget")
    for make in (
        lambda store, q: NativeSink(store, q, owner),
        lambda store, q: HandlerSink(store, [QueueMapped(q, mapper)]),
    ):
        store, queue = Store(), WorkQueue()
        sink = make(store, queue)
        sink.replace(list_of(cm("a", 5, owner="w1"), cm("gone", 6, owner="w3")), "10")
        ready(queue)
        result = sink.replace(list_of(cm("a", 7, owner="w1"), cm("new", 8, owner="w4")), "20")
        assert result.deleted == ["ns/gone"]
        results.append(ready(queue))
    assert results[0] == results[1] == ["ns/w1", "ns/w3", "ns/w4"]


async def test_the_native_sink_enqueues_a_relists_keys_and_tombstones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store, queue = Store(), WorkQueue()
    sink = NativeSink(store, queue)
    sink.replace(list_of(cm("a", 5), cm("b", 6)), "10")
    assert ready(queue) == ["ns/a", "ns/b"]
    sink.replace(list_of(cm("a", 7)), "20")
    assert ready(queue) == ["ns/a", "ns/b"]  # a updated, b vanished: both told
    assert store.resource_version == "20"
