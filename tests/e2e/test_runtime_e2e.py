"""The generic runtime against the real apiserver: owned ConfigMaps enqueue their owner
(a Deployment as the primary: testenv runs no controller-manager, so nothing else acts
on it), metadata-only informers in both sync modes, and a misspelt plural ending in one
error."""

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
    Informer,
    InformerOptions,
    ListFailed,
    Resource,
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
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            },
        },
    }


def owned_configmap(name: str, owner: dict[str, Any], *, controller: bool) -> dict[str, Any]:
    ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": owner["metadata"]["name"],
           "uid": owner["metadata"]["uid"], "controller": controller}  # fmt: skip
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "ownerReferences": [ref]}, "data": {"k": "v"}}  # fmt: skip


@pytest.mark.parametrize("streaming_list", [True, False], ids=["streaming", "list"])
async def test_owned_configmaps_enqueue_their_controller_owner(
    envtest: EnvInfo, namespace: str, streaming_list: bool
) -> None:
    seen: list[str] = []
    changed = trio.Event()

    def reconcile(key: str) -> None:
        nonlocal changed
        seen.append(key)
        changed.set()
        changed = trio.Event()

    async def wait_for(key: str) -> None:
        while key not in seen:
            await changed.wait()

    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        deployments = Api(client, DEPLOYMENTS, namespace)
        configmaps = Api(client, CONFIGMAPS, namespace)
        web = await deployments.create(deployment("web"))
        other = await deployments.create(deployment("other"))
        controller = Controller(
            client,
            DEPLOYMENTS,
            reconcile,
            namespace=namespace,
            informer_options=InformerOptions(streaming_list=streaming_list),
        ).owns(CONFIGMAPS)
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(controller.run)
                await wait_for(f"{namespace}/web")
                await wait_for(f"{namespace}/other")
                seen.clear()
                await configmaps.create(owned_configmap("web-config", web, controller=True))
                await wait_for(f"{namespace}/web")
                # A reference without controller: true maps to nobody.
                await configmaps.create(owned_configmap("loose", other, controller=False))
                seen.clear()
                await configmaps.patch("web-config", {"data": {"k": "changed"}})
                await wait_for(f"{namespace}/web")
                seen.clear()
                await configmaps.delete("web-config")
                await wait_for(f"{namespace}/web")
                await trio.sleep(0.5)  # time for a wrong key to show up
                controller.stop()
    assert set(seen) == {f"{namespace}/web"}


@pytest.mark.parametrize("streaming_list", [True, False], ids=["streaming", "list"])
async def test_a_metadata_only_informer_caches_partial_object_metadata(
    envtest: EnvInfo, namespace: str, streaming_list: bool
) -> None:
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        configmaps = Api(client, CONFIGMAPS, namespace)
        await configmaps.create({"metadata": {"name": "a"}, "data": {"secret": "x" * 1000}})
        informer = Informer(
            client, CONFIGMAPS, InformerOptions(metadata_only=True, streaming_list=streaming_list),
            namespace=namespace,
        )  # fmt: skip
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(informer.run)
                await informer.wait_for_cache_sync()
                await configmaps.create({"metadata": {"name": "b"}, "data": {"k": "v"}})
                while f"{namespace}/b" not in informer.store:  # noqa: ASYNC110
                    await trio.sleep(0.05)
                nursery.cancel_scope.cancel()
    assert informer.reflector.streaming_list is streaming_list  # no fallback was needed
    for name in ("a", "b"):
        obj = informer.store.get(f"{namespace}/{name}")
        assert obj is not None
        assert obj["kind"] == "PartialObjectMetadata"
        assert obj["apiVersion"] == "meta.k8s.io/v1"
        assert "data" not in obj
        assert obj["metadata"]["name"] == name


async def test_a_misspelt_plural_ends_the_controller_with_one_error(envtest: EnvInfo) -> None:
    widgetz = Resource("example.com", "v1", "widgetz", "Widget")
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        controller = Controller(client, widgetz, lambda key: None)
        with trio.fail_after(60), pytest.raises(ListFailed) as failed:
            await controller.run()
    # An unknown group is the apiserver's plain-text 404, a Status only within a group.
    assert str(failed.value) == (
        "cannot list *example.com/v1.Widget at /apis/example.com/v1/widgetz: "
        "404 Not Found: 404 page not found"
    )
