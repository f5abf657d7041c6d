"""What the sharder does with one object during a resync (moves.action): assign, drain,
move at once, or wait; the hash keys of ring and controlled resources; and the order of a
resync's writes (Mover.resync)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio

from trio_controller import errors
from trio_controller.api.resource import CONFIGMAPS, Resource
from trio_controller.programs.sharder.leasekeeper import micro_time
from trio_controller.programs.sharder.leases import shards_of
from trio_controller.programs.sharder.moves import RingResource, action
from trio_controller.programs.sharder.ring import HashRing, key_for_object
from trio_controller.runtime.sharding import drain_label, shard_label

RING = "widget-operator"
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
NOW = 1_800_000_000.0
PRIMARY = RingResource(WIDGETS)
CONTROLLED = RingResource(CONFIGMAPS, frozenset({("example.com", "Widget")}))


def lease(name: str, holder: str | None = None, renewed: float = NOW) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ops"},
        "spec": {
            "holderIdentity": name if holder is None else holder,
            "leaseDurationSeconds": 15,
            "acquireTime": micro_time(renewed),
            "renewTime": micro_time(renewed),
        },
    }


SHARDS = shards_of(
    [
        lease("ready-a"),
        lease("ready-b"),
        lease("expired", renewed=NOW - 20),
        lease("uncertain", renewed=NOW - 40),
        lease("dead", holder="shardlease-controller"),
    ],
    NOW,
)
HASH_RING = HashRing(["ready-a", "ready-b"])


def widget_meta(name: str, **labels: str) -> dict[str, Any]:
    return {"name": name, "namespace": "ns", "resourceVersion": "5", "labels": labels}


def a_widget_on_the_other_ready_shard() -> tuple[str, str]:
    """(a widget name, its desired shard) whose desired shard is ready-a."""
    for i in range(100):
        name = f"w{i}"
        if HASH_RING.shard_for(key_for_object("example.com", "Widget", "ns", name)) == "ready-a":
            return name, "ready-a"
    raise AssertionError("no widget hashes to ready-a")


def test_an_unassigned_object_is_moved_to_its_shard() -> None:
    name, desired = a_widget_on_the_other_ready_shard()
    assert action(RING, PRIMARY, widget_meta(name), HASH_RING, SHARDS) == ("move", desired)


def test_an_object_on_its_shard_is_left_alone() -> None:
    name, desired = a_widget_on_the_other_ready_shard()
    meta = widget_meta(name, **{shard_label(RING): desired})
    assert action(RING, PRIMARY, meta, HASH_RING, SHARDS) is None


def test_an_object_on_another_ready_shard_is_drained_once() -> None:
    name, desired = a_widget_on_the_other_ready_shard()
    meta = widget_meta(name, **{shard_label(RING): "ready-b"})
    assert action(RING, PRIMARY, meta, HASH_RING, SHARDS) == ("drain", desired)
    meta["labels"][drain_label(RING)] = "true"
    assert action(RING, PRIMARY, meta, HASH_RING, SHARDS) is None  # drain under way


def test_a_controlled_object_follows_its_controller_at_once_without_a_drain() -> None:
    name, desired = a_widget_on_the_other_ready_shard()
    meta = widget_meta(f"{name}-config", **{shard_label(RING): "ready-b"})
    meta["ownerReferences"] = [
        {"apiVersion": "example.com/v1", "kind": "Widget", "name": name, "controller": True}
    ]
    assert action(RING, CONTROLLED, meta, HASH_RING, SHARDS) == ("move", desired)


def test_a_controlled_object_without_a_controller_of_the_ring_is_not_sharded() -> None:
    meta = widget_meta("kube-root-ca.crt")
    assert action(RING, CONTROLLED, meta, HASH_RING, SHARDS) is None


@pytest.mark.parametrize("holder", ["expired", "uncertain"])
def test_objects_of_an_expired_or_uncertain_shard_wait_until_it_is_declared_dead(
    holder: str,
) -> None:
    name, _ = a_widget_on_the_other_ready_shard()
    meta = widget_meta(name, **{shard_label(RING): holder})
    assert action(RING, PRIMARY, meta, HASH_RING, SHARDS) is None


@pytest.mark.parametrize("holder", ["dead", "never-had-a-lease"])
def test_objects_of_a_dead_or_unknown_shard_move_at_once_even_mid_drain(holder: str) -> None:
    name, desired = a_widget_on_the_other_ready_shard()
    meta = widget_meta(name, **{shard_label(RING): holder, drain_label(RING): "true"})
    assert action(RING, PRIMARY, meta, HASH_RING, SHARDS) == ("move", desired)


def test_with_no_ready_shard_nothing_moves() -> None:
    meta = widget_meta("w1", **{shard_label(RING): "dead"})
    assert action(RING, PRIMARY, meta, HashRing([]), SHARDS) is None


# -- a resync's writes -----------------------------------------------------------------------


def _matches(selector: str | None, meta: dict[str, Any]) -> bool:
    """`key in (a,b)`, the one selector form the sharder sends."""
    if selector is None:
        return True
    key, _, values = selector.partition(" in ")
    return (meta.get("labels") or {}).get(key) in values.strip("()").split(",")


class ListAndPatch:
    """Lists `objects` by path (metadata, one page) and answers PATCHes, each taking a
    moment; remembers the order of the PATCHes' starts and ends."""

    def __init__(
        self, objects: dict[str, list[dict[str, Any]]], conflicting: frozenset[str] = frozenset()
    ) -> None:
        self.objects = objects
        self.conflicting = conflicting  # names whose PATCH answers 409
        self.events: list[tuple[str, ...]] = []

    async def list_page(self, path: str, params: Any, *, accept: str) -> bytes:
        selector = params.get("labelSelector")
        self.events.append(("list", path) if selector is None else ("list", path, selector))
        items = [{"metadata": meta} for meta in self.objects[path] if _matches(selector, meta)]
        return json.dumps({"items": items, "metadata": {}}).encode()

    async def request_json(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        self.events.append(("start", path))
        await trio.sleep(0.01 if "configmaps" in path else 0.001)
        self.events.append(("end", path))
        name = path.rsplit("/", 1)[1]
        if name in self.conflicting:
            raise errors.Conflict(409, "Conflict", "the object has been modified")
        for meta in (m for metas in self.objects.values() for m in metas if m["name"] == name):
            labels = {**meta["labels"], **body["metadata"]["labels"]}
            meta["labels"] = {k: v for k, v in labels.items() if v is not None}
        return {"metadata": {"name": path.rsplit("/", 1)[1], "resourceVersion": "6"}}


async def test_a_resync_moves_the_controlled_objects_before_it_looks_at_their_owners() -> None:
    from trio_controller.programs.sharder.moves import Mover

    names = [f"w{i}" for i in range(20)]
    ref = {"apiVersion": "example.com/v1", "kind": "Widget", "controller": True}
    client = ListAndPatch(
        {
            WIDGETS.path(): [widget_meta(n, **{shard_label(RING): "dead"}) for n in names],
            CONFIGMAPS.path(): [
                {**widget_meta(f"{n}-config", **{shard_label(RING): "dead"}),
                 "ownerReferences": [{**ref, "name": n, "uid": n}]}
                for n in names
            ],
        }
    )  # fmt: skip
    result = await Mover(client, RING, concurrent=8).resync(  # type: ignore[arg-type]
        [PRIMARY, CONTROLLED], HASH_RING, SHARDS
    )
    assert (result.moved, result.drained, result.conflicts) == (40, 0, 0)
    widget_list = client.events.index(("list", WIDGETS.path()))
    before, after = client.events[:widget_list], client.events[widget_list:]
    assert sum(1 for e in before if e[0] == "end" and "/configmaps/" in e[1]) == 20
    assert not any("/widgets/" in e[1] for e in before)
    assert sum(1 for e in after if e[0] == "end" and "/widgets/" in e[1]) == 20


async def test_a_dead_shards_objects_move_first_what_they_control_before_the_owners() -> None:
    from trio_controller.programs.sharder.moves import Mover

    dead = [f"w{i}" for i in range(20)]
    placed = [(f"x{i}", HASH_RING.shard_for(key_for_object("example.com", "Widget", "ns", f"x{i}")))
              for i in range(20)]  # fmt: skip
    ref = {"apiVersion": "example.com/v1", "kind": "Widget", "controller": True}
    client = ListAndPatch(
        {
            WIDGETS.path(): [widget_meta(n, **{shard_label(RING): "dead"}) for n in dead]
            + [widget_meta(n, **{shard_label(RING): s}) for n, s in placed],
            CONFIGMAPS.path(): [
                {**widget_meta(f"{n}-config", **{shard_label(RING): "dead"}),
                 "ownerReferences": [{**ref, "name": n, "uid": n}]}
                for n in dead
            ],
        }
    )  # fmt: skip
    result = await Mover(client, RING, concurrent=8).resync(  # type: ignore[arg-type]
        [PRIMARY, CONTROLLED], HASH_RING, SHARDS, evacuate={"dead"}
    )
    assert (result.moved, result.drained, result.conflicts) == (40, 0, 0)
    selector = f"{shard_label(RING)} in (dead)"
    lists = [e for e in client.events if e[0] == "list"]
    # Only the dead shard's objects are listed first, ConfigMaps before their Widgets;
    # then the full pass, which finds nothing more to do.
    assert lists == [
        ("list", CONFIGMAPS.path(), selector),
        ("list", WIDGETS.path(), selector),
        ("list", CONFIGMAPS.path()),
        ("list", WIDGETS.path()),
    ]
    widgets_listed = client.events.index(lists[1])
    before = client.events[:widgets_listed]
    assert sum(1 for e in before if e[0] == "end" and "/configmaps/" in e[1]) == 20
    assert not any("/widgets/" in e[1] for e in before)
    full_pass = client.events.index(lists[2])
    assert not any(e[0] == "start" for e in client.events[full_pass:])


async def test_a_resync_leaves_objects_in_namespaces_the_ring_does_not_select_alone() -> None:
    from trio_controller.programs.sharder.moves import Mover

    def meta(name: str, namespace: str) -> dict[str, Any]:
        return {**widget_meta(name, **{shard_label(RING): "dead"}), "namespace": namespace}

    client = ListAndPatch(
        {WIDGETS.path(): [meta("a", "selected"), meta("b", "other"), meta("c", "selected")]}
    )
    result = await Mover(client, RING).resync(  # type: ignore[arg-type]
        [PRIMARY], HASH_RING, SHARDS, evacuate={"dead"}, namespaces={"selected"}
    )
    assert result.moved == 2
    patched = {e[1].rsplit("/", 1)[1] for e in client.events if e[0] == "start"}
    assert patched == {"a", "c"}


async def test_only_conflicts_on_assigned_objects_make_the_ring_resync_again() -> None:
    from trio_controller.programs.sharder.moves import Mover

    objects = [widget_meta("unassigned"), widget_meta("stale", **{shard_label(RING): "dead"})]
    client = ListAndPatch({WIDGETS.path(): objects}, conflicting=frozenset({"unassigned", "stale"}))
    result = await Mover(client, RING).resync([PRIMARY], HASH_RING, SHARDS)  # type: ignore[arg-type]
    # The unassigned one changed meanwhile: the assigners' watch of unassigned objects
    # has it. The one still on a dead shard must be tried again.
    assert (result.moved, result.conflicts, result.raced) == (0, 1, 1)


async def test_a_dead_shards_objects_stay_while_its_lease_cannot_be_held() -> None:
    """A shard restarted under its old name took its Lease back before the sharder held
    it: its objects are not moved without a drain, and the ring resyncs again."""
    from trio_controller.programs.sharder.moves import Holds, Mover

    asked: list[str] = []

    def objects() -> dict[str, list[dict[str, Any]]]:
        names = [f"w{i}" for i in range(10)]
        return {WIDGETS.path(): [widget_meta(n, **{shard_label(RING): "dead"}) for n in names]}

    async def refused(shard: str) -> float | None:
        asked.append(shard)
        return None

    client = ListAndPatch(objects())
    holds = Holds(refused, lambda: NOW)
    result = await Mover(client, RING, concurrent=4).resync(  # type: ignore[arg-type]
        [PRIMARY], HASH_RING, SHARDS, holds=holds
    )
    assert (result.moved, result.conflicts) == (0, 10)
    assert asked == ["dead"]  # once per shard per resync
    assert not any(e[0] == "start" for e in client.events)

    async def held(shard: str) -> float | None:
        return NOW + 30

    client = ListAndPatch(objects())
    result = await Mover(client, RING, concurrent=4).resync(  # type: ignore[arg-type]
        [PRIMARY], HASH_RING, SHARDS, holds=Holds(held, lambda: NOW)
    )
    assert (result.moved, result.conflicts) == (10, 0)
