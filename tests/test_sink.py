"""The informer core's fan-out, fed by hand (no network): one read or one relist applied
in Rust and handed, in the same call, to two queues, an owner-mapped queue and the
changes buffer Python event handlers read once per read (client-go's
ResourceEventHandler semantics: add; update with old and new; delete with the last
state; a relist's objects found again as updates and vanished ones as tombstones).
The real-apiserver version is tests/e2e/test_informer_core_e2e.py."""

from __future__ import annotations

import copy
from collections.abc import MutableMapping
from typing import Any

import orjson
import pytest
import trio
import trio.testing
from helpers.watch import bookmark, event

from trio_controller._native import (
    Changes,
    ListAccumulator,
    OwnerMapping,
    Store,
    parse_response_head,
)
from trio_controller.cache.mappers import controller_owner
from trio_controller.cache.sink import (
    Change,
    CoreSink,
    EventHandlers,
    Handlers,
    QueueMapped,
)
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


class Recorder:
    """EventHandlers that note (what, name, old rv, new rv)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, str | None]] = []

    @staticmethod
    def _rv(obj: dict[str, Any] | None) -> str | None:
        return None if obj is None else obj["metadata"]["resourceVersion"]

    def handlers(self) -> EventHandlers:
        def note(what: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
            name = (new or old or {})["metadata"]["name"]
            self.calls.append((what, name, self._rv(old), self._rv(new)))

        return EventHandlers(
            on_add=lambda new: note("add", None, new),
            on_update=lambda old, new: note("update", old, new),
            on_delete=lambda old: note("delete", old, None),
        )


def fanned_out() -> tuple[CoreSink, Store, list[WorkQueue], Recorder]:
    """A core over a store with two plain queues, an owner-mapped one and handlers."""
    store = Store()
    sink = CoreSink(store, "ConfigMap")
    queues = [WorkQueue(), WorkQueue(), WorkQueue()]
    sink.add_queue(queues[0])
    sink.add_queue(queues[1])
    sink.add_queue(queues[2], OwnerMapping("example.com/v1", "Widget"))
    recorder = Recorder()
    sink.add_consumer(Handlers(recorder.handlers()))
    return sink, store, queues, recorder


async def test_one_read_reaches_every_queue_and_the_handlers_in_the_same_call(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink, store, queues, recorder = fanned_out()
    fed = sink.apply(READ, trio.current_time(), None)
    assert (fed.applied, fed.bookmarks, fed.resource_version) == (3, 1, "14")
    assert [ready(q) for q in queues] == [["ns/a", "ns/b"], ["ns/a", "ns/b"], ["ns/w1", "ns/w2"]]
    # a moved from w1 to w2 (any version of the group maps): both owners look again.
    assert recorder.calls == [
        ("add", "a", None, "11"),
        ("add", "b", None, "12"),
        ("update", "a", "11", "13"),
    ]
    assert sorted(store.list_keys()) == ["ns/a", "ns/b"] and store.resource_version == "14"
    sink.apply(event("DELETED", cm("a", 15, owner="w2")), 0.0, None)
    assert [ready(q) for q in queues] == [["ns/a"], ["ns/a"], ["ns/w2"]]
    assert recorder.calls[-1] == ("delete", "a", "15", None)  # the last state


async def test_a_relist_hands_adds_updates_with_their_old_version_and_tombstones(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink, store, queues, recorder = fanned_out()
    sink.replace(list_of(cm("a", 5, owner="w1"), cm("gone", 6, owner="w3")), "10")
    assert [ready(q) for q in queues] == [["ns/a", "ns/gone"]] * 2 + [["ns/w1", "ns/w3"]]
    result = sink.replace(list_of(cm("a", 7, owner="w1"), cm("new", 8, owner="w4")), "20")
    assert result.counts == (1, 1, 1)
    assert result.deleted == ["ns/gone"]
    assert [ready(q) for q in queues] == [["ns/a", "ns/gone", "ns/new"]] * 2 + [
        ["ns/w1", "ns/w3", "ns/w4"]
    ]
    assert sorted(recorder.calls[2:]) == [
        ("add", "new", None, "8"),
        ("delete", "gone", "6", None),  # the tombstone: its last known state
        ("update", "a", "5", "7"),
    ]
    assert store.resource_version == "20"


async def test_a_mapper_in_python_and_the_owner_mapping_in_rust_agree(
    autojump_clock: trio.testing.MockClock,
) -> None:
    rust, python = WorkQueue(), WorkQueue()
    sink = CoreSink(Store())
    sink.add_queue(rust, OwnerMapping("example.com/v1", "Widget"))
    sink.add_consumer(QueueMapped(python, controller_owner("example.com/v1", "Widget")))
    sink.apply(READ, trio.current_time(), None)
    assert ready(rust) == ready(python) == ["ns/w1", "ns/w2"]
    sink.replace(list_of(cm("a", 20, owner="w5")), "30")
    assert ready(rust) == ready(python) == ["ns/w2", "ns/w5"]


async def test_objects_are_parsed_only_when_a_handler_reads_them(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[Change] = []

    class Keys:
        def deliver(self, changes: Changes) -> None:
            seen.extend(changes)

    sink = CoreSink(Store())
    sink.add_consumer(Keys())
    sink.apply(READ, trio.current_time(), None)
    assert [(kind, key, listed) for kind, key, _, _, listed in seen] == [
        ("ADDED", "ns/a", False),
        ("ADDED", "ns/b", False),
        ("MODIFIED", "ns/a", False),
    ]
    objects = [obj for _, _, old, new, _ in seen for obj in (old, new) if obj is not None]
    assert len(objects) == 4 and not any(obj.parsed for obj in objects)  # nothing parsed yet
    old = seen[2][2]
    assert old is not None and old["metadata"]["resourceVersion"] == "11"
    assert old.parsed and not seen[2][3].parsed  # only what was read


async def test_a_compressed_cache_hands_consumers_the_same_changes_as_a_plain_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Objects of a compressed cache reach consumers still compressed and are
    decompressed when read: what they read is the same bytes and dicts."""

    def changes_of(store: Store) -> list[tuple[Any, ...]]:
        batches: list[Changes] = []

        class Keep:
            def deliver(self, changes: Changes) -> None:
                batches.append(changes)

        sink = CoreSink(store)
        sink.add_consumer(Keep())
        sink.apply(READ, trio.current_time(), None)
        sink.apply(event("DELETED", cm("b", 15)), trio.current_time(), None)
        sink.replace(list_of(cm("a", 20, owner="w5"), cm("c", 21)), "30")
        sink.replace(list_of(cm("c", 22)), "40")  # a vanishes: a tombstone
        out = []
        for batch in batches:
            for kind, key, old, new, listed in batch:  # objects read in a changing order
                got = (new.dict() if new is not None else None, old.raw if old else None)
                out.append((kind, key, listed, *got, new.raw if new else None))
        return out

    plain, compressed = changes_of(Store()), changes_of(Store(compress=True))
    assert compressed == plain
    assert [(kind, key) for kind, key, *_ in plain] == [
        ("ADDED", "ns/a"), ("ADDED", "ns/b"), ("MODIFIED", "ns/a"), ("DELETED", "ns/b"),
        ("ADDED", "ns/c"), ("MODIFIED", "ns/a"), ("MODIFIED", "ns/c"), ("DELETED", "ns/a"),
    ]  # fmt: skip
    assert orjson.loads(plain[-1][4]) == cm("a", 20, owner="w5")  # the tombstone's state


