"""Issue 9: reconciles per second of a no-op reconcile, and what an owned informer costs.

On the real kube-apiserver + etcd from testenv (`python -m trio_controller.testing`):
N ConfigMaps `primary-N` (label role=primary) in `default`, each with one Secret
`owned-N` whose ownerReference (controller: true) points at its ConfigMap. Then, two
rounds interleaved, each of:

  ours          Controller(client, CONFIGMAPS, noop, label_selector="role=primary")
  ours+owns     the same with .owns(SECRETS)
  kube-rs       kube::runtime::Controller::new(Api<ConfigMap>, labels("role=primary"))
  kube-rs+owns  the same with .owns(Api<Secret>, Config::default())   (bench/kubers-controller)

Each run is a fresh process; the no-op reconcile counts calls and distinct keys, and the
process exits when N distinct primaries have been reconciled. Time is from spawning the
process to that moment (the parent reads the child's `done` line: sync of every informer
plus N reconciles, process start included); CPU is the child's user+sys at that moment
(its own /proc/self/stat, read in the child). The owned informer's cost is the
difference between a peer's +owns and plain runs.

    python bench/reconcile_bench.py [--objects 10000] [--rounds 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PY = sys.executable
CONCURRENCY = 64
TARGET = Path(
    os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/trio-controller/bench-target")
)
KUBERS = TARGET / "release" / "kubers-controller"


def _cpu_self() -> float:
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- child: ours ---------------------------------------------------------------------------


def child_ours(kubeconfig: str, want: int, owns: bool) -> None:
    import trio

    from trio_controller import CONFIGMAPS, SECRETS, Client, Controller
    from trio_controller import config as kconfig

    seen: set[str] = set()
    calls = 0
    started = time.monotonic()  # after the imports: the runtime's own time from here

    def noop(key: str) -> None:
        nonlocal calls
        calls += 1
        seen.add(key)
        if len(seen) == want:
            run_s = time.monotonic() - started
            cpu_s = _cpu_self()
            sys.stdout.write(
                f"done calls={calls} distinct={len(seen)} run_s={run_s:.4f} cpu_s={cpu_s:.3f}\n"
            )
            sys.stdout.flush()
            os._exit(0)

    async def main() -> None:
        config = kconfig.load_config(kubeconfig=kubeconfig)
        async with Client(config) as client:
            c = Controller(
                client, CONFIGMAPS, noop, namespace="default", label_selector="role=primary"
            )
            if owns:
                c.owns(SECRETS)
            await c.run()

    trio.run(main)


# -- parent --------------------------------------------------------------------------------


async def _create(info, n: int) -> None:
    import trio

    from trio_controller.testing.pods import open_pod_helper

    limit = trio.Semaphore(CONCURRENCY)
    async with open_pod_helper(info, request_timeout=120) as pods:
        http = pods.client

        async def one(i: int) -> None:
            async with limit:
                cm = {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"primary-{i}", "labels": {"role": "primary"}},
                    "data": {"i": str(i)},
                }
                r = await http.post("/api/v1/namespaces/default/configmaps", json=cm)
                r.raise_for_status()
                uid = r.json()["metadata"]["uid"]
                secret = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": f"owned-{i}",
                        "labels": {"role": "owned"},
                        "ownerReferences": [
                            {
                                "apiVersion": "v1",
                                "kind": "ConfigMap",
                                "name": f"primary-{i}",
                                "uid": uid,
                                "controller": True,
                                "blockOwnerDeletion": True,
                            }
                        ],
                    },
                    "stringData": {"i": str(i)},
                }
                r = await http.post("/api/v1/namespaces/default/secrets", json=secret)
                r.raise_for_status()

        async with trio.open_nursery() as nursery:
            for i in range(n):
                nursery.start_soon(one, i)


def _run_child(cmd: list[str], timeout: float = 600) -> dict:
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = p.stdout.readline().decode()
        elapsed = time.monotonic() - t0
        if not line.startswith("done"):
            raise RuntimeError(f"{cmd[:3]}: no done line ({line!r})")
        res = {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
        if "elapsed_s" in res:  # the Rust peer's, from the top of main
            res["run_s"] = res.pop("elapsed_s")
        res["elapsed_s"] = elapsed
        return res
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=str(HERE / "results" / "2026-12-01-reconcile.md"))
    ap.add_argument("--child-ours", nargs=2, metavar=("KUBECONFIG", "N"))
    ap.add_argument("--owns", action="store_true")
    args = ap.parse_args()
    if args.child_ours:
        child_ours(args.child_ours[0], int(args.child_ours[1]), args.owns)
        return

    import trio

    from trio_controller.testing.info import EnvInfo

    if not KUBERS.exists():
        raise SystemExit(
            f"build the kube-rs peer first: CARGO_TARGET_DIR={TARGET} cargo build --release "
            f"--manifest-path {HERE / 'kubers-controller/Cargo.toml'}"
        )
    work = Path(tempfile.mkdtemp(prefix="trio-controller-bench-reconcile-"))
    kc, info_path = work / "kubeconfig", work / "info.json"
    env = subprocess.Popen(
        [PY, "-m", "trio_controller.testing", "--kubeconfig-out", str(kc),
         "--info-out", str(info_path), "--stop-on-stdin-close"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        if b"ready" not in env.stdout.readline():
            raise RuntimeError("the testenv control plane did not start (make testenv?)")
        info = EnvInfo.load(info_path)
        n = args.objects
        t0 = time.monotonic()
        trio.run(_create, info, n)
        create_s = time.monotonic() - t0
        print(f"created {n} ConfigMaps + {n} Secrets in {create_s:.1f} s", file=sys.stderr)
        me = [PY, str(Path(__file__).resolve()), "--child-ours", str(kc), str(n)]
        peers = {
            "ours": me,
            "ours+owns": [*me, "--owns"],
            "kube-rs": [str(KUBERS), str(kc), str(n)],
            "kube-rs+owns": [str(KUBERS), str(kc), str(n), "--owns"],
        }
        runs: dict[str, list[dict]] = {k: [] for k in peers}
        for r in range(args.rounds):
            for name, cmd in peers.items():
                res = _run_child(cmd)
                runs[name].append(res)
                print(f"round {r + 1} {name}: {res}", file=sys.stderr)
    finally:
        env.stdin.close()
        env.wait(timeout=60)

    table = _table(runs, n, create_s, args.rounds)
    print(table)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(table)


def _table(runs: dict[str, list[dict]], n: int, create_s: float, rounds: int) -> str:
    rows = []
    med = {}
    for name, rs in runs.items():
        el = statistics.median(r["elapsed_s"] for r in rs)
        cpu = statistics.median(r["cpu_s"] for r in rs)
        calls = statistics.median(r["calls"] for r in rs)
        med[name] = (el, cpu)
        run = statistics.median(r["run_s"] for r in rs)
        runs_s = " / ".join(f"{r['elapsed_s']:.2f}" for r in rs)
        rows.append(
            f"| {name} | {runs_s} | {n / el:,.0f} | {run:.2f} | {n / run:,.0f} | {cpu:.2f}"
            f" | {cpu / n * 1e6:.0f} | {calls:,.0f} |"
        )
    cost = []
    for base in ("ours", "kube-rs"):
        (e0, c0), (e1, c1) = med[base], med[base + "+owns"]
        cost.append(
            f"| {base} | +{e1 - e0:.2f} s | +{(c1 - c0):.2f} s | +{(c1 - c0) / n * 1e6:.0f} µs |"
        )
    return "\n".join(
        [
            f"# No-op reconcile over {n:,} objects with one owned object each (issue 9)",
            "",
            f"bench/reconcile_bench.py, {time.strftime('%Y-%m-%d')}, testenv's real kube-apiserver"
            f" + etcd on this machine ({os.cpu_count()} CPUs). {n:,} ConfigMaps `primary-N`"
            f" (role=primary) in `default`, each owning one Secret `owned-N` (ownerReference,"
            f" controller: true); created in {create_s:.0f} s, {CONCURRENCY} in flight."
            f" {rounds} rounds, interleaved; one fresh process per run, which exits when"
            f" {n:,} distinct primaries have been reconciled. Time: process spawn to then"
            " (process start, list of every informer, the reconciles); CPU: the process's"
            " user+sys at then (imports included). 'From main' starts after the imports"
            " (ours: before trio.run; kube-rs: the top of main). Medians of the rounds.",
            "",
            "| peer | time from spawn, s (each round) | reconciles/s | from main, s"
            " | reconciles/s from main | CPU s | CPU µs/reconcile | reconcile calls |",
            "|---|---|---|---|---|---|---|---|",
            *rows,
            "",
            "Cost of the second, owned-object informer (+owns minus plain, medians):",
            "",
            "| peer | time | CPU | CPU per primary |",
            "|---|---|---|---|",
            *cost,
            "",
        ]
    )


if __name__ == "__main__":
    main()
