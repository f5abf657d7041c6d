"""Decoding a realistic pod watch stream: the Rust decoder vs ``orjson.loads`` per line.

    .venv/bin/python bench/decode.py [--pods 5000] [--repeat 15] [--chunk 16384]

Prints MB/s and events/s (medians; the machine is noisy, so look at medians only).
``orjson.loads`` builds whole dicts; the decoder validates every byte but only pulls the
metadata out and keeps the object as bytes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pods import list_body, watch_stream

from trio_controller._native import ListAccumulator, Store, WatchDecoder
from trio_controller._native import WorkQueue as NativeQueue


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def orjson_per_line(chunks: list[bytes]) -> int:
    """What a pure-Python client does: split lines across chunks, orjson.loads each."""
    n = 0
    buf = b""
    loads = orjson.loads
    for chunk in chunks:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line:
                loads(line)
                n += 1
    return n


def orjson_cache(chunks: list[bytes]) -> int:
    """What a pure-Python controller does per event: parse, key, cache, enqueue."""
    n = 0
    buf = b""
    loads = orjson.loads
    cache: dict[str, dict] = {}
    dirty: set[str] = set()
    queue: list[str] = []
    resource_version = None
    for chunk in chunks:
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if not line:
                continue
            event = loads(line)
            obj = event["object"]
            meta = obj["metadata"]
            resource_version = meta.get("resourceVersion", resource_version)
            n += 1
            if event["type"] == "BOOKMARK":
                continue
            meta.pop("managedFields", None)
            ns = meta.get("namespace")
            key = f"{ns}/{meta['name']}" if ns else meta["name"]
            if event["type"] == "DELETED":
                cache.pop(key, None)
            else:
                cache[key] = obj
            if key not in dirty:
                dirty.add(key)
                queue.append(key)
    return n


def decoder_feed(chunks: list[bytes]) -> int:
    decoder = WatchDecoder()
    return sum(len(decoder.feed(chunk)) for chunk in chunks)


def decoder_feed_into(chunks: list[bytes]) -> int:
    decoder = WatchDecoder()
    store = Store()
    queue = NativeQueue()
    n = 0
    for chunk in chunks:
        result = decoder.feed_into(chunk, store, queue, 0.0)
        n += result.applied + result.bookmarks
    return n


def measure(fn: Callable[[], int], repeat: int) -> tuple[float, int]:
    times = []
    n = 0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pods", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--chunk", type=int, default=16384)
    args = parser.parse_args()

    stream = watch_stream(args.pods)
    chunks = chunks_of(stream, args.chunk)
    body = list_body(args.pods)
    mb = len(stream) / 1e6
    print(
        f"{args.pods} pods, {len(stream) / args.pods:.0f} B/line, {mb:.1f} MB, "
        f"{args.chunk} B chunks, median of {args.repeat}"
    )

    def list_page() -> int:
        acc = ListAccumulator()
        return acc.feed_page(body).items

    def list_and_replace() -> int:
        acc = ListAccumulator()
        acc.feed_page(body)
        store = Store()
        return len(store.replace(acc, "1").added)

    def orjson_page() -> int:
        return len(orjson.loads(body)["items"])

    rows = [
        ("orjson.loads per line", lambda: orjson_per_line(chunks), len(stream)),
        ("WatchDecoder.feed", lambda: decoder_feed(chunks), len(stream)),
        ("orjson + dict cache + queue (Python)", lambda: orjson_cache(chunks), len(stream)),
        ("WatchDecoder.feed_into (store+queue)", lambda: decoder_feed_into(chunks), len(stream)),
        ("orjson.loads list page", orjson_page, len(body)),
        ("ListAccumulator.feed_page", list_page, len(body)),
        ("feed_page + Store.replace (a relist)", list_and_replace, len(body)),
    ]
    results = {}
    print(f"{'':40} {'MB/s':>8} {'events/s':>12} {'µs/event':>9}")
    for label, fn, size in rows:
        seconds, n = measure(fn, args.repeat)
        results[label] = seconds
        print(
            f"{label:40} {size / 1e6 / seconds:8.0f} {n / seconds:12,.0f} {seconds / n * 1e6:9.2f}"
        )
    print()
    for rust, python in [
        ("WatchDecoder.feed", "orjson.loads per line"),
        ("WatchDecoder.feed_into (store+queue)", "orjson + dict cache + queue (Python)"),
        ("ListAccumulator.feed_page", "orjson.loads list page"),
    ]:
        print(f"{rust} is {results[python] / results[rust]:.1f}x faster than {python}")
    print(
        "(the Python cache and list-page rows include CPython's cyclic GC passes over"
        " thousands of live dicts: that is what a pure-Python controller pays)"
    )


if __name__ == "__main__":
    main()
