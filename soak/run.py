"""The soak driver: a real kube-apiserver + etcd, our fault proxy in front of it, the
`trio-controller` CLI behind the proxy, writers churning pods, a fault schedule, and one
verdict line at the end.

    python -m soak --seconds 1800 [--seed N] [--keep]      (make soak; make test-soak: 45 s)

The apiserver is set up to fail for real: etcd compaction every 5 s with the pod watch
cache off (a watch resumed from an old resourceVersion gets 410 Gone), priority and
fairness off with --max-requests-inflight=2 (the controller's lists during a storm get
429). The controller authenticates as a service account, because members of
system:masters are never throttled by max-inflight.
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio

from soak.checker import Flatness, Verdict, check_lines, flatness, lag
from soak.controller import ControllerRun
from soak.faults import Fault, lane, schedule
from soak.proxy import FaultProxy
from soak.writers import Model, Writer, cluster_drift
from trio_controller._native import Store
from trio_controller.cache.snapshot import load_snapshot
from trio_controller.testing import open_envtest
from trio_controller.testing.envtest import EnvTest
from trio_controller.testing.info import kubeconfig

APISERVER_ARGS = (
    "--etcd-compaction-interval=5s",
    "--watch-cache-sizes=pods#0",
    "--enable-priority-and-fairness=false",
    "--max-requests-inflight=2",
)
NAMESPACES = ("soak-a", "soak-b", "soak-c")
KEYS_PER_NAMESPACE = 100
WRITE_RATE = 15.0  # per namespace, per second (the apiserver manages ~100-160 writes/s)
STORM_READERS = 4
SYNC_TIMEOUT = 90.0
EXIT_TIMEOUT = 30.0
CONVERGE_TIMEOUT = 60.0
SA_NAMESPACE = "soak-system"
SA_NAME = "controller"
RSS_RATIO, RSS_SLACK_KIB = 1.2, 8 * 1024
FD_RATIO, FD_SLACK = 1.0, 6
WARMUP_SAMPLES = 10
GONE_LINE = re.compile(r": 410\b")
THROTTLED_LINE = re.compile(r": 429\b")


@dataclass
class Soak:
    env: EnvTest
    admin: httpx.AsyncClient
    proxy: FaultProxy
    work: Path
    controller_args: list[str]
    seconds: float
    seed: int
    quiet_sync: bool = False
    restarting: bool = False
    model: Model = field(default_factory=Model)
    runs: list[ControllerRun] = field(default_factory=list)
    expected_exits: set[int] = field(default_factory=set)  # runs we stopped
    apiserver_kills: int = 0
    controller_restarts: int = 0
    storms: int = 0
    cache_diffs: list[str] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    _nursery: trio.Nursery | None = None
    _t0: float = 0.0

    def note(self, text: str) -> None:
        line = f"[soak {trio.current_time() - self._t0:7.1f}s] {text}"
        self.log.append(line)
        print(line, file=sys.stderr, flush=True)

    @property
    def current(self) -> ControllerRun:
        return self.runs[-1]

    # -- controller runs -----------------------------------------------------------------
    async def start_controller(self) -> ControllerRun:
        assert self._nursery is not None
        run = ControllerRun(len(self.runs), self.controller_args)
        self.runs.append(run)
        await self._nursery.start(run.run, self.work / "logs")
        self.note(f"controller run {run.index} started (pid {run.pid})")
        with trio.move_on_after(SYNC_TIMEOUT):
            await run.synced.wait()
        if run.exited.is_set():
            self.problems.append(f"controller run {run.index} exited {run.returncode} at start")
        elif not any("Caches are synced" in line for line in run.stderr):
            self.problems.append(f"controller run {run.index} did not sync in {SYNC_TIMEOUT:g}s")
        return run

    async def stop_controller(self) -> None:
        run = self.current
        self.expected_exits.add(run.index)
        run.terminate()
        with trio.move_on_after(EXIT_TIMEOUT):
            await run.exited.wait()
        if not run.exited.is_set():
            self.problems.append(
                f"controller run {run.index} ignored SIGTERM for {EXIT_TIMEOUT:g}s"
            )
            assert run.process is not None
            run.process.kill()
            await run.exited.wait()
        self.note(f"controller run {run.index} exited {run.returncode}")

    async def supervise(self) -> None:
        """A run that exits on its own is a failure; start another so the soak goes on."""
        while True:
            run = self.current
            await run.exited.wait()
            if run.index in self.expected_exits:  # a restart (or the end) is under way
                while self.current is run:  # noqa: ASYNC110 (a new run appears)
                    await trio.sleep(0.2)
                continue
            self.problems.append(f"controller run {run.index} exited {run.returncode} on its own")
            self.note(f"controller run {run.index} exited {run.returncode} on its own; restarting")
            await self.start_controller()

    # -- faults --------------------------------------------------------------------------
    async def run_lane(self, faults: Sequence[Fault]) -> None:
        for fault in faults:
            await trio.sleep_until(self._t0 + fault.at)
            # With --quiet-sync, no fault while a controller restarts and makes its first
            # sync (before bf88f06 a drop then made the CLI exit 1).
            if self.quiet_sync:
                while self.restarting or not self.current.synced.is_set():  # noqa: ASYNC110
                    await trio.sleep(0.2)
            if lane(fault) == "crash":
                # A stall would hold a new run's first sync.
                while self.proxy.stalled:  # noqa: ASYNC110 (polls the proxy's gate)
                    await trio.sleep(0.2)
            await self.apply(fault)

    async def apply(self, fault: Fault) -> None:
        kind = fault.kind
        if kind == "reset":
            self.note(f"reset: {self.proxy.reset()} connections")
        elif kind == "half-close":
            self.note(f"half-close: {self.proxy.half_close()} connections")
        elif kind == "stall":
            self.note(f"stall {fault.seconds:.1f}s")
            await self.proxy.stall(fault.seconds)
        elif kind == "slow":
            self.note(f"slow reader {fault.seconds:.1f}s")
            await self.proxy.slow(fault.seconds, 8192)
        elif kind == "stall-reset":
            self.note(f"stall {fault.seconds:.1f}s, then reset")
            await self.proxy.stall(fault.seconds)
            self.note(f"reset after stall: {self.proxy.reset()} connections")
        elif kind == "storm":
            self.note(f"429 storm {fault.seconds:.1f}s")
            self.storms += 1
            await self.storm(fault.seconds)
        elif kind == "apiserver-kill":
            self.note("kube-apiserver: kill -9")
            await self.env.stop_apiserver(kill=True)
            self.apiserver_kills += 1
            await self.env.start_apiserver()
            self.note("kube-apiserver ready again")
        elif kind == "controller-restart":
            self.restarting = True
            try:
                await self.stop_controller()
                self.controller_restarts += 1
                await trio.sleep(fault.seconds)
                await self.start_controller()
            finally:
                self.restarting = False
        else:
            raise ValueError(kind)

    async def storm(self, seconds: float) -> None:
        async def reader() -> None:
            while True:
                try:
                    await self.admin.get("/api/v1/pods", params={"limit": "500"})
                except httpx.TransportError:
                    await trio.sleep(0.1)

        with trio.move_on_after(seconds):
            async with trio.open_nursery() as nursery:
                for _ in range(STORM_READERS):
                    nursery.start_soon(reader)

    # -- the whole soak ------------------------------------------------------------------
    async def run(self) -> Verdict:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._t0 = trio.current_time()
            rng = random.Random(self.seed)
            writers = [
                Writer(
                    self.admin,
                    self.model,
                    ns,
                    keys=KEYS_PER_NAMESPACE,
                    rate=WRITE_RATE,
                    rng=random.Random(rng.random()),
                )
                for ns in NAMESPACES
            ]
            for writer in writers:  # half the keys exist before the controller starts
                for n in range(0, KEYS_PER_NAMESPACE, 2):
                    await writer.create(n)
            self.note(f"{self.model.writes} pods created before the controller starts")
            await self.start_controller()
            nursery.start_soon(self.supervise)
            self._t0 = trio.current_time()
            faults = schedule(self.seed, self.seconds)
            self.note(f"churn for {self.seconds:g}s, {len(faults)} faults scheduled")
            async with trio.open_nursery() as churn:
                for writer in writers:
                    churn.start_soon(writer.run, self._t0 + self.seconds)
                for name in ("proxy", "storm", "crash"):
                    churn.start_soon(self.run_lane, [f for f in faults if lane(f) == name])
            self.note(f"churn over: {self.model.writes} writes")
            drift = await cluster_drift(self.admin, self.model, list(NAMESPACES))
            self.problems += [f"writers' model != cluster: {d}" for d in drift[:10]]
            final = self.model.final()
            with trio.move_on_after(CONVERGE_TIMEOUT):
                while not check_lines([r.stdout for r in self.runs], final).ok:  # noqa: ASYNC110
                    await trio.sleep(0.5)
            await self.stop_controller()
            nursery.cancel_scope.cancel()
        writes = "".join(f"{at:.3f} {key}\n" for at, key in self.model.done)
        (self.work / "logs" / "writes").write_text(writes)
        self.note(f"lines and writes with their Trio times in {self.work / 'logs'}")
        self.cache_diffs = cache_diffs(self.work / "pods.snapshot", self.model)
        self.problems += [f"cache != cluster: {d}" for d in self.cache_diffs[:20]]
        return check_lines([r.stdout for r in self.runs], final)


async def setup_identity(admin: httpx.AsyncClient) -> str:
    """A service account allowed to list and watch pods; returns its token."""

    async def post(path: str, body: dict[str, object]) -> httpx.Response:
        r = await admin.post(path, json=body)
        if r.status_code not in (200, 201, 409):
            r.raise_for_status()
        return r

    await post("/api/v1/namespaces", {"metadata": {"name": SA_NAMESPACE}})
    await post(
        f"/api/v1/namespaces/{SA_NAMESPACE}/serviceaccounts", {"metadata": {"name": SA_NAME}}
    )
    rbac = "/apis/rbac.authorization.k8s.io/v1"
    await post(
        f"{rbac}/clusterroles",
        {
            "metadata": {"name": "soak-pod-reader"},
            "rules": [
                {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}
            ],
        },
    )
    role_ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole"}
    await post(
        f"{rbac}/clusterrolebindings",
        {
            "metadata": {"name": "soak-pod-reader"},
            "roleRef": {**role_ref, "name": "soak-pod-reader"},
            "subjects": [{"kind": "ServiceAccount", "name": SA_NAME, "namespace": SA_NAMESPACE}],
        },
    )
    r = await admin.post(
        f"/api/v1/namespaces/{SA_NAMESPACE}/serviceaccounts/{SA_NAME}/token",
        json={"spec": {"expirationSeconds": 4 * 3600}},
    )
    r.raise_for_status()
    token: str = r.json()["status"]["token"]
    return token


def cache_diffs(snapshot: Path, model: Model) -> list[str]:
    """Where the last run's cache, as its --cache-snapshot saved it on exit, differs from
    the final state (keys and labels)."""
    store = Store()
    load_snapshot(store, snapshot)
    want = {key: labels for key, labels in model.labels.items() if labels is not None}
    have = {}
    for key in store.list_keys():
        obj = store.get(key) or {}
        have[key] = (obj.get("metadata") or {}).get("labels") or {}
    diffs = [f"{key} missing from the cache" for key in sorted(want.keys() - have.keys())]
    diffs += [f"{key} in the cache, deleted" for key in sorted(have.keys() - want.keys())]
    diffs += [
        f"{key} cached with labels {have[key]}, final {want[key]}"
        for key in sorted(want.keys() & have.keys())
        if have[key] != want[key]
    ]
    return diffs


def _count(runs: Sequence[ControllerRun], pattern: re.Pattern[str]) -> int:
    return sum(1 for run in runs for line in run.stderr if pattern.search(line))


def _judge(run: ControllerRun) -> tuple[Flatness | None, Flatness | None]:
    rss = flatness(run.rss, warmup=WARMUP_SAMPLES, ratio=RSS_RATIO, slack=RSS_SLACK_KIB)
    fds = flatness(run.fds, warmup=WARMUP_SAMPLES, ratio=FD_RATIO, slack=FD_SLACK)
    return rss, fds


def _duration(seconds: float) -> str:
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"


def verdict_line(soak: Soak, verdict: Verdict) -> tuple[bool, str]:
    problems = list(soak.problems)
    runs = soak.runs
    for run in runs:
        if run.returncode != 0:
            problems.append(f"controller run {run.index} exited {run.returncode}")
        if any("Traceback" in line for line in run.stderr):
            problems.append(f"controller run {run.index}: a traceback in stderr")
    judged = []
    for run in runs:
        rss, fds = _judge(run)
        if rss is not None and fds is not None:
            judged.append((run, rss, fds))
            if not rss.flat:
                problems.append(
                    f"run {run.index}: RSS grew {rss.first / 1024:.1f} -> {rss.last / 1024:.1f} MB"
                )
            if not fds.flat:
                problems.append(f"run {run.index}: open fds grew {fds.first:g} -> {fds.last:g}")
    if not judged:
        problems.append("no controller run was long enough to judge RSS and fds")
        resources = "rss n/a fds n/a"
    else:
        run, rss, fds = max(judged, key=lambda j: j[1].samples)
        resources = (
            f"rss {rss.first / 1024:.0f}->{rss.last / 1024:.0f} MB "
            f"fds {fds.first:.0f}->{fds.last:.0f}"
        )
    for m in verdict.mismatches[:20]:
        problems.append(
            f"mismatch: {m.key} {'exists' if m.exists else 'deleted'}, last line {m.last}"
        )
    for key in verdict.missed_deletes[:20]:
        problems.append(f"missed delete: {key}")
    for line in verdict.unexpected[:20]:
        problems.append(f"unexpected line: {line!r}")
    lines = [
        (at, line) for run in runs for at, line in zip(run.stdout_times, run.stdout, strict=False)
    ]
    delay = lag(soak.model.done, lines)
    lag_text = (
        f"lag p50 {delay.p50:.2f}s p99 {delay.p99:.1f}s max {delay.max:.1f}s"
        if delay
        else "lag n/a"
    )
    ok = verdict.ok and not problems
    stats = soak.proxy.stats
    line = (
        f"soak: {'PASS' if ok else 'FAIL'} {_duration(soak.seconds)} "
        f"{soak.model.writes:,} writes {verdict.lines:,} lines {verdict.keys:,} keys "
        f"{len(verdict.mismatches)} mismatches {len(verdict.missed_deletes)} missed deletes "
        f"{len(soak.cache_diffs)} cache diffs "
        f"{stats.resets} resets {stats.half_closes} half-closes {stats.stalls} stalls "
        f"{stats.slows} slow reads {soak.apiserver_kills} apiserver kills "
        f"{_count(runs, GONE_LINE)} 410s {_count(runs, THROTTLED_LINE)} 429s "
        f"{soak.controller_restarts} controller restarts {resources} {lag_text}"
    )
    for problem in problems:
        print(f"soak: {problem}", file=sys.stderr)
    return ok, line


async def main_async(args: argparse.Namespace, work: Path) -> int:
    print(f"soak: work dir {work} (seed {args.seed})", file=sys.stderr, flush=True)
    started = time.monotonic()
    async with (
        open_envtest(work_dir=work / "env", apiserver_args=APISERVER_ARGS) as env,
        httpx.AsyncClient(
            base_url=env.server, verify=env.info.ssl_context(client_cert=True), timeout=10.0
        ) as admin,
    ):
        for ns in NAMESPACES:
            r = await admin.post("/api/v1/namespaces", json={"metadata": {"name": ns}})
            if r.status_code not in (201, 409):
                r.raise_for_status()
        token = await setup_identity(admin)
        port = int(env.server.rsplit(":", 1)[1])
        proxy = FaultProxy("127.0.0.1", port)
        async with trio.open_nursery() as nursery:
            proxy_port = await nursery.start(proxy.serve)
            config = work / "controller.kubeconfig"
            config.write_text(
                kubeconfig(f"https://127.0.0.1:{proxy_port}", env.ca_file, "soak", {"token": token})
            )
            config.chmod(0o600)
            controller_args = [
                "--kubeconfig", str(config), "--all-namespaces",
                "--cache-snapshot", str(work / "pods.snapshot"),
                "--workers", "2", "-v", "2",
            ]  # fmt: skip
            soak = Soak(
                env, admin, proxy, work, controller_args, args.seconds, args.seed,
                quiet_sync=args.quiet_sync,
            )  # fmt: skip
            verdict = await soak.run()
            nursery.cancel_scope.cancel()
    ok, line = verdict_line(soak, verdict)
    print(
        f"soak: {time.monotonic() - started:.0f}s wall, {soak.model.retries} write retries, "
        f"{soak.storms} storms, {proxy.stats.connections} proxied connections "
        f"({proxy.stats.refused} refused), {len(soak.runs)} controller runs",
        file=sys.stderr,
    )
    print(line, flush=True)
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    elif not ok:
        print(f"soak: logs kept in {work}", file=sys.stderr)
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=1800.0, help="churn time (default 1800)")
    p.add_argument("--seed", type=int, default=None, help="fault and write plan seed")
    p.add_argument("--out", help="work dir (kept); default a temporary one, removed on PASS")
    p.add_argument("--keep", action="store_true", help="keep the work dir on PASS too")
    p.add_argument(
        "--quiet-sync",
        action="store_true",
        help="no proxy fault or storm while a controller restarts and syncs (default: "
        "faults hit first syncs too)",
    )
    args = p.parse_args(argv)
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1 << 30)
    work = Path(args.out or tempfile.mkdtemp(prefix="soak-")).absolute()
    work.mkdir(parents=True, exist_ok=True)
    return trio.run(main_async, args, work)
