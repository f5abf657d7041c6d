"""An informer with Python handlers against the real apiserver: a controller that only
cares about pods labelled `team=blue`, deciding on object contents in its handlers."""

from __future__ import annotations

from typing import Any

import trio

from trio_controller import Client, WorkQueue, load_config
from trio_controller.cache.informer import EventHandlers, Informer
from trio_controller.testing import EnvInfo, PodHelper


async def test_handlers_filter_on_labels_and_see_every_change(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    queue = WorkQueue()
    seen: list[tuple[str, str]] = []

    def blue(obj: dict[str, Any]) -> bool:
        return bool(obj["metadata"].get("labels", {}).get("team") == "blue")

    def key(obj: dict[str, Any]) -> str:
        return f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"

    def on_add(obj: dict[str, Any]) -> None:
        seen.append(("add", obj["metadata"]["name"]))
        if blue(obj):
            queue.add(key(obj))

    def on_update(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        seen.append(("update", new["metadata"]["name"]))
        if blue(new) or (old is not None and blue(old)):
            queue.add(key(new))

    deleted = trio.Event()

    def on_delete(obj: dict[str, Any]) -> None:
        seen.append(("delete", obj["metadata"]["name"]))
        deleted.set()

    await pods.create_pod(namespace, "red-1", labels={"team": "red"})
    await pods.create_pod(namespace, "blue-1", labels={"team": "blue"})
    config = load_config(str(envtest.admin_kubeconfig))
    async with Client(config) as client:
        informer = Informer(
            client,
            f"/api/v1/namespaces/{namespace}/pods",
            queue=None,
            handlers=EventHandlers(on_add, on_update, on_delete),
        )
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                await nursery.start(queue.run)
                await nursery.start(informer.run)
                await informer.wait_for_cache_sync()
                assert await queue.get() == f"{namespace}/blue-1"
                queue.done(f"{namespace}/blue-1")

                await pods.patch_pod(namespace, "red-1", {"metadata": {"labels": {"team": "blue"}}})
                assert await queue.get() == f"{namespace}/red-1"
                queue.done(f"{namespace}/red-1")
                assert informer.store.labels(f"{namespace}/red-1") == {"team": "blue"}

                await pods.delete_pod(namespace, "blue-1")
                await deleted.wait()
                nursery.cancel_scope.cancel()
    assert sorted(seen[:2]) == [("add", "blue-1"), ("add", "red-1")]
    assert ("update", "red-1") in seen
    assert seen[-1] == ("delete", "blue-1")
    assert f"{namespace}/blue-1" not in informer.store
