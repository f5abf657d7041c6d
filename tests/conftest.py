"""Shared fixtures. `envtest` runs one real kube-apiserver + etcd for the whole session
(``python -m trio_controller.testing`` in a subprocess); it starts only when a test asks."""

from __future__ import annotations

import logging
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from trio_controller.testing import (
    EnvInfo,
    EnvTest,
    PodHelper,
    find_assets,
    open_envtest,
    open_pod_helper,
)

_READY_WITHIN = 120.0
_STOP_WITHIN = 30.0


def _wait_for_ready(process: subprocess.Popen[str], log: Path) -> None:
    assert process.stdout is not None
    deadline = time.monotonic() + _READY_WITHIN
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select([process.stdout], [], [], left)
        if readable:
            line = process.stdout.readline()
            if line == "ready\n":
                return
            if line == "":  # exited
                break
    process.kill()
    process.wait()
    pytest.fail(f"the test control plane did not start; its log:\n{log.read_text()}")


@pytest.fixture(scope="session")
def envtest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnvInfo]:
    """A running control plane for the session: `EnvInfo` (server, CA, admin certificate,
    admin and token kubeconfigs). Logs and etcd data stay in pytest's temp folder."""
    find_assets()  # a clear error (run `make testenv`) before anything starts
    folder = tmp_path_factory.mktemp("envtest")
    log = folder / "envtest.stderr"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "trio_controller.testing",
                f"--kubeconfig-out={folder / 'admin.kubeconfig'}",
                f"--token-kubeconfig-out={folder / 'token.kubeconfig'}",
                f"--info-out={folder / 'info.json'}",
                f"--work-dir={folder / 'work'}",
                # If pytest dies, the closed pipe stops the control plane too.
                "--stop-on-stdin-close",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        _wait_for_ready(process, log)
        yield EnvInfo.load(folder / "info.json")
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(_STOP_WITHIN)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for pipe in (process.stdin, process.stdout):
            if pipe is not None:
                pipe.close()


@pytest.fixture
async def private_envtest(tmp_path: Path) -> AsyncIterator[EnvTest]:
    """A control plane of this test's own, in-process (about 3 s to start): for tests that
    stop or restart the apiserver (`env.restart_apiserver()`, `env.apiserver_stopped()`)."""
    async with open_envtest(work_dir=tmp_path / "envtest") as env:
        yield env


@pytest.fixture
async def pods(envtest: EnvInfo) -> AsyncIterator[PodHelper]:
    """Creates, changes and deletes pods as the envtest admin."""
    async with open_pod_helper(envtest) as helper:
        yield helper


@pytest.fixture
async def namespace(pods: PodHelper) -> str:
    """A fresh namespace for one test. (Namespaces are not deleted: without a
    controller-manager they would stay Terminating anyway.)"""
    name = f"test-{uuid.uuid4().hex[:10]}"
    await pods.create_namespace(name)
    return name


@pytest.fixture
def quiet() -> Iterator[None]:
    """Silences the library's logs for a test: the simulations' reflectors and shards log
    every fault they survive, thousands per run."""
    logger = logging.getLogger("trio_controller")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        logger.setLevel(level)
