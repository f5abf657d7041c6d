"""feed_into µs/event with and without an owner mapping, on 4 KB pods.

    .venv/bin/python rust/tools/owner_bench.py [--pods 2000] [--rounds 7] [--read 4096]

Pods come from bench/pods.py (~4.1 KB each, a controller ownerReference to a
ReplicaSet). The watch body is framed as the apiserver frames it (one HTTP chunk per
event) and fed in reads of `--read` bytes (4 KB: one TLS record per event, as measured on
the real apiserver). Each round feeds every pod as ADDED into an empty store, then every
pod as MODIFIED over it (the mapping then also reads the stored old object's metadata).
Prints the median over rounds of CPU µs/event (process time: the 2 shared cores are
busy); the queue is drained outside the timings.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

import orjson  # noqa: E402
from pods import pod  # noqa: E402

from trio_controller._native import OwnerMapping, Store, WatchDecoder, WorkQueue  # noqa: E402


def body(kind: str, pods: list[dict]) -> bytes:
    out = []
    for p in pods:
        event = orjson.dumps({"type": kind, "object": p}) + b"\n"
        out.append(b"%x\r\n%s\r\n" % (len(event), event))
    return b"".join(out)


def feed(
    data: bytes, read: int, store: Store, queue: WorkQueue, owner: OwnerMapping | None
) -> float:
    d = WatchDecoder()
    d.reset(chunked=True)
    reads = [data[i : i + read] for i in range(0, len(data), read)]
    start = time.process_time()
    for r in reads:
        d.feed_into(r, store, queue, 0.0, owner=owner)
    return time.process_time() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--read", type=int, default=4096)
    ap.add_argument("--compress", action="store_true")
    args = ap.parse_args()
    pods = [pod(i) for i in range(args.pods)]
    size = sum(len(orjson.dumps(p)) for p in pods) / len(pods)
    modified = [pod(i, resource_version=2000) for i in range(args.pods)]
    added, changed = body("ADDED", pods), body("MODIFIED", modified)
    mapping = OwnerMapping("apps/v1", "ReplicaSet")
    results: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for label, owner in (("no mapping", None), ("mapping", mapping)):
            store, queue = Store(compress=args.compress), WorkQueue()
            for kind, data in (("ADDED", added), ("MODIFIED", changed)):
                t = feed(data, args.read, store, queue, owner)
                results.setdefault((kind, label), []).append(t / args.pods * 1e6)
                queue.done_many(queue.get_many_nowait(10 * args.pods, 0.0), 0.0)
            if owner is not None:
                assert len(store) == args.pods
    print(
        f"{args.pods} pods of {size / 1024:.1f} KB, reads of {args.read} B, "
        f"compress={args.compress}, median of {args.rounds} rounds (µs/event):"
    )
    for kind in ("ADDED", "MODIFIED"):
        base = statistics.median(results[(kind, "no mapping")])
        mapped = statistics.median(results[(kind, "mapping")])
        print(
            f"  {kind:9} no mapping {base:6.2f}   mapping {mapped:6.2f}   "
            f"(+{mapped - base:.2f}, +{(mapped / base - 1) * 100:.0f}%)"
        )


if __name__ == "__main__":
    main()
