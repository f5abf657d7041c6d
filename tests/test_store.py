"""The Rust object store: keys, light accessors, indexes, replace, snapshots."""

from __future__ import annotations

import orjson
import pytest
import trio

from trio_controller._native import WatchDecoder
from trio_controller.native import DecodeError, ListAccumulator, Store


def pod(
    name: str,
    ns: str = "default",
    rv: str = "1",
    node: str = "node-a",
    app: str = "web",
    **extra_meta: object,
) -> dict:
    return {
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": f"uid-{name}",
            "resourceVersion": rv,
            "labels": {"app": app},
            "managedFields": [{"manager": "kubectl", "operation": "Update"}],
            **extra_meta,
        },
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx"}]},
    }


def raw(obj: dict) -> bytes:
    return orjson.dumps(obj)


def page(items: list[dict], rv: str = "100", cont: str = "") -> bytes:
    return orjson.dumps(
        {
            "kind": "PodList",
            "apiVersion": "v1",
            "metadata": {"resourceVersion": rv, "continue": cont},
            "items": items,
        }
    )


def test_upsert_returns_the_namespace_slash_name_key() -> None:
    store = Store()
    assert store.upsert(raw(pod("a", ns="ns1"))) == "ns1/a"
    assert store.upsert(b'{"metadata":{"name":"node-1"}}') == "node-1"
    assert len(store) == 2
    assert "ns1/a" in store
    assert sorted(store.list_keys()) == ["node-1", "ns1/a"]


def test_light_accessors_do_not_need_the_object() -> None:
    store = Store()
    key = store.upsert(raw(pod("a", rv="7", deletionTimestamp="2024-01-01T00:00:00Z")))
    assert store.name(key) == "a"
    assert store.namespace(key) == "default"
    assert store.uid(key) == "uid-a"
    assert store.object_resource_version(key) == "7"
    assert store.labels(key) == {"app": "web"}
    assert store.deleting(key) is True
    assert store.name("missing") is None
    assert store.labels("missing") is None


def test_get_parses_with_orjson_and_strips_managed_fields() -> None:
    store = Store()
    key = store.upsert(raw(pod("a")))
    obj = store.get(key)
    expected = pod("a")
    del expected["metadata"]["managedFields"]
    assert obj == expected
    assert b"managedFields" not in (store.get_raw(key) or b"")
    assert store.get("missing") is None


def test_managed_fields_are_kept_when_the_store_says_so() -> None:
    store = Store(strip_managed_fields=False)
    key = store.upsert(raw(pod("a")))
    assert store.get(key) == pod("a")
    assert store.get_raw(key) == raw(pod("a"))


def test_an_object_without_a_name_is_a_decode_error() -> None:
    store = Store()
    with pytest.raises(DecodeError):
        store.upsert(b'{"metadata":{}}')
    with pytest.raises(DecodeError):
        store.upsert(b'{"metadata":')
    assert len(store) == 0


def test_delete_reports_whether_the_key_was_held() -> None:
    store = Store()
    key = store.upsert(raw(pod("a")))
    assert store.delete(key) is True
    assert store.delete(key) is False
    assert key not in store


def test_the_namespace_index_is_built_in() -> None:
    store = Store()
    store.upsert(raw(pod("a", ns="ns1")))
    store.upsert(raw(pod("b", ns="ns1")))
    store.upsert(raw(pod("c", ns="ns2")))
    store.upsert(b'{"metadata":{"name":"cluster-scoped"}}')
    assert store.by_index("namespace", "ns1") == ["ns1/a", "ns1/b"]
    assert store.by_index("namespace", "") == ["cluster-scoped"]
    assert store.index_values("namespace") == ["", "ns1", "ns2"]


def test_empty_index_sets_are_removed() -> None:
    store = Store()
    store.add_index("node", "spec.nodeName")
    store.upsert(raw(pod("a", node="n1")))
    store.upsert(raw(pod("a", node="n2")))
    assert store.index_values("node") == ["n2"]
    store.delete("default/a")
    assert store.index_values("node") == []
    assert store.index_values("namespace") == []
    assert store.by_index("node", "n2") == []


