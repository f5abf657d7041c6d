"""Python event handlers: events/s of one `EventHandlers` consumer on a 50k-event stream.

    .venv/bin/python bench/handlers.py [--events 50000] [--pods 5000] [--read 262144]
                                       [--repeat 5] [--handler count|new|both]
    .venv/bin/python bench/handlers.py --ab BASE_SITE [--rounds 3] [--tls]

In memory (the default; no socket, no TLS): the stream (realistic 4 KB pods, ADDED then
MODIFIED, in 256 KB reads as a socket gives them) goes through

- before: the Python-handler sink as it was before the informer core (5bfd9a8's
  `HandlerSink.apply`, replayed with the same native calls): per event Rust decodes,
  Python reads the old object (`store.get`), re-applies the event (`store.upsert(ev.raw)`,
  a second scan), reads the new object and calls the handler;
- after: `CoreSink` (the informer core): one Rust call per read applies every event and
  buffers the changes; Python calls the handler once per change.

`--handler` says what the handler reads: `count` nothing (counts calls), `new` one field
of the new object (of the old one for a delete), `both` one field of each. Objects are
parsed only when read (`LazyObject`), so the three cost differently after; before parses
both whatever the handler reads.

`--ab BASE_SITE` compares this tree against another build of the package (e.g. main's,
installed with `pip install --target BASE_SITE`), each in its own process, interleaved
for `--rounds` rounds, medians printed. With `--tls` it runs over TLS at the
kube-apiserver's framing instead: bench/streamserver-go serves `--pods` pods then
`--events` churn events (one HTTP chunk per event), and a child process per run syncs an
`Informer` with the handlers and times the watch stream from the server's first byte to
the last handler call; its process CPU over the stream is printed per event beside the
rate (on a shared, loaded machine the wall-clock rate swings with the neighbours, CPU per
event much less).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pods import pod

from trio_controller.cache.sink import EventHandlers  # in every base (0dbb960 on)
from trio_controller.native import Store, WatchDecoder


def stream(events: int, pods: int) -> bytes:
    lines = []
    for i in range(events):
        p = pod(i % pods, resource_version=1000 + i)
        kind = "ADDED" if i < pods else "MODIFIED"
        lines.append(orjson.dumps({"type": kind, "object": p}) + b"\n")
    return b"".join(lines)


def reads(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


class Count:
    """Handlers that count their calls and read what `what` says of the objects."""

    def __init__(self, what: str = "count") -> None:
        self.n = 0
        self.what = what
        self.goal = -1  # `reached` is set when n gets there
        self.reached: trio.Event | None = None

    def _tick(self) -> None:
        self.n += 1
        if self.n == self.goal and self.reached is not None:
            self.reached.set()

    def handlers(self) -> EventHandlers:
        what = self.what

        def add(new: Any) -> None:
            self._tick()
            if what != "count":
                new["metadata"]["resourceVersion"]

        def update(old: Any, new: Any) -> None:
            self._tick()
            if what != "count":
                new["metadata"]["resourceVersion"]
            if what == "both":
                old["metadata"]["resourceVersion"]

        return EventHandlers(on_add=add, on_update=update, on_delete=add)


def before(chunks: list[bytes], count: Count) -> None:
    """5bfd9a8's HandlerSink.apply + Handlers.event, per event."""
    store, decoder, h = Store(), WatchDecoder(), count.handlers()
    for data in chunks:
        for ev in decoder.feed(data):
            kind = ev.type
            if kind in ("ERROR", "BOOKMARK"):
                continue
            key = ev.key or ""
            old = store.get(key)
            new = None
            if kind == "DELETED":
                store.delete(key)
                if old is None:
                    old = ev.object()
            else:
                store.upsert(ev.raw)
                new = store.get(key)
            if kind == "DELETED" or new is None:
                if h.on_delete is not None and old is not None:
                    h.on_delete(old)
            elif old is None:
                if h.on_add is not None:
                    h.on_add(new)
            elif h.on_update is not None:
                h.on_update(old, new)
            store.resource_version = ev.resource_version


def after(chunks: list[bytes], count: Count) -> None:
    """The informer core: one call per read, the handler once per change."""
    from trio_controller.cache.sink import CoreSink, Handlers  # not in bases before it

    sink = CoreSink(Store())
    sink.add_consumer(Handlers(count.handlers()))
    if hasattr(sink, "begin"):  # the core owns its decoder
        for data in chunks:
            sink.apply(data, 0.0, None)
    else:  # main before it did (a43038c): the reflector passed its decoder
        decoder = WatchDecoder()
        for data in chunks:
            sink.apply(decoder, data, 0.0, None)  # type: ignore[call-arg,arg-type]


def measure(fn: Any, chunks: list[bytes], events: int, repeat: int, what: str) -> float:
    rates = []
    for _ in range(repeat):
        count = Count(what)
        start = time.perf_counter()
        trio.run(_run, fn, chunks, count)
        rates.append(events / (time.perf_counter() - start))
        assert count.n == events, (count.n, events)
    return statistics.median(rates)


async def _run(fn: Any, chunks: list[bytes], count: Count) -> None:
    fn(chunks, count)


# -- over TLS, against bench/streamserver-go ---------------------------------------------


