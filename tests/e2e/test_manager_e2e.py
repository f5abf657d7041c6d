"""The Manager in-process against a real kube-apiserver (testenv): warm standby, losing
the Lease, leader-only runnables, events drained on stop, probes, and conditions'
`wait_for` on a watch."""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from trio_controller import (
    CONFIGMAPS,
    EVENTS,
    NAMESPACES,
    RESOURCE_QUOTAS,
    Api,
    Client,
    ConditionTimeout,
    LeaderElection,
    LeaderElector,
    LeadershipLost,
    Manager,
    load_config,
    set_condition,
    wait_for,
)
from trio_controller.testing import EnvInfo, run_operator

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "guide.md"
FAST = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}


@pytest.fixture
async def client(envtest: EnvInfo) -> AsyncIterator[Client]:
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        yield client


def election(namespace: str, name: str, identity: str) -> LeaderElection:
    return LeaderElection(name=name, namespace=namespace, identity=identity, **FAST)


async def configmap(client: Client, namespace: str, name: str) -> None:
    await Api(client, CONFIGMAPS, namespace).create({"metadata": {"name": name}, "data": {}})


async def test_a_follower_syncs_its_caches_and_reconciles_only_after_winning_the_lease(
    client: Client, namespace: str
) -> None:
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    await configmap(client, namespace, "before")
    other = LeaderElector(client, namespace=namespace, name=lease, identity="other", **FAST)
    await other.acquire()
    seen: list[str] = []
    leader_started, both_seen, always_started = trio.Event(), trio.Event(), trio.Event()

    async def always(*, task_status: trio.TaskStatus[None]) -> None:
        always_started.set()
        task_status.started()
        await trio.sleep_forever()

    def reconcile(key: str) -> None:
        seen.append(key)
        if {f"{namespace}/before", f"{namespace}/meanwhile"} <= set(seen):
            both_seen.set()

    async def leader_only(*, task_status: trio.TaskStatus[None]) -> None:
        leader_started.set()
        task_status.started()
        await trio.sleep_forever()

    manager = Manager(client, namespace=namespace, leader_election=election(namespace, lease, "me"))
    manager.controller(CONFIGMAPS, reconcile)
    manager.add_runnable(leader_only, needs_leader=True)
    manager.add_runnable(always)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(manager.run)
            await manager.factory.wait_for_cache_sync()
            assert len(manager.factory.informers[0].store) == 1  # warm while following
            await configmap(client, namespace, "meanwhile")
            await trio.sleep(4 * FAST["retry_period"])
            assert seen == [] and not manager.is_leader and not leader_started.is_set()
            assert always_started.is_set()  # a runnable that needs no leader runs anyway
            await other.release()  # the Lease is free: the follower takes it at once
            with trio.fail_after(3 * FAST["retry_period"] + 2):
                await both_seen.wait()
            assert manager.is_leader and leader_started.is_set()
            manager.stop()
    # Released on stop: another candidate gets the Lease on its first try.
    assert await other.try_acquire_or_renew()


async def test_losing_the_lease_cancels_the_workers_at_once_and_run_raises(
    client: Client, namespace: str
) -> None:
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    await configmap(client, namespace, "slow")
    reconciling, cancelled = trio.Event(), trio.Event()

    async def reconcile(key: str) -> None:
        reconciling.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    manager = Manager(client, namespace=namespace, leader_election=election(namespace, lease, "me"))
    manager.controller(CONFIGMAPS, reconcile)
    path = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{lease}"

    async def steal() -> None:
        await reconciling.wait()
        # Someone takes the Lease over (as if ours had expired): renewing fails.
        current = await client.request_json("GET", path)
        current["spec"]["holderIdentity"] = "thief"
        await client.request_json("PUT", path, current)

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(steal)
            with pytest.raises(LeadershipLost, match=lease):
                await manager.run()
    assert cancelled.is_set()


async def test_stopping_sends_the_events_still_waiting(client: Client, namespace: str) -> None:
    await configmap(client, namespace, "evented")
    manager = Manager(client, namespace=namespace)
    recorder = manager.event_recorder("example.com/manager-test")
    store = manager.factory.informer(CONFIGMAPS, namespace=namespace).store
    done = trio.Event()

    def reconcile(key: str) -> None:
        obj = store.get(key)
        assert obj is not None
        for i in range(20):  # 20 different events, all queued at once
            recorder.event(obj, "Normal", f"Step{i}", f"step {i}", action="Test",
                           resource=CONFIGMAPS)  # fmt: skip
        done.set()

    manager.controller(CONFIGMAPS, reconcile)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(manager.run)
            await done.wait()
            manager.stop()  # at once: the events are still waiting in the recorder
    listed = await Api(client, EVENTS, namespace).list()
    reasons = {e["reason"] for e in listed if e["regarding"]["name"] == "evented"}
    assert reasons == {f"Step{i}" for i in range(20)}