def test_field_and_label_indexes_cover_objects_added_before_and_after() -> None:
    store = Store()
    store.upsert(raw(pod("a", node="n1", app="web")))
    store.add_index("node", "spec.nodeName")
    store.add_index("app", "label:app")
    store.upsert(raw(pod("b", node="n1", app="db")))
    assert store.by_index("node", "n1") == ["default/a", "default/b"]
    assert store.by_index("app", "db") == ["default/b"]
    with pytest.raises(ValueError, match="already exists"):
        store.add_index("node", "spec.other")
    with pytest.raises(ValueError, match="no index"):
        store.by_index("nope", "x")
    with pytest.raises(ValueError):
        store.add_index("bad", "spec..x")


def test_replace_reports_added_updated_and_tombstones() -> None:
    store = Store()
    store.upsert(raw(pod("a")))
    store.upsert(raw(pod("b")))
    acc = ListAccumulator()
    info = acc.feed_page(page([pod("b", rv="2"), pod("c", rv="2")], rv="50"))
    assert (info.items, info.resource_version, info.continue_token) == (2, "50", None)
    result = store.replace(acc, "50")
    assert result.added == ["default/c"]
    assert result.updated == ["default/b"]
    assert result.deleted == ["default/a"]
    assert orjson.loads(result.tombstones["default/a"])["metadata"]["name"] == "a"
    assert len(acc) == 0
    assert store.resource_version == "50"
    assert sorted(store.list_keys()) == ["default/b", "default/c"]
    assert store.object_resource_version("default/b") == "2"


def test_replace_indexes_list_items_for_user_indexes() -> None:
    store = Store()
    store.add_index("node", "spec.nodeName")
    acc = ListAccumulator()
    acc.feed_page(page([pod("a", node="n1"), pod("b", node="n2")]))
    store.replace(acc, "9")
    assert store.by_index("node", "n2") == ["default/b"]


@pytest.mark.parametrize("store_strips", [True, False])
def test_an_accumulator_can_strip_managed_fields_as_it_collects(store_strips: bool) -> None:
    assert not ListAccumulator().strip_managed_fields
    acc = ListAccumulator(strip_managed_fields=True)
    assert acc.strip_managed_fields
    acc.feed_page(page([pod("a"), pod("b", node="n2")]))
    store = Store(strip_managed_fields=store_strips)
    store.add_index("node", "spec.nodeName")
    result = store.replace(acc, "9")
    assert sorted(result.added) == ["default/a", "default/b"]
    assert acc.strip_managed_fields and len(acc) == 0
    obj = store.get("default/a")
    assert obj is not None and "managedFields" not in obj["metadata"]
    assert obj["metadata"]["labels"] == {"app": "web"}
    assert store.by_index("node", "n2") == ["default/b"]
    assert store.uid("default/b") == "uid-b"
    kept = ListAccumulator()
    kept.feed_page(page([pod("c")]))
    store.replace(kept, "10")
    obj = store.get("default/c")
    assert obj is not None and ("managedFields" in obj["metadata"]) != store_strips


@pytest.mark.parametrize("acc_compresses", [True, False])
def test_a_compressing_store_returns_objects_whole(acc_compresses: bool) -> None:
    store = Store(compress=True)
    assert store.compress and not Store().compress
    store.add_index("node", "spec.nodeName")
    big = pod("a", node="n1", extra="x" * 3000)
    acc = ListAccumulator(strip_managed_fields=True, compress=acc_compresses)
    assert acc.compress == acc_compresses
    acc.feed_page(page([big, pod("b")]))
    store.replace(acc, "5")
    want = {**big, "metadata": {k: v for k, v in big["metadata"].items() if k != "managedFields"}}
    assert store.get("default/a") == want
    assert orjson.loads(store.get_raw("default/a") or b"") == want
    assert store.labels("default/a") == {"app": "web"}
    assert (store.uid("default/a"), store.object_resource_version("default/a")) == ("uid-a", "1")
    assert store.by_index("node", "n1") == ["default/a"]
    store.upsert(raw(pod("c", extra="y" * 3000)))
    got = store.get("default/c")
    assert got is not None and got["metadata"]["extra"] == "y" * 3000
    restored = Store()
    assert restored.restore(store.snapshot()) == 3
    assert restored.get("default/a") == want
    result = store.replace(ListAccumulator(), "6")
    assert orjson.loads(result.tombstones["default/a"]) == want


def test_a_bad_list_page_keeps_nothing() -> None:
    acc = ListAccumulator()
    body = page([pod("a"), pod("b")])
    with pytest.raises(DecodeError):
        acc.feed_page(body[:-5])
    assert len(acc) == 0
    info = acc.feed_page(page([pod("a")], cont="next"))
    assert info.continue_token == "next"
    assert len(acc) == 1


