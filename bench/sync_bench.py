"""Issue 17's sync target on the real apiserver: process spawn to `Caches are synced`.

    .venv/bin/python bench/sync_bench.py [--sizes 2000,10000] [--rounds 5] [--out FILE.json]

Starts testenv (`python -m trio_controller.testing`, kube-apiserver + etcd), and for each
size creates the pods once in one namespace (testing.pods' minimal pod, 32 creates in
flight; a larger size adds to the smaller one's pods), then runs every peer once per
round, interleaved, each from `Popen` to the first stderr line with `Caches are synced`:

ours             `trio-controller -n NS` (the CLI as shipped: streaming list, the default)
ours-paged       the same with `--no-streaming-list` (list in pages of 500, then watch)
lightkube        bench/peers/lightkube_sync.py: lightkube 1.0.1 `Client.list(Pod,
                 chunk_size=500)` into a dict, then the line (no output per pod)
lightkube-lines  bench/peers/lightkube_peer.py (the figures' peer): the same list with a
                 flushed stdout line per pod before the line (namespace `default` only)

Every run checks the object count the peer reports (ours and lightkube) against the size.
Prints a markdown table (medians, min-max, ours/lightkube) and writes the runs as JSON.

The package's bytecode is compiled first (`compileall`), as pip does for an installed
wheel and did for the peers: a source checkout under PYTHONDONTWRITEBYTECODE=1 (this
machine's environment) would otherwise compile every module of ours on every start.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio
from harness import PY, Peer

import trio_controller
from trio_controller.testing.info import EnvInfo
from trio_controller.testing.pods import open_pod_helper

HERE = Path(__file__).resolve().parent
NAMESPACE = "default"  # lightkube_peer.py watches `default`
CONCURRENCY = 32
CLI = str(Path(PY).with_name("trio-controller"))
COUNT = re.compile(rb"Caches are synced \((\d+) objects\)")


def peers(kc: str) -> dict[str, list[str]]:
    ours = [CLI, "--kubeconfig", kc, "-n", NAMESPACE]
    return {
        "ours": ours,
        "ours-paged": [*ours, "--no-streaming-list"],
        "lightkube": [PY, str(HERE / "peers" / "lightkube_sync.py"), kc, NAMESPACE],
        "lightkube-lines": [PY, str(HERE / "peers" / "lightkube_peer.py"), kc],
    }


def compile_package() -> None:
    """Write the package's .pyc files, as installing the wheel would."""
    package = Path(trio_controller.__file__).parent
    subprocess.run(
        [PY, "-m", "compileall", "-q", str(package)], check=True, stdout=subprocess.DEVNULL
    )


async def create_pods(info: EnvInfo, names: list[str]) -> None:
    limit = trio.Semaphore(CONCURRENCY)
    async with open_pod_helper(info, request_timeout=60) as pods:

        async def one(name: str) -> None:
            async with limit:
                await pods.create_pod(NAMESPACE, name)

        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(one, name)


def one_run(argv: list[str], size: int) -> dict:
    p = Peer(argv)
    try:
        p.wait_for(lambda: p.synced_at, 300, "Caches are synced")
        res: dict = {"sync_s": p.synced_at - p.t0}
        time.sleep(0.05)  # the reader thread has the whole line
        for line in p.stderr:
            if m := COUNT.search(line):
                res["objects"] = int(m.group(1))
                if res["objects"] != size:
                    res["error"] = f"synced {res['objects']} objects, expected {size}"
        return res
    except Exception as exc:
        return {"error": str(exc)[:300]}
    finally:
        p.stop()


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def fmt_row(size: int, name: str, runs: list[dict], ref: float | None) -> str:
    ok = [r["sync_s"] for r in runs if "error" not in r]
    if not ok:
        error = " ".join(str(runs[0].get("error")).split())[-120:]
        return f"| {size:,} | {name} | failed: {error} | | | |"
    med = statistics.median(ok)
    ratio = f"{med / ref:.2f}x" if ref else ""
    errs = len(runs) - len(ok)
    return (
        f"| {size:,} | {name} | {med:.3f} | {min(ok):.3f}-{max(ok):.3f} | {len(ok)}"
        f"{f' ({errs} failed)' if errs else ''} | {ratio} |"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="2000,10000")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    compile_package()

    work = Path(tempfile.mkdtemp(prefix="trio-controller-syncbench-"))
    kc, info_path = work / "kubeconfig", work / "info.json"
    env = subprocess.Popen(
        [
            *(PY, "-m", "trio_controller.testing", "--kubeconfig-out", str(kc)),
            *("--info-out", str(info_path), "--stop-on-stdin-close"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    result: dict = {"rounds": args.rounds, "uptime_start": uptime(), "sizes": {}}
    try:
        if b"ready" not in env.stdout.readline():
            sys.exit("the testenv control plane did not start (make testenv?)")
        info = EnvInfo.load(info_path)
        argvs = peers(str(kc))
        have = 0
        for size in sizes:
            t0 = time.monotonic()
            trio.run(create_pods, info, [f"sync-{i:05d}" for i in range(have, size)])
            have = size
            print(f"created up to {size:,} pods in {time.monotonic() - t0:.1f}s", flush=True)
            runs: dict[str, list[dict]] = {name: [] for name in argvs}
            for r in range(args.rounds):
                for name, argv in argvs.items():
                    res = one_run(argv, size)
                    runs[name].append(res)
                    print(f"{size} round {r + 1} {name}: {res}", flush=True)
            result["sizes"][size] = {"runs": runs, "uptime": uptime()}
    finally:
        env.stdin.close()
        try:
            env.wait(timeout=30)
        except subprocess.TimeoutExpired:
            env.kill()
            env.wait()
        shutil.rmtree(work, ignore_errors=True)

    print("\n| pods | peer | median s | range s | runs | / lightkube |")
    print("|---:|---|---:|---:|---:|---:|")
    for size, res in result["sizes"].items():
        lk = [r["sync_s"] for r in res["runs"]["lightkube"] if "error" not in r]
        ref = statistics.median(lk) if lk else None
        for name, runs in res["runs"].items():
            print(fmt_row(size, name, runs, ref))
    for size, res in result["sizes"].items():
        print(f"uptime after {size:,}: {res['uptime']}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
