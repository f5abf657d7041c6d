"""CPU per watch event filtered by a predicate (issue 14: ≤ 1 µs per filtered event).

    .venv/bin/python bench/predicates.py [--pods 5000] [--repeat 15]

A store holding `--pods` realistic pods (3-4 KB, generation 1) is fed a stream of
MODIFIED events for each of them that change only the status and resourceVersion (what
an operator's own status write looks like), through `WatchDecoder.feed_into` into one
queue: without a predicate (every event enqueued), with `generation_changed` (every
event filtered in Rust), and with a Python callable (each event parsed for it). The
queue is drained between runs, so every run enqueues (or filters) every event.

Prints the median CPU per event of each, and the difference the predicate makes (the
predicate's own cost minus the enqueue it saves).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pods import pod

from trio_controller._native import PREDICATE_GENERATION, Store, WatchDecoder
from trio_controller._native import WorkQueue as NativeQueue


def stream(n: int, rv: int) -> bytes:
    out = []
    for i in range(n):
        p = pod(i, resource_version=rv + i)
        p["metadata"]["generation"] = 1
        p["status"]["phase"] = "Running" if rv % 2 else "Pending"
        out.append(orjson.dumps({"type": "MODIFIED", "object": p}) + b"\n")
    return b"".join(out)


def run(n: int, repeat: int, predicates: int, check: Any) -> list[float]:
    store = Store()
    queue = NativeQueue()
    WatchDecoder().feed_into(stream(n, 1000), store, None, 0.0)
    streams = [stream(n, 100_000 * (r + 1)) for r in range(2)]
    times = []
    for r in range(repeat):
        data = streams[r % 2]
        decoder = WatchDecoder()
        start = time.process_time()
        decoder.feed_into(data, store, queue, 1.0, predicates=predicates, check=check)
        times.append((time.process_time() - start) / n * 1e6)
        keys = queue.get_many_nowait(n + 1, 2.0)
        for k in keys:
            queue.done(k, 2.0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    plain = statistics.median(run(args.pods, args.repeat, 0, None))
    gen = statistics.median(run(args.pods, args.repeat, PREDICATE_GENERATION, None))

    def spec_changed(key: str, old: Any, new: Any) -> bool:
        return bool(old["spec"] != new["spec"])

    python = statistics.median(run(args.pods, args.repeat, 0, spec_changed))
    print(f"{args.pods} pods, MODIFIED events with the same generation, median of {args.repeat}")
    print(f"  no predicate (every event enqueued)    {plain:6.2f} µs CPU/event")
    print(f"  generation_changed (filtered in Rust)  {gen:6.2f} µs CPU/event")
    print(f"  a Python callable (parsed for it)      {python:6.2f} µs CPU/event")
    print(f"  the generation predicate's difference  {gen - plain:+6.2f} µs CPU/event")


if __name__ == "__main__":
    main()