def test_snapshot_and_restore_round_trip() -> None:
    store = Store()
    store.add_index("node", "spec.nodeName")
    for i in range(20):
        store.upsert(raw(pod(f"p{i}", node=f"n{i % 3}")))
    store.resource_version = "77"
    snap = store.snapshot()
    other = Store()
    other.add_index("node", "spec.nodeName")
    other.upsert(raw(pod("stale")))
    assert other.restore(snap) == 20
    assert other.resource_version == "77"
    assert sorted(other.list_keys()) == sorted(store.list_keys())
    assert other.by_index("node", "n1") == store.by_index("node", "n1")
    assert other.get("default/p3") == store.get("default/p3")
    with pytest.raises(ValueError):
        other.restore(b"not a snapshot")
    with pytest.raises(ValueError):
        other.restore(snap[:-3])
    assert len(other) == 20


async def test_a_big_page_can_be_decoded_in_a_worker_thread() -> None:

    acc = ListAccumulator()
    body = page([pod(f"p{i}", node="x" * 2000) for i in range(600)])
    assert len(body) > 1 << 20
    info = await trio.to_thread.run_sync(acc.feed_page, body)
    assert info.items == 600
    assert len(acc) == 600


def fat_pod(i: int, rv: str = "1") -> dict:
    """A ~1 KB pod; pods differ in name, uid, node and a few status fields."""
    return pod(
        f"web-{i:05d}",
        ns=f"ns-{i % 5}",
        rv=rv,
        node=f"node-{i % 7}",
        annotations={"kubernetes.io/config.seen": f"2026-11-27T10:{i % 60:02d}:00Z"},
        ownerReferences=[{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d9f"}],
        extra={"image": "registry.example.com/team/web:1.2.3", "ip": f"10.0.{i % 250}.{i % 7}"}
        | {f"env-{j}": f"value-{j}" for j in range(20)},
    )


def stripped(obj: dict) -> dict:
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def test_compressed_objects_share_a_dictionary_across_relists_and_watches() -> None:
    store = Store(compress=True)
    store.add_index("node", "spec.nodeName")
    acc = ListAccumulator(strip_managed_fields=True, compress=True)
    for start in range(0, 300, 100):
        acc.feed_page(page([fat_pod(i) for i in range(start, start + 100)]))
    assert len(store.replace(acc, "5").added) == 300
    # Watch events after the list, then deletes.
    for i in range(0, 300, 3):
        store.upsert(raw(fat_pod(i, rv="6")))
    for i in range(0, 300, 5):
        store.delete(f"ns-{i % 5}/web-{i:05d}")
    for i in range(300):
        want = None if i % 5 == 0 else stripped(fat_pod(i, rv="6" if i % 3 == 0 else "1"))
        assert store.get(f"ns-{i % 5}/web-{i:05d}") == want
    # A relist through a fresh accumulator (its own dictionary) into this store.
    relist = ListAccumulator(strip_managed_fields=True, compress=True)
    relist.feed_page(page([fat_pod(i, rv="7") for i in range(150, 350)]))
    result = store.replace(relist, "7")
    assert (len(result.added), len(result.updated)) == (50 + 30, 150 - 30)
    assert len(result.tombstones) == 150 - 30
    for key, body in result.tombstones.items():
        i = int(key.rsplit("-", 1)[1])
        assert orjson.loads(body) == stripped(fat_pod(i, rv="6" if i % 3 == 0 else "1"))
    for i in range(150, 350):
        assert orjson.loads(store.get_raw(f"ns-{i % 5}/web-{i:05d}") or b"") == stripped(
            fat_pod(i, rv="7")
        )
    # A streaming list with a fresh accumulator, then snapshot and restore.
    initial = ListAccumulator(strip_managed_fields=True, compress=True)
    stream = b"".join(
        orjson.dumps({"type": "ADDED", "object": fat_pod(i, rv="8")}) + b"\n" for i in range(100)
    )
    out = WatchDecoder().feed_into(stream, store, None, 0.0, initial)
    assert out.applied == 100 and len(initial) == 100
    store.replace(initial, "8")
    for target in (Store(compress=True), Store()):
        target.add_index("node", "spec.nodeName")
        assert target.restore(store.snapshot()) == 100
        for i in range(100):
            assert target.get(f"ns-{i % 5}/web-{i:05d}") == stripped(fat_pod(i, rv="8"))
        assert target.by_index("node", "node-3") == store.by_index("node", "node-3")
