"""The pod controller end to end: the `trio-controller` CLI against a real kube-apiserver
and etcd (testenv), with real TLS and real authentication."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from controller_process import run_controller

from trio_controller.testing import EnvInfo, EnvTest, PodHelper, open_pod_helper


def sync(name: str) -> str:
    return f"Sync/Add/Update for Pod {name}"


def gone(namespace: str, name: str) -> str:
    return f"Pod {namespace}/{name} does not exist anymore"


async def test_the_seed_scenario_prints_what_client_gos_example_prints(
    envtest: EnvInfo, pods: PodHelper
) -> None:
    await pods.delete_all_pods("default")
    other = f"other-{uuid.uuid4().hex[:8]}"
    await pods.create_namespace(other)
    await pods.create_pod(other, "elsewhere")
    await pods.create_pod("default", "busybox")
    await pods.create_pod("default", "curl-666-6f68d49784-r2gln")

    # No --namespace: the kubeconfig context has none, so the controller watches default.
    async with run_controller("--kubeconfig", envtest.admin_kubeconfig) as ctl:
        await ctl.wait_stdout(sync("busybox"))
        await ctl.wait_stdout(sync("curl-666-6f68d49784-r2gln"))

        await pods.create_pod("default", "mypod")
        await ctl.wait_stdout(sync("mypod"))
        await pods.patch_pod("default", "mypod", {"metadata": {"labels": {"phase": "two"}}})
        await ctl.wait_stdout(sync("mypod"), count=2)
        await pods.delete_pod("default", "mypod")
        await ctl.wait_stdout(gone("default", "mypod"))

        assert await ctl.terminate() == 0
    assert sync("elsewhere") not in ctl.stdout
    assert set(ctl.stdout[:2]) == {sync("busybox"), sync("curl-666-6f68d49784-r2gln")}
    # Create and update give a Sync line each; the delete may first be seen as an
    # update (deletionTimestamp set), and a key re-added while a worker holds it is
    # handled again: client-go's example prints exactly the same.
    rest = ctl.stdout[2:]
    first_gone = rest.index(gone("default", "mypod"))
    assert rest[:2] == [sync("mypod"), sync("mypod")]
    assert set(rest[:first_gone]) == {sync("mypod")}
    assert set(rest[first_gone:]) == {gone("default", "mypod")}
    logs = "\n".join(ctl.stderr)
    for step in (
        "Starting Pod controller",
        "Waiting for caches to sync",
        "Caches are synced",
        "Stopping Pod controller",
    ):
        assert step in logs
    assert "Traceback" not in logs
    await pods.delete_all_pods("default")


async def test_all_namespaces_sees_pods_everywhere(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    await pods.create_pod(namespace, "everywhere-a")
    async with run_controller("--kubeconfig", envtest.admin_kubeconfig, "--all-namespaces") as ctl:
        await ctl.wait_stdout(sync("everywhere-a"))
        await pods.delete_pod(namespace, "everywhere-a")
        await ctl.wait_stdout(gone(namespace, "everywhere-a"))
        assert await ctl.terminate() == 0


async def test_sigterm_drains_in_flight_keys_and_exits_zero(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    for i in range(50):
        await pods.create_pod(namespace, f"drain-{i}")
    async with run_controller(
        "--kubeconfig", envtest.admin_kubeconfig, "-n", namespace, "--workers", "4"
    ) as ctl:
        await ctl.wait_stderr("Caches are synced")
        assert await ctl.terminate(within=10) == 0
    # Whatever was handed to a worker was finished: every printed line is whole.
    assert all(line.startswith("Sync/Add/Update for Pod drain-") for line in ctl.stdout)
    assert ctl.stderr[-1].endswith("Stopping Pod controller") or any(
        "Stopping Pod controller" in line for line in ctl.stderr
    )


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "compressed-cache"])
async def test_the_cache_snapshot_reports_pods_deleted_while_the_controller_was_down(
    envtest: EnvInfo, pods: PodHelper, namespace: str, tmp_path: Path, compress: bool
) -> None:
    snapshot = tmp_path / "cache.snapshot"
    await pods.create_pod(namespace, "stays")
    await pods.create_pod(namespace, "mypod")
    args: tuple[str | Path, ...] = (
        "--kubeconfig", envtest.admin_kubeconfig, "-n", namespace, "--cache-snapshot", snapshot,
    )  # fmt: skip
    args += ("--compress-cache",) if compress else ("--no-compress-cache",)
    async with run_controller(*args) as ctl:
        await ctl.wait_stdout(sync("mypod"))
        await ctl.wait_stdout(sync("stays"))
        assert await ctl.terminate() == 0
    assert snapshot.exists()

    await pods.delete_pod(namespace, "mypod")
    async with run_controller(*args) as ctl:
        await ctl.wait_stdout(gone(namespace, "mypod"))
        await ctl.wait_stdout(sync("stays"))
        assert await ctl.terminate() == 0


async def test_the_controller_survives_an_apiserver_restart(private_envtest: EnvTest) -> None:
    env = private_envtest
    async with open_pod_helper(env.info) as pods:
        await pods.create_pod("default", "before")
        async with run_controller("--kubeconfig", env.admin_kubeconfig) as ctl:
            await ctl.wait_stdout(sync("before"))
            await env.restart_apiserver()
            await pods.create_pod("default", "after")
            await ctl.wait_stdout(sync("after"), within=60)
            await pods.delete_pod("default", "before")
            await ctl.wait_stdout(gone("default", "before"), within=60)
            assert await ctl.terminate() == 0
        assert "Traceback" not in "\n".join(ctl.stderr)
