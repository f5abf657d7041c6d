"""Predicates in front of a queue, fed by hand (no network): an update enters the queue
only if every predicate holds; adds and deletes always do; a relist's objects found again
are updates. A queue fed by the core (built-in predicates in Rust, a Python callable
called from Rust) and one fed through a Python mapper give the same keys."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio
import trio.testing
from helpers.watch import event

from trio_controller import (
    annotations_changed,
    generation_changed,
    labels_changed,
    resource_version_changed,
)
from trio_controller._native import ListAccumulator, OwnerMapping, Store
from trio_controller.cache.mappers import controller_owner
from trio_controller.cache.sink import CoreSink, Filter, QueueMapped, Sink
from trio_controller.runtime.workqueue import WorkQueue


def obj(name: str, rv: int, gen: int, labels: dict[str, str] | None = None,
        owner: str | None = None) -> dict[str, Any]:  # fmt: skip
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "resourceVersion": str(rv),
                            "generation": gen, "labels": labels or {"app": "x"}}  # fmt: skip
    if owner:
        meta["ownerReferences"] = [{"apiVersion": "example.com/v1", "kind": "Widget",
                                    "name": owner, "uid": owner, "controller": True}]  # fmt: skip
    return {"apiVersion": "example.com/v1", "kind": "Thing", "metadata": meta, "spec": {}}


def ready(queue: WorkQueue) -> list[str]:
    keys = queue.native.get_many_nowait(100, trio.current_time())
    queue.done_many(keys)
    return sorted(keys)


def list_of(*objs: dict[str, Any]) -> ListAccumulator:
    acc = ListAccumulator(strip_managed_fields=True)
    acc.feed_page(orjson.dumps({"kind": "List", "metadata": {"resourceVersion": "50"},
                                "items": list(objs)}))  # fmt: skip
    return acc


def feed(sink: Sink, data: bytes) -> None:
    sink.apply(data, trio.current_time(), None)


def own_key(obj: dict[str, Any]) -> list[str]:
    return [f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"]


def sinks(predicates: list[Any], owner: bool = False) -> list[tuple[Sink, WorkQueue]]:
    """A core feeding a queue in Rust, and one feeding it through a Python mapper, both
    behind `predicates`."""
    filter_ = Filter.of(predicates)
    native_queue, py_queue = WorkQueue(), WorkQueue()
    mapping = OwnerMapping("example.com/v1", "Widget", True) if owner else None
    native = CoreSink(Store(), "Thing")
    native.add_queue(native_queue, mapping, filter_)
    mapper = controller_owner("example.com/v1", "Widget") if owner else own_key
    python = CoreSink(Store(), "Thing")
    python.add_consumer(QueueMapped(py_queue, mapper, filter_))
    return [(native, native_queue), (python, py_queue)]


async def test_only_updates_that_change_the_generation_are_queued(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for sink, queue in sinks([generation_changed]):
        sink.replace(list_of(obj("a", 1, 1), obj("b", 2, 1), obj("c", 3, 1)), "3")
        assert ready(queue) == ["ns/a", "ns/b", "ns/c"]  # adds always pass
        feed(
            sink,
            event("MODIFIED", obj("a", 4, 1, labels={"app": "y"}))  # status/label: same gen
            + event("MODIFIED", obj("b", 5, 2))  # a spec change
            + event("DELETED", obj("c", 6, 1))  # deletes always pass
            + event("ADDED", obj("d", 7, 1)),
        )
        assert ready(queue) == ["ns/b", "ns/c", "ns/d"], sink
        # A relist: a found again unchanged, b with a new generation, d gone, e new.
        sink.replace(list_of(obj("a", 4, 1), obj("b", 8, 3), obj("e", 9, 1)), "9")
        assert ready(queue) == ["ns/b", "ns/d", "ns/e"], sink


@pytest.mark.parametrize(
    ("predicate", "passes"),
    [
        (generation_changed, ["ns/gen"]),
        (labels_changed, ["ns/labels"]),
        (annotations_changed, ["ns/notes"]),
        (resource_version_changed, ["ns/gen", "ns/labels", "ns/notes", "ns/status"]),
    ],
    ids=lambda p: getattr(p, "name", None),
)
async def test_each_built_in_predicate_looks_at_its_own_field(
    autojump_clock: trio.testing.MockClock, predicate: Any, passes: list[str]
) -> None:
    def notes(o: dict[str, Any], value: str) -> dict[str, Any]:
        o["metadata"]["annotations"] = {"n": value}
        return o

    before = [obj("gen", 1, 1), obj("labels", 1, 1), notes(obj("notes", 1, 1), "a"),
              obj("status", 1, 1), obj("same", 1, 1)]  # fmt: skip
    after = [obj("gen", 2, 2), obj("labels", 2, 1, labels={"app": "z"}),
             notes(obj("notes", 2, 1), "b"), obj("status", 2, 1), obj("same", 1, 1)]  # fmt: skip
    for sink, queue in sinks([predicate]):
        sink.replace(list_of(*before), "1")
        ready(queue)
        feed(sink, b"".join(event("MODIFIED", o) for o in after))
        assert ready(queue) == passes, sink
        assert predicate(before[0], after[0]) is ("ns/gen" in passes)


async def test_a_python_predicate_sees_both_versions_of_updates_only(
    autojump_clock: trio.testing.MockClock,
) -> None:
    calls: list[tuple[str, str]] = []

    def replicas_grew(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
        assert old is not None and new is not None
        calls.append((old["metadata"]["resourceVersion"], new["metadata"]["resourceVersion"]))
        return bool(new["spec"].get("replicas", 0) > old["spec"].get("replicas", 0))

    def scaled(o: dict[str, Any], replicas: int) -> dict[str, Any]:
        o["spec"]["replicas"] = replicas
        return o

    pairs = sinks([generation_changed, replicas_grew])
    for rust, (sink, queue) in zip((True, False), pairs, strict=True):
        calls.clear()
        sink.replace(list_of(scaled(obj("a", 1, 1), 1), scaled(obj("b", 2, 1), 1)), "2")
        ready(queue)
        feed(
            sink,
            event("MODIFIED", scaled(obj("a", 3, 1), 1))  # generation_changed refuses
            + event("MODIFIED", scaled(obj("a", 4, 2), 3))  # both pass
            + event("MODIFIED", scaled(obj("b", 5, 2), 0)),  # replicas_grew refuses
        )
        assert ready(queue) == ["ns/a"], sink
        if rust:  # the built-in goes first, in Rust: the callable sees what it let by
            assert calls == [("3", "4"), ("2", "5")]


async def test_a_predicate_that_raises_lets_the_update_through_with_one_error_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(old: dict[str, Any] | None, new: dict[str, Any] | None) -> bool:
        raise KeyError("spec")

    for sink, queue in sinks([broken]):
        sink.replace(list_of(obj("a", 1, 1)), "1")
        ready(queue)
        feed(sink, event("MODIFIED", obj("a", 2, 1)))
        assert ready(queue) == ["ns/a"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert all("Predicate" in line and "ns/a" in line and "goes through" in line
               for line in lines)  # fmt: skip


async def test_owner_mapped_updates_are_filtered_on_the_owned_object(
    autojump_clock: trio.testing.MockClock,
) -> None:
    for sink, queue in sinks([labels_changed], owner=True):
        sink.replace(list_of(obj("cm", 1, 1, owner="w")), "1")
        assert ready(queue) == ["ns/w"]
        feed(sink, event("MODIFIED", obj("cm", 2, 1, owner="w")))
        assert ready(queue) == [], sink
        feed(sink, event("MODIFIED", obj("cm", 3, 1, labels={"app": "new"}, owner="w")))
        assert ready(queue) == ["ns/w"], sink
        sink.replace(list_of(obj("cm", 3, 1, labels={"app": "new"}, owner="w")), "3")
        assert ready(queue) == [], sink
        feed(sink, event("DELETED", obj("cm", 4, 1, owner="w")))
        assert ready(queue) == ["ns/w"], sink


def test_a_predicate_must_be_callable() -> None:
    with pytest.raises(TypeError, match="a predicate is a callable"):
        Filter.of(["generation"])  # type: ignore[list-item]
