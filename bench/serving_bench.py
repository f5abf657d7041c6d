"""What moving the metrics and probe server onto hypercorn costs the pod program: the
time from starting the server to the first answered probe (hypercorn is imported then),
scrape and probe latency on a keep-alive connection, and the process's resident memory.

    .venv/bin/python bench/serving_bench.py                      # the current server
    .venv/bin/python bench/serving_bench.py --server OLD.py      # e.g. the old h11 server
                                                                 # (git show REV:path > OLD.py)

Each run is a fresh process (imports cold in the same way); prints one JSON line.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import socket
import statistics
import sys
import time
from typing import Any

import trio

from trio_controller.observe.health import Health
from trio_controller.observe.metrics import CONTENT_TYPE_LATEST, Metrics
from trio_controller.runtime.workqueue import WorkQueue


def _load(path: str | None) -> Any:
    if path is None:
        from trio_controller.runtime import serving

        return serving
    spec = importlib.util.spec_from_file_location("old_server", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_server"] = module
    spec.loader.exec_module(module)
    return module


def _get(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(
            v
            for k, v in (line.split(b": ", 1) for line in head.split(b"\r\n")[1:])
            if k.lower() == b"content-length"
        )
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head


def _client(port: int, n: int) -> dict[str, float]:
    latencies: dict[str, list[float]] = {"/metrics": [], "/healthz": []}
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            for path, out in latencies.items():
                t = time.perf_counter()
                assert _get(sock, path).startswith(b"HTTP/1.1 200")
                out.append(time.perf_counter() - t)
    result = {}
    for path, values in latencies.items():
        values.sort()
        result[f"{path} p50 ms"] = round(statistics.median(values) * 1e3, 3)
        result[f"{path} p99 ms"] = round(values[int(len(values) * 0.99)] * 1e3, 3)
    return result


async def main(server_path: str | None, n: int) -> dict[str, Any]:
    queue = WorkQueue()
    metrics = Metrics()
    metrics.workqueues.add("pod", queue)
    health = Health()
    routes = {"/metrics": lambda q: server.Response(200, metrics.exposition(), CONTENT_TYPE_LATEST)}
    routes.update(health.routes())
    t0 = time.perf_counter()
    server = _load(server_path)
    async with trio.open_nursery() as nursery:
        (listener, *_) = await nursery.start(server.serve_http, "127.0.0.1", 0, routes)
        port = listener.socket.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as sock:
            await trio.to_thread.run_sync(_get, sock, "/healthz")
        first = time.perf_counter() - t0
        figures = await trio.to_thread.run_sync(_client, port, n)
        nursery.cancel_scope.cancel()
    return {
        "server": server_path or "observe/serving.py (hypercorn)",
        "start to first probe ms": round(first * 1e3, 1),
        **figures,
        "max RSS MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", help="a module file with serve_http and Response")
    parser.add_argument("-n", type=int, default=2000, help="requests per path")
    args = parser.parse_args()
    print(json.dumps(trio.run(main, args.server, args.n)))
