"""Leader election on a real Lease in the real apiserver: one leader at a time, fast
hand-over on release, take-over after a crashed leader's lease expires, and a leader
that cannot renew stops leading."""

from __future__ import annotations

import uuid

import pytest
import trio
from controller_process import run_controller

from trio_controller import Client, load_config
from trio_controller.runtime.leaderelection import LeaderElector, LeadershipLost
from trio_controller.testing import EnvInfo, PodHelper

FAST = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}


def elector(client: Client, namespace: str, name: str, who: str, **kw: object) -> LeaderElector:
    return LeaderElector(client, namespace=namespace, name=name, identity=who, **{**FAST, **kw})  # type: ignore[arg-type]


async def lease(pods: PodHelper, namespace: str, name: str) -> dict:
    response = await pods.client.get(
        f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
    )
    response.raise_for_status()
    spec: dict = response.json()["spec"]
    return spec


async def test_one_leader_at_a_time_and_a_quick_hand_over_on_release(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    leading: list[str] = []
    a_may_stop, a_leads = trio.Event(), trio.Event()
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        a, b = elector(client, namespace, name, "a"), elector(client, namespace, name, "b")

        async def as_a() -> None:
            leading.append("a")
            a_leads.set()
            await a_may_stop.wait()

        async def as_b() -> None:
            leading.append("b")

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.run, as_a)
                await a_leads.wait()
                nursery.start_soon(b.run, as_b)
                await trio.sleep(4)  # longer than the lease: a keeps renewing it
                assert leading == ["a"]
                assert (await lease(pods, namespace, name))["holderIdentity"] == "a"
                released_at = trio.current_time()
                a_may_stop.set()
        assert leading == ["a", "b"]
        assert trio.current_time() - released_at < 3.5
    spec = await lease(pods, namespace, name)
    assert spec["leaseTransitions"] == 1
    assert spec["holderIdentity"] == ""  # b released it too


async def test_a_crashed_leaders_lease_is_taken_over_after_it_expires(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        crashed = elector(client, namespace, name, "crashed", release_on_cancel=False)
        assert await crashed.try_acquire_or_renew()
        successor = elector(client, namespace, name, "successor")
        started = trio.current_time()
        with trio.fail_after(20):
            await successor.acquire()
        waited = trio.current_time() - started
    assert waited >= FAST["lease_duration"]
    assert (await lease(pods, namespace, name))["holderIdentity"] == "successor"


async def test_a_leader_that_cannot_renew_stops_leading(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    cancelled = False
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        leader = elector(client, namespace, name, "leader")

        async def work() -> None:
            nonlocal cancelled
            path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"
            current = (await pods.client.get(path)).json()
            current["spec"]["holderIdentity"] = "intruder"  # someone else wrote it
            (await pods.client.put(path, json=current)).raise_for_status()
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                cancelled = True
                raise

        with trio.fail_after(20), pytest.raises(LeadershipLost):
            await leader.run(work)
    assert cancelled
    assert (await lease(pods, namespace, name))["holderIdentity"] == "intruder"


def test_timings_must_leave_room_for_retries() -> None:
    with pytest.raises(ValueError, match="renew_deadline"):
        LeaderElector(None, namespace="x", name="y", renew_deadline=2.0, retry_period=2.0)  # type: ignore[arg-type]


async def test_two_cli_replicas_take_turns_on_the_lease(
    envtest: EnvInfo, pods: PodHelper, namespace: str
) -> None:
    await pods.create_pod(namespace, "probe")
    args = (
        "--kubeconfig", envtest.admin_kubeconfig, "-n", namespace, "--leader-elect",
        "--leader-elect-lease-duration", "3", "--leader-elect-renew-deadline", "2",
        "--leader-elect-retry-period", "0.5",
    )  # fmt: skip
    line = "Sync/Add/Update for Pod probe"
    async with run_controller(*args) as first:
        await first.wait_stdout(line)
        async with run_controller(*args) as second:
            await second.wait_stderr("attempting to acquire leader lease")
            await trio.sleep(4)  # longer than the lease: the first keeps it
            assert second.stdout == []
            assert await first.terminate() == 0
            await second.wait_stdout(line, within=10)
            assert await second.terminate() == 0
    spec = await lease(pods, namespace, "trio-controller-pods")
    assert spec["leaseTransitions"] == 1
