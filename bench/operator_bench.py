"""Issue 14: an operator's own work against the real apiserver, ours vs kube-rs vs kopf.

On the real kube-apiserver + etcd from testenv (`python -m trio_controller.testing`,
started here with the Widget CRD installed). Two benchmarks:

widgets  The widget example's work for N Widgets from cold. In a fresh namespace per run,
         N Widgets are created first (spec.message `hello <i>`); then the operator is
         spawned with `-n NS`, and the clock runs from the spawn until every Widget has
         its ConfigMap and its status (`status.observedGeneration` = generation and
         `Ready` True; polled every 0.5 s with one list). Peers, one after the other on
         the same apiserver:

           ours     python examples/widget_operator.py --kubeconfig KC -n NS  (as shipped:
                    one worker, like controller-runtime's default)
           ours-16w the same with --workers 16 (kube-rs and kopf run every object's
                    reconcile concurrently by default; `ours-<N>w` for another N)
           kube-rs  bench/kubers-operator (kube 5.0.0 Controller, the same writes)
           kopf     kopf run bench/peers/kopf_operator.py --namespace NS --standalone

         Each prints one `Reconciled Widget ns/name` line per reconcile (handler call for
         kopf). Reported: objects/s (N / time to done), the child's CPU (user+sys from
         /proc/<pid>/stat) at done and once it has been idle for 3 s (no new line),
         reconciles at both moments, CPU per reconcile and per Widget, peak RSS (VmHWM),
         the apiserver's and etcd's CPU over the run, what the apiserver saw (every
         ConfigMap checked: message and controller ownerReference), SIGTERM's exit code.

quota    The quota operator written twice (examples/quota_operator.py on the Manager,
         examples/quota_kopf.py with kopf), through the checks of
         tests/e2e/test_quota_operator_e2e.py: a labelled Namespace made before the start
         gets its quota (time from spawn to the quota: "first quota"), owned by it; one
         made after the start gets one; an edited quota is put back; a deleted one is
         created again; Events about the Namespace; an unlabelled Namespace gets none;
         SIGTERM exits 0. Reported: each check, CPU and peak RSS at the end, lines of code.

    python bench/operator_bench.py widgets [--objects 1000] [--rounds 1] [--peers ours,kube-rs,kopf]
    python bench/operator_bench.py quota [--rounds 1]
    (--kubeconfig KC --info INFO.json: use a running testenv with the Widget CRD instead)

The kube-rs peer is built with `cargo build --release --locked --manifest-path
bench/kubers-operator/Cargo.toml` into $CARGO_TARGET_DIR (default
~/.cache/trio-controller/bench-target). kopf (and the `kubernetes` client its operators
use) come from bench/requirements.txt.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tokenize
import uuid
from pathlib import Path
from typing import Any

import trio

from trio_controller import Resource

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PY = sys.executable
CRD_FILE = ROOT / "examples" / "widget-crd.yaml"
TARGET = Path(
    os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/trio-controller/bench-target")
)
KUBERS = TARGET / "release" / "kubers-operator"
CONCURRENCY = 32
LINE = b"Reconciled Widget "
QUOTA_LABEL = "quota.example.com/enabled"
QUOTA = "default-quota"
HARD = {"pods": "10", "requests.cpu": "4", "requests.memory": "8Gi"}
TICK = os.sysconf("SC_CLK_TCK")
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")


# -- /proc ----------------------------------------------------------------------------------


def cpu_of(pid: int) -> float:
    """user + system seconds of process `pid` (its threads included)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def children_named(ppid: int, name: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if comm == name[:15] and int(stat.rsplit(")", 1)[1].split()[1]) == ppid:
            found.append(int(entry))
    return found


# -- a child operator -----------------------------------------------------------------------


class Child:
    """An operator process; counts the lines on its stdout that start with `prefix`."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, prefix: bytes):
        self.command = command
        self.env = env
        self.log = log
        self.prefix = prefix
        self.lines: list[bytes] = []
        self.last_line_at = 0.0
        self.process: trio.Process | None = None

    async def start(self, nursery: trio.Nursery) -> float:
        t0 = time.monotonic()
        self.process = await trio.lowlevel.open_process(
            self.command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log.open("wb"),
            env=self.env,
        )
        nursery.start_soon(self._read)
        return t0

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        buffer = b""
        async for data in self.process.stdout:
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            for line in complete:
                if line.startswith(self.prefix):
                    self.lines.append(line)
                    self.last_line_at = time.monotonic()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def terminate(self, within: float = 30.0) -> tuple[int | None, float]:
        """SIGTERM; (exit code or None if it had to be killed, seconds to exit)."""
        assert self.process is not None
        t0 = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        with trio.move_on_after(within):
            code = await self.process.wait()
            return code, time.monotonic() - t0
        self.process.kill()
        await self.process.wait()
        return None, time.monotonic() - t0


def peer_command(peer: str, kc: Path, namespace: str | None) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "KUBECONFIG": str(kc)}
    ns = ["-n", namespace] if namespace else []
    if peer == "ours" or (peer.startswith("ours-") and peer.endswith("w")):
        workers = ["--workers", peer[5:-1]] if peer != "ours" else []
        example = str(ROOT / "examples/widget_operator.py")
        return [PY, example, "--kubeconfig", str(kc), *ns, *workers], env
    if peer == "kube-rs":
        return [str(KUBERS), str(kc), namespace or "default"], env
    if peer == "kopf":
        where = ["--namespace", namespace] if namespace else ["--all-namespaces"]
        peers = str(HERE / "peers/kopf_operator.py")
        return [PY, "-m", "kopf", "run", peers, *where, "--standalone"], env
    if peer == "ours-quota":
        return [PY, str(ROOT / "examples/quota_operator.py"), "--kubeconfig", str(kc)], env
    if peer == "kopf-quota":
        example = str(ROOT / "examples/quota_kopf.py")
        return [PY, "-m", "kopf", "run", example, "--all-namespaces", "--standalone"], env
    raise ValueError(peer)


# -- the widgets benchmark ------------------------------------------------------------------


async def _create_widgets(client: Any, namespace: str, n: int) -> None:
    from trio_controller import NAMESPACES, Api

    widgets = Api(client, WIDGETS, namespace)
    await Api(client, NAMESPACES).create({"metadata": {"name": namespace}})
    limit = trio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with limit:
            body = {"metadata": {"name": f"w-{i:05d}"}, "spec": {"message": f"hello {i}"}}
            await widgets.create(body)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)


def _done(widget: dict[str, Any]) -> bool:
    status = widget.get("status") or {}
    generation = widget["metadata"].get("generation")
    if status.get("observedGeneration") != generation:
        return False
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


async def _verify(client: Any, namespace: str) -> dict[str, int]:
    """ConfigMaps with the right message and a controller ownerReference to their Widget."""
    from trio_controller import CONFIGMAPS, Api

    widgets = await Api(
        client, Resource("example.com", "v1", "widgets", "Widget"), namespace
    ).list()
    cms = {cm["metadata"]["name"]: cm for cm in await Api(client, CONFIGMAPS, namespace).list()}
    good = 0
    for w in widgets:
        cm = cms.get(f"{w['metadata']['name']}-config")
        if cm is None:
            continue
        refs = [r for r in cm["metadata"].get("ownerReferences") or () if r.get("controller")]
        right_owner = len(refs) == 1 and refs[0]["uid"] == w["metadata"]["uid"]
        if right_owner and (cm.get("data") or {}).get("message") == w["spec"]["message"]:
            good += 1
    return {"widgets": len(widgets), "configmaps_ok": good}


async def widgets_run(peer: str, kc: Path, n: int, work: Path, control: dict[str, int]) -> dict:
    from trio_controller import Api, Client, load_config

    namespace = f"opbench-{peer.replace('-', '')}-{uuid.uuid4().hex[:6]}"
    async with Client(load_config(str(kc))) as client:
        t = time.monotonic()
        await _create_widgets(client, namespace, n)
        print(f"  {peer}: {n} Widgets in {namespace} in {time.monotonic() - t:.1f} s", flush=True)
        await trio.sleep(1.0)
        widgets = Api(client, WIDGETS, namespace)
        command, env = peer_command(peer, kc, namespace)
        child = Child(command, env, work / f"{namespace}.stderr", LINE)
        res: dict[str, Any] = {"peer": peer, "namespace": namespace, "objects": n}
        async with trio.open_nursery() as nursery:
            control0 = {name: cpu_of(pid) for name, pid in control.items()}
            t0 = await child.start(nursery)
            with trio.fail_after(900):
                while True:
                    await trio.sleep(0.5)
                    if child.process is not None and child.process.returncode is not None:
                        raise RuntimeError(f"{peer} exited {child.process.returncode}")
                    done = sum(1 for w in await widgets.list() if _done(w))
                    if done == n:
                        break
            res["done_s"] = time.monotonic() - t0
            res["cpu_done_s"] = cpu_of(child.pid)
            res["reconciles_done"] = len(child.lines)
            for name, pid in control.items():
                res[f"{name}_cpu_s"] = cpu_of(pid) - control0[name]
            # Settle: until no reconcile line for 3 s (at most 60 s).
            with trio.move_on_after(60):
                while True:
                    quiet = time.monotonic() - max(child.last_line_at, t0)
                    if quiet >= 3.0:
                        break
                    await trio.sleep(3.0 - quiet)
            res["cpu_settled_s"] = cpu_of(child.pid)
            res["reconciles_settled"] = len(child.lines)
            res["distinct_keys"] = len(set(child.lines))
            res["peak_rss_mb"] = peak_rss_mb(child.pid)
            res.update(await _verify(client, namespace))
            res["exit_code"], res["exit_s"] = await child.terminate()
            nursery.cancel_scope.cancel()
    res["objects_per_s"] = n / res["done_s"]
    res["cpu_per_widget_ms"] = 1000 * res["cpu_settled_s"] / n
    res["cpu_per_reconcile_ms"] = 1000 * res["cpu_settled_s"] / max(1, res["reconciles_settled"])
    return res


# -- the quota benchmark --------------------------------------------------------------------


def lines_of_code(path: Path) -> dict[str, int]:
    """Non-blank, non-comment lines; and the same without docstrings."""
    source = path.read_text()
    code_lines: set[int] = set()
    doc_lines: set[int] = set()
    previous = tokenize.NEWLINE
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT):
            if tok.type != tokenize.COMMENT:
                previous = tok.type if tok.type != tokenize.NL else previous
            continue
        if tok.type in (tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        lines = range(tok.start[0], tok.end[0] + 1)
        if tok.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT):
            doc_lines.update(lines)  # a string statement: a docstring
        code_lines.update(lines)
        previous = tok.type
    return {"loc": len(code_lines), "loc_without_docstrings": len(code_lines - doc_lines)}


async def _eventually(check: Any, within: float = 20.0) -> Any:
    with trio.move_on_after(within):
        while True:
            value = await check()
            if value:
                return value
            await trio.sleep(0.05)
    return None


async def quota_run(peer: str, kc: Path, work: Path) -> dict:
    from trio_controller import (
        EVENTS,
        NAMESPACES,
        RESOURCE_QUOTAS,
        Api,
        Client,
        NotFound,
        load_config,
    )

    res: dict[str, Any] = {"peer": peer}
    checks: dict[str, bool] = {}
    prefix = f"q{peer.split('-')[0]}-{uuid.uuid4().hex[:5]}"
    async with Client(load_config(str(kc))) as client:
        namespaces = Api(client, NAMESPACES)

        async def namespace(suffix: str, labelled: bool) -> dict[str, Any]:
            labels = {QUOTA_LABEL: "true"} if labelled else {}
            body = {"metadata": {"name": f"{prefix}-{suffix}", "labels": labels}}
            return await namespaces.create(body)

        async def quota(name: str) -> dict[str, Any] | None:
            try:
                return await Api(client, RESOURCE_QUOTAS, name).get(QUOTA)
            except NotFound:
                return None

        before = await namespace("before", True)
        plain = await namespace("plain", False)
        name = before["metadata"]["name"]
        command, env = peer_command(peer, kc, None)
        child = Child(command, env, work / f"{prefix}.stderr", b"Set quota of ")
        async with trio.open_nursery() as nursery:
            t0 = await child.start(nursery)
            first = await _eventually(lambda: quota(name), within=60)
            res["first_quota_s"] = time.monotonic() - t0
            checks["quota created"] = first is not None and first["spec"]["hard"] == HARD
            refs = (first or {}).get("metadata", {}).get("ownerReferences") or []
            checks["owned by the Namespace (controller)"] = any(
                r.get("kind") == "Namespace"
                and r.get("uid") == before["metadata"]["uid"]
                and r.get("controller")
                for r in refs
            )
            after = await namespace("after", True)

            async def after_quota() -> Any:
                return await quota(after["metadata"]["name"])

            checks["a Namespace labelled later gets one"] = bool(await _eventually(after_quota))
            quotas = Api(client, RESOURCE_QUOTAS, name)
            await quotas.patch(QUOTA, {"spec": {"hard": {"pods": "99"}}}, type="merge")

            async def restored() -> bool:
                got = await quota(name)
                return got is not None and got["spec"]["hard"] == HARD

            await trio.sleep(0.2)
            checks["an edited quota is put back"] = bool(await _eventually(restored))
            await quotas.delete(QUOTA)
            old_uid = (first or {}).get("metadata", {}).get("uid")

            async def recreated() -> bool:
                got = await quota(name)
                return got is not None and got["metadata"]["uid"] != old_uid

            checks["a deleted quota is created again"] = bool(await _eventually(recreated))

            async def events() -> list[str]:
                listed = await Api(client, EVENTS).list()
                return [
                    e["reason"]
                    for e in listed
                    if (e.get("regarding") or {}).get("kind") == "Namespace"
                    and e["regarding"].get("name") == name
                ]

            res["event_reasons"] = sorted(set(await _eventually(events, within=20) or []))
            checks["an Event about the Namespace"] = bool(res["event_reasons"])
            await trio.sleep(1.0)
            checks["an unlabelled Namespace gets none"] = (
                await quota(plain["metadata"]["name"]) is None
            )
            res["cpu_s"] = cpu_of(child.pid)
            res["peak_rss_mb"] = peak_rss_mb(child.pid)
            res["exit_code"], res["exit_s"] = await child.terminate()
            checks["SIGTERM exits 0"] = res["exit_code"] == 0
            nursery.cancel_scope.cancel()
    res["checks"] = checks
    return res


# -- running --------------------------------------------------------------------------------


def start_testenv(work: Path) -> tuple[subprocess.Popen, Path]:
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
    return env, kc


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for dist in ("trio-controller", "kopf", "kubernetes", "aiohttp", "trio"):
        try:
            out[dist] = version(dist)
        except PackageNotFoundError:
            out[dist] = "-"
    lock = (HERE / "kubers-operator/Cargo.lock").read_text()
    for crate in ("kube", "k8s-openapi", "tokio"):
        marker = f'name = "{crate}"\nversion = "'
        if marker in lock:
            out[crate] = lock.split(marker, 1)[1].split('"', 1)[0]
    out["git"] = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("what", choices=["widgets", "quota"])
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--peers", default=None, help="comma-separated (default: all)")
    ap.add_argument("--kubeconfig", type=Path, help="a running testenv's (with the Widget CRD)")
    ap.add_argument("--json", type=Path, help="append every run's result here (JSON lines)")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="trio-controller-opbench-"))
    env = None
    control: dict[str, int] = {}
    if args.kubeconfig is None:
        env, kc = start_testenv(work)
        for name in ("kube-apiserver", "etcd"):
            pids = children_named(env.pid, name)
            if pids:
                control[name.replace("-", "_")] = pids[0]
    else:
        kc = args.kubeconfig
    if args.what == "widgets":
        default = ["ours", "ours-16w", "kube-rs", "kopf"]
    else:
        default = ["ours-quota", "kopf-quota"]
    peers = args.peers.split(",") if args.peers else default
    if "kube-rs" in peers and not KUBERS.exists():
        raise SystemExit(
            f"build the kube-rs peer first: CARGO_TARGET_DIR={TARGET} cargo build --release "
            f"--locked --manifest-path {HERE / 'kubers-operator/Cargo.toml'}"
        )
    print(json.dumps(versions()), flush=True)
    results: list[dict] = []
    try:
        for r in range(args.rounds):
            for peer in peers:
                if args.what == "widgets":
                    res = trio.run(widgets_run, peer, kc, args.objects, work, control)
                else:
                    res = trio.run(quota_run, peer, kc, work)
                res["round"] = r + 1
                res["loadavg_1m"] = os.getloadavg()[0]
                results.append(res)
                print(json.dumps(res), flush=True)
                if args.json is not None:
                    with args.json.open("a") as f:
                        f.write(json.dumps(res) + "\n")
    finally:
        if env is not None:
            env.terminate()
            env.wait(timeout=60)
    if args.what == "widgets":
        print("\npeer      objects/s  done s  CPU s  reconciles  CPU ms/reconcile", end="")
        print("  CPU ms/Widget  peak RSS MB")
        for peer in peers:
            mine = [x for x in results if x["peer"] == peer]
            med = {
                k: statistics.median(x[k] for x in mine)
                for k in ("objects_per_s", "done_s", "cpu_settled_s", "reconciles_settled",
                          "cpu_per_reconcile_ms", "cpu_per_widget_ms", "peak_rss_mb")
            }  # fmt: skip
            print(
                f"{peer:9} {med['objects_per_s']:9.1f} {med['done_s']:7.1f} "
                f"{med['cpu_settled_s']:6.2f} {med['reconciles_settled']:11.0f} "
                f"{med['cpu_per_reconcile_ms']:17.2f} {med['cpu_per_widget_ms']:14.2f} "
                f"{med['peak_rss_mb']:12.1f}"
            )
    else:
        for path in ("examples/quota_operator.py", "examples/quota_kopf.py"):
            print(path, lines_of_code(ROOT / path))
    print(f"logs: {work}")


if __name__ == "__main__":
    main()
