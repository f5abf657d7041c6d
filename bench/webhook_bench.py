"""Admission webhook benchmark: AdmissionReviews over TLS on keep-alive connections to a
validating webhook that checks two fields (spec.message, spec.replicas), served by

- trio-controller's `WebhookServer` (this process's venv, a child process),
- kopf 1.45's admission server and engine (bench/kopf_webhook_peer.py, its own venv),
- controller-runtime's webhook server (bench/crwebhook-go, Go, pinned in its go.mod),

driven by bench/webhook-load-go (Go, stdlib): first at a fixed rate (open loop; latency
from each request's scheduled time), then as fast as each server answers (closed loop).
Each load run first checks that the server denies an invalid Widget. One JSON line per
(server, load) and a markdown table at the end; besides throughput and latency, the
server process's CPU time per review (from /proc), the figure least bent by other load
on a shared machine.

    .venv/bin/python bench/webhook_bench.py [--duration 10] [--rate 500] [--conns 8]
        [--kopf-python /tmp/kopf-venv/bin/python]   # a venv of its own with kopf==1.45.2:
                                                     # python -m venv /tmp/kopf-venv &&
                                                     # /tmp/kopf-venv/bin/pip install kopf==1.45.2
        [--only trio,kopf,controller-runtime]

Builds the two Go programs into ~/.cache/trio-controller/bench/ (go build; the module
cache must hold controller-runtime v0.25.3 or the module proxy be reachable).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CACHE = Path.home() / ".cache" / "trio-controller" / "bench"
PATHS = {
    "trio-controller": "/validate-example-com-v1-widget",
    "kopf": "/check_widget",  # kopf serves a handler on its id
    "controller-runtime": "/validate-example-com-v1-widget",
}


# -- the trio-controller peer (run as `webhook_bench.py --serve PORT CERT_DIR`) ----------
def serve(port: int, cert_dir: str) -> None:
    import trio

    from trio_controller.runtime.webhooks import AdmissionRequest, WebhookServer, allow, deny

    def check(request: AdmissionRequest) -> Any:
        if request.operation == "DELETE":
            return allow()
        spec = (request.object or {}).get("spec") or {}
        message = spec.get("message")
        if not isinstance(message, str) or not message:
            return deny("spec.message: must be a non-empty string")
        if len(message) > 253:
            return deny("spec.message: must be at most 253 characters")
        if "replicas" in spec:
            replicas = spec["replicas"]
            if isinstance(replicas, bool) or not isinstance(replicas, int):
                return deny("spec.replicas: must be an integer from 0 to 10")
            if not 0 <= replicas <= 10:
                return deny(f"spec.replicas: must be from 0 to 10, not {replicas}")
        return allow()

    server = WebhookServer(f"127.0.0.1:{port}", cert_dir)
    server.add_validating("example.com", "v1", "Widget", check)
    trio.run(server.run)


# -- the driver --------------------------------------------------------------------------
def _go_build(name: str) -> Path:
    out = CACHE / name
    CACHE.mkdir(parents=True, exist_ok=True)
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=BENCH / name, check=True)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, process: subprocess.Popen[bytes], within: float = 60) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port} after {within:g}s")


def _start(
    name: str, port: int, cert_dir: Path, args: argparse.Namespace
) -> subprocess.Popen[bytes]:
    if name == "trio-controller":
        command = [sys.executable, __file__, "--serve", str(port), str(cert_dir)]
    elif name == "kopf":
        if not Path(args.kopf_python).exists():
            raise SystemExit(f"{args.kopf_python} missing: make a venv with kopf==1.45.2")
        command = [args.kopf_python, str(BENCH / "kopf_webhook_peer.py"), str(port), str(cert_dir)]
    else:
        command = [str(args.crwebhook), "-port", str(port), "-cert-dir", str(cert_dir)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _load(args: argparse.Namespace, port: int, path: str, ca: Path, rate: float) -> dict[str, Any]:
    command = [
        str(args.loadgen),
        "-url", f"https://127.0.0.1:{port}{path}",
        "-ca", str(ca),
        "-rate", str(rate),
        "-duration", f"{args.duration}s",
        "-conns", str(args.conns),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=2, metavar=("PORT", "CERT_DIR"), help=argparse.SUPPRESS)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--rate", type=float, default=500.0, help="the fixed rate (reviews/s)")
    parser.add_argument("--conns", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--kopf-python", default="/tmp/kopf-venv/bin/python")
    parser.add_argument("--only", default="trio-controller,kopf,controller-runtime")
    args = parser.parse_args()
    if args.serve:
        serve(int(args.serve[0]), args.serve[1])
        return
    sys.path.insert(0, str(ROOT))
    from trio_controller.testing import write_serving_cert

    args.loadgen = _go_build("webhook-load-go")
    args.crwebhook = _go_build("crwebhook-go")
    rows = []
    with tempfile.TemporaryDirectory(prefix="webhook-bench-") as scratch:
        cert = write_serving_cert(Path(scratch))
        for name in args.only.split(","):
            port = _free_port()
            process = _start(name, port, Path(scratch), args)
            try:
                _wait_listening(port, process)
                for rate in (args.rate, 0.0):
                    cpu = _cpu_seconds(process.pid)
                    result = {"server": name, **_load(args, port, PATHS[name], cert.ca_file, rate)}
                    cpu = _cpu_seconds(process.pid) - cpu
                    result["server_cpu_us_per_review"] = round(cpu / result["requests"] * 1e6)
                    print(json.dumps(result), flush=True)
                    rows.append(result)
            finally:
                process.terminate()
                process.wait(10)
    print(f"\nload average {os.getloadavg()[0]:.1f}, {args.conns} connections\n")
    print("| server | load | reviews/s | p50 ms | p99 ms | server CPU µs/review | errors |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        load = f"{r['rate']:g}/s" if r["rate"] else "saturation"
        print(
            f"| {r['server']} | {load} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['server_cpu_us_per_review']} | {r['errors']} |"
        )


if __name__ == "__main__":
    main()
