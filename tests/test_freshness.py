"""Read your own writes, without a server: the write hook records what a reconcile wrote,
and a key's next reconcile waits (bounded) until the store holds that write."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest
import trio
import trio.testing

from trio_controller import CONFIGMAPS, SECRETS
from trio_controller._native import Store
from trio_controller.api.verbs import WRITE_HOOK
from trio_controller.observe.log import v
from trio_controller.runtime.causes import RECONCILING, Reconciling
from trio_controller.runtime.freshness import OwnWrites, at_least
from trio_controller.runtime.workqueue import WorkQueue


def cm(name: str, rv: str) -> dict[str, object]:
    return {"kind": "ConfigMap", "metadata": {"name": name, "namespace": "ns",
            "uid": name, "resourceVersion": rv}}  # fmt: skip


def store_with(name: str, rv: str) -> Store:
    store = Store()
    store.upsert(orjson.dumps(cm(name, rv)))
    return store


def test_resource_versions_compare_as_integers_else_by_equality() -> None:
    assert at_least("10", "9") and at_least("9", "9") and not at_least("9", "10")
    assert at_least("abc", "abc") and not at_least("abd", "abc")


async def test_a_key_waits_until_the_store_holds_its_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    store = store_with("a", "5")
    writes = OwnWrites(CONFIGMAPS, store, 5.0, "ConfigMap")
    writes.saw_write(CONFIGMAPS, cm("a", "7"))
    assert writes and not writes.fresh("ns/a")
    done_at: list[float] = []

    async def wait() -> None:
        await writes.wait("ns/a")
        done_at.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait)
        await trio.sleep(0.5)
        assert done_at == []
        store.upsert(orjson.dumps(cm("a", "8")))  # newer than the write: fresh
    assert 0.5 <= done_at[0] < 0.52
    assert not writes


async def test_past_the_bound_the_reconcile_runs_anyway_with_a_v2_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(v(2), logger="trio_controller")
    writes = OwnWrites(CONFIGMAPS, store_with("a", "5"), 3.0, "ConfigMap")
    writes.saw_write(CONFIGMAPS, cm("a", "7"))
    await writes.wait("ns/a")
    assert trio.current_time() == pytest.approx(3.0, abs=0.01)
    assert [r.getMessage() for r in caplog.records] == [
        "The cache of configmap does not hold ns/a at resourceVersion 7 after 3s; "
        "reconciling ns/a anyway"
    ]
    assert not writes


async def test_writes_to_other_resources_or_keys_not_cached_are_not_waited_for() -> None:
    writes = OwnWrites(CONFIGMAPS, store_with("a", "5"), 3.0, "ConfigMap")
    writes.saw_write(SECRETS, cm("a", "7"))
    writes.saw_write(CONFIGMAPS, cm("created", "9"))
    writes.saw_write(CONFIGMAPS, {"kind": "Status"})
    assert not writes
    writes.saw_write(CONFIGMAPS, cm("a", "7"))
    writes.saw_write(CONFIGMAPS, cm("a", "6"))  # an older answer does not lower the mark
    assert not writes.fresh("ns/a")
    writes.store.delete("ns/a")  # deleted since: nothing to wait for
    assert writes.fresh("ns/a")


async def test_the_write_hook_is_called_only_where_it_is_set() -> None:
    from trio_controller.api.verbs import _wrote

    seen: list[str] = []
    _wrote(CONFIGMAPS, cm("outside", "1"))
    token = WRITE_HOOK.set(lambda resource, obj: seen.append(obj["metadata"]["name"]))
    try:
        _wrote(CONFIGMAPS, cm("inside", "1"))
    finally:
        WRITE_HOOK.reset(token)
    assert seen == ["inside"]


def informer(resource: object, store: Store, path: str, selector: str | None = None) -> object:
    key = SimpleNamespace(path=path, label_selector=selector, field_selector=None)
    return SimpleNamespace(resource=resource, store=store, key=key)


async def test_a_child_created_in_a_reconcile_holds_back_the_parents_next_reconcile() -> None:
    """The create answers before the owned informer's watch brings the child: without
    waiting, the parent's next reconcile would find no child and create it again (409)."""
    parents, children = store_with("parent", "3"), Store()
    owned = informer(SECRETS, children, SECRETS.path(namespace="ns"))
    elsewhere = informer(SECRETS, Store(), SECRETS.path(namespace="other"))
    selected = informer(SECRETS, Store(), SECRETS.path(), selector="app=x")
    writes = OwnWrites(CONFIGMAPS, parents, 3.0, "ConfigMap", [owned, elsewhere, selected])
    token = RECONCILING.set(Reconciling(WorkQueue(), "ns/parent"))
    try:
        writes.saw_write(SECRETS, cm("child", "9"))
    finally:
        RECONCILING.reset(token)
    assert not writes.fresh("ns/parent")
    assert writes.fresh("ns/child")  # the child's own key waits for nothing
    children.upsert(orjson.dumps(cm("child", "9")))
    assert writes.fresh("ns/parent")
    assert not writes


async def test_a_write_outside_a_reconcile_holds_back_no_parent() -> None:
    children = Store()
    owned = informer(SECRETS, children, SECRETS.path())
    writes = OwnWrites(CONFIGMAPS, Store(), 3.0, "ConfigMap", [owned])
    writes.saw_write(SECRETS, cm("child", "9"))
    assert not writes
