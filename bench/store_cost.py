"""CPU per watch event of the informer core with the cache's settings, A/B across builds.

    .venv/bin/python bench/store_cost.py [--pods 3000] [--rounds 7] [--old /tmp/old]

Real pod JSON (bench/pods.py, ~4.1 KB, ~3.1 KB without managedFields) at apiserver
framing (HTTP/1.1 chunked, one chunk per event, 256 KB reads) into an `InformerCore`
feeding one work queue, as the CLI runs. Each measurement runs in a fresh process: the
pods arrive once as ADDED (filling the store; a compressing store learns its dictionary
there), then the measured stream MODIFIED every pod (each event replaces a cached
object, the steady state of a watch). CPU time (`time.process_time`) per event.

Settings: `default` (the build's `InformerOptions()` store settings), `plain`
(`compress=False`), `compress` (`compress=True`). With `--old DIR`, DIR is put first on
PYTHONPATH for the "old" rows (a copy of the `trio_controller` package with another
build's `_native`), interleaved with this worktree's rows round by round; medians over
rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
READ = 256 * 1024


def framed(lines: list[bytes]) -> list[bytes]:
    """One chunk per event, cut into 256 KB reads; no terminating chunk (the watch goes on)."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(line), line) for line in lines)
    return [body[i : i + READ] for i in range(0, len(body), READ)]


def stream(n: int, kind: str, rv: int) -> list[bytes]:
    import orjson
    from pods import pod

    out = []
    for i in range(n):
        obj = pod(i, namespace=f"ns-{i % 20}", resource_version=rv + i)
        out.append(orjson.dumps({"type": kind, "object": obj}) + b"\n")
    return out


def child(n: int, setting: str) -> None:
    sys.path.insert(0, str(HERE))
    from trio_controller._native import InformerCore, Store, WatchDecoder, WorkQueue

    if setting == "default":
        from trio_controller.cache.options import InformerOptions

        opts = InformerOptions()
        store = Store(strip_managed_fields=opts.strip_managed_fields, compress=opts.compress)
    else:
        store = Store(strip_managed_fields=True, compress=setting == "compress")
    core = InformerCore(store, "Pod")
    queue = WorkQueue()
    core.add_queue(queue)
    decoder = WatchDecoder()
    decoder.reset(chunked=True)
    for read in framed(stream(n, "ADDED", 1000)):
        core.feed(decoder, read, 0.0)
    reads = framed(stream(n, "MODIFIED", 1000 + n))
    start = time.process_time()
    for read in reads:
        core.feed(decoder, read, 0.0)
    spent = time.process_time() - start
    assert len(store) == n
    print(f"{spent / n * 1e6:.3f} {store.compress}")


def run(n: int, setting: str, pythonpath: str | None) -> tuple[float, bool]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run(
        [sys.executable, __file__, "--pods", str(n), "--child", setting],
        check=True,
        capture_output=True,
        text=True,
        env=env,
        cwd="/" if pythonpath else ROOT,
    )
    us, compress = out.stdout.split()
    return float(us), compress == "True"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--old", help="a directory holding another build's trio_controller")
    parser.add_argument("--settings", nargs="+", default=["default", "plain", "compress"])
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child(args.pods, args.child)
        return
    builds: list[tuple[str, str | None]] = [("new", str(ROOT))]
    if args.old:
        builds.insert(0, ("old", args.old))
    results: dict[tuple[str, str], list[float]] = {}
    compressed: dict[tuple[str, str], bool] = {}
    for _ in range(args.rounds):
        for setting in args.settings:
            for name, path in builds:
                us, comp = run(args.pods, setting, path)
                results.setdefault((name, setting), []).append(us)
                compressed[(name, setting)] = comp
    print(f"{args.pods:,} pods, MODIFIED at apiserver framing, {args.rounds} rounds (medians)")
    for (name, setting), values in results.items():
        print(
            f"  {name:4} {setting:9} compress={compressed[(name, setting)]!s:5} "
            f"{statistics.median(values):6.2f} µs/event  "
            f"(min {min(values):.2f}, max {max(values):.2f})"
        )


if __name__ == "__main__":
    main()
