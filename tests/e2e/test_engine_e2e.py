"""The worker side against the real apiserver: a reconcile that writes a changing
annotation on every call is reported as a hot loop (once), and a reconcile that writes
and is reconciled again at once reads its own write from the cache, of its own object
and of an owned one it created."""

from __future__ import annotations

import logging

import pytest
import trio

from trio_controller import (
    CONFIGMAPS,
    SECRETS,
    Api,
    Client,
    Conflict,
    Controller,
    ControllerOptions,
    load_config,
)
from trio_controller.runtime.causes import reconcile_causes
from trio_controller.testing import EnvInfo

COUNTER = "example.com/counter"


def configmap(name: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}}


async def test_a_reconcile_writing_a_changing_annotation_gets_one_hot_loop_warning(
    envtest: EnvInfo, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="trio_controller")
    reconciles = 0
    causes: list[str] = []
    looped = trio.Event()
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        configmaps = Api(client, CONFIGMAPS, namespace)
        await configmaps.create(configmap("loop"))
        await configmaps.create(configmap("quiet"))

        async def reconcile(key: str) -> None:
            nonlocal reconciles
            if not key.endswith("/loop"):
                return
            reconciles += 1
            causes.append(str(reconcile_causes()))
            if reconciles == 31:
                looped.set()
            if reconciles <= 30:  # each write comes back as an update: a hot loop
                patch = {"metadata": {"annotations": {COUNTER: str(reconciles)}}}
                await configmaps.patch("loop", patch)

        controller = Controller(client, CONFIGMAPS, reconcile, namespace=namespace)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(controller.run)
                await looped.wait()
                controller.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"ConfigMap {namespace}/loop was reconciled 11 times within 60s (a hot loop?); "
        "top causes: updated x10"
    ]
    assert causes[0] == "listed"
    assert set(causes[1:]) == {"updated"}


async def test_the_next_reconcile_after_a_write_reads_that_write_from_the_cache(
    envtest: EnvInfo, namespace: str
) -> None:
    """Each reconcile reads the counter from the cache, writes counter + 1 and asks to be
    reconciled again at once. Without waiting for its own write (own_writes_timeout=None)
    the next reconcile reads the old counter from the cache and writes the same value."""
    seen: list[int] = []
    reached = trio.Event()
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        configmaps = Api(client, CONFIGMAPS, namespace)
        await configmaps.create(configmap("counter"))

        async def reconcile(key: str) -> float | None:
            cached = controller.store.get(key)
            assert cached is not None
            counter = int((cached["metadata"].get("annotations") or {}).get(COUNTER, "0"))
            seen.append(counter)
            if counter >= 20:
                reached.set()
                return None
            patch = {"metadata": {"annotations": {COUNTER: str(counter + 1)}}}
            await configmaps.patch("counter", patch)
            return 0.0  # look again at once

        # own_writes_timeout=None fails (stale counters) in about 2 of 3 runs.
        controller = Controller(client, CONFIGMAPS, reconcile, namespace=namespace)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(controller.run)
                await reached.wait()
                await trio.sleep(0.5)  # the last write's own event: one more reconcile
                controller.stop()
    assert seen[:21] == list(range(21))
    assert all(n == 20 for n in seen[21:])


async def test_a_child_created_by_a_reconcile_is_in_the_cache_when_it_looks_again(
    envtest: EnvInfo, namespace: str
) -> None:
    """Each reconcile of a parent ConfigMap creates its owned Secret if the Secrets cache
    has none, and looks again at once. Without waiting for its own write, the next
    reconcile finds no Secret in the cache yet and creates it again: a 409."""
    outcomes: list[str] = []
    done = trio.Event()
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        configmaps, secrets = Api(client, CONFIGMAPS, namespace), Api(client, SECRETS, namespace)
        parent = await configmaps.create(configmap("parent"))
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "parent",
               "uid": parent["metadata"]["uid"], "controller": True}  # fmt: skip

        async def reconcile(key: str) -> float | None:
            for i in range(20):
                name = f"parent-{i}"
                if children.get(f"{namespace}/{name}") is None:
                    child = {"metadata": {"name": name, "ownerReferences": [ref]}}
                    try:
                        await secrets.create(child)
                        outcomes.append(f"created {name}")
                    except Conflict:
                        outcomes.append(f"409 for {name}")
                    return 0.0  # look again at once
            done.set()
            return None

        controller = Controller(
            client,
            CONFIGMAPS,
            reconcile,
            namespace=namespace,
            options=ControllerOptions(own_writes_timeout=5.0),  # None: 409s (seen in 1 of 2 runs)
        ).owns(SECRETS)
        assert controller.factory is not None
        children = controller.factory.informer(SECRETS, namespace=namespace).store
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(controller.run)
                await done.wait()
                controller.stop()
    assert outcomes == [f"created parent-{i}" for i in range(20)]
