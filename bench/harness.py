"""Processes under measurement: the stream server, a peer, and the clock they share.

A peer is a subprocess whose stdout lines are counted (and time-stamped) by a reader
thread here, and whose stderr is watched for `Caches are synced`. All times are
`time.monotonic()`, which is CLOCK_MONOTONIC and so comparable with the server's.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from streams import SENTINEL

HERE = Path(__file__).resolve().parent
PY = sys.executable
SENTINEL_LINE = f"for Pod {SENTINEL}\n".encode()


class Timeout(Exception):
    pass


def wait_for(cond: Callable[[], object], timeout: float, what: str, poll: float = 0.002) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise Timeout(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(poll)


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                k, v = line.split(":")
                out[k] = int(v.split()[0]) * 1024
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Peer:
    """One running peer: counts stdout lines, notes the sentinel line and the sync log."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, record=False):
        self.argv = argv
        self.record = record
        self.chunks: list[tuple[float, bytes]] = []
        self.lines = 0
        self.sentinel_at: float | None = None
        self.synced_at: float | None = None
        self.stderr: list[bytes] = []
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self._threads = [
            threading.Thread(target=self._read_out, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read_out(self) -> None:
        fd = self.p.stdout.fileno()
        tail = b""
        while data := os.read(fd, 1 << 16):
            now = time.monotonic()
            self.lines += data.count(b"\n")
            if self.record:
                self.chunks.append((now, data))
            if self.sentinel_at is None and SENTINEL_LINE in tail + data:
                self.sentinel_at = now
            tail = data[-64:]

    def _read_err(self) -> None:
        for line in self.p.stderr:
            if self.synced_at is None and b"Caches are synced" in line:
                self.synced_at = time.monotonic()
            if len(self.stderr) < 200:
                self.stderr.append(line)

    def status(self) -> dict[str, int]:
        return proc_status(self.p.pid)

    def cpu(self) -> float:
        return cpu_seconds(self.p.pid)

    def alive(self) -> bool:
        return self.p.poll() is None

    def wait_for(self, cond: Callable[[], object], timeout: float, what: str) -> None:
        def check() -> object:
            if not self.alive():
                raise RuntimeError(f"peer exited {self.p.returncode}: {self.err_tail()}")
            return cond()

        wait_for(check, timeout, what)

    def err_tail(self) -> str:
        return b"".join(self.stderr[-5:]).decode(errors="replace").strip()

    def stop(self) -> None:
        if self.alive():
            self.p.kill()
        self.p.wait()
        for t in self._threads:
            t.join(timeout=2)


class StreamServer:
    """bench/server.py in its own process, with a kubeconfig pointing at it."""

    def __init__(self, *args: str) -> None:
        self.args = args
        self.dir = tempfile.mkdtemp(prefix="trio-controller-bench-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self._start()

    def _start(self) -> None:
        with open(os.path.join(self.dir, "server.log"), "ab") as log:
            self.p = subprocess.Popen(
                [PY, str(HERE / "server.py"), *self.args],
                stdout=subprocess.PIPE,
                stderr=log,
                stdin=subprocess.DEVNULL,
            )
        line = self.p.stdout.readline().decode()
        if not line.startswith("port "):
            self.p.kill()
            raise RuntimeError(f"stream server did not start ({self.args})")
        self.port = int(line.split()[1])
        self.url = f"http://127.0.0.1:{self.port}"
        with open(self.kubeconfig, "w") as f:
            f.write(kubeconfig_text(self.url))

    def ensure(self) -> None:
        """Start the server again if it went away (the machine is shared)."""
        if self.p.poll() is not None:
            print(f"stream server exited {self.p.returncode}; restarting", file=sys.stderr)
            self._start()

    def call(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        self.ensure()
        self.call("/_reset")

    def go(self) -> None:
        self.call("/_go")

    def stats(self) -> dict:
        return self.call("/_stats")

    def raw_rate(self) -> dict[str, float]:
        """Drain the watch body with a bare socket: the server's own ceiling."""
        self.reset()
        s = socket.create_connection(("127.0.0.1", self.port))
        s.sendall(b"GET /api/v1/namespaces/default/pods?watch=true HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        got = len(head.split(b"\r\n\r\n", 1)[1])
        stats = self.stats()
        total = stats["watch_bytes"]
        self.go()
        while got < total:
            got += len(s.recv(1 << 20))
        end = time.monotonic()
        s.close()
        first = self.stats()["first_byte"]
        return {
            "events_per_s": stats["events"] / (end - first),
            "mb_per_s": total / (end - first) / 1e6,
        }

    def close(self) -> None:
        self.p.kill()
        self.p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def kubeconfig_text(server: str) -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: {server}
users:
- name: bench
  user: {{}}
contexts:
- name: bench
  context: {{cluster: bench, user: bench, namespace: default}}
current-context: bench
"""


def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    out = {}
    for name, rs in runs.items():
        keys = {k for r in rs for k, v in r.items() if isinstance(v, (int, float))}
        med = {k: median([r.get(k) for r in rs]) for k in sorted(keys)}
        errors = [r["error"] for r in rs if "error" in r]
        out[name] = {"median": med, "runs": rs, "errors": errors}
    return out
