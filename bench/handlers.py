"""Python event handlers: events/s of one `EventHandlers` consumer on a 50k-event stream.

    .venv/bin/python bench/handlers.py [--events 50000] [--pods 5000] [--read 262144] [--repeat 5]

The stream (realistic 4 KB pods, ADDED then MODIFIED, in 256 KB reads as a socket gives
them) goes, in memory (no socket, no TLS: the same for both), through:

- before: the Python-handler sink as it was before the informer core (5bfd9a8's
  `HandlerSink.apply`, replayed with the same native calls): per event Rust decodes,
  Python reads the old object (`store.get`), re-applies the event (`store.upsert(ev.raw)`,
  a second scan), reads the new object and calls the handler;
- after: `CoreSink` (the informer core): one Rust call per read applies every event and
  buffers the changes; Python calls the handler once per change, parsing only what the
  handler reads.

The handlers read both objects (`on_update(old, new)`, `on_add(new)`), so both paths parse
the same dicts. Prints the median events/s of each and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import trio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pods import pod

from trio_controller.cache.sink import CoreSink, EventHandlers, Handlers
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
    def __init__(self) -> None:
        self.n = 0

    def handlers(self) -> EventHandlers:
        def add(new: dict[str, Any]) -> None:
            self.n += 1

        def update(old: dict[str, Any], new: dict[str, Any]) -> None:
            self.n += 1

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
    sink = CoreSink(Store())
    sink.add_consumer(Handlers(count.handlers()))
    for data in chunks:
        sink.apply(data, 0.0, None)


def measure(fn: Any, chunks: list[bytes], events: int, repeat: int) -> float:
    rates = []
    for _ in range(repeat):
        count = Count()
        start = time.perf_counter()
        trio.run(_run, fn, chunks, count)
        rates.append(events / (time.perf_counter() - start))
        assert count.n == events, (count.n, events)
    return statistics.median(rates)


async def _run(fn: Any, chunks: list[bytes], count: Count) -> None:
    fn(chunks, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--pods", type=int, default=5_000)
    parser.add_argument("--read", type=int, default=256 * 1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    chunks = reads(stream(args.events, args.pods), args.read)
    old = measure(before, chunks, args.events, args.repeat)
    new = measure(after, chunks, args.events, args.repeat)
    print(f"{args.events} events ({args.pods} pods, {args.read // 1024} KB reads), median of "
          f"{args.repeat}, one EventHandlers consumer reading old and new")  # fmt: skip
    print(f"  before (per-event Python re-apply)  {old:10,.0f} events/s")
    print(f"  after  (informer core)              {new:10,.0f} events/s")
    print(f"  ratio                               {new / old:10.2f}x")


if __name__ == "__main__":
    main()
