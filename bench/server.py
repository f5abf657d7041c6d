"""A minimal, fast Kubernetes pod list/watch server for benchmarks (HTTP/1.1, loopback).

    python bench/server.py --pods N --events M [--latency] [--rate EVENTS_PER_S]

This is a benchmark server, not a fault-injection one (that is tests/streamserver.py):
every body is pre-serialized bytes, lists are joined from cached items, and the watch
stream goes out as 256 KB HTTP chunks (whole lines) with one `sendall` each, from one
thread per connection on raw sockets, so the server is never the bottleneck.

The first watch request gets its headers at once but its body only after `GET /_go`
(the harness calls it once the peer has synced and printed its list lines), so the
timed window holds watch events only; `GET /_reset` re-arms that for the next peer.
`GET /_stats` answers the watch body's first and last byte times (`time.monotonic()`,
comparable across processes) and, with `--rate`, the send time of every batch. Later
watch requests get an idle stream. A watch with `sendInitialEvents=true` (a streaming
list, client-go's default since 1.35) first gets the list as ADDED events and the
`k8s.io/initial-events-end` bookmark.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson

sys.path.insert(0, str(Path(__file__).parent))

from streams import LIST_RV, Scenario, adds, churn

CHUNK = 256 * 1024
JSON = b"application/json"


def _chunk(body: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(body), body)


def chunked(lines: list[bytes], size: int = CHUNK) -> list[bytes]:
    """Whole lines grouped into HTTP chunks of about `size` bytes."""
    out, buf, n = [], [], 0
    for line in lines:
        buf.append(line)
        n += len(line)
        if n >= size:
            out.append(_chunk(b"".join(buf)))
            buf, n = [], 0
    if buf:
        out.append(_chunk(b"".join(buf)))
    return out


class Server:
    def __init__(self, scenario: Scenario, rate: float) -> None:
        self.items = scenario.list_items
        self.rate = rate
        if rate:
            self.batch = max(1, round(rate / 1000))  # one batch per millisecond
            self.batches = [
                _chunk(b"".join(scenario.events[i : i + self.batch]))
                for i in range(0, len(scenario.events), self.batch)
            ]
        else:
            self.batches = chunked(scenario.events)
        self.go = threading.Event()
        self.lock = threading.Lock()
        self.watch_taken = False
        self._initial: list[bytes] | None = None
        self.stats: dict[str, object] = {
            "first_byte": None,
            "last_byte": None,
            "watch_bytes": sum(len(c) for c in self.batches),
            "events": len(scenario.events),
            "lists": 0,
            "watches": 0,
            "batch_times": [],
            "batch": getattr(self, "batch", 0),
        }

    def serve(self, sock: socket.socket) -> None:
        while True:
            conn, _ = sock.accept()
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.connection, args=(conn,), daemon=True).start()

    def connection(self, conn: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                length = 0
                for h in lines[1:]:
                    k, _, v = h.partition(":")
                    if k.strip().lower() == "content-length":
                        length = int(v)
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                if not self.route(conn, method, target):
                    return
        except OSError:
            return
        finally:
            conn.close()

    def respond(self, conn: socket.socket, status: str, body: bytes) -> None:
        head = b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (
            status.encode(),
            len(body),
        )
        conn.sendall(head + body)

    def route(self, conn: socket.socket, method: str, target: str) -> bool:
        url = urlsplit(target)
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        path = url.path.rstrip("/")
        if path == "/_go":
            self.go.set()
            self.respond(conn, "200 OK", b"{}")
        elif path == "/_reset":
            with self.lock:
                self.watch_taken = False
                self.go.clear()
                self.stats.update(first_byte=None, last_byte=None, lists=0, watches=0)
                self.stats["batch_times"] = []
            self.respond(conn, "200 OK", b"{}")
        elif path == "/_stats":
            self.respond(conn, "200 OK", orjson.dumps(self.stats))
        elif path in ("/api/v1/namespaces/default/pods", "/api/v1/pods"):
            if q.get("watch") in ("true", "1", "True"):
                self.watch(conn, q.get("sendInitialEvents") == "true")
                return False
            self.list(conn, q)
        elif path == "/version":
            body = {"major": "1", "minor": "37", "gitVersion": "v1.37.2", "platform": "linux"}
            self.respond(conn, "200 OK", orjson.dumps(body))
        elif path == "/api":
            body = {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
            self.respond(conn, "200 OK", orjson.dumps(body))
        elif path == "/apis":
            body = {"kind": "APIGroupList", "apiVersion": "v1", "groups": []}
            self.respond(conn, "200 OK", orjson.dumps(body))
        elif path == "/api/v1":
            pods = {
                "name": "pods",
                "singularName": "pod",
                "namespaced": True,
                "kind": "Pod",
                "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
                "shortNames": ["po"],
            }
            body = {"kind": "APIResourceList", "groupVersion": "v1", "resources": [pods]}
            self.respond(conn, "200 OK", orjson.dumps(body))
        else:
            status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404}
            self.respond(conn, "404 Not Found", orjson.dumps(status))
        return True

    def list(self, conn: socket.socket, q: dict[str, str]) -> None:
        self.stats["lists"] += 1  # type: ignore[operator]
        start = int(q.get("continue") or 0)
        limit = int(q.get("limit") or 0) or len(self.items)
        end = min(start + limit, len(self.items))
        meta = b'{"resourceVersion":"%d"' % LIST_RV
        if end < len(self.items):
            meta += b',"continue":"%d","remainingItemCount":%d' % (end, len(self.items) - end)
        body = b'{"kind":"PodList","apiVersion":"v1","metadata":%s},"items":[%s]}' % (
            meta,
            b",".join(self.items[start:end]),
        )
        self.respond(conn, "200 OK", body)

    def initial_events(self) -> list[bytes]:
        """The list as a streaming list's ADDED events, then the initial-events-end bookmark."""
        with self.lock:
            if self._initial is None:
                lines = [
                    b'{"type":"ADDED","object":{"kind":"Pod","apiVersion":"v1",%s}\n' % i[1:]
                    for i in self.items
                ]
                end = {
                    "kind": "Pod",
                    "apiVersion": "v1",
                    "metadata": {
                        "resourceVersion": str(LIST_RV),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    },
                }
                lines.append(orjson.dumps({"type": "BOOKMARK", "object": end}) + b"\n")
                self._initial = chunked(lines)
            return self._initial

    def watch(self, conn: socket.socket, initial: bool) -> None:
        self.stats["watches"] += 1  # type: ignore[operator]
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        if initial:
            self.stats["lists"] += 1  # type: ignore[operator]
            for c in self.initial_events():
                conn.sendall(c)
        with self.lock:
            first, self.watch_taken = not self.watch_taken, True
        if first:
            self.go.wait()
            self.send_events(conn)
        conn.settimeout(None)
        while conn.recv(65536):  # idle until the client goes away
            pass

    def send_events(self, conn: socket.socket) -> None:
        self.stats["first_byte"] = time.monotonic()
        if not self.rate:
            for c in self.batches:
                conn.sendall(c)
        else:
            times: list[float] = self.stats["batch_times"]  # type: ignore[assignment]
            period = self.batch / self.rate
            start = time.monotonic()
            for i, c in enumerate(self.batches):
                due = start + i * period
                while (now := time.monotonic()) < due:
                    time.sleep(min(due - now, 0.0005))
                times.append(time.monotonic())
                conn.sendall(c)
        self.stats["last_byte"] = time.monotonic()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pods", type=int, default=10_000)
    p.add_argument("--events", type=int, default=50_000)
    p.add_argument("--latency", action="store_true", help="distinct ADDED events only")
    p.add_argument("--rate", type=float, default=0.0, help="events/s (0: as fast as possible)")
    p.add_argument("--no-go", action="store_true", help="send the watch body at once")
    args = p.parse_args()
    scenario = (adds if args.latency else churn)(args.pods, args.events)
    server = Server(scenario, args.rate)
    if args.no_go:
        server.go.set()
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    print(f"port {sock.getsockname()[1]}", flush=True)
    server.serve(sock)


if __name__ == "__main__":
    main()