async def test_probes_and_metrics_of_a_manager_follower(client: Client, namespace: str) -> None:
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    other = LeaderElector(client, namespace=namespace, name=lease, identity="other", **FAST)
    await other.acquire()
    manager = Manager(
        client,
        namespace=namespace,
        leader_election=election(namespace, lease, "me"),
        metrics_bind_address=("127.0.0.1", 0),
        health_probe_bind_address=("127.0.0.1", 0),
    )
    manager.controller(CONFIGMAPS, lambda key: None, name="Things")
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
            await nursery.start(manager.run)
            (listener,) = manager.listeners  # one address asked for both: one server
            metrics_at = probes_at = f"http://127.0.0.1:{listener.socket.getsockname()[1]}"
            await manager.factory.wait_for_cache_sync()
            ready = await http.get(probes_at + "/readyz?verbose")
            assert (ready.status_code, ready.text) == (
                200,
                "[+]ping ok\n[+]informer-sync ok\nreadyz check passed\n",
            )
            assert (await http.get(probes_at + "/healthz")).status_code == 200
            text = (await http.get(metrics_at + "/metrics")).text
            assert f'leader_election_master_status{{name="{lease}"}} 0.0' in text
            assert 'controller_runtime_active_workers{controller="things"} 0.0' in text
            assert 'workqueue_depth{name="things"}' in text
            manager.stop()


async def test_wait_for_sees_a_condition_set_later_on_a_watch(
    client: Client, namespace: str
) -> None:
    from trio_controller import CUSTOM_RESOURCE_DEFINITIONS  # noqa: F401 (public name)

    api = Api(client, CONFIGMAPS, namespace)

    async def later() -> None:
        await trio.sleep(0.5)
        # ConfigMaps have no status: a test of the object stands for a condition.
        await api.create({"metadata": {"name": "late"}, "data": {"ready": "no"}})
        await trio.sleep(0.3)
        await api.patch("late", {"data": {"ready": "yes"}}, type="merge")

    def ready(obj: dict[str, Any]) -> bool:
        return bool(obj.get("data", {}).get("ready") == "yes")

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(later)
            obj = await wait_for(api, "late", ready, timeout=10)
    assert obj["data"] == {"ready": "yes"} and obj["kind"] == "ConfigMap"
    with pytest.raises(ConditionTimeout, match="ConfigMap late"):
        await wait_for(api, "late", lambda obj: False, timeout=0.5)


async def test_wait_for_a_condition_type_on_a_status(client: Client, namespace: str) -> None:
    """`set_condition`'s output, written to a real object's status, is what `wait_for`
    waits for (a Namespace carries `status.conditions` we may write through /status)."""
    from trio_controller import NAMESPACES

    name = f"cond-{uuid.uuid4().hex[:6]}"
    namespaces = Api(client, NAMESPACES)
    await namespaces.create({"metadata": {"name": name}})

    async def later() -> None:
        await trio.sleep(0.3)
        obj = await namespaces.get(name)
        status = dict(obj.get("status") or {})
        assert set_condition(status, "NamespaceDeletionDiscoveryFailure", "True", "Test")
        await namespaces.replace_status({**obj, "status": status})

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(later)
            obj = await wait_for(namespaces, name, "NamespaceDeletionDiscoveryFailure", 10)
    (condition,) = obj["status"]["conditions"]
    assert condition["reason"] == "Test" and condition["lastTransitionTime"].endswith("Z")


