"""Benchmarks: trio-controller against client-go's workqueue example and the Python clients.

    .venv/bin/python bench/run.py [--quick] [--rounds 3] [--only fig1,fig2,...] [--no-e2e]

(`make bench` installs bench/requirements.txt and runs this; it builds the Go stream
server, client-go's example and the kube-rs peer into ~/.cache/trio-controller/.)
The stream server is bench/streamserver-go with the kube-apiserver's watch framing (one
HTTP chunk per event, ~4 KB TLS records); issues 5 and 8 ask for:
  fig1  watch throughput over TLS and plain HTTP side by side (+ the bare reader's
        ceiling, + the old coalesced framing as a labelled extra): events/s from the
        watch body's first byte to the last line, CPU µs/event, RSS
  fig2  initial sync (TLS): start to `Caches are synced`, list pages of 500; peak RSS
  fig3  memory: RSS per cached pod (from the sync runs at two sizes)
  fig4  latency (TLS): event sent to its line printed, p50/p99, at a fixed offered rate
  fig5  the real kube-apiserver: churn CPU µs/event (ours, lightkube, client-go at once)
        and the sync of N pods by streaming list / pages / the bare reader
Every figure runs its peers interleaved (A B C A B C ...), `--rounds` times, and keeps
medians; results go to bench/results/<date>.json and .md, charts to <date>-*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Peer, StreamServer, Timeout, summarize
from lineup import all_peers, build_clientgo, build_kubers, build_streamserver
from report import write_report
from streams import adds

RESULTS = Path(__file__).resolve().parent / "results"

FULL = {
    # fig1: (list pods, watch events) per group of peers on the same input; every group
    # runs over TLS and over plain HTTP, interleaved, with the apiserver's framing
    "fig1_fast": (10_000, 50_000),
    "fig1_slow": (2_000, 3_000),
    "fig1_fast_peers": [
        "ours",
        "ours-4w",
        "ours-lz4",
        "client-go",
        "kube-rs",
        "pyref",
        "lightkube",
        "official-orjson",
    ],
    "fig1_slow_peers": ["ours", "official", "kubernetes_asyncio", "kr8s"],
    # the old benchmark framing (256 KB chunks, plain HTTP), as a labelled extra
    "fig1_coalesced_peers": ["ours", "client-go", "kube-rs", "lightkube"],
    "fig2_sizes": [10_000, 100_000],
    # the slowest peers take 15-40 s per 100k sync: at 100k only these (and the 10k rows)
    "fig2_large_peers": [
        "ours",
        "ours-nostrip",
        "ours-lz4",
        "client-go",
        "kube-rs",
        "pyref",
        "ours-watchlist",
    ],
    "fig2_peers": [
        "ours",
        "ours-nostrip",
        "ours-lz4",
        "client-go",
        "kube-rs",
        "pyref",
        "pyref-strip",
        "lightkube",
        "ours-watchlist",
        "client-go-watchlist",
    ],
    "fig4": (10_000, 10_000.0),  # events, offered rate
    "fig4_peers": ["ours", "client-go", "kube-rs", "pyref"],
    "fig5_pods": 2_000,  # churn on the real apiserver: created, then deleted
    "fig5_sync_pods": 10_000,  # synced by a streaming list and by a paged list
    "fig5_peers": ["ours", "lightkube", "client-go"],
}
QUICK = {
    "fig1_fast": (1_000, 10_000),
    "fig1_slow": (500, 1_000),
    "fig1_fast_peers": ["ours", "client-go", "kube-rs", "lightkube", "official-orjson"],
    "fig1_slow_peers": [],
    "fig1_coalesced_peers": ["ours", "lightkube"],
    "fig2_sizes": [1_000, 10_000],
    "fig2_large_peers": ["ours", "ours-nostrip", "ours-lz4", "client-go", "kube-rs", "pyref"],
    "fig2_peers": ["ours", "ours-nostrip", "ours-lz4", "client-go", "kube-rs", "pyref"],
    "fig4": (5_000, 10_000.0),
    "fig4_peers": ["ours", "client-go", "kube-rs"],
    "fig5_pods": 300,
    "fig5_sync_pods": 1_000,
    "fig5_peers": ["ours", "lightkube", "client-go"],
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def start(peer, server: StreamServer, record: bool = False) -> Peer:
    return Peer(peer.command(server.kubeconfig), peer.env, record=record)


def watch_run(peer, server: StreamServer, pods: int, timeout: float) -> dict:
    """One fig1 run: sync, print the list lines, then time the watch stream."""
    server.reset()
    p = start(peer, server)
    try:
        p.wait_for(lambda: p.synced_at and p.lines >= pods, timeout, "sync")
        synced = p.synced_at - p.t0
        st = p.status()
        p_lines = p.lines
        cpu = p.cpu()
        server.go()
        p.wait_for(lambda: p.sentinel_at, timeout, "the sentinel line")
        cpu = p.cpu() - cpu
        st_end = p.status()
        stats = server.stats()
        secs = p.sentinel_at - stats["first_byte"]
        return {
            "events_per_s": stats["events"] / secs,
            "seconds": secs,
            "lines": p.lines - p_lines,
            "events": stats["events"],
            "sync_s": synced,
            "rss_synced": st["VmRSS"],
            "rss_end": st_end["VmRSS"],
            "peak_rss": st_end["VmHWM"],
            "cpu_us_per_event": cpu / stats["events"] * 1e6,
        }
    finally:
        p.stop()


def sync_run(peer, server: StreamServer, pods: int, timeout: float) -> dict:
    """One fig2/fig3 run: start to `Caches are synced`, RSS once the list lines are out."""
    server.reset()
    p = start(peer, server)
    try:
        p.wait_for(lambda: p.synced_at and p.lines >= pods, timeout, "sync")
        time.sleep(0.2)  # let the last handlers return before reading RSS
        st = p.status()
        return {"sync_s": p.synced_at - p.t0, "rss": st["VmRSS"], "peak_rss": st["VmHWM"]}
    finally:
        p.stop()


def latency_run(peer, server: StreamServer, names: dict[str, int], list_pods: int) -> dict:
    server.reset()
    p = start(peer, server, record=True)
    try:
        p.wait_for(lambda: p.synced_at and p.lines >= list_pods, 60, "sync")
        time.sleep(0.3)
        server.go()
        p.wait_for(lambda: p.sentinel_at, 120, "the sentinel line")
        stats = server.stats()
    finally:
        p.stop()
    times, batch = stats["batch_times"], stats["batch"]
    lat = []
    prefix = b"Sync/Add/Update for Pod "
    for t, data in p.chunks:
        for line in data.split(b"\n"):
            if line.startswith(prefix):
                i = names.get(line[len(prefix) :].decode())
                if i is not None:
                    lat.append(t - times[i // batch])
    lat.sort()
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return {"p50_ms": q[49] * 1e3, "p99_ms": q[98] * 1e3, "max_ms": lat[-1] * 1e3, "n": len(lat)}


def interleave(name, peers, rounds, fn) -> dict:
    return interleave_jobs(name, [(p.name, lambda p=p: fn(p)) for p in peers], rounds)


def interleave_jobs(name, jobs, rounds) -> dict:
    """Run every (label, fn) once per round, in order, `rounds` times."""
    runs: dict[str, list[dict]] = {label: [] for label, _ in jobs}
    for r in range(rounds):
        for label, fn in jobs:
            for attempt in range(2):
                try:
                    res = fn()
                    break
                except Timeout as exc:
                    res = {"error": str(exc)[:300]}
                    break
                except (RuntimeError, OSError) as exc:
                    # e.g. the stream server went away: reset() restarts it; retry once
                    res = {"error": str(exc)[:300], "attempt": attempt}
            runs[label].append(res)
            log(f"{name} round {r + 1}/{rounds} {label}: {_brief(res)}")
    return runs


def _brief(res: dict) -> str:
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in res.items())


def fig1(cfg, peers, rounds) -> dict:
    """Each group's peers over TLS and over plain HTTP, interleaved peer by peer, and
    the bare reader's ceiling on each server (one run per round, with the peers)."""
    out = {}
    for group in ("fast", "slow", "coalesced"):
        names = cfg[f"fig1_{group}_peers"]
        if not names:
            continue
        pods, events = cfg["fig1_slow" if group == "slow" else "fig1_fast"]
        if group == "coalesced":
            servers = [StreamServer(pods, events, framing="coalesced")]
        else:
            servers = [StreamServer(pods, events, tls=True), StreamServer(pods, events)]
        try:
            jobs = [(f"bare-reader@{s.label}", s.raw_rate) for s in servers]
            for n in names:
                for s in servers:
                    jobs.append(
                        (
                            f"{n}@{s.label}",
                            lambda peer=peers[n], s=s, pods=pods: watch_run(peer, s, pods, 300),
                        )
                    )
            runs = interleave_jobs(f"fig1 {group}", jobs, rounds)
        finally:
            for s in servers:
                s.close()
        transports = {}
        for s in servers:
            summary = summarize({k: v for k, v in runs.items() if k.endswith(f"@{s.label}")})
            transports[s.label] = {
                "server_raw": summary.pop(f"bare-reader@{s.label}"),
                "peers": {k.rsplit("@", 1)[0]: v for k, v in summary.items()},
            }
        out[group] = {
            "pods": pods,
            "events": events,
            "framing": servers[0].framing,
            "transports": transports,
        }
    return out


