"""Processes under measurement: the stream server, a peer, and the clock they share.

A peer is a subprocess whose stdout lines are counted (and time-stamped) by a reader
thread here, and whose stderr is watched for `Caches are synced`. All times are
`time.monotonic()`, which is CLOCK_MONOTONIC and so comparable with the server's.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from streams import CACHE, DATA, SENTINEL, adds, churn

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


STREAMSERVER_BIN = CACHE / "bench" / "streamserver"
WATCH_PATH = "/api/v1/namespaces/default/pods?watch=true"


def scenario_files(pods: int, events: int, latency: bool) -> tuple[Path, Path]:
    """The scenario as two files the Go server reads: list items and watch lines."""
    kind = "adds" if latency else "churn"
    base = DATA / f"go-{kind}-{pods}-{events}"
    items, lines = base.with_suffix(".items"), base.with_suffix(".events")
    if not (items.exists() and lines.exists()):
        sc = (adds if latency else churn)(pods, events)
        for path, data in ((items, b"\n".join(sc.list_items)), (lines, b"".join(sc.events))):
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    return items, lines


def run_reader(args: list[str], before_body: Callable[[], object] | None = None) -> dict:
    """`streamserver read ARGS`: its JSON result, plus its CPU time and peak RSS."""
    p = subprocess.Popen(
        [str(STREAMSERVER_BIN), "read", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    line = p.stdout.readline()
    if line.strip() != b"headers":
        p.kill()
        _, _, ru = os.wait4(p.pid, 0)
        raise RuntimeError(f"bare reader failed: {line!r} {p.stderr.read()[-300:]!r}")
    if before_body:
        before_body()
    out = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = status
    if status:
        raise RuntimeError(f"bare reader exited {status}: {p.stderr.read()[-300:]!r}")
    res = json.loads(out)
    res["cpu_s"] = ru.ru_utime + ru.ru_stime
    return res


class StreamServer:
    """bench/streamserver-go (`streamserver serve`) in its own process, with a kubeconfig
    pointing at it (and, with `tls`, the CA it generated as `certificate-authority`).

    framing "apiserver" (the default) writes one HTTP chunk per event through net/http
    like the kube-apiserver; "coalesced" is the old benchmark framing (256 KB chunks)."""

    def __init__(
        self,
        pods: int,
        events: int,
        *,
        latency: bool = False,
        rate: float = 0.0,
        tls: bool = False,
        framing: str = "apiserver",
    ) -> None:
        self.items, self.lines = scenario_files(pods, events, latency)
        self.tls, self.framing, self.rate = tls, framing, rate
        self.dir = tempfile.mkdtemp(prefix="trio-controller-bench-")
        self.kubeconfig = os.path.join(self.dir, "kubeconfig")
        self.ca = os.path.join(self.dir, "ca.pem")
        self._start()

    @property
    def label(self) -> str:
        return ("tls" if self.tls else "plain") + (
            "" if self.framing == "apiserver" else f"-{self.framing}"
        )

    def _start(self) -> None:
        argv = [str(STREAMSERVER_BIN), "serve", "--items", str(self.items)]
        argv += ["--events", str(self.lines), "--framing", self.framing]
        if self.tls:
            argv += ["--tls", "--ca-out", self.ca]
        if self.rate:
            argv += ["--rate", str(self.rate)]
        with open(os.path.join(self.dir, "server.log"), "ab") as log:
            self.p = subprocess.Popen(
                argv, stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL
            )
        line = self.p.stdout.readline().decode()
        if not line.startswith("port "):
            self.p.kill()
            raise RuntimeError(f"stream server did not start ({argv})")
        self.port = int(line.split()[1])
        self.url = f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"
        wait_for(lambda: not self.tls or os.path.exists(self.ca), 10, "the CA file")
        self._ssl = ssl.create_default_context(cafile=self.ca) if self.tls else None
        with open(self.kubeconfig, "w") as f:
            f.write(kubeconfig_text(self.url, self.ca if self.tls else None))

    def ensure(self) -> None:
        """Start the server again if it went away (the machine is shared)."""
        if self.p.poll() is not None:
            print(f"stream server exited {self.p.returncode}; restarting", file=sys.stderr)
            self._start()

    def call(self, path: str) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=30, context=self._ssl) as r:
            return json.loads(r.read())

    def reset(self) -> None:
        self.ensure()
        self.call("/_reset")

    def go(self) -> None:
        self.call("/_go")

    def stats(self) -> dict:
        return self.call("/_stats")

    def raw_rate(self) -> dict[str, float]:
        """The bare reader drains the watch body: the server's own ceiling, and the
        framing as it is on the wire (chunks per event, TLS record sizes)."""
        self.reset()
        events = self.stats()["events"]
        args = ["--url", self.url + WATCH_PATH, "--events", str(events)]
        if self.tls:
            args += ["--ca", self.ca]
        res = run_reader(args, self.go)
        stats = self.stats()
        secs = res["t_end"] - stats["first_byte"]
        keep = (
            "chunks_per_event",
            "mean_chunk_bytes",
            "chunks_with_several_events",
            "tls_records",
            "tls_records_per_event",
            "mean_tls_record_bytes",
            "max_tls_record_bytes",
            "tls_record_hist",
            "proto",
            "peak_rss",
        )
        return {
            "events_per_s": stats["events"] / secs,
            "mb_per_s": stats["watch_bytes"] / secs / 1e6,
            "cpu_us_per_event": res["cpu_s"] / stats["events"] * 1e6,
            **{k: res[k] for k in keep},
        }

    def close(self) -> None:
        self.p.kill()
        self.p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def kubeconfig_text(server: str, ca: str | None = None) -> str:
    ca_line = f"\n    certificate-authority: {ca}" if ca else ""
    return f"""apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster:
    server: {server}{ca_line}
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
