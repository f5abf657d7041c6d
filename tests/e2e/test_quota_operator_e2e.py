"""examples/quota_operator.py end to end, run as a child process against a real
kube-apiserver and etcd (testenv): a labelled Namespace gets its ResourceQuota (owned by
it, with an Event), an edited quota is put back, a deleted one is created again, an
unlabelled Namespace gets none, and SIGTERM exits 0.

examples/quota_kopf.py is the same operator written with kopf; `python
bench/operator_bench.py quota` runs it through the same checks, not CI (kopf is a
bench-only dependency).

testenv runs no kube-controller-manager: Namespaces are never really deleted (they stay
Terminating), so every test uses Namespaces of its own, unique names."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from trio_controller import EVENTS, NAMESPACES, RESOURCE_QUOTAS, Api, Client, NotFound, load_config
from trio_controller.testing import EnvInfo, eventually, run_operator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quota_operator.py"
LABEL = "quota.example.com/enabled"
QUOTA = "default-quota"
HARD = {"pods": "10", "requests.cpu": "4", "requests.memory": "8Gi"}


@pytest.fixture
async def client(envtest: EnvInfo) -> AsyncIterator[Client]:
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        yield client


async def new_namespace(client: Client, labelled: bool) -> dict[str, Any]:
    labels = {LABEL: "true"} if labelled else {"quota-test": "unlabelled"}
    name = f"quota-{uuid.uuid4().hex[:8]}"
    return await Api(client, NAMESPACES).create({"metadata": {"name": name, "labels": labels}})


async def quota_of(client: Client, namespace: str) -> dict[str, Any] | None:
    try:
        return await Api(client, RESOURCE_QUOTAS, namespace).get(QUOTA)
    except NotFound:
        return None


async def event_counts(client: Client, namespace: str) -> dict[str, int]:
    """How often each reason was recorded about the Namespace `namespace` (a
    cluster-scoped object's Events are in `default`; repeats are one Event's series)."""
    listed = await Api(client, EVENTS, "default").list()
    counts: dict[str, int] = {}
    for e in listed:
        if e["regarding"].get("kind") == "Namespace" and e["regarding"]["name"] == namespace:
            count = (e.get("series") or {}).get("count", 1)
            counts[e["reason"]] = counts.get(e["reason"], 0) + count
    return counts


async def test_a_labelled_namespace_keeps_its_quota_through_edits_and_deletes(
    envtest: EnvInfo, client: Client
) -> None:
    before = await new_namespace(client, labelled=True)  # there before the operator starts
    plain = await new_namespace(client, labelled=False)
    name = before["metadata"]["name"]
    quotas = Api(client, RESOURCE_QUOTAS, name)
    # `-n` means nothing to a program over a cluster-scoped kind: one warning says so.
    args = ("-n", "default")
    async with run_operator(EXAMPLE, *args, kubeconfig=envtest.admin_kubeconfig) as op:
        await op.wait_for_stdout(f"Set quota of {name}", within=60)
        warning = await op.wait_for_stderr("has no effect")
        assert "-n default has no effect: this program watches only cluster-scoped" in warning
        quota = await quotas.get(QUOTA)
        assert quota["spec"]["hard"] == HARD
        assert quota["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "v1",
                "kind": "Namespace",
                "name": name,
                "uid": before["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]

        # One created after the start gets its quota too.
        after = await new_namespace(client, labelled=True)
        await op.wait_for_stdout(f"Set quota of {after['metadata']['name']}", within=20)
        assert (await Api(client, RESOURCE_QUOTAS, after["metadata"]["name"]).get(QUOTA))["spec"][
            "hard"
        ] == HARD

        # Changes of the Namespace that leave the quota right write nothing (the
        # reconcile reads the quota from the cache owns() fills: every namespace's).
        for i in range(3):
            await Api(client, NAMESPACES).patch(
                name, {"metadata": {"labels": {"quota-test/edit": str(i)}}}, type="merge"
            )

        # Edited: put back.
        await quotas.patch(
            QUOTA, {"spec": {"hard": {"pods": "99", "requests.cpu": "4"}}}, type="merge"
        )
        await op.wait_for_stdout(f"Set quota of {name}", count=2, within=20)
        assert (await quotas.get(QUOTA))["spec"]["hard"] == HARD

        # Deleted: created again, as a new object.
        await quotas.delete(QUOTA)
        await op.wait_for_stdout(f"Set quota of {name}", count=3, within=20)
        again = await quotas.get(QUOTA)
        assert again["spec"]["hard"] == HARD
        assert again["metadata"]["uid"] != quota["metadata"]["uid"]

        async def all_three() -> dict[str, int] | None:
            counts = await event_counts(client, name)
            return counts if sum(counts.values()) >= 3 else None

        assert await eventually(all_three, "three Events") == {
            "QuotaCreated": 2,  # first, and again after the delete
            "QuotaRestored": 1,  # the edit put back
        }
        # The unlabelled Namespace was left alone.
        assert await quota_of(client, plain["metadata"]["name"]) is None
        assert not any(plain["metadata"]["name"] in line for line in op.stdout)

        assert await op.terminate() == 0, op
    assert "Traceback" not in op.stderr_text, op
    assert all(line.startswith("Set quota of quota-") for line in op.stdout), op
    # One write per change that needed one: none for the Namespace's label edits.
    assert op.stdout.count(f"Set quota of {name}") == 3, op
    # The set-up reads the caches the controller is fed from: no other warning.
    assert [line for line in op.stderr if line.startswith("W")] == [warning], op
