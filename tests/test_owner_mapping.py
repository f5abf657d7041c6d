"""Owned objects enqueue their controller owner's key, on the watch fast path and on a
relist, in Rust (`OwnerMapping` with `WatchDecoder.feed_into` and `Store.replace`)."""

from __future__ import annotations

import orjson
import pytest

from trio_controller._native import (
    DecodeError,
    ListAccumulator,
    OwnerMapping,
    Store,
    WatchDecoder,
    WorkQueue,
)

WIDGETS = OwnerMapping("example.com/v1", "Widget")


def ref(
    name: str,
    *,
    controller: bool | None = True,
    kind: str = "Widget",
    api_version: str = "example.com/v1",
) -> dict:
    out: dict = {"apiVersion": api_version, "kind": kind, "name": name, "uid": f"uid-{name}"}
    if controller is not None:
        out["controller"] = controller
    return out


def config_map(name: str, *owners: dict, ns: str | None = "default", rv: str = "1") -> dict:
    meta: dict = {"name": name, "resourceVersion": rv, "uid": f"uid-{name}"}
    if ns is not None:
        meta["namespace"] = ns
    if owners:
        meta["ownerReferences"] = list(owners)
    meta["managedFields"] = [{"manager": "widget-operator", "fieldsV1": {"f:data": {}}}]
    return {"kind": "ConfigMap", "apiVersion": "v1", "metadata": meta, "data": {"k": "v"}}


def line(kind: str, obj: dict) -> bytes:
    return orjson.dumps({"type": kind, "object": obj}) + b"\n"


def drain(q: WorkQueue) -> list[str]:
    keys = q.get_many_nowait(1000, 0.0)
    q.done_many(keys, 0.0)
    return keys


def feed(
    data: bytes, store: Store | None = None, mapping: OwnerMapping | None = WIDGETS
) -> tuple[Store, list[str]]:
    store = store if store is not None else Store()
    q = WorkQueue()
    WatchDecoder().feed_into(data, store, q, 0.0, owner=mapping)
    return store, drain(q)


def test_the_controller_owner_of_the_primary_kind_is_enqueued_and_the_object_stored() -> None:
    store, keys = feed(line("ADDED", config_map("cm", ref("w"))))
    assert keys == ["default/w"]
    assert store.list_keys() == ["default/cm"]
    assert b"managedFields" not in (store.get_raw("default/cm") or b"")


def test_owners_that_are_not_the_controller_are_ignored() -> None:
    data = line("ADDED", config_map("a", ref("w1", controller=False))) + line(
        "ADDED", config_map("b", ref("w2", controller=None))
    )
    store, keys = feed(data)
    assert keys == []
    assert sorted(store.list_keys()) == ["default/a", "default/b"]


def test_a_controller_of_the_wrong_kind_or_group_is_ignored() -> None:
    data = b"".join(
        [
            line("ADDED", config_map("a", ref("w", kind="Gadget"))),
            line("ADDED", config_map("b", ref("w", api_version="other.io/v1"))),
            line("ADDED", config_map("c", ref("w", api_version="v1"))),
        ]
    )
    assert feed(data)[1] == []


def test_another_version_of_the_primary_group_still_maps_as_in_controller_runtime() -> None:
    assert feed(line("ADDED", config_map("a", ref("w", api_version="example.com/v2"))))[1] == [
        "default/w"
    ]


def test_among_several_owners_only_the_matching_controller_is_enqueued() -> None:
    cm = config_map(
        "cm",
        ref("plain", controller=False),
        ref("d", kind="Deployment", api_version="apps/v1", controller=None),
        ref("boss"),
        ref("g", kind="Gadget", controller=False),
    )
    assert feed(line("ADDED", cm))[1] == ["default/boss"]


def test_an_object_without_an_owner_enqueues_nothing() -> None:
    store, keys = feed(line("ADDED", config_map("cm")) + line("MODIFIED", config_map("cm", rv="2")))
    assert keys == []
    assert store.object_resource_version("default/cm") == "2"


def test_a_cluster_scoped_owner_or_owned_object_gives_just_the_name() -> None:
    cluster_owner = OwnerMapping("example.com/v1", "Widget", namespaced=False)
    assert feed(line("ADDED", config_map("cm", ref("w"))), mapping=cluster_owner)[1] == ["w"]
    assert feed(line("ADDED", config_map("cm", ref("w"), ns=None)))[1] == ["w"]
    assert not cluster_owner.namespaced
    assert (WIDGETS.api_version, WIDGETS.kind, WIDGETS.namespaced) == (
        "example.com/v1",
        "Widget",
        True,
    )


def test_without_a_mapping_the_own_key_is_enqueued() -> None:
    assert feed(line("ADDED", config_map("cm", ref("w"))), mapping=None)[1] == ["default/cm"]


