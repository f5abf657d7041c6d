"""Issue 16, "Benchmarks and scale": the widget example sharded on a real apiserver.

On the real kube-apiserver + etcd from testenv (`python -m trio_controller.testing`,
started here with the Widget CRD installed): one `trio-controller-sharder --namespace
sharding` for the whole run, a `ControllerRing widget-operator` (Widgets, controlling
ConfigMaps), and N Widgets (default 3,000, in three namespaces) created once before any
shard runs, by a few concurrent writers. Then, as child processes,

    python examples/widget_operator.py --kubeconfig KC --all-namespaces \\
        --controller-ring widget-operator --shard-name nN-rI --shard-lease-namespace sharding

1. for N = 1, 2, 3 shards, started together (the sharder's `--settle` lets shards started
   together share the Widgets from the start): the time from the start until every
   Widget carries a label naming one of the N shards and that shard printed
   `Reconciled Widget ns/name` for it; then, once no shard printed a line for 3 s, per
   shard: Widgets labelled for it (what its cache holds), its `Reconciled` lines (and
   distinct Widgets among them), RSS (VmRSS) and peak RSS (VmHWM) from /proc. The
   shards of one N are stopped (SIGTERM: they release their Leases, which makes them
   dead) before the next N starts, with new names, so that the sharder moves the dead
   shards' Widgets at once to the new ones and no shard starts with another's Widgets
   in its cache;
2. with the 3 shards of N = 3: kill -9 of one; the time from the kill until every Widget
   it had carries a live shard's label and that shard printed a `Reconciled` line for it
   after the kill (goal: the Lease duration, 15 s, + 5 s): the time of the last of those
   first lines, read from the shards' output (the apiserver is asked only to confirm the
   labels once every Widget shows up there);
3. a shard joins the two live ones (n3-r4), then a 4th joins the three (n3-r5): for each,
   the time until the labels are stable for 5 s with every Widget on the new shard
   reconciled there, and how many Widgets changed shard (goal: about 1/3, then 1/4);
4. the sharder's RSS after each of its resyncs (its `Resynced ring` lines) all along, and
   after `--resyncs` more periodic ones at the end (`--sync-period`, default 20 s here:
   the sharder's memory must stay flat from one resync to the next).

    python bench/sharding_bench.py [--widgets 3000] [--writers 8] [--sync-period 20]
                                   [--resyncs 5]

Logs (every child's stderr) stay in the printed directory.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import trio

from trio_controller import (
    CUSTOM_RESOURCE_DEFINITIONS,
    NAMESPACES,
    Api,
    Client,
    NotFound,
    Resource,
    load_config,
)
from trio_controller.programs.sharder.crd import CONTROLLER_RINGS
from trio_controller.runtime.sharding import drain_label, shard_label
from trio_controller.testing import eventually as poll

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
EXAMPLE = ROOT / "examples" / "widget_operator.py"
SHARDER = Path(PY).with_name("trio-controller-sharder")
CRD_FILE = ROOT / "examples" / "widget-crd.yaml"
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
RING = "widget-operator"
LABEL = shard_label(RING)
DRAIN = drain_label(RING)
LEASE_NAMESPACE = "sharding"
WIDGET_NAMESPACES = ("team-a", "team-b", "team-c")
LINE = b"Reconciled Widget "


def proc_status_mb(pid: int, field: str) -> float:
    """`field` (VmRSS, VmHWM) of /proc/<pid>/status in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