def child(kubeconfig: str, expect: int, what: str) -> None:
    """Sync an Informer with counting handlers, print `synced`, then `done <monotonic>
    <cpu seconds>` once `expect` more handler calls came (the watch stream's events)."""
    from trio_controller import config as kubeconfig_mod
    from trio_controller.cache.informer import Informer
    from trio_controller.transport.client import Client

    count = Count(what)

    async def main() -> None:
        config = kubeconfig_mod.load_config(kubeconfig=kubeconfig)
        async with Client(config) as client, trio.open_nursery() as nursery:
            informer = Informer(client, "/api/v1/namespaces/default/pods",
                                handlers=count.handlers())  # fmt: skip
            await nursery.start(informer.run)
            await informer.wait_for_cache_sync()
            count.goal, count.reached = count.n + expect, trio.Event()
            print("synced", flush=True)
            cpu = time.process_time()
            await count.reached.wait()
            cpu = time.process_time() - cpu
            # CLOCK_MONOTONIC, as the server; the process's CPU seconds for the stream
            print(f"done {time.monotonic()!r} {cpu!r}", flush=True)
            nursery.cancel_scope.cancel()

    trio.run(main)


def tls_run(
    server: Any, site: str | None, pods: int, events: int, what: str
) -> tuple[float, float]:
    """One run over TLS: events/s (first byte to the last handler call) and the child's
    CPU µs per event over the same span (the figure that holds on a loaded machine)."""
    server.reset()
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", server.kubeconfig]
    cmd += ["--expect", str(events + 1), "--handler", what]  # + the sentinel's ADDED
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd="/")
    try:
        assert p.stdout is not None
        line = p.stdout.readline().decode()
        assert line.strip() == "synced", line
        server.go()
        line = p.stdout.readline().decode()
        assert line.startswith("done "), line
        _, done, cpu = line.split()
        stats = server.stats()
        rate = stats["events"] / (float(done) - stats["first_byte"])
        return rate, float(cpu) / stats["events"] * 1e6
    finally:
        p.kill()
        p.wait()


def memory_run(site: str | None, args: argparse.Namespace, what: str) -> float:
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site
    cmd = [sys.executable, str(Path(__file__).resolve()), "--json", "--only-after"]
    cmd += ["--events", str(args.events), "--pods", str(args.pods), "--repeat", "3"]
    cmd += ["--handler", what]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, env=env, check=True, cwd="/").stdout
    return json.loads(out)["after"]


def ab(args: argparse.Namespace) -> None:
    """This tree against `args.ab`'s build, interleaved, medians."""
    server = None
    if args.tls:
        from harness import StreamServer

        server = StreamServer(args.pods, args.events, tls=True)
    whats = args.handler.split(",")
    rates: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    try:
        for r in range(args.rounds):
            for what in whats:
                for label, site in (("base", args.ab), ("new", None)):
                    if server is not None:
                        rate, cpu = tls_run(server, site, args.pods, args.events, what)
                    else:  # one thread, nothing else in the process: CPU is wall time
                        rate = memory_run(site, args, what)
                        cpu = 1e6 / rate
                    rates.setdefault((label, what), []).append(rate)
                    cpus.setdefault((label, what), []).append(cpu)
                    print(f"round {r + 1} {label:4} {what:5} {rate:10,.0f} events/s"
                          f" {cpu:6.2f} µs CPU/event", file=sys.stderr, flush=True)  # fmt: skip
    finally:
        if server is not None:
            server.close()
    where = "TLS, apiserver framing" if server else "in memory"
    print(f"{args.events} events ({args.pods} pods), {where}, median of {args.rounds} "
          "interleaved rounds, one EventHandlers consumer")  # fmt: skip
    for what in whats:
        base = statistics.median(rates[("base", what)])
        new = statistics.median(rates[("new", what)])
        print(f"  handler reads {what:5}  base {base:10,.0f}  new {new:10,.0f} events/s"
              f"  ratio {new / base:5.2f}x")  # fmt: skip
        base_cpu = statistics.median(cpus[("base", what)])
        new_cpu = statistics.median(cpus[("new", what)])
        print(f"  {'':19}  base {base_cpu:10.2f}  new {new_cpu:10.2f} µs CPU/event"
              f"  ratio {base_cpu / new_cpu:5.2f}x")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--pods", type=int, default=5_000)
    parser.add_argument("--read", type=int, default=256 * 1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--handler", default="count", help="count, new, both (comma list)")
    parser.add_argument("--ab", metavar="BASE_SITE", help="compare against this build")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tls", action="store_true", help="with --ab: over TLS")
    parser.add_argument("--child", metavar="KUBECONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--expect", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only-after", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.expect, args.handler)
    if args.ab:
        return ab(args)
    chunks = reads(stream(args.events, args.pods), args.read)
    what = args.handler
    old = None if args.only_after else measure(before, chunks, args.events, args.repeat, what)
    new = measure(after, chunks, args.events, args.repeat, what)
    if args.json:
        print(json.dumps({"before": old, "after": new}))
        return
    assert old is not None
    print(f"{args.events} events ({args.pods} pods, {args.read // 1024} KB reads), median of "
          f"{args.repeat}, one EventHandlers consumer; the handler reads: {what}")  # fmt: skip
    print(f"  before (per-event Python re-apply)  {old:10,.0f} events/s")
    print(f"  after  (informer core)              {new:10,.0f} events/s")
    print(f"  ratio                               {new / old:10.2f}x")


if __name__ == "__main__":
    main()
