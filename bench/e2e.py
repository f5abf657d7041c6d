"""Figure 5: end to end on the real kube-apiserver + etcd from testenv.

Each round starts ours and client-go's example (both as shipped: each syncs the way it
does by default) watching `default`, creates N pods with many requests in flight, and
notes when each controller printed the Sync line of every one of them. Both run at once
on the same pods, so the apiserver's pace is the same for both. Then the pods are
deleted and the controllers stopped.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio
from harness import PY, Peer, summarize

from trio_controller.testing.info import EnvInfo
from trio_controller.testing.pods import open_pod_helper

CONCURRENCY = 32


async def _create(info: EnvInfo, names: list[str]) -> None:
    limit = trio.Semaphore(CONCURRENCY)
    async with open_pod_helper(info, request_timeout=60) as pods:

        async def one(name: str) -> None:
            async with limit:
                await pods.create_pod("default", name)

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


def _all_synced_at(p: Peer, prefix: bytes, n: int) -> float | None:
    """When the last of the n pods' Sync lines was read, or None if not yet."""
    seen = set()
    want = b"Sync/Add/Update for Pod " + prefix
    for t, data in list(p.chunks):
        for line in data.split(b"\n"):
            if line.startswith(want):
                seen.add(line)
        if len(seen) >= n:
            return t
    return None


def run_e2e(peers, pods: int, rounds: int, log: Callable[[str], None]) -> dict:
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
    try:
        line = env.stdout.readline()
        if b"ready" not in line:
            raise RuntimeError("the testenv control plane did not start (make testenv?)")
        info = EnvInfo.load(info_path)
        runs: dict[str, list[dict]] = {p.name: [] for p in peers}
        creates = []
        for r in range(rounds):
            prefix = f"bench-{r}-"
            names = [f"{prefix}{i:05d}" for i in range(pods)]
            running = []
            for peer in peers:
                env_vars = dict(peer.env)
                env_vars.pop("KUBE_FEATURE_WatchListClient", None)  # as shipped
                running.append(Peer(peer.command(str(kc)), env_vars, record=True))
            for p in running:
                p.wait_for(lambda p=p: p.synced_at, 60, "sync")
            t0 = time.monotonic()
            trio.run(_create, info, names)
            t_created = time.monotonic()
            creates.append(t_created - t0)
            for peer, p in zip(peers, running, strict=True):
                try:
                    pre = prefix.encode()
                    p.wait_for(lambda p=p, pre=pre: _all_synced_at(p, pre, pods), 300, "lines")
                    done = _all_synced_at(p, pre, pods)
                    res = {"done_s": done - t0, "lag_s": done - t_created}
                except Exception as exc:
                    res = {"error": str(exc)[:300]}
                runs[peer.name].append(res)
                log(f"fig5 round {r + 1}/{rounds} {peer.name}: {res}")
            for p in running:
                p.stop()
            trio.run(_delete_all, info)
    finally:
        env.stdin.close()
        try:
            env.wait(timeout=30)
        except subprocess.TimeoutExpired:
            env.kill()
            env.wait()
        shutil.rmtree(work, ignore_errors=True)
    return {
        "pods": pods,
        "concurrency": CONCURRENCY,
        "create_s": sorted(creates)[len(creates) // 2] if creates else None,
        "peers": summarize(runs),
    }
