"""Figure 5: on the real kube-apiserver + etcd from testenv (`python -m trio_controller.testing`).

Two parts, both over the apiserver's own TLS and framing:

churn  ours, lightkube and client-go's example (each as shipped) watch `default` at once,
       with the bare reader watching too (it counts the events the apiserver sent, and
       verifies the framing: chunks per event, TLS record sizes). The harness creates N
       pods, patches each (a label) and deletes each (32 requests in flight): about four
       events per pod. Each peer's CPU time over the churn / the events = CPU µs/event.
       Also: time from the first create to each peer's last line.
sync   N pods exist; ours syncs them with a streaming list (`--streaming-list`) and with
       pages of 500, and the bare reader drains the same streaming list (up to the
       `k8s.io/initial-events-end` bookmark), interleaved: process start to synced.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio
from harness import PY, Peer, run_reader, summarize

from trio_controller.testing.info import EnvInfo
from trio_controller.testing.pods import open_pod_helper

CONCURRENCY = 32
WATCH = "/api/v1/namespaces/default/pods?watch=true"
STREAMING_LIST = WATCH + "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
STREAMING_LIST += "&allowWatchBookmarks=true"


async def _each(info: EnvInfo, names: list[str], op: str) -> None:
    limit = trio.Semaphore(CONCURRENCY)
    async with open_pod_helper(info, request_timeout=60) as pods:

        async def one(name: str) -> None:
            async with limit:
                if op == "create":
                    await pods.create_pod("default", name)
                elif op == "patch":
                    await pods.patch_pod("default", name, {"metadata": {"labels": {"b": "1"}}})
                else:
                    await pods.delete_pod("default", name)

        async with trio.open_nursery() as nursery:
            for name in names:
                nursery.start_soon(one, name)


async def _delete_all(info: EnvInfo) -> None:
    async with open_pod_helper(info, request_timeout=120) as pods:
        await pods.delete_all_pods("default")
        while True:
            r = await pods.client.get("/api/v1/namespaces/default/pods", params={"limit": "1"})
            if not r.json()["items"]:
                return
            await trio.sleep(0.2)


def _count_lines(p: Peer, want: bytes, n: int) -> float | None:
    """When the n-th distinct line starting with `want` was read, or None if not yet."""
    seen = set()
    for t, data in list(p.chunks):
        for line in data.split(b"\n"):
            if line.startswith(want):
                seen.add(line)
        if len(seen) >= n:
            return t
    return None


def _reader_args(info: EnvInfo, path: str) -> list[str]:
    return ["--url", info.server + path, "--ca", str(info.ca_file), "--token", info.token]


def _churn_round(info, kc, peers, prefix: str, pods: int, log) -> dict[str, dict]:
    names = [f"{prefix}{i:05d}" for i in range(pods)]
    running = []
    for peer in peers:
        env_vars = dict(peer.env)
        env_vars.pop("KUBE_FEATURE_WatchListClient", None)  # as shipped
        running.append(Peer(peer.command(str(kc)), env_vars, record=True))
    out: dict[str, dict] = {}
    try:
        for p in running:
            p.wait_for(lambda p=p: p.synced_at, 60, "sync")
        time.sleep(0.5)
        cpu0 = [p.cpu() for p in running]
        reader: dict = {}

        def read() -> None:
            try:
                reader.update(run_reader([*_reader_args(info, WATCH), "--idle", "4s"]))
            except Exception as exc:  # reported, not fatal
                reader["error"] = str(exc)[:300]

        t0 = time.monotonic()
        with trio_thread(read):
            time.sleep(0.3)  # the reader's watch is open
            t0 = time.monotonic()
            for op in ("create", "patch", "delete"):
                trio.run(_each, info, names, op)
            t_done = time.monotonic()
            gone = f"Pod default/{prefix}".encode()
            for peer, p in zip(peers, running, strict=True):
                try:
                    p.wait_for(lambda p=p: _count_lines(p, gone, pods), 300, "delete lines")
                    done = _count_lines(p, gone, pods)
                    out[peer.name] = {"done_s": done - t0, "lag_s": done - t_done}
                except Exception as exc:
                    out[peer.name] = {"error": str(exc)[:300]}
            cpu1 = [p.cpu() for p in running]
        events = reader.get("events")
        for peer, a, b in zip(peers, cpu0, cpu1, strict=True):
            res = out[peer.name]
            res["cpu_s"] = b - a
            if events:
                res["cpu_us_per_event"] = (b - a) / events * 1e6
                res["events"] = events
        out["bare-reader"] = reader
        out["_writes_s"] = {"writes_s": t_done - t0}
    finally:
        for p in running:
            p.stop()
    return out


class trio_thread:
    """Run fn in a thread for the duration of a with-block (joined at exit)."""

    def __init__(self, fn: Callable[[], None]) -> None:
        import threading

        self.t = threading.Thread(target=fn, daemon=True)

    def __enter__(self) -> None:
        self.t.start()

    def __exit__(self, *exc) -> None:
        self.t.join(timeout=60)


def _sync_run(info, kc, peer, pods: int) -> dict:
    p = Peer(peer.command(str(kc)), peer.env)
    try:
        p.wait_for(lambda: p.synced_at, 120, "sync")
        synced = p.synced_at - p.t0
        p.wait_for(lambda: p.lines >= pods, 120, "the list lines")
        return {"sync_s": synced, "rss": p.status()["VmRSS"]}
    finally:
        p.stop()


def _reader_sync(info) -> dict:
    t0 = time.monotonic()
    res = run_reader([*_reader_args(info, STREAMING_LIST), "--until-bookmark"])
    res["sync_s"] = res["t_end"] - t0
    return res


def run_e2e(
    peers, lineup: dict, pods: int, sync_pods: int, rounds: int, log: Callable[[str], None]
) -> dict:
    work = Path(tempfile.mkdtemp(prefix="trio-controller-bench-e2e-"))
    kc, info_path = work / "kubeconfig", work / "info.json"
    env = subprocess.Popen(
        [
            PY,
            "-m",
            "trio_controller.testing",
            "--kubeconfig-out",
            str(kc),
            "--info-out",
            str(info_path),
            "--stop-on-stdin-close",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    result: dict = {"pods": pods, "sync_pods": sync_pods, "concurrency": CONCURRENCY}
    try:
        line = env.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError("the testenv control plane did not start (make testenv?)")
        info = EnvInfo.load(info_path)
        runs: dict[str, list[dict]] = {p.name: [] for p in [*peers]}
        runs["bare-reader"] = []
        writes = []
        for r in range(rounds):
            res = _churn_round(info, kc, peers, f"bench-{r}-", pods, log)
            writes.append(res.pop("_writes_s")["writes_s"])
            for name, v in res.items():
                runs[name].append(v)
                log(f"fig5 churn round {r + 1}/{rounds} {name}: {_brief(v)}")
            trio.run(_delete_all, info)
        result["churn"] = {"writes_s": sorted(writes)[len(writes) // 2], "peers": summarize(runs)}
        log(f"fig5 sync: creating {sync_pods:,} pods")
        t0 = time.monotonic()
        trio.run(_each, info, [f"sync-{i:05d}" for i in range(sync_pods)], "create")
        result["sync_create_s"] = time.monotonic() - t0
        jobs = [
            ("ours-watchlist", lambda: _sync_run(info, kc, lineup["ours-watchlist"], sync_pods)),
            ("ours", lambda: _sync_run(info, kc, lineup["ours"], sync_pods)),
            ("bare-reader", lambda: _reader_sync(info)),
        ]
        sync: dict[str, list[dict]] = {name: [] for name, _ in jobs}
        for r in range(rounds):
            for name, fn in jobs:
                try:
                    v = fn()
                except Exception as exc:
                    v = {"error": str(exc)[:300]}
                sync[name].append(v)
                log(f"fig5 sync round {r + 1}/{rounds} {name}: {_brief(v)}")
        result["sync"] = {"peers": summarize(sync)}
    finally:
        env.stdin.close()
        try:
            env.wait(timeout=30)
        except subprocess.TimeoutExpired:
            env.kill()
            env.wait()
        shutil.rmtree(work, ignore_errors=True)
    return result


def _brief(res: dict) -> str:
    keys = ("done_s", "cpu_us_per_event", "events", "sync_s", "chunks_per_event", "error")
    keys += ("mean_tls_record_bytes", "tls_records_per_event")
    return ", ".join(
        f"{k}={res[k]:.4g}" if isinstance(res[k], float) else f"{k}={res[k]}"
        for k in keys
        if k in res
    )
