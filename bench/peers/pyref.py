"""Peer: our pipeline in pure Python, to show what the Rust core buys.

    python bench/peers/pyref.py KUBECONFIG [--workers N] [--strip]

The same shape as trio_controller, with no native code: httpx on Trio, list pages of 500
then a watch; each line `orjson.loads`-ed into a dict cache keyed by namespace/name; keys
through a client-go style queue (FIFO + dirty + processing sets) to N worker tasks that
print the example's lines. `--strip` drops managedFields before caching.
"""

from __future__ import annotations

import argparse
from collections import deque

import httpx
import orjson
import trio
from common import deleted, server_url, server_verify, synced, synced_line


class Queue:
    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.dirty: set[str] = set()
        self.processing: set[str] = set()
        self.lot = trio.lowlevel.ParkingLot()

    def add(self, key: str) -> None:
        if key in self.dirty:
            return
        self.dirty.add(key)
        if key not in self.processing:
            self.queue.append(key)
            self.lot.unpark()

    async def get(self) -> str:
        while not self.queue:
            await self.lot.park()
        key = self.queue.popleft()
        self.processing.add(key)
        self.dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self.processing.discard(key)
        if key in self.dirty:
            self.queue.append(key)
            self.lot.unpark()


async def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("kubeconfig")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--strip", action="store_true")
    args = p.parse_args()
    cache: dict[str, dict] = {}
    queue = Queue()
    path = "/api/v1/namespaces/default/pods"

    def put(obj: dict) -> str:
        m = obj["metadata"]
        if args.strip:
            m.pop("managedFields", None)
        key = f"{m['namespace']}/{m['name']}"
        cache[key] = obj
        return key

    async def worker() -> None:
        while True:
            key = await queue.get()
            obj = cache.get(key)
            if obj is None:
                deleted(key)
            else:
                synced_line(obj["metadata"]["name"])
            queue.done(key)
            await trio.lowlevel.checkpoint()

    async with httpx.AsyncClient(
        base_url=server_url(args.kubeconfig), verify=server_verify(args.kubeconfig), timeout=None
    ) as http:
        params: dict[str, str | int] = {"limit": 500}
        while True:
            page = orjson.loads((await http.get(path, params=params)).content)
            for obj in page["items"]:
                queue.add(put(obj))
            cont = page["metadata"].get("continue")
            if not cont:
                break
            params["continue"] = cont
        synced()
        rv = page["metadata"]["resourceVersion"]
        async with trio.open_nursery() as nursery:
            for _ in range(args.workers):
                nursery.start_soon(worker)
            params = {"watch": "true", "resourceVersion": rv, "allowWatchBookmarks": "true"}
            async with http.stream("GET", path, params=params) as resp:
                buf = b""
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        ev = orjson.loads(line)
                        kind = ev["type"]
                        if kind == "BOOKMARK":
                            continue
                        if kind == "DELETED":
                            m = ev["object"]["metadata"]
                            key = f"{m['namespace']}/{m['name']}"
                            cache.pop(key, None)
                        else:
                            key = put(ev["object"])
                        queue.add(key)


if __name__ == "__main__":
    trio.run(main)