async def test_the_generated_builtin_resources_are_what_the_apiserver_serves(
    client: Client,
) -> None:
    from trio_controller.api import builtin
    from trio_controller.api.resource import Resource

    served = set()
    crds = await client.request_json(
        "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    )
    custom = {crd["spec"]["group"] for crd in crds["items"]}  # other tests' CRDs
    lists = [("", "v1", await client.request_json("GET", "/api/v1"))]
    for group in (await client.request_json("GET", "/apis"))["groups"]:
        if group["name"] in custom:
            continue
        version = group["preferredVersion"]["version"]
        path = f"/apis/{group['name']}/{version}"
        lists.append((group["name"], version, await client.request_json("GET", path)))
    for group_name, version, listed in lists:
        for r in listed["resources"]:
            if "/" not in r["name"]:
                served.add(Resource(group_name, version, r["name"], r["kind"], r["namespaced"]))
    generated = {getattr(builtin, n) for n in builtin.__all__ if n != "KUBERNETES_VERSION"}
    assert generated == served
    info = await client.request_json("GET", "/version")
    assert info["gitVersion"] == builtin.KUBERNETES_VERSION


@pytest.mark.parametrize("how", ["graceful timeout", "second stop"])
async def test_a_stuck_reconcile_is_cancelled_by_the_graceful_timeout_or_a_second_stop(
    client: Client, namespace: str, how: str
) -> None:
    await configmap(client, namespace, "stuck")
    started, cancelled = trio.Event(), trio.Event()

    async def reconcile(key: str) -> None:
        started.set()
        try:
            await trio.sleep_forever()
        finally:
            cancelled.set()

    graceful = 0.5 if how == "graceful timeout" else None  # None: wait forever
    manager = Manager(client, namespace=namespace, graceful_shutdown_timeout=graceful)
    manager.controller(CONFIGMAPS, reconcile)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(manager.run)
            await started.wait()
            manager.stop()  # the worker holds its key: the drain waits for it
            await trio.sleep(0.2)
            assert manager.stopping and not cancelled.is_set()
            if how == "second stop":
                manager.stop()
            await cancelled.wait()


def guide_block(after: str, index: int = 0) -> str:
    """The `index`th Python block of docs/guide.md after the heading `after`."""
    text = GUIDE.read_text().split(after, 1)[1]
    return text.split("```python\n")[index + 1].split("```", 1)[0]


async def test_the_guides_whole_program_runs_as_written(
    envtest: EnvInfo, client: Client, tmp_path: Path
) -> None:
    program = tmp_path / "quota.py"
    await trio.Path(program).write_text(guide_block("## The whole program"))
    name = f"team-{uuid.uuid4().hex[:6]}"
    quotas = Api(client, RESOURCE_QUOTAS, name)
    async with run_operator(program, kubeconfig=envtest.admin_kubeconfig) as proc:
        await proc.wait_for_stderr("Caches are synced", within=60)
        labels = {"quota.example.com/tier": "small"}
        await Api(client, NAMESPACES).create({"metadata": {"name": name, "labels": labels}})
        await proc.wait_for_stdout(f"Set quota of {name}")
        quota = await quotas.get("tier-quota")
        assert quota["spec"]["hard"] == {"pods": "10"}
        assert quota["metadata"]["ownerReferences"][0]["name"] == name
        assert quota["metadata"]["ownerReferences"][0]["controller"] is True
        await quotas.delete("tier-quota")  # owned: restored
        await proc.wait_for_stdout(f"Set quota of {name}", count=2)
        assert (await quotas.get("tier-quota"))["spec"]["hard"] == {"pods": "10"}
        assert await proc.terminate() == 0
    assert proc.stdout.count(f"Set quota of {name}") == 2, proc
    assert "Traceback" not in proc.stderr_text, proc
    assert not [line for line in proc.stderr if line.startswith("W")], proc


async def test_the_guides_testing_section_runs_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Section 7's two tests, each with an envtest of its own, next to the whole program
    saved as quota.py (what they import and run)."""
    (tmp_path / "quota.py").write_text(guide_block("## The whole program"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    section = "## 7. Testing against a real apiserver"
    for index, test in enumerate(
        [
            "test_a_labelled_namespace_gets_its_quota",
            "test_the_program_sets_a_quota_and_exits_0_on_sigterm",
        ]
    ):
        scope: dict[str, Any] = {}
        exec(compile(guide_block(section, index), f"guide-section-7-{index}", "exec"), scope)
        with trio.fail_after(120):
            await scope[test]()
    sys.modules.pop("quota", None)


async def test_without_election_a_manager_from_the_flags_reports_itself_leader(
    client: Client, namespace: str
) -> None:
    import argparse

    from trio_controller.runtime.flags import add_flags

    parser = add_flags(argparse.ArgumentParser(), leader_elect_resource_name="solo")
    args = parser.parse_args(["-n", namespace, "--metrics-bind-address", "127.0.0.1:0"])
    manager = Manager.from_args(client, args)
    manager.controller(CONFIGMAPS, lambda key: None)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery, httpx.AsyncClient(timeout=10) as http:
            await nursery.start(manager.run)
            (listener,) = manager.listeners
            url = f"http://127.0.0.1:{listener.socket.getsockname()[1]}/metrics"
            await manager.factory.wait_for_cache_sync()
            text = (await http.get(url)).text
            assert 'leader_election_master_status{name="solo"} 1.0' in text
            manager.stop()
