"""The informer core's fan-out against the real apiserver, in both sync modes (streaming
list and list+watch): one informer feeding two queues, an owner-mapped queue and Python
event handlers from the same reads. (Tombstones after a relist need a 410 the real
server will not send on demand: tests/test_informer.py scripts it.)"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from trio_controller import (
    CONFIGMAPS,
    DEPLOYMENTS,
    Api,
    Client,
    EventHandlers,
    Informer,
    InformerOptions,
    WorkQueue,
    load_config,
)
from trio_controller.native import OwnerMapping
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


async def taken(queue: WorkQueue, n: int) -> list[str]:
    """The next `n` distinct keys `queue` hands out (marked done)."""
    keys: list[str] = []
    while len(keys) < n:
        key = await queue.get()
        queue.done(key)
        keys.append(key)
    return sorted(keys)


@pytest.mark.parametrize("streaming_list", [True, False], ids=["streaming", "list"])
async def test_one_informer_feeds_two_queues_an_owner_mapped_queue_and_handlers(
    envtest: EnvInfo, namespace: str, streaming_list: bool
) -> None:
    calls: list[tuple[str, str, str | None, str | None]] = []
    changed = trio.Event()

    def note(what: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        nonlocal changed
        name = (new or old or {})["metadata"]["name"]
        rv = lambda o: None if o is None else o["metadata"]["resourceVersion"]  # noqa: E731
        calls.append((what, name, rv(old), rv(new)))
        changed.set()
        changed = trio.Event()

    async def wait_calls(n: int) -> None:
        while len(calls) < n:
            await changed.wait()

    ns = namespace
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        configmaps = Api(client, CONFIGMAPS, ns)
        owner = await Api(client, DEPLOYMENTS, ns).create(deployment("d"))
        ref = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d",
               "uid": owner["metadata"]["uid"], "controller": True}  # fmt: skip
        a = await configmaps.create({"metadata": {"name": "a", "ownerReferences": [ref]}})
        b = await configmaps.create({"metadata": {"name": "b"}})
        first, second, owners = WorkQueue(), WorkQueue(), WorkQueue()
        informer = Informer(
            client, CONFIGMAPS, InformerOptions(streaming_list=streaming_list), namespace=ns
        )
        informer.add_queue(first)
        informer.add_queue(second)
        informer.add_queue(owners, owner=OwnerMapping("apps/v1", "Deployment"))
        informer.add_handlers(
            EventHandlers(
                on_add=lambda new: note("add", None, new),
                on_update=lambda old, new: note("update", old, new),
                on_delete=lambda old: note("delete", old, None),
            )
        )
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for q in (first, second, owners):
                    await nursery.start(q.run)
                await nursery.start(informer.run)
                await informer.wait_for_cache_sync()
                assert await taken(first, 2) == await taken(second, 2) == [f"{ns}/a", f"{ns}/b"]
                assert await taken(owners, 1) == [f"{ns}/d"]
                await wait_calls(2)
                assert sorted(calls) == [
                    ("add", "a", None, a["metadata"]["resourceVersion"]),
                    ("add", "b", None, b["metadata"]["resourceVersion"]),
                ]

                a2 = await configmaps.patch("a", {"data": {"k": "v"}})
                assert await taken(first, 1) == await taken(second, 1) == [f"{ns}/a"]
                assert await taken(owners, 1) == [f"{ns}/d"]
                await wait_calls(3)
                rvs = (a["metadata"]["resourceVersion"], a2["metadata"]["resourceVersion"])
                assert calls[2] == ("update", "a", *rvs)

                await configmaps.delete("b")
                assert await taken(first, 1) == await taken(second, 1) == [f"{ns}/b"]
                await wait_calls(4)
                assert calls[3][:2] == ("delete", "b")  # the server's final version of b
                assert len(owners) == 0  # b has no owner
                nursery.cancel_scope.cancel()
    assert informer.reflector.streaming_list is streaming_list
