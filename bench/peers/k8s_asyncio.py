"""Peer: `kubernetes_asyncio`, watch.Watch over list_namespaced_pod (models).

python bench/peers/k8s_asyncio.py KUBECONFIG
"""

from __future__ import annotations

import asyncio
import sys

from common import deleted, synced, synced_line
from kubernetes_asyncio import client, config, watch


async def main() -> None:
    await config.load_kube_config(config_file=sys.argv[1])
    async with client.ApiClient() as api:
        v1 = client.CoreV1Api(api)
        cache = {}
        cont = None
        while True:
            page = await v1.list_namespaced_pod("default", limit=500, _continue=cont)
            for p in page.items:
                cache[f"{p.metadata.namespace}/{p.metadata.name}"] = p
                synced_line(p.metadata.name)
            cont = page.metadata._continue
            if not cont:
                break
        synced()
        rv = page.metadata.resource_version
        w = watch.Watch()
        async for ev in w.stream(
            v1.list_namespaced_pod, "default", resource_version=rv, allow_watch_bookmarks=True
        ):
            if ev["type"] == "BOOKMARK":
                continue
            p = ev["object"]
            key = f"{p.metadata.namespace}/{p.metadata.name}"
            if ev["type"] == "DELETED":
                cache.pop(key, None)
                deleted(key)
            else:
                cache[key] = p
                synced_line(p.metadata.name)


if __name__ == "__main__":
    asyncio.run(main())
