"""Issue 14: a live change during a restart's backlog, with and without priority.

On the real kube-apiserver + etcd from testenv (`trio_controller.testing.open_envtest`):
N ConfigMaps `prio-N` (label role=prio) in `default`. Then, rounds interleaved, each of:

  priority   Controller(client, CONFIGMAPS, reconcile, label_selector="role=prio")
  fifo       the same with priorities=False (one FIFO, as before issue 14)

The reconcile burns 1 ms of CPU per key (async: it checkpoints after each key, so the
watch is read between keys). Right after the sync (`nursery.start(controller.run)`
returns once the caches are synced and the workers run), the bench patches the object of
the first key reconciled, so its change arrives behind the whole listed backlog: the
figure is the time from sending that write to the start of the reconcile that sees it
(its annotation in the cache). With priority the listed keys wait at low priority and
the change is served next (aging hands out a low key every 10th time); in one FIFO it
waits for the backlog (N x 1 ms). `backlog` is the time from the sync to the N-th
reconcile.

    python bench/priority_bench.py [--objects 2000] [--rounds 2] [--out FILE]
    python bench/priority_bench.py --objects 100000      # the issue's figure (slow to create)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from trio_controller import CONFIGMAPS, Api, Client, Controller, ControllerOptions, load_config
from trio_controller.testing import open_envtest

CONCURRENCY = 64
COST = 0.001  # seconds of CPU per reconcile
ANNOTATION = "bench.example.com/round"


async def create(api: Api, n: int) -> None:
    limit = trio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with limit:
            cm = {"metadata": {"name": f"prio-{i:06d}", "labels": {"role": "prio"}},
                  "data": {"i": str(i)}}  # fmt: skip
            await api.create(cm)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)


async def one_run(client: Client, api: Api, n: int, priorities: bool, tag: str) -> dict[str, Any]:
    first: list[str] = []
    count = 0
    seen_at: float | None = None
    drained_at: float | None = None
    target: str | None = None
    started, finished = trio.Event(), trio.Event()

    async def reconcile(key: str) -> None:
        nonlocal count, seen_at, drained_at
        end = time.perf_counter() + COST
        while time.perf_counter() < end:
            pass
        count += 1
        if not first:
            first.append(key)
            started.set()
        if key == target and seen_at is None:
            obj = controller.store.get(key) or {}
            if (obj.get("metadata", {}).get("annotations") or {}).get(ANNOTATION) == tag:
                seen_at = time.perf_counter()
        if count == n:
            drained_at = time.perf_counter()
        if seen_at is not None and drained_at is not None:
            finished.set()
        await trio.lowlevel.checkpoint()

    controller = Controller(
        client,
        CONFIGMAPS,
        reconcile,
        namespace="default",
        label_selector="role=prio",
        options=ControllerOptions(
            cache_sync_timeout=None, hot_loop_threshold=None, priorities=priorities
        ),
    )
    async with trio.open_nursery() as nursery:
        t_start = time.perf_counter()
        await nursery.start(controller.run)
        synced = time.perf_counter()
        while not first:
            await trio.lowlevel.checkpoint()
        target = first[0]
        written = time.perf_counter()
        await api.patch(target.split("/", 1)[1], {"metadata": {"annotations": {ANNOTATION: tag}}})
        await finished.wait()
        controller.stop()
    assert seen_at is not None and drained_at is not None
    return {
        "latency_ms": (seen_at - written) * 1e3,
        "backlog_s": drained_at - synced,
        "sync_s": synced - t_start,
    }


async def main_async(args: argparse.Namespace) -> str:
    n = args.objects
    async with open_envtest() as env, Client(load_config(str(env.admin_kubeconfig))) as client:
        api = Api(client, CONFIGMAPS, "default")
        t0 = time.monotonic()
        await create(api, n)
        create_s = time.monotonic() - t0
        print(f"created {n} ConfigMaps in {create_s:.1f} s", file=sys.stderr)
        runs: dict[str, list[dict[str, Any]]] = {"priority": [], "fifo": []}
        for r in range(args.rounds):
            for mode in runs:
                res = await one_run(client, api, n, mode == "priority", f"{r}-{mode}")
                runs[mode].append(res)
                print(f"round {r + 1} {mode}: {res}", file=sys.stderr)
    return table(runs, n, create_s)


def table(runs: dict[str, list[dict[str, Any]]], n: int, create_s: float) -> str:
    lines = [
        f"# A live change behind a listed backlog of {n} ConfigMaps (issue 14)",
        "",
        f"Real kube-apiserver + etcd (testenv), {n} ConfigMaps created in {create_s:.0f} s;",
        "a reconcile burning 1 ms of CPU; right after the sync, the object of the first",
        "key reconciled is patched. Median of the rounds (each: min-max).",
        "",
        "| queue | write to its reconcile | backlog drained after sync |",
        "|---|---|---|",
    ]
    for mode, rs in runs.items():
        lat = [r["latency_ms"] for r in rs]
        back = [r["backlog_s"] for r in rs]
        lines.append(
            f"| {mode} | {statistics.median(lat):.0f} ms ({min(lat):.0f}-{max(lat):.0f})"
            f" | {statistics.median(back):.1f} s |"
        )
    lines.append("")
    rounds = len(next(iter(runs.values())))
    lines.append(f"    python bench/priority_bench.py --objects {n} --rounds {rounds}")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", help="also write the table to this file")
    args = ap.parse_args()
    out = trio.run(main_async, args)
    print(out)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(out)


if __name__ == "__main__":
    main()
