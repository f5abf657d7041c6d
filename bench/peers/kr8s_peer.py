"""Peer: `kr8s` (its asyncio API): get pods (it pages by 100 itself), then watch.

python bench/peers/kr8s_peer.py KUBECONFIG
"""

from __future__ import annotations

import asyncio
import sys

import kr8s.asyncio
from common import deleted, synced, synced_line


async def main() -> None:
    api = await kr8s.asyncio.api(kubeconfig=sys.argv[1])
    cache = {}
    async for p in api.get("pods", namespace="default"):
        cache[f"{p.namespace}/{p.name}"] = p
        synced_line(p.name)
    synced()
    async for op, p in api.watch("pods", namespace="default"):
        key = f"{p.namespace}/{p.name}"
        if op == "DELETED":
            cache.pop(key, None)
            deleted(key)
        elif op != "BOOKMARK":
            cache[key] = p
            synced_line(p.name)


if __name__ == "__main__":
    asyncio.run(main())
