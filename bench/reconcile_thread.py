"""Cost per key of a plain-function reconcile: inline on the Trio thread vs in a worker
thread (`Controller(threaded=True)`), per batch of ready keys and one key at a time.

    .venv/bin/python bench/reconcile_thread.py [--keys 20000] [--repeat 5]

A no-op reconcile (one store lookup, as the pod example does) over keys already queued,
so the figure is the runtime's own cost per key: queue get/done, the call, stats, and,
threaded, the hop to a worker thread and back. The best of `--repeat` runs is shown.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import orjson
import trio

from trio_controller._native import Store
from trio_controller.runtime.controller import Controller, ControllerOptions
from trio_controller.runtime.workqueue import WorkQueue


class Filled:
    """A synced stand-in reflector over `n` cached objects."""

    def __init__(self, n: int) -> None:
        self.store = Store()
        for i in range(n):
            meta = {"name": f"p{i}", "namespace": "default", "uid": str(i), "resourceVersion": "1"}
            self.store.upsert(orjson.dumps({"kind": "Pod", "metadata": meta}))
        self.synced = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        self.synced.set()
        await trio.sleep_forever()


async def one_run(n: int, *, threaded: bool, batch: int) -> float:
    source = Filled(n)
    store = source.store
    queue = WorkQueue()
    keys = store.list_keys()

    done = trio.Event()
    left = n

    def reconcile(key: str) -> None:
        nonlocal left
        store.name(key)
        left -= 1
        if not left:
            trio.from_thread.run_sync(done.set) if threaded else done.set()

    controller = Controller.over(
        source, queue, reconcile, options=ControllerOptions(threaded=threaded, batch=batch)
    )  # type: ignore[arg-type]
    async with trio.open_nursery() as nursery:
        await nursery.start(controller.run)
        started = time.perf_counter()
        queue.add_many(keys)
        await done.wait()
        elapsed = time.perf_counter() - started
        controller.stop()
    return elapsed / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keys", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    cases = [
        ("inline, batches of 64 (default)", False, 64, args.keys),
        ("inline, one key at a time", False, 1, args.keys),
        ("threaded, batches of 64", True, 64, args.keys),
        ("threaded, one key at a time", True, 1, max(1000, args.keys // 10)),
    ]
    print(f"{'case':<34} {'us/key':>8}")
    for label, threaded, batch, n in cases:
        best = min(
            trio.run(lambda: one_run(n, threaded=threaded, batch=batch))  # noqa: B023
            for _ in range(args.repeat)
        )
        print(f"{label:<34} {best * 1e6:8.2f}")


if __name__ == "__main__":
    main()