def fig2(cfg, peers, rounds) -> dict:
    out = {}
    for pods in cfg["fig2_sizes"]:
        names = cfg["fig2_peers"] if pods != max(cfg["fig2_sizes"]) else cfg["fig2_large_peers"]
        server = StreamServer(pods, 0, tls=True)
        try:
            runs = interleave(
                f"fig2 {pods} pods",
                [peers[n] for n in names],
                rounds,
                lambda peer, s=server, n=pods: sync_run(peer, s, n, 600),
            )
        finally:
            server.close()
        out[str(pods)] = summarize(runs)
    return out


def fig3(cfg, f2: dict) -> dict:
    """RSS per cached pod: the slope between the two sync sizes (fixed costs cancel)."""
    small, large = cfg["fig2_sizes"]
    out = {}
    for name in cfg["fig2_large_peers"]:
        a = f2[str(small)].get(name, {}).get("median", {}).get("rss")
        b = f2[str(large)].get(name, {}).get("median", {}).get("rss")
        if a is not None and b is not None:
            out[name] = {"bytes_per_pod": (b - a) / (large - small), "rss_large": b}
    return {"sizes": [small, large], "peers": out}


def fig4(cfg, peers, rounds) -> dict:
    events, rate = cfg["fig4"]
    list_pods = 100
    names = {n: i for i, n in enumerate(adds(list_pods, events).names)}
    server = StreamServer(list_pods, events, latency=True, rate=rate, tls=True)
    try:
        runs = interleave(
            "fig4",
            [peers[n] for n in cfg["fig4_peers"]],
            rounds,
            lambda peer: latency_run(peer, server, names, list_pods),
        )
    finally:
        server.close()
    return {"events": events, "rate": rate, "peers": summarize(runs)}


