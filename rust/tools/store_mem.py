"""RSS per cached pod in a `Store` filled the way the reflector fills it.

    .venv/bin/python rust/tools/store_mem.py [--no-strip] [--compress|--plain] [--pods 10000 100000]
        [--old DIR]

Without `--compress` or `--plain` the store has `InformerOptions()`'s settings (the
default). With `--old DIR` the same runs are made, interleaved, with DIR first on
PYTHONPATH (a copy of the `trio_controller` package with another build's `_native`).

Pages of 500 realistic pods (bench/pods.py, ~4.1 KB each, all distinct) are written once
to a cache file, then each size runs in a fresh process: feed every page into one
`ListAccumulator`, `Store.replace`, read VmRSS. The slope between the two sizes is the
per-pod cost (fixed costs cancel), as in bench figure 3.
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = 500


def pages_file(n: int) -> Path:
    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"trio-controller-pages-{n}.bin"
    if path.exists():
        return path
    sys.path.insert(0, str(ROOT / "bench"))
    import orjson
    from pods import pod

    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as f:
        for start in range(0, n, PAGE):
            items = []
            for i in range(start, min(n, start + PAGE)):
                p = pod(i, namespace=f"ns-{i % 20}")
                del p["kind"], p["apiVersion"]
                items.append(p)
            last = start + PAGE >= n
            body = orjson.dumps(
                {
                    "kind": "PodList",
                    "apiVersion": "v1",
                    "metadata": {"resourceVersion": "5000", "continue": "" if last else "c"},
                    "items": items,
                }
            )
            f.write(struct.pack("<I", len(body)))
            f.write(body)
    tmp.rename(path)
    return path


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def child(path: str, n: int, strip: bool, compress: bool | None) -> None:
    from trio_controller._native import ListAccumulator, Store
    from trio_controller.cache.options import InformerOptions

    if compress is None:
        compress = InformerOptions().compress
    store = Store(strip_managed_fields=strip, compress=compress)
    acc = ListAccumulator(strip_managed_fields=strip, compress=compress)
    fed = 0
    with open(path, "rb") as f:
        while fed < n:
            head = f.read(4)
            if not head:
                break
            (size,) = struct.unpack("<I", head)
            fed += acc.feed_page(f.read(size)).items
    store.replace(acc, "5000")
    assert len(store) == n, (len(store), n)
    print(rss_kb(), store.compress)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pods", type=int, nargs=2, default=[10_000, 100_000])
    parser.add_argument("--no-strip", dest="strip", action="store_false")
    parser.add_argument("--compress", action="store_const", const=True, default=None)
    parser.add_argument("--plain", dest="compress", action="store_const", const=False)
    parser.add_argument("--old", help="a directory holding another build's trio_controller")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.strip, args.compress)
        return
    small, large = args.pods
    path = pages_file(large)
    flags = [] if args.strip else ["--no-strip"]
    flags += {True: ["--compress"], False: ["--plain"], None: []}[args.compress]
    builds: dict[str, str | None] = {"new": None}
    if args.old:
        builds = {"old": args.old, "new": str(ROOT)}
    rss: dict[tuple[str, int], list[int]] = {}
    compressed: dict[str, str] = {}
    for _ in range(args.repeat):
        for name, pythonpath in builds.items():
            env = dict(os.environ)
            if pythonpath:
                env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
            for n in (small, large):
                out = subprocess.run(
                    [sys.executable, __file__, *flags, "--child", str(path), str(n)],
                    check=True,
                    capture_output=True,
                    text=True,
                    env=env,
                    cwd="/" if pythonpath else None,
                )
                kb, compressed[name] = out.stdout.split()[-2:]
                rss.setdefault((name, n), []).append(int(kb))
    for name in builds:
        a, b = min(rss[(name, small)]), min(rss[(name, large)])
        print(
            f"{name}: strip={args.strip} compress={compressed[name]}: RSS {a / 1024:.0f} MB "
            f"at {small:,}, {b / 1024:.0f} MB at {large:,} -> "
            f"{(b - a) * 1024 / (large - small) / 1000:.2f} KB/pod"
        )


if __name__ == "__main__":
    main()
