"""Watch throughput over TLS at the apiserver's framing: the watch transport's TLS paths
A/B in one run, against the Go bare reader (fig1's setting, TLS only).

    .venv/bin/python bench/tls_ab.py [--pods 10000] [--events 50000] [--rounds 3]
                                     [--base DIR]

Peers, interleaved every round (bench/peers/ours.py, the CLI's code):
  bare-reader   streamserver read (Go): HTTP/1.1 + chunked decoding + newline count
  ours-rustls   this tree, TRIO_CONTROLLER_NATIVE_TLS=1 (rustls sessions, the default)
  ours-ssl      this tree, TRIO_CONTROLLER_NATIVE_TLS=0 (ssl.SSLObject over MemoryBIO)
  base          with --base DIR: another tree's `trio_controller` (e.g. `git archive
                a43038c` unpacked there, with this build's `_native` copied in) first
                on PYTHONPATH

Medians of events/s (first watch byte to the sentinel line) and CPU µs/event.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import PY, STREAMSERVER_BIN, StreamServer
from lineup import Peer, build_streamserver
from run import interleave_jobs, watch_run

HERE = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pods", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--base", type=Path, default=None)
    args = parser.parse_args()
    if not STREAMSERVER_BIN.exists():
        build_streamserver()
    ours = [PY, str(HERE / "peers" / "ours.py"), "{kc}"]
    peers = [
        Peer("ours-rustls", ours, "", {"TRIO_CONTROLLER_NATIVE_TLS": "1"}),
        Peer("ours-ssl", ours, "", {"TRIO_CONTROLLER_NATIVE_TLS": "0"}),
    ]
    if args.base is not None:
        path = os.pathsep.join([str(args.base.resolve()), os.environ.get("PYTHONPATH", "")])
        peers.append(Peer("base", ours, "", {"PYTHONPATH": path}))
        check = [PY, "-c", "import trio_controller.transport.connection as c; print(c.__file__)"]
        where = subprocess.run(check, env={**os.environ, "PYTHONPATH": path}, text=True, cwd="/",
                               capture_output=True, check=True).stdout.strip()  # fmt: skip
        print(f"base: {where}", flush=True)
    server = StreamServer(args.pods, args.events, tls=True)
    try:
        jobs = [("bare-reader", server.raw_rate)]
        for peer in peers:
            jobs.append((peer.name, lambda p=peer: watch_run(p, server, args.pods, 300)))
        runs = interleave_jobs("tls A/B", jobs, args.rounds)
    finally:
        server.close()
    bare = statistics.median(r["events_per_s"] for r in runs["bare-reader"] if "error" not in r)
    print(f"\n{args.pods} pods, {args.events} events over TLS, medians of {args.rounds} rounds")
    print(f"{'peer':<14}{'events/s':>10}{'of bare':>9}{'CPU µs/ev':>11}  runs (events/s)")
    for label, results in runs.items():
        ok = [r for r in results if "error" not in r]
        if not ok:
            print(f"{label:<14} failed: {results[0].get('error')}")
            continue
        rate = statistics.median(r["events_per_s"] for r in ok)
        cpu = statistics.median(r["cpu_us_per_event"] for r in ok)
        each = " ".join(f"{r['events_per_s']:.0f}" for r in ok)
        print(f"{label:<14}{rate:>10,.0f}{rate / bare:>8.0%}{cpu:>11.2f}  {each}")


if __name__ == "__main__":
    main()