def test_a_delete_maps_through_the_deleted_objects_owner_references() -> None:
    store, keys = feed(line("ADDED", config_map("cm", ref("w"))))
    assert keys == ["default/w"]
    # The DELETED event carries the object's last state: its owner is enqueued.
    store, keys = feed(line("DELETED", config_map("cm", ref("w"), rv="2")), store)
    assert keys == ["default/w"]
    assert len(store) == 0
    assert store.resource_version == "2"


def test_an_update_that_moves_the_object_enqueues_the_new_and_the_old_owner() -> None:
    store, _ = feed(line("ADDED", config_map("cm", ref("old"))))
    store, keys = feed(line("MODIFIED", config_map("cm", ref("new"), rv="2")), store)
    assert keys == ["default/new", "default/old"]
    store, keys = feed(line("MODIFIED", config_map("cm", ref("new"), rv="3")), store)
    assert keys == ["default/new"]


def test_a_compressing_store_maps_the_old_side_too() -> None:
    store = Store(compress=True)
    for i in range(80):
        feed(line("ADDED", config_map(f"cm{i}", ref("old"))), store)
    _, keys = feed(line("MODIFIED", config_map("cm3", ref("new"), rv="2")), store)
    assert keys == ["default/new", "default/old"]


def test_every_split_of_a_chunked_stream_maps_to_the_same_keys() -> None:
    events = [
        line("ADDED", config_map("a", ref("w1"))),
        line("ADDED", config_map("b", ref("w2", controller=False))),
        line("MODIFIED", config_map("a", ref("w3"), rv="2")),
        line("DELETED", config_map("c", ref("w4"), rv="3")),
    ]
    body = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\n\r\n"

    def run(parts: list[bytes]) -> tuple[list[str], list[str]]:
        d = WatchDecoder()
        d.reset(chunked=True)
        store, q = Store(), WorkQueue()
        for part in parts:
            d.feed_into(part, store, q, 0.0, owner=WIDGETS)
        return drain(q), sorted(store.list_keys())

    whole = run([body])
    assert whole == (["default/w1", "default/w3", "default/w4"], ["default/a", "default/b"])
    for cut in range(len(body) + 1):
        assert run([body[:cut], body[cut:]]) == whole, cut
    assert run([body[i : i + 1] for i in range(len(body))]) == whole


def accumulate(*objects: dict) -> ListAccumulator:
    acc = ListAccumulator(strip_managed_fields=True)
    acc.feed_page(orjson.dumps({"metadata": {"resourceVersion": "9"}, "items": list(objects)}))
    return acc


def test_a_relist_enqueues_the_owners_of_added_updated_and_deleted_objects_in_rust() -> None:
    store = Store()
    store.replace(
        accumulate(
            config_map("kept", ref("w-old")),
            config_map("gone", ref("w-gone")),
            config_map("orphan"),
        ),
        "1",
    )
    q = WorkQueue()
    result = store.replace(
        accumulate(config_map("new", ref("w-new")), config_map("kept", ref("w-moved"))),
        "9",
        q,
        5.0,
        owner=WIDGETS,
    )
    expected = ["default/w-new", "default/w-moved", "default/w-old", "default/w-gone"]
    assert drain(q) == expected
    # The return value is what it was: the objects' own keys.
    assert (result.added, result.updated) == (["default/new"], ["default/kept"])
    assert sorted(result.deleted) == ["default/gone", "default/orphan"]
    assert set(result.tombstones) == {"default/gone", "default/orphan"}
    assert store.resource_version == "9"


def test_a_relist_with_a_queue_and_no_mapping_enqueues_every_changed_key() -> None:
    store = Store()
    store.replace(accumulate(config_map("kept"), config_map("gone")), "1")
    q = WorkQueue()
    store.replace(accumulate(config_map("new"), config_map("kept")), "2", q, 1.0)
    assert drain(q) == ["default/new", "default/kept", "default/gone"]


def test_owner_key_reads_one_objects_bytes_for_the_python_handler_path() -> None:
    assert WIDGETS.owner_key(orjson.dumps(config_map("cm", ref("w")))) == "default/w"
    assert WIDGETS.owner_key(orjson.dumps(config_map("cm"))) is None
    # As the Python mapper (cache/mappers.py): a reference without a name maps to nothing.
    assert WIDGETS.owner_key(orjson.dumps(config_map("cm", ref("")))) is None
    with pytest.raises(DecodeError):
        WIDGETS.owner_key(b'{"metadata": {"ownerReferences": [{"name": }]}}')
    assert (
        repr(WIDGETS)
        == 'OwnerMapping(api_version="example.com/v1", kind="Widget", namespaced=True)'
    )


def test_a_malformed_owner_reference_list_is_a_decode_error_after_the_events_before_it() -> None:
    store, q = Store(), WorkQueue()
    bad = b'{"type":"ADDED","object":{"metadata":{"name":"x","ownerReferences":[1,}}}\n'
    with pytest.raises(DecodeError):
        WatchDecoder().feed_into(
            line("ADDED", config_map("a", ref("w"))) + bad, store, q, 0.0, owner=WIDGETS
        )
    assert store.list_keys() == ["default/a"]
    assert drain(q) == ["default/w"]
