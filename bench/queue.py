"""Work queue throughput: add/get/done cycles per second from Python.

    .venv/bin/python bench/queue.py [--keys 100000] [--repeat 9] [--batch 1000]

The Rust queue (one call per key, and batched), against a pure-Python queue with the
same client-go semantics. Prints medians; the machine is noisy, so look at medians only.
"""

from __future__ import annotations

import sys

if __name__ != "__main__":
    # Imported as `queue`: any script run from bench/ has bench/ first on sys.path, so
    # `import queue` (Trio does it) finds this file. Hand the importer the stdlib module
    # instead; importlib returns whatever sys.modules["queue"] holds after this runs.
    import importlib.util
    import os
    import sysconfig

    _spec = importlib.util.spec_from_file_location(
        "queue", os.path.join(sysconfig.get_path("stdlib"), "queue.py")
    )
    assert _spec is not None and _spec.loader is not None
    _stdlib_queue = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_stdlib_queue)
    sys.modules["queue"] = _stdlib_queue

import argparse
import statistics
import time
from collections import deque
from collections.abc import Callable

# Trio and trio_controller are imported inside the functions below, so importing this
# file as `queue` (above) pulls in nothing else.


class PyQueue:
    """client-go's queue in plain Python: FIFO + dirty + processing, with the same
    metrics bookkeeping as the Rust queue (add time per dirty key, start time per
    processing key, latency and work-duration sums). Time is an argument, as in Rust."""

    def __init__(self) -> None:
        self.queue: deque[str] = deque()
        self.dirty: dict[str, float] = {}
        self.processing: dict[str, float] = {}
        self.shutting_down = False
        self.adds = 0
        self.latency_sum = 0.0
        self.latency_count = 0
        self.work_sum = 0.0
        self.work_count = 0

    def add(self, key: str, now: float) -> None:
        if self.shutting_down or key in self.dirty:
            return
        self.adds += 1
        self.dirty[key] = now
        if key in self.processing:
            return
        self.queue.append(key)

    def get_nowait(self, now: float) -> str | None:
        if not self.queue:
            return None
        key = self.queue.popleft()
        self.latency_sum += now - self.dirty.pop(key)
        self.latency_count += 1
        self.processing[key] = now
        return key

    def done(self, key: str, now: float) -> None:
        started = self.processing.pop(key, None)
        if started is None:
            return
        self.work_sum += now - started
        self.work_count += 1
        if key in self.dirty:
            self.queue.append(key)


def python_single(keys: list[str]) -> int:
    q = PyQueue()
    for k in keys:
        q.add(k, 0.0)
    n = 0
    while (k := q.get_nowait(0.0)) is not None:
        q.done(k, 0.0)
        n += 1
    return n


def rust_single(keys: list[str]) -> int:
    from trio_controller._native import WorkQueue as NativeQueue

    q = NativeQueue()
    for k in keys:
        q.add(k, 0.0)
    n = 0
    while (k := q.get_nowait(0.0)) is not None:
        q.done(k, 0.0)
        n += 1
    return n


def rust_batched(keys: list[str], batch: int) -> int:
    from trio_controller._native import WorkQueue as NativeQueue

    q = NativeQueue()
    n = 0
    for i in range(0, len(keys), batch):
        q.add_many(keys[i : i + batch], 0.0)
    while got := q.get_many_nowait(batch, 0.0):
        q.done_many(got, 0.0)
        n += len(got)
    return n


def trio_wrapper(keys: list[str]) -> int:
    import trio

    from trio_controller.runtime.workqueue import WorkQueue

    async def run() -> int:
        q = WorkQueue()
        for k in keys:
            q.add(k)
        n = 0
        while len(q):
            k = await q.get()
            q.done(k)
            n += 1
        return n

    return trio.run(run)


def measure(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times = []
    n = 0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100_000, help="distinct keys per run")
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    keys = [f"default/pod-{i:06d}" for i in range(args.keys)]
    rows = [
        ("pure Python queue, per key", lambda: python_single(keys)),
        ("Rust queue, per key", lambda: rust_single(keys)),
        (f"Rust queue, batches of {args.batch}", lambda: rust_batched(keys, args.batch)),
        ("Trio WorkQueue (await get), per key", lambda: trio_wrapper(keys)),
    ]
    print(f"{args.keys} distinct keys, add+get+done per cycle, median of {args.repeat}")
    print(f"{'':40} {'cycles/s':>12} {'µs/cycle':>9} {'vs Python':>9}")
    base = None
    for label, fn in rows:
        seconds, n = measure(fn, args.repeat)
        assert n == args.keys, (label, n)
        base = base or seconds
        print(f"{label:40} {n / seconds:12,.0f} {seconds / n * 1e6:9.3f} {base / seconds:8.1f}x")


if __name__ == "__main__":
    main()