async def test_handlers_get_objects_that_read_like_the_dicts_they_encode(
    autojump_clock: trio.testing.MockClock,
) -> None:
    got: list[Any] = []
    sink = CoreSink(Store())
    sink.add_consumer(Handlers(EventHandlers(on_add=got.append)))
    sink.apply(event("ADDED", cm("a", 11)), trio.current_time(), None)
    (obj,) = got
    meta = obj["metadata"]  # that member alone is parsed
    assert meta is obj["metadata"] and meta["name"] == "a" and obj.get("nope", 7) == 7
    with pytest.raises(KeyError):
        obj["spec"]
    meta["annotations"] = {"seen": "yes"}  # kept when the whole object is parsed
    assert obj.dict()["metadata"] is meta and obj.dict()["metadata"]["annotations"]
    del meta["annotations"]
    assert obj == cm("a", 11) and cm("a", 11) == obj and obj != cm("a", 12)
    assert isinstance(obj, MutableMapping) and not isinstance(obj, dict)
    assert obj.get("kind") == "ConfigMap" and "metadata" in obj and len(obj) == 3
    assert sorted(obj) == sorted(obj.keys()) == ["apiVersion", "kind", "metadata"]
    assert dict(obj) == {**obj} == copy.deepcopy(obj) == cm("a", 11)
    assert isinstance(obj.dict(), dict) and obj.dict() is obj.dict()
    obj["metadata"]["labels"] = {"x": "y"}  # a handler's own view: the cache is untouched
    assert obj.dict()["metadata"]["labels"] == {"x": "y"}
    assert orjson.loads(obj.raw) == cm("a", 11) == orjson.loads(sink.store.get_raw("ns/a"))


async def test_a_bad_line_still_delivers_the_changes_before_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink, _, queues, recorder = fanned_out()
    bad = event("ADDED", cm("a", 1)) + b"{oops}\n"
    try:
        sink.apply(bad, trio.current_time(), None)
    except Exception as exc:  # DecodeError
        assert "line 2" in str(exc)
    else:
        raise AssertionError("a malformed line must raise")
    assert ready(queues[0]) == ["ns/a"]
    assert recorder.calls == [("add", "a", None, "1")]


def chunked(data: bytes) -> bytes:
    """`data` as HTTP/1.1 chunks of 7 bytes, then the last chunk."""
    parts = [data[i : i + 7] for i in range(0, len(data), 7)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


async def test_the_core_frames_a_stream_from_its_response_head_and_keeps_the_position(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sink, store, _, recorder = fanned_out()
    head = parse_response_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head is not None
    sink.begin(head)  # once per stream; then only socket reads
    body = chunked(READ)
    for i in range(0, len(body), 5):  # reads may end anywhere, even inside a chunk size
        assert not sink.body_done
        sink.apply(body[i : i + 5], trio.current_time(), None)
    assert sink.body_done and sink.resource_version == "14" == store.resource_version
    assert [c[0] for c in recorder.calls] == ["add", "add", "update"]
    # A new stream drops what the last one left buffered; counts and position stay.
    sink.begin(head)
    sink.apply(b"60\r\n" + READ[:20], trio.current_time(), None)  # half a line
    assert sink.core.pending_bytes > 0
    sink.begin(None)  # no head: lines until the connection closes
    assert sink.core.pending_bytes == 0 and not sink.body_done
    sink.apply(event("DELETED", cm("b", 15)), trio.current_time(), None)
    assert sink.counts() == {"ADDED": 2, "MODIFIED": 1, "DELETED": 1, "BOOKMARK": 1, "ERROR": 0}
    assert sink.resource_version == "15"
