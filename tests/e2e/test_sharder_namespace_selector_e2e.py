"""A ControllerRing's `spec.namespaceSelector` on the real apiserver: the sharder
(`trio-controller-sharder`, a child process) assigns and moves only objects in selected
namespaces, picks up a namespace that comes to match, and leaves the objects of one that
stops matching alone (as the original sharder does).

The shard is a Lease held in the test's namespace (no controller runs): what is under
test is the sharder's labelling."""

from __future__ import annotations

import time
from typing import Any

import test_sharding_e2e
import trio
from test_sharding_e2e import WIDGETS, Cluster, eventually

from trio_controller import LEASES, NAMESPACES, Api, Client
from trio_controller.programs.sharder.crd import CONTROLLER_RINGS
from trio_controller.programs.sharder.leasekeeper import micro_time
from trio_controller.runtime.sharding import LABEL_CONTROLLER_RING

# That module's fixtures: the Widget CRD installed, a ring and namespace of the test's own.
client = test_sharding_e2e.client
cluster = test_sharding_e2e.cluster


async def shard_of(client: Client, namespace: str, name: str, label: str) -> str | None:
    widget = await Api(client, WIDGETS, namespace).get(name)
    return (widget["metadata"].get("labels") or {}).get(label)


async def test_only_widgets_in_namespaces_the_ring_selects_are_sharded(
    cluster: Cluster, client: Client
) -> None:
    ring, label = cluster.ring, cluster.label
    selected, other = f"{cluster.namespace}-in", f"{cluster.namespace}-out"
    namespaces = Api(client, NAMESPACES)
    await namespaces.create({"metadata": {"name": selected, "labels": {"shard-me": ring}}})
    await namespaces.create({"metadata": {"name": other}})
    stamp = micro_time(time.time())
    await Api(client, LEASES, cluster.namespace).create(
        {
            "metadata": {"name": "r1", "labels": {LABEL_CONTROLLER_RING: ring}},
            "spec": {"holderIdentity": "r1", "leaseDurationSeconds": 600,
                     "acquireTime": stamp, "renewTime": stamp},
        }
    )  # fmt: skip

    with trio.fail_after(120):
        async with cluster:
            sharder = await cluster.sharder("--settle", "0")
            await eventually(cluster._crd_established, "the ControllerRing CRD", within=30)
            spec: dict[str, Any] = {
                "resources": [{"group": "example.com", "resource": "widgets"}],
                "namespaceSelector": {"matchLabels": {"shard-me": ring}},
            }
            await Api(client, CONTROLLER_RINGS).create({"metadata": {"name": ring}, "spec": spec})
            for namespace in (selected, other):
                body = {"metadata": {"name": "w"}, "spec": {"message": "hello"}}
                await Api(client, WIDGETS, namespace).create(body)

            async def assigned(namespace: str, name: str = "w") -> bool:
                return await shard_of(client, namespace, name, label) == "r1"

            await eventually(lambda: assigned(selected), "the selected namespace's Widget")

            def resyncs() -> int:
                return sum(1 for line in sharder.stderr if f"Resynced ring {ring}" in line)

            # A resync of the ring ran after that (its first one, at the latest once the
            # namespaces were listed), and the other namespace's Widget is still unassigned.
            async def resynced() -> bool:
                return resyncs() > 0

            await eventually(resynced, "a resync")
            await trio.sleep(2)
            assert await shard_of(client, other, "w", label) is None

            # The other namespace comes to match: its Widget is assigned.
            await namespaces.patch(other, {"metadata": {"labels": {"shard-me": ring}}})
            await eventually(lambda: assigned(other), "the newly selected namespace's Widget")

            # The first one stops matching: what is there keeps its shard, a new Widget
            # there is left unassigned.
            await namespaces.patch(selected, {"metadata": {"labels": {"shard-me": None}}})

            async def deselected() -> bool:
                return any(f"namespace {selected} is no longer selected" in line
                           for line in sharder.stderr)  # fmt: skip

            await eventually(deselected, "the sharder to see the namespace leave the ring")
            body = {"metadata": {"name": "late"}, "spec": {"message": "hello"}}
            await Api(client, WIDGETS, selected).create(body)
            await Api(client, WIDGETS, other).create(body)
            await eventually(lambda: assigned(other, "late"), "a Widget in the selected one")
            await trio.sleep(1)
            assert await shard_of(client, selected, "late", label) is None
            assert await shard_of(client, selected, "w", label) == "r1"
            assert not any("Traceback" in line for line in sharder.stderr)
