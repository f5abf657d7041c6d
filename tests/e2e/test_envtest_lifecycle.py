"""Starting and stopping the control plane in-process: no process outlives `open_envtest`,
whether start-up is cancelled, crashes or the block ends; the apiserver restarts alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from trio_controller.testing import (
    EnvInfo,
    EnvTest,
    EnvTestError,
    open_envtest,
    open_pod_helper,
)


def processes_using(folder: Path, but: int | None = None) -> list[int]:
    """Pids whose command line mentions `folder` (our etcd and apiserver name it)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or entry.name == str(but):
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if str(folder).encode() in cmdline:
            pids.append(int(entry.name))
    return pids


async def _until(predicate) -> None:
    # Polling is the point: /proc and the file system have no events to wait on.
    while not predicate():  # noqa: ASYNC110
        await trio.sleep(0.01)


@pytest.mark.parametrize("stage", ["etcd", "kube-apiserver"])
async def test_cancelling_start_up_leaves_no_process_behind(tmp_path: Path, stage: str) -> None:
    reached = False

    async def start_forever() -> None:
        async with open_envtest(work_dir=tmp_path):
            raise AssertionError("start-up should have been cancelled")

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(start_forever)
            # The stage's process runs (its log exists) but the control plane is not ready.
            await _until(lambda: (tmp_path / f"{stage}.log").exists())
            await _until(lambda: len(processes_using(tmp_path)) >= 1)
            reached = True
            nursery.cancel_scope.cancel()
    assert reached
    assert processes_using(tmp_path) == []


async def test_a_crashing_apiserver_fails_start_up_with_the_end_of_its_log(
    tmp_path: Path,
) -> None:
    with trio.fail_after(60), pytest.raises(EnvTestError) as caught:
        async with open_envtest(work_dir=tmp_path, apiserver_args=["--no-such-flag=1"]):
            pass
    message = str(caught.value)
    assert "kube-apiserver exited with status" in message
    assert "unknown flag: --no-such-flag" in message
    assert processes_using(tmp_path) == []


async def test_the_apiserver_restarts_alone_and_keeps_the_data(private_envtest: EnvTest) -> None:
    env = private_envtest
    with trio.fail_after(60):
        etcd_pid = env.pids["etcd"]
        async with open_pod_helper(env.info) as pods:
            await pods.create_pod("default", "survivor")
            async with env.apiserver_stopped():
                assert env.pids["kube-apiserver"] is None
                with pytest.raises(httpx.ConnectError):
                    await pods.list_pods("default")
            assert env.pids["kube-apiserver"] is not None
            assert env.pids["etcd"] == etcd_pid
            names = [p["metadata"]["name"] for p in await pods.list_pods("default")]
            assert names == ["survivor"]
            await env.restart_apiserver()
            assert len(await pods.list_pods("default")) == 1


async def test_the_control_plane_is_gone_after_the_block_and_the_temp_folder_removed() -> None:
    with trio.fail_after(60):
        async with open_envtest() as env:
            work_dir = env.info.work_dir
            pids = [pid for pid in env.pids.values() if pid is not None]
            assert len(pids) == 2
    assert not work_dir.exists()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def test_the_command_line_prints_ready_and_stops_cleanly_on_sigint(
    tmp_path: Path,
) -> None:
    kubeconfig, info = tmp_path / "kubeconfig", tmp_path / "info.json"
    work = tmp_path / "work"
    argv = [
        sys.executable,
        "-m",
        "trio_controller.testing",
        "--kubeconfig-out",
        str(kubeconfig),
        "--info-out",
        str(info),
        "--work-dir",
        str(work),
    ]
    with trio.fail_after(90):
        process = await trio.lowlevel.open_process(argv, stdout=subprocess.PIPE)
        assert process.stdout is not None
        try:
            first = b""
            while not first.endswith(b"\n"):
                chunk = await process.stdout.receive_some()
                assert chunk, "exited before printing ready"
                first += chunk
            assert first == b"ready\n"
            assert "client-certificate-data" in kubeconfig.read_text()
            assert EnvInfo.load(info).admin_kubeconfig.exists()
            assert len(processes_using(work, but=process.pid)) == 2
            process.send_signal(signal.SIGINT)
            rest = b""
            while chunk := await process.stdout.receive_some():
                rest += chunk
            assert await process.wait() == 0
        finally:
            process.kill()  # no-op after a clean exit
            await process.wait()
            await process.stdout.aclose()
        assert rest == b""
    assert processes_using(work) == []