def fig5(cfg, peers, rounds) -> dict:
    from e2e import run_e2e

    return run_e2e(
        [peers[n] for n in cfg["fig5_peers"]],
        peers,
        cfg["fig5_pods"],
        cfg["fig5_sync_pods"],
        rounds,
        log,
    )


def machine() -> dict:
    cpu = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "go": subprocess.run(["go", "version"], capture_output=True, text=True).stdout.strip(),
        "loadavg_start": os.getloadavg(),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller inputs, fewer peers (< 2 min)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--only", default="fig1,fig2,fig4,fig5", help="comma-separated figures")
    p.add_argument("--no-e2e", action="store_true", help="skip fig5 (the real apiserver)")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--report", type=Path, metavar="JSON", help="only redraw a result's md/png")
    args = p.parse_args()
    if args.report:
        result = json.loads(args.report.read_text())
        print(write_report(result, args.report.parent, args.report.stem))
        return
    cfg = QUICK if args.quick else FULL
    only = set(args.only.split(","))
    if args.no_e2e or not cfg["fig5_pods"]:
        only.discard("fig5")
    t0 = time.monotonic()
    log("building the Go stream server, client-go's workqueue example, the kube-rs peer")
    build_streamserver()
    build_clientgo()
    build_kubers()
    peers = all_peers()
    result: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "mode": "quick" if args.quick else "full",
        "rounds": args.rounds,
        "machine": machine(),
        "versions": {p.name: p.version for p in peers.values()},
        "config": {k: v for k, v in cfg.items()},
    }
    if "fig1" in only:
        result["fig1"] = fig1(cfg, peers, args.rounds)
    if "fig2" in only:
        result["fig2"] = fig2(cfg, peers, args.rounds)
        result["fig3"] = fig3(cfg, result["fig2"])
    if "fig4" in only:
        result["fig4"] = fig4(cfg, peers, args.rounds)
    if "fig5" in only:
        result["fig5"] = fig5(cfg, peers, args.rounds)
    result["machine"]["loadavg_end"] = os.getloadavg()
    result["seconds"] = time.monotonic() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    stem = datetime.now(UTC).strftime("%Y-%m-%d") + ("-quick" if args.quick else "")
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    md = write_report(result, args.out, stem)
    print(md)
    log(f"done in {result['seconds']:.0f}s: {args.out / stem}.json/.md/-*.png")


if __name__ == "__main__":
    main()