class Child:
    """A child process; remembers when it printed `Reconciled Widget <key>` for each key."""

    #: Marks in its stderr log counted by `marks` (the sharder's resyncs).
    MARK = b"Resynced ring "

    def __init__(self, name: str, command: list[str], log: Path) -> None:
        self.name = name
        self.command = command
        self.log = log
        self.reconciled: dict[str, list[float]] = {}
        self.lines = 0
        self.last_line_at = 0.0
        self.process: trio.Process | None = None

    async def start(self, nursery: trio.Nursery) -> None:
        self.process = await trio.lowlevel.open_process(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log.open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        nursery.start_soon(self._read)

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        buffer = b""
        async for data in self.process.stdout:
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            now = time.monotonic()
            for line in complete:
                if line.startswith(LINE):
                    key = line[len(LINE) :].decode().strip()
                    self.reconciled.setdefault(key, []).append(now)
                    self.lines += 1
                    self.last_line_at = now

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def marks(self) -> int:
        """How many times its stderr log holds `MARK` so far."""
        return self.log.read_bytes().count(self.MARK)

    def reconciled_since(self, key: str, since: float) -> bool:
        return any(t >= since for t in self.reconciled.get(key, ()))

    async def stop(self, within: float = 30.0) -> int | None:
        """SIGTERM; the exit code (None: it had to be killed)."""
        assert self.process is not None
        if self.process.returncode is not None:
            return self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(within):
            return await self.process.wait()
        self.process.kill()
        await self.process.wait()
        return None


eventually = partial(poll, every=0.5)  # each check lists every Widget


class Bench:
    def __init__(self, client: Client, kc: Path, work: Path, nursery: trio.Nursery) -> None:
        self.client = client
        self.kc = kc
        self.work = work
        self.nursery = nursery
        self.shards: dict[str, Child] = {}

    async def placement(self) -> dict[str, tuple[str, bool]]:
        """`ns/name` -> (its shard label or "", whether it carries the drain label)."""
        placed = {}
        for obj in await Api(self.client, WIDGETS).list():
            meta = obj["metadata"]
            labels = meta.get("labels") or {}
            placed[f"{meta['namespace']}/{meta['name']}"] = (labels.get(LABEL, ""), DRAIN in labels)
        return placed

    async def start_shard(self, name: str) -> Child:
        command = [PY, str(EXAMPLE), "--kubeconfig", str(self.kc), "--all-namespaces",
                   "--controller-ring", RING, "--shard-name", name,
                   "--shard-lease-namespace", LEASE_NAMESPACE]  # fmt: skip
        child = Child(name, command, self.work / f"{name}.stderr")
        await child.start(self.nursery)
        self.shards[name] = child
        return child

    def live(self) -> dict[str, Child]:
        return {n: c for n, c in self.shards.items() if c.alive}

    async def settled(self, keys: set[str], since: float) -> dict[str, str] | None:
        """Every Widget on a live shard, no drain label, reconciled there since `since`."""
        placed = await self.placement()
        live = self.live()
        if set(placed) != keys:
            return None
        for key, (shard, draining) in placed.items():
            if draining or shard not in live or not live[shard].reconciled_since(key, since):
                return None
        return {k: s for k, (s, _) in placed.items()}

    async def quiet(self, seconds: float = 3.0, within: float = 60.0) -> None:
        """Until no live shard printed a line for `seconds`."""
        with trio.move_on_after(within):
            while True:
                last = max((c.last_line_at for c in self.live().values()), default=0.0)
                idle = time.monotonic() - last
                if idle >= seconds:
                    return
                await trio.sleep(seconds - idle)


async def setup(client: Client, n: int, writers: int) -> float:
    """Namespaces, the ControllerRing, n Widgets; the Widgets' creation rate."""
    for ns in (LEASE_NAMESPACE, *WIDGET_NAMESPACES):
        await Api(client, NAMESPACES).create({"metadata": {"name": ns}})
    crds = Api(client, CUSTOM_RESOURCE_DEFINITIONS)

    async def ring_crd() -> bool:
        try:
            crd = await crds.get(f"{CONTROLLER_RINGS.plural}.{CONTROLLER_RINGS.group}")
        except NotFound:
            return False
        conditions = (crd.get("status") or {}).get("conditions") or ()
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    await eventually(ring_crd, "the ControllerRing CRD (the sharder installs it)", 60)
    await Api(client, CONTROLLER_RINGS).create(
        {
            "apiVersion": "sharding.timebertt.dev/v1alpha1",
            "kind": "ControllerRing",
            "metadata": {"name": RING},
            "spec": {
                "resources": [
                    {
                        "group": "example.com",
                        "resource": "widgets",
                        "controlledResources": [{"group": "", "resource": "configmaps"}],
                    }
                ]
            },
        }
    )
    t0 = time.monotonic()
    next_i = iter(range(n))

    async def writer() -> None:
        for i in next_i:
            ns = WIDGET_NAMESPACES[i % len(WIDGET_NAMESPACES)]
            body = {"metadata": {"name": f"w-{i:05d}"}, "spec": {"message": f"hello {i}"}}
            await Api(client, WIDGETS, ns).create(body)

    async with trio.open_nursery() as nursery:
        for _ in range(writers):
            nursery.start_soon(writer)
    return n / (time.monotonic() - t0)


async def sample_resyncs(sharder: Child, samples: list[dict[str, float]]) -> None:
    """Append the sharder's RSS (MB) each time its log shows one more resync."""
    seen = 0
    while sharder.alive:
        count = sharder.marks()
        if count > seen:
            seen = count
            rss = round(proc_status_mb(sharder.pid, "VmRSS"), 1)
            samples.append({"resyncs": count, "rss_mb": rss})
        await trio.sleep(0.2)


async def run(
    kc: Path,
    work: Path,
    n: int,
    writers: int,
    sync_period: float,
    resyncs: int,
    shard_counts: tuple[int, ...] = (1, 2, 3),
) -> dict[str, Any]:
    res: dict[str, Any] = {"widgets": n, "rounds": [], "sharder_rss_at_resyncs": []}
    async with Client(load_config(str(kc))) as client, trio.open_nursery() as nursery:
        bench = Bench(client, kc, work, nursery)
        sharder = Child(
            "sharder",
            [str(SHARDER), "--kubeconfig", str(kc), "--namespace", LEASE_NAMESPACE,
             "--sync-period", str(sync_period)],
            work / "sharder.stderr",
        )  # fmt: skip
        await sharder.start(nursery)
        nursery.start_soon(sample_resyncs, sharder, res["sharder_rss_at_resyncs"])
        res["creates_per_s"] = await setup(client, n, writers)
        print(f"{n} Widgets created, {res['creates_per_s']:.0f}/s", flush=True)
        keys = set((await bench.placement()).keys())
        assert len(keys) == n, len(keys)

        for count in shard_counts:
            async with trio.open_nursery() as stopping:  # at once: no detour via each other
                for child in list(bench.live().values()):
                    stopping.start_soon(child.stop)
            names = [f"n{count}-r{i}" for i in range(1, count + 1)]
            t0 = time.monotonic()
            for name in names:
                await bench.start_shard(name)
            placed = await eventually(
                lambda t0=t0: bench.settled(keys, t0), f"{count} shards to settle", 600, 1.0
            )
            done_s = time.monotonic() - t0
            await bench.quiet()
            placed = await eventually(lambda t0=t0: bench.settled(keys, t0), "settled", 60)
            labelled = Counter(placed.values())
            row: dict[str, Any] = {"shards": count, "settled_s": done_s, "per_shard": []}
            for name in names:
                child = bench.shards[name]
                row["per_shard"].append({
                    "shard": name,
                    "labelled": labelled[name],
                    "reconciled_lines": child.lines,
                    "reconciled_distinct": len(child.reconciled),
                    "rss_mb": proc_status_mb(child.pid, "VmRSS"),
                    "peak_rss_mb": proc_status_mb(child.pid, "VmHWM"),
                })  # fmt: skip
            row["sharder_rss_mb"] = proc_status_mb(sharder.pid, "VmRSS")
            row["loadavg_1m"] = os.getloadavg()[0]
            res["rounds"].append(row)
            print(json.dumps(row), flush=True)

        # -- kill -9 of one of the three ----------------------------------------------------
        placed = {k: s for k, (s, _) in (await bench.placement()).items()}
        victim = "n3-r1"
        on_victim = sorted(k for k, s in placed.items() if s == victim)
        bench.shards[victim].process.kill()  # type: ignore[union-attr]
        killed = time.monotonic()

        async def moved() -> float | None:
            """When the last of the victim's Widgets was first reconciled by the live shard
            now labelled for it (seconds after the kill). The shards' lines are looked at
            first, the apiserver only once they all show up (a list of every Widget 4
            times a second would load the apiserver the sharder is racing against)."""
            live = bench.live()
            if not all(any(c.reconciled_since(k, killed) for c in live.values())
                       for k in on_victim):  # fmt: skip
                return None
            now = await bench.placement()
            last = 0.0
            for key in on_victim:
                shard, _ = now[key]
                if shard not in live or not live[shard].reconciled_since(key, killed):
                    return None
                last = max(last, min(t for t in live[shard].reconciled[key] if t >= killed))
            return last - killed

        took = await eventually(
            moved, f"{victim}'s Widgets to be reconciled elsewhere", 120, every=0.25
        )
        res["kill"] = {"shard": victim, "widgets": len(on_victim),
                       "reassigned_and_reconciled_s": took}  # fmt: skip
        print(json.dumps(res["kill"]), flush=True)
        await bench.quiet()

        # -- a third live shard joins the two, then a 4th joins the three -----------------
        res["joins"] = []
        for name in ("n3-r4", "n3-r5"):
            before = await eventually(lambda: bench.settled(keys, 0.0), "settled", 60)
            res["joins"].append(await join(bench, keys, before, name))
            print(json.dumps(res["joins"][-1]), flush=True)
        # -- the sharder's memory over `resyncs` more periodic resyncs ------------------------
        until = sharder.marks() + resyncs

        async def resynced() -> bool:
            return sharder.marks() >= until

        await eventually(resynced, f"{resyncs} resyncs", (resyncs + 2) * sync_period + 120)
        await trio.sleep(0.5)
        print(json.dumps({"sharder_rss_at_resyncs": res["sharder_rss_at_resyncs"]}), flush=True)
        res["sharder_peak_rss_mb"] = proc_status_mb(sharder.pid, "VmHWM")
        for child in [*bench.live().values(), sharder]:
            await child.stop()
        nursery.cancel_scope.cancel()
    return res


async def join(bench: Bench, keys: set[str], before: dict[str, str], name: str) -> dict:
    """Start shard `name`; the Widgets that changed shard once the labels are stable."""
    joined = time.monotonic()
    live_before = len(bench.live())
    new = await bench.start_shard(name)
    stable: list[Any] = [None, 0.0]

    async def settled_with_new() -> dict[str, str] | None:
        placed = await bench.settled(keys, 0.0)
        if placed is None or not any(s == name for s in placed.values()):
            stable[0] = None
            return None
        if any(not new.reconciled_since(k, joined) for k, s in placed.items() if s == name):
            return None
        if placed != stable[0]:
            stable[:] = [placed, time.monotonic()]
            return None
        return placed if time.monotonic() - stable[1] >= 5.0 else None

    after = await eventually(settled_with_new, f"the Widgets to move to {name}", 300)
    movers = [k for k in keys if before[k] != after[k]]
    res = {
        "shard": name,
        "live_before": live_before,
        "moved": len(movers),
        "moved_to_new_shard": sum(1 for k in movers if after[k] == name),
        "of": len(keys),
        "settled_s": stable[1] - joined,
        "per_shard": dict(Counter(after.values())),
    }
    await bench.quiet()
    res["rss_mb"] = {n: round(proc_status_mb(c.pid, "VmRSS"), 1) for n, c in bench.live().items()}
    return res


def start_testenv(work: Path) -> subprocess.Popen:
    kc = work / "kubeconfig"
    env = subprocess.Popen(
        [PY, "-m", "trio_controller.testing", "--kubeconfig-out", str(kc),
         "--info-out", str(work / "info.json"), "--crd", str(CRD_FILE),
         "--stop-on-stdin-close"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert env.stdout is not None
    if b"ready" not in env.stdout.readline():
        raise SystemExit("the testenv control plane did not start (make testenv?)")
    return env


def versions() -> dict[str, str]:
    from importlib.metadata import version

    git = ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]
    return {
        "python": platform.python_version(),
        "trio-controller": version("trio-controller"),
        "trio": version("trio"),
        "git": subprocess.run(git, capture_output=True, text=True).stdout.strip(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--widgets", type=int, default=3000)
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--sync-period", type=float, default=20.0, help="the sharder's (seconds)")
    ap.add_argument("--resyncs", type=int, default=5, help="periodic resyncs watched at the end")
    ap.add_argument(
        "--only-three",
        action="store_true",
        help="skip the 1- and 2-shard rounds (a quicker failover and joins run)",
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="trio-controller-shardbench-"))
    print(json.dumps(versions()), flush=True)
    env = start_testenv(work)
    try:
        res = trio.run(
            run, work / "kubeconfig", work, args.widgets, args.writers, args.sync_period,
            args.resyncs, (3,) if args.only_three else (1, 2, 3),
        )  # fmt: skip
    finally:
        env.terminate()
        env.wait(timeout=60)
    print(json.dumps(res))
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
