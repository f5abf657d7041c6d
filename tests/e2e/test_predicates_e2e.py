"""Predicates against the real apiserver: with `generation_changed`, a Deployment's status
write and label change enqueue nothing, a spec change does, and an owned ConfigMap's change
still enqueues its owner (testenv runs no controller-manager: only the test writes)."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from trio_controller import (
    CONFIGMAPS,
    DEPLOYMENTS,
    Api,
    Client,
    Controller,
    InformerOptions,
    SharedInformerFactory,
    generation_changed,
    load_config,
)
from trio_controller.testing import EnvInfo


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


class Seen:
    """The keys reconciled, in order, and a way to wait for one."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self._changed = trio.Event()

    def __call__(self, key: str) -> None:
        self.keys.append(key)
        self._changed.set()
        self._changed = trio.Event()

    async def wait_for(self, key: str) -> None:
        while key not in self.keys:
            await self._changed.wait()


async def settle(store: Any, key: str, rv: str) -> None:
    """Until the cache holds `key` at `rv` (its queue was fed in the same call), then a
    moment for a worker to take anything that was queued."""
    while (obj := store.get(key)) is None or obj["metadata"]["resourceVersion"] != rv:  # noqa: ASYNC110
        await trio.sleep(0.02)
    await trio.sleep(0.3)


@pytest.mark.parametrize(
    ("streaming_list", "shared"),
    [(True, False), (False, False), (True, True)],
    ids=["streaming", "list", "shared-informer"],
)
async def test_only_a_spec_change_passes_the_generation_predicate(
    envtest: EnvInfo, namespace: str, streaming_list: bool, shared: bool
) -> None:
    seen, everything = Seen(), Seen()
    key = f"{namespace}/web"
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        deployments = Api(client, DEPLOYMENTS, namespace)
        configmaps = Api(client, CONFIGMAPS, namespace)
        web = await deployments.create(deployment("web"))
        factory = SharedInformerFactory(client, InformerOptions(streaming_list=streaming_list))
        controller = Controller(
            client, DEPLOYMENTS, seen, namespace=namespace, factory=factory,
            predicates=[generation_changed],
        ).owns(CONFIGMAPS)  # fmt: skip
        if shared:  # a second controller on the same informer, without predicates
            other = Controller(
                client, DEPLOYMENTS, everything, namespace=namespace, factory=factory
            )
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(controller.run)
                if shared:
                    await nursery.start(other.run)
                await seen.wait_for(key)
                store = controller.store
                seen.keys.clear()

                status = await deployments.patch_status("web", {"status": {"replicas": 3}})
                await settle(store, key, status["metadata"]["resourceVersion"])
                assert seen.keys == [], "status"
                labelled = await deployments.patch("web", {"metadata": {"labels": {"x": "1"}}})
                await settle(store, key, labelled["metadata"]["resourceVersion"])
                # (Not an annotation: a Deployment's annotations are copied to its
                # ReplicaSets, so the apiserver bumps its generation for them too.)
                assert seen.keys == []
                if shared:
                    await everything.wait_for(key)

                scaled = await deployments.patch("web", {"spec": {"replicas": 2}})
                assert scaled["metadata"]["generation"] == 2
                await seen.wait_for(key)
                seen.keys.clear()

                ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                       "uid": web["metadata"]["uid"], "controller": True}  # fmt: skip
                await configmaps.create(
                    {"metadata": {"name": "web-config", "ownerReferences": [ref]}}
                )
                await seen.wait_for(key)
                seen.keys.clear()
                await configmaps.patch("web-config", {"metadata": {"labels": {"y": "1"}}})
                await seen.wait_for(key)
                controller.stop()
                if shared:
                    other.stop()
    assert controller.informer is not None
    assert controller.informer.sink.core.queues == (2 if shared else 1)
