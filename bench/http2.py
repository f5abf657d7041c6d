"""HTTP/1.1 vs HTTP/2 for paged lists against a real apiserver (issue 4: "HTTP/2 when the
server offers it, if it helps (measure)").

    .venv/bin/python -m trio_controller.testing --kubeconfig-out /tmp/kc &   # prints ready
    .venv/bin/python bench/http2.py /tmp/kc [--pods 3000] [--rounds 5]

Creates the pods once in namespace `h2bench`, then lists them in pages of 500 into a
`ListAccumulator` with each protocol, interleaved, and prints the medians.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import trio

from trio_controller import Client, errors, load_config
from trio_controller.native import ListAccumulator

NS = "h2bench"
PODS = f"/api/v1/namespaces/{NS}/pods"


async def ensure_pods(client: Client, count: int) -> None:
    with contextlib.suppress(errors.Conflict):
        await client.request_json("POST", "/api/v1/namespaces", {"metadata": {"name": NS}})
    have = await client.request_json("GET", PODS, params={"limit": "1"})
    if have["items"]:
        return

    async def create(i: int) -> None:
        pod = {
            "metadata": {"name": f"p{i}", "labels": {"app": "h2bench", "i": str(i)}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        }
        await client.request_json("POST", PODS, pod)

    for start in range(0, count, 50):
        async with trio.open_nursery() as nursery:
            for i in range(start, min(start + 50, count)):
                nursery.start_soon(create, i)


async def list_all(client: Client) -> float:
    started = time.perf_counter()
    acc, token = ListAccumulator(), None
    while True:
        params = {"limit": "500", **({"continue": token} if token else {})}
        token = acc.feed_page(await client.list_page(PODS, params)).continue_token
        if not token:
            return time.perf_counter() - started


async def main(args: argparse.Namespace) -> None:
    config = load_config(args.kubeconfig)
    async with Client(config) as client:
        await ensure_pods(client, args.pods)
    times: dict[str, list[float]] = {"HTTP/1.1": [], "HTTP/2": []}
    for _ in range(args.rounds):
        for name, http2 in (("HTTP/1.1", False), ("HTTP/2", True)):
            async with Client(config, http2=http2) as client:
                times[name].append(await list_all(client))
    for name, ts in times.items():
        print(f"{name}: list {args.pods} pods, median {statistics.median(ts) * 1000:.0f} ms")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("kubeconfig")
    p.add_argument("--pods", type=int, default=3000)
    p.add_argument("--rounds", type=int, default=5)
    trio.run(main, p.parse_args())
