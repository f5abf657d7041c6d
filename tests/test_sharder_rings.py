"""The sharder's ring controller (programs/sharder/sharder.py) without an apiserver: the
informers it builds, and a ControllerRing whose resources are not known (yet).

Assignment, moves and failover against the real apiserver are in
tests/e2e/test_sharding_e2e.py and tests/e2e/test_widget_sharding_contract_e2e.py."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from trio_controller import LEASES, Client, Resource
from trio_controller._native import Store
from trio_controller.api.discovery import ResourceNotFound
from trio_controller.config.cluster import ClusterConfig
from trio_controller.programs.sharder.crd import CONTROLLER_RINGS
from trio_controller.programs.sharder.moves import RingResource
from trio_controller.programs.sharder.sharder import RESOLVE_RETRY_MAX, Sharder
from trio_controller.runtime.sharding import LABEL_CONTROLLER_RING
from trio_controller.runtime.sharding import LABEL_STATE as STATE

WIDGETS_RING = {
    "apiVersion": "sharding.timebertt.dev/v1alpha1",
    "kind": "ControllerRing",
    "metadata": {"name": "widget-operator", "resourceVersion": "1", "uid": "u1"},
    "spec": {"resources": [{"group": "example.com", "resource": "widgets"}]},
}


@pytest.fixture
async def sharder() -> AsyncIterator[Sharder]:
    async with Client(ClusterConfig(server="https://127.0.0.1:1")) as client:
        yield Sharder(client, namespace="ops")


async def test_a_sharder_watches_rings_and_only_the_ring_leases_of_its_namespace(
    sharder: Sharder,
) -> None:
    keys = {(i.key.path, i.key.label_selector) for i in sharder.factory.informers}
    assert keys == {
        (CONTROLLER_RINGS.path(), None),
        (LEASES.path(namespace="ops"), LABEL_CONTROLLER_RING),
    }
    # The Lease controller and the ring controller's Lease watch share that one informer.
    assert sharder.lease_controller.informer is sharder.leases_informer


async def test_a_ring_naming_an_unknown_resource_says_so_and_is_looked_at_again(
    sharder: Sharder, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store()
    store.upsert(json.dumps(WIDGETS_RING).encode())
    monkeypatch.setattr(sharder, "rings_informer", SimpleNamespace(store=store))
    statuses: list[dict[str, Any]] = []

    async def status(obj: Any, shards: Any, **condition: Any) -> None:
        statuses.append(condition)

    known: list[RingResource] = []
    resolved: list[int] = []

    async def resolve(obj: Any) -> tuple[RingResource, ...]:
        resolved.append(obj["metadata"].get("generation") or 0)
        if not known:
            raise ResourceNotFound("example.com", "group 'example.com'")
        return tuple(known)

    started: list[str] = []
    monkeypatch.setattr(sharder, "_status", status)
    monkeypatch.setattr(sharder, "_resolve", resolve)
    monkeypatch.setattr(sharder, "_start_assigners", lambda ring: started.append(ring.name))

    async def no_resync(ring: Any, shards: Any) -> float:
        return 300.0

    monkeypatch.setattr(sharder, "_resync_if_due", no_resync)
    caplog.set_level(logging.INFO, logger="trio_controller.programs.sharder")

    # Before the CRD exists: no error for the controller to retry and drop (with a
    # traceback), but a delay, doubling; the status says why; one warning line.
    delays = [await sharder.reconcile_ring("widget-operator") for _ in range(10)]
    assert delays[:3] == [0.5, 1.0, 2.0] and delays[-1] == RESOLVE_RETRY_MAX
    assert statuses[-1] == {
        "ready": False,
        "reason": "ResourceUnknown",
        "message": statuses[0]["message"],
    }
    assert "example.com" in statuses[0]["message"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "widget-operator" in warnings[0].getMessage()
    assert not any(r.exc_info for r in caplog.records)
    assert started == []

    # The CRD is installed: the ring's assigners start, the status is Ready, and the
    # next failure starts again from the shortest delay.
    known.append(RingResource(Resource("example.com", "v1", "widgets", "Widget")))
    assert await sharder.reconcile_ring("widget-operator") == 300.0
    assert started == ["widget-operator"]
    assert statuses[-1]["ready"] is True
    assert any("known now" in r.getMessage() for r in caplog.records)

    # Discovery runs once per spec: not again for the same generation, again for a new one
    # (or after a NotFound); its next failure starts again from the shortest delay.
    calls = len(resolved)
    for _ in range(3):
        assert await sharder.reconcile_ring("widget-operator") == 300.0
    assert len(resolved) == calls
    known.clear()
    changed = {**WIDGETS_RING, "metadata": {**WIDGETS_RING["metadata"], "generation": 2,
                                            "resourceVersion": "2"}}  # fmt: skip
    store.upsert(json.dumps(changed).encode())
    assert await sharder.reconcile_ring("widget-operator") == 0.5
    assert resolved[-1] == 2
    known.append(RingResource(Resource("example.com", "v1", "widgets", "Widget")))
    assert await sharder.reconcile_ring("widget-operator") == 300.0
    sharder.rings["widget-operator"].resolved_for = None  # what a NotFound does
    assert await sharder.reconcile_ring("widget-operator") == 300.0
    assert len(resolved) == calls + 3


def test_a_lease_renewal_or_state_label_does_not_wake_the_ring_but_a_new_holder_does() -> None:
    from trio_controller.programs.sharder.sharder import shard_changed

    lease = {
        "metadata": {"name": "r1", "labels": {LABEL_CONTROLLER_RING: "ring", STATE: "ready"}},
        "spec": {"holderIdentity": "r1", "leaseDurationSeconds": 15, "renewTime": "t1"},
    }
    renewed = {**lease, "spec": {**lease["spec"], "renewTime": "t2"}}
    taken = {**lease, "spec": {**lease["spec"], "holderIdentity": "shardlease-controller"}}
    labels = {LABEL_CONTROLLER_RING: "ring", STATE: "expired"}
    expired = {**lease, "metadata": {**lease["metadata"], "labels": labels}}
    assert not shard_changed(lease, renewed)
    assert shard_changed(lease, taken)
    # The ring reads states from the Lease's times and holder, not from the label.
    assert not shard_changed(lease, expired)
    moved = {**lease, "metadata": {**lease["metadata"], "labels": {LABEL_CONTROLLER_RING: "b"}}}
    assert shard_changed(lease, moved)
    assert shard_changed(None, lease) and shard_changed(lease, None)


async def test_a_resync_that_meets_a_notfound_makes_the_ring_look_its_resources_up_again(
    sharder: Sharder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trio_controller import errors
    from trio_controller.programs.sharder.sharder import _Ring

    ring = _Ring("widget-operator", resolved_for=("u1", 1))

    async def resync(ring: Any, shards: Any, *, evacuate: Any = ()) -> Any:
        raise errors.NotFound(404, "NotFound", 'the server could not find "widgets"')

    monkeypatch.setattr(sharder, "resync", resync)
    assert await sharder._resync_if_due(ring, {}) == 1.0
    assert ring.resolved_for is None
    assert ring.resync_error is not None and "widgets" in ring.resync_error
