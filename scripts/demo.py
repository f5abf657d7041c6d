"""`make demo`: a real kube-apiserver + etcd, the controller against it, pods coming and going.

Starts the testenv control plane, creates the seed pods (busybox and curl in `default`,
one pod in `kube-public` that the controller must not see), runs `trio-controller`
against it, creates, updates and deletes `mypod`, shows the controller's output, then
stops everything (SIGTERM: the controller drains and exits 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trio

from trio_controller import config as kubeconfig
from trio_controller.transport.client import Client

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def pod(name: str, labels: dict[str, str] | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"containers": [{"name": "main", "image": "busybox", "command": ["sleep", "1d"]}]},
    }


async def api(config_path: Path, steps: list[tuple[str, str, dict | None]]) -> None:
    config = kubeconfig.load_config(kubeconfig=str(config_path))
    async with Client(config) as client:
        for method, path, body in steps:
            print(f"demo: {method} {path}", file=sys.stderr, flush=True)
            if method == "PATCH":
                await client.request_json(
                    method, path, body, content_type="application/merge-patch+json"
                )
            else:
                # No kubelet runs here, so a delete must not wait for a graceful stop.
                params = {"gracePeriodSeconds": "0"} if method == "DELETE" else None
                await client.request_json(method, path, body, params=params)
            await trio.sleep(0.5)


def wait_for_line(proc: subprocess.Popen[str], want: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit(f"demo: the control plane exited before printing {want!r}")
        if line.strip() == want:
            return
    raise SystemExit(f"demo: no {want!r} within {timeout:.0f}s")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="trio-controller-demo-") as tmp:
        kc = Path(tmp) / "kubeconfig"
        print("demo: starting kube-apiserver and etcd (testenv)...", file=sys.stderr, flush=True)
        plane = subprocess.Popen(
            [PY, "-m", "trio_controller.testing", "--kubeconfig-out", str(kc)],
            stdout=subprocess.PIPE,
            text=True,
        )
        controller = None
        try:
            wait_for_line(plane, "ready")
            print(f"demo: control plane ready; kubeconfig at {kc}", file=sys.stderr, flush=True)
            ns = "/api/v1/namespaces"
            trio.run(
                api,
                kc,
                [
                    ("POST", f"{ns}/default/pods", pod("busybox")),
                    ("POST", f"{ns}/default/pods", pod("curl-666-6f68d49784-r2gln")),
                    ("POST", f"{ns}/kube-public/pods", pod("not-watched")),
                ],
            )
            print("demo: running trio-controller --kubeconfig ...", file=sys.stderr, flush=True)
            controller = subprocess.Popen(
                [PY, "-m", "trio_controller", "--kubeconfig", str(kc)],
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
            time.sleep(3)
            trio.run(
                api,
                kc,
                [
                    ("POST", f"{ns}/default/pods", pod("mypod")),
                    (
                        "PATCH",
                        f"{ns}/default/pods/mypod",
                        {"metadata": {"labels": {"demo": "updated"}}},
                    ),
                    ("DELETE", f"{ns}/default/pods/mypod", None),
                ],
            )
            time.sleep(2)
            controller.send_signal(signal.SIGTERM)
            code = controller.wait(timeout=30)
            print(f"demo: trio-controller exited with {code}", file=sys.stderr, flush=True)
            return code
        finally:
            if controller is not None and controller.poll() is None:
                controller.kill()
            plane.send_signal(signal.SIGTERM)
            try:
                plane.wait(timeout=30)
            except subprocess.TimeoutExpired:
                plane.kill()


if __name__ == "__main__":
    sys.exit(main())
