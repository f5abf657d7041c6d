"""examples/widget_operator.py end to end, run as a child process against a real
kube-apiserver and etcd (testenv): the CRD made when absent, each Widget's ConfigMap,
status, finalizer and events, repairs, deletion, --namespace, SIGTERM, error exits.

testenv runs no kube-controller-manager, so no garbage collector: a deleted Widget's
ConfigMap stays, and a Widget with our finalizer stays until the operator removes it.
The module deletes the CRD at the end (finalizers stripped first), so other tests that
bring their own widgets.example.com find none of ours."""

from __future__ import annotations

import re
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml

from trio_controller import (
    CONFIGMAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    EVENTS,
    Api,
    Client,
    Conflict,
    NotFound,
    Resource,
    load_config,
)
from trio_controller.testing import EnvInfo, OperatorProcess, eventually, run_operator

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "widget_operator.py"
CRD_FILE = EXAMPLE.with_name("widget-crd.yaml")
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
CRD = "widgets.example.com"
FINALIZER = "example.com/cleanup"
LINE = re.compile(r"Reconciled Widget [a-z0-9-]+/[a-z0-9-]+")


def line(namespace: str, name: str) -> str:
    return f"Reconciled Widget {namespace}/{name}"


# -- the CRD, synchronously (module set-up and tear-down) ---------------------------------


def _http(envtest: EnvInfo) -> httpx.Client:
    return httpx.Client(
        base_url=envtest.server, verify=envtest.ssl_context(client_cert=True), timeout=10
    )


def delete_widget_crd(envtest: EnvInfo) -> None:
    """Delete widgets.example.com and wait until it is gone. Widgets still holding a
    finalizer would block the CRD's deletion: their finalizers are stripped first."""
    path = f"/apis/{CUSTOM_RESOURCE_DEFINITIONS.group}/v1/customresourcedefinitions/{CRD}"
    with _http(envtest) as http:
        listed = http.get("/apis/example.com/v1/widgets")
        for item in listed.json().get("items", []) if listed.status_code == 200 else []:
            meta = item["metadata"]
            if meta.get("finalizers"):
                http.patch(
                    f"/apis/example.com/v1/namespaces/{meta['namespace']}/widgets/{meta['name']}",
                    json={"metadata": {"finalizers": None}},
                    headers={"Content-Type": "application/merge-patch+json"},
                )
        http.delete(path)
        deadline = time.monotonic() + 60
        while http.get(path).status_code != 404:
            assert time.monotonic() < deadline, f"{CRD} was not deleted"
            time.sleep(0.1)


async def install_widget_crd(client: Client) -> None:
    """The example's CRD, created unless present, Established."""
    crds = Api(client, CUSTOM_RESOURCE_DEFINITIONS)
    with suppress(Conflict):
        await crds.create(yaml.safe_load(CRD_FILE.read_text()))

    async def established() -> bool:
        conditions = ((await crds.get(CRD)).get("status") or {}).get("conditions") or []
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    await eventually(established, f"{CRD} to be established")


@pytest.fixture(scope="module", autouse=True)
def _no_widget_crd_afterwards(envtest: EnvInfo) -> Iterator[None]:
    yield
    delete_widget_crd(envtest)


# -- running the example -----------------------------------------------------------------


def check_output(proc: OperatorProcess) -> None:
    """stdout carries `Reconciled Widget <ns>/<name>` lines and nothing else; no
    traceback on stderr."""
    assert proc.stdout, proc
    assert all(LINE.fullmatch(text) for text in proc.stdout), proc
    assert "Traceback" not in "\n".join(proc.stderr), proc


@pytest.fixture
async def client(envtest: EnvInfo) -> AsyncIterator[Client]:
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        yield client


async def get_or_none(api: Api, name: str) -> dict[str, Any] | None:
    try:
        return await api.get(name)
    except NotFound:
        return None


async def reasons(client: Client, namespace: str, name: str) -> list[dict[str, Any]]:
    """Events about the Widget `name`."""
    listed = await Api(client, EVENTS, namespace).list()
    return [
        e
        for e in listed
        if e["regarding"].get("kind") == "Widget" and e["regarding"]["name"] == name
    ]


def widget(name: str, message: str = "hello", replicas: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"message": message, "replicas": replicas}}


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    (condition,) = [c for c in conditions if c["type"] == "Ready"]
    return condition


# -- the tests ---------------------------------------------------------------------------


async def test_the_crd_is_created_and_a_widget_gets_configmap_status_finalizer_event(
    envtest: EnvInfo, client: Client, namespace: str
) -> None:
    await trio.to_thread.run_sync(delete_widget_crd, envtest)
    kc = envtest.admin_kubeconfig
    async with run_operator(EXAMPLE, "--kubeconfig", kc, "--namespace", namespace) as op:
        await op.wait_for_stderr("Caches are synced", within=60)
        crd = await Api(client, CUSTOM_RESOURCE_DEFINITIONS).get(CRD)
        version = crd["spec"]["versions"][0]
        assert crd["spec"]["names"]["kind"] == "Widget" and crd["spec"]["scope"] == "Namespaced"
        assert version["subresources"] == {"status": {}}

        widgets = Api(client, WIDGETS, namespace)
        created = await widgets.create(widget("w1", "hello"))
        await op.wait_for_stdout(line(namespace, "w1"))
        # When the line is out, that reconcile's writes are done.
        cm = await Api(client, CONFIGMAPS, namespace).get("w1-config")
        assert cm["data"] == {"message": "hello"}
        assert cm["metadata"]["ownerReferences"] == [
            {
                "apiVersion": "example.com/v1",
                "kind": "Widget",
                "name": "w1",
                "uid": created["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        got = await widgets.get("w1")
        assert got["metadata"]["finalizers"] == [FINALIZER]
        assert got["status"]["observedGeneration"] == 1
        condition = ready(got)
        assert condition["status"] == "True" and condition["observedGeneration"] == 1
        managers = {
            (m["manager"], m["operation"], m.get("subresource"))
            for m in got["metadata"]["managedFields"]
        }
        assert ("widget-operator", "Apply", "status") in managers

        events = await eventually(
            lambda: reasons(client, namespace, "w1"), "a Reconciled event", within=15
        )
        (event,) = events
        assert event["reason"] == "Reconciled" and event["type"] == "Normal"
        assert event["regarding"]["uid"] == created["metadata"]["uid"]
        assert event["reportingController"] == "example.com/widget-operator"

        # The generation predicate: a label leaves the generation as it is, so no reconcile.
        before = (await widgets.get("w1"))["status"]
        count = op.stdout.count(line(namespace, "w1"))
        await widgets.patch("w1", {"metadata": {"labels": {"touched": "yes"}}})
        await trio.sleep(2.0)
        assert op.stdout.count(line(namespace, "w1")) == count
        # A reconcile with nothing to do (an owned ConfigMap's annotation changed) prints
        # its line but records no event and writes no status.
        configmaps = Api(client, CONFIGMAPS, namespace)
        await configmaps.patch("w1-config", {"metadata": {"annotations": {"touched": "yes"}}})
        await op.wait_for_stdout(line(namespace, "w1"), count=count + 1)
        await trio.sleep(1.0)  # an event would have been sent by now
        assert (await widgets.get("w1"))["status"] == before
        (again,) = await reasons(client, namespace, "w1")
        assert again["metadata"]["name"] == event["metadata"]["name"]
        assert "series" not in again

        await widgets.delete("w1")
        await eventually(lambda: _gone(widgets, "w1"), "w1 to go")
        assert await op.terminate() == 0
    check_output(op)
    assert "Created CustomResourceDefinition widgets.example.com" in "\n".join(op.stderr)


async def _gone(api: Api, name: str) -> bool:
    return await get_or_none(api, name) is None


async def test_a_present_crd_is_used_and_the_configmap_is_repaired_and_follows_the_spec(
    envtest: EnvInfo, client: Client, namespace: str
) -> None:
    await install_widget_crd(client)  # present before the operator starts
    kc = envtest.admin_kubeconfig
    args = ("--kubeconfig", kc, "--namespace", namespace, "--workers", "2")
    async with run_operator(EXAMPLE, *args) as op:
        await op.wait_for_stderr("Caches are synced", within=60)
        assert "Created CustomResourceDefinition" not in "\n".join(op.stderr)
        widgets = Api(client, WIDGETS, namespace)
        configmaps = Api(client, CONFIGMAPS, namespace)
        await widgets.create(widget("w2", "first"))
        await op.wait_for_stdout(line(namespace, "w2"))

        async def message() -> str | None:
            cm = await get_or_none(configmaps, "w2-config")
            return None if cm is None else (cm.get("data") or {}).get("message")

        # Deleted: made again.
        old_uid = (await configmaps.get("w2-config"))["metadata"]["uid"]
        await configmaps.delete("w2-config")

        async def recreated() -> bool:
            cm = await get_or_none(configmaps, "w2-config")
            return cm is not None and cm["metadata"]["uid"] != old_uid

        await eventually(recreated, "the ConfigMap to be made again")
        assert await message() == "first"

        # Edited: restored.
        edited = await configmaps.patch("w2-config", {"data": {"message": "vandalised"}})
        rv = edited["metadata"]["resourceVersion"]

        async def restored() -> bool:
            cm = await configmaps.get("w2-config")
            return cm["data"] == {"message": "first"} and cm["metadata"]["resourceVersion"] != rv

        await eventually(restored, "data.message to be restored")

        # spec.message changed: followed, with observedGeneration 2.
        await widgets.patch("w2", {"spec": {"message": "second"}})

        async def followed() -> bool:
            got = await widgets.get("w2")
            status = got.get("status") or {}
            return await message() == "second" and status.get("observedGeneration") == 2

        await eventually(followed, "the ConfigMap to follow spec.message")
        assert ready(await widgets.get("w2"))["status"] == "True"
        events = await reasons(client, namespace, "w2")
        assert events and {e["reason"] for e in events} == {"Reconciled"}

        await widgets.delete("w2")
        await eventually(lambda: _gone(widgets, "w2"), "w2 to go")
        assert await op.terminate() == 0
    check_output(op)


async def test_deleting_a_widget_emits_cleanup_and_the_finalizer_lets_it_go(
    envtest: EnvInfo, client: Client, namespace: str
) -> None:
    kc = envtest.admin_kubeconfig
    async with run_operator(EXAMPLE, "--kubeconfig", kc, "-n", namespace) as op:
        widgets = Api(client, WIDGETS, namespace)
        await op.wait_for_stderr("Caches are synced", within=60)
        await widgets.create(widget("w3"))
        await op.wait_for_stdout(line(namespace, "w3"))
        assert (await widgets.get("w3"))["metadata"]["finalizers"] == [FINALIZER]
        count = op.stdout.count(line(namespace, "w3"))
        await widgets.delete("w3")
        await eventually(lambda: _gone(widgets, "w3"), "the Widget to be deleted")
        # The reconcile that ran the cleanup prints its line too (once its finalizer
        # removal has returned: the Widget may be seen gone a moment before).
        await op.wait_for_stdout(line(namespace, "w3"), count=count + 1, within=5)

        async def cleanup_event() -> list[dict[str, Any]]:
            return [e for e in await reasons(client, namespace, "w3") if e["reason"] == "Cleanup"]

        (event,) = await eventually(cleanup_event, "a Cleanup event")
        assert event["type"] == "Normal"
        # No garbage collector in testenv: the ConfigMap is still there, not recreated.
        assert await get_or_none(Api(client, CONFIGMAPS, namespace), "w3-config") is not None
        assert await op.terminate() == 0
    check_output(op)


async def test_namespace_limits_everything_and_all_namespaces_sees_both(
    envtest: EnvInfo, client: Client, namespace: str
) -> None:
    other = f"test-{uuid.uuid4().hex[:10]}"
    await Api(client, Resource("", "v1", "namespaces", "Namespace", namespaced=False)).create(
        {"metadata": {"name": other}}
    )
    kc = envtest.admin_kubeconfig
    async with run_operator(EXAMPLE, "--kubeconfig", kc, "--namespace", namespace) as op:
        await op.wait_for_stderr("Caches are synced", within=60)
        await Api(client, WIDGETS, other).create(widget("elsewhere"))
        await Api(client, WIDGETS, namespace).create(widget("here"))
        await op.wait_for_stdout(line(namespace, "here"))
        await trio.sleep(1.0)  # time enough to have touched the other one, if it would
        assert line(other, "elsewhere") not in op.stdout
        assert await get_or_none(Api(client, CONFIGMAPS, other), "elsewhere-config") is None
        untouched = await Api(client, WIDGETS, other).get("elsewhere")
        assert "finalizers" not in untouched["metadata"] and "status" not in untouched
        assert await op.terminate() == 0
    check_output(op)

    async with run_operator(EXAMPLE, "--kubeconfig", kc, "--all-namespaces") as op:
        await op.wait_for_stdout(line(other, "elsewhere"), within=60)
        await op.wait_for_stdout(line(namespace, "here"))
        assert await get_or_none(Api(client, CONFIGMAPS, other), "elsewhere-config") is not None
        for ns, name in ((other, "elsewhere"), (namespace, "here")):
            await Api(client, WIDGETS, ns).delete(name)
            await eventually(lambda ns=ns, name=name: _gone(Api(client, WIDGETS, ns), name), name)
        assert await op.terminate() == 0
    check_output(op)


async def test_a_broken_set_up_prints_one_error_line_and_exits_1(tmp_path: Path) -> None:
    async with run_operator(EXAMPLE, "--kubeconfig", tmp_path / "missing.yaml") as op:
        assert await op.wait(within=30) == 1
    assert op.stdout == []
    assert len(op.stderr) == 1 and op.stderr[0].startswith("error: "), op
    assert "missing.yaml" in op.stderr[0]


# -- two replicas with leader election -------------------------------------------------

LEASE = "widget-operator"
LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD = 4.0, 3.0, 1.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def replica_args(envtest: EnvInfo, namespace: str, ledger: Path) -> tuple[str | Path, ...]:
    return (
        "--kubeconfig", envtest.admin_kubeconfig, "-n", namespace,
        "--leader-elect", "--leader-elect-resource-name", LEASE,
        "--leader-elect-resource-namespace", namespace,
        "--leader-elect-lease-duration", str(LEASE_DURATION),
        "--leader-elect-renew-deadline", str(RENEW_DEADLINE),
        "--leader-elect-retry-period", str(RETRY_PERIOD),
        "--metrics-bind-address", "127.0.0.1:0", "--health-probe-bind-address", "127.0.0.1:0",
        "--ledger", ledger,
    )  # fmt: skip


async def served_at(proc: OperatorProcess, what: str) -> str:
    """The base URL the operator logged for `what` (`/metrics` or `/healthz`)."""
    pattern = re.compile(rf"Serving (?:\S+, )*{what}(?:, \S+)* on (http://\S+)")
    await proc.wait_for_stderr("Serving ")
    with trio.fail_after(10):
        while True:
            for text in proc.stderr:
                if match := pattern.search(text):
                    return match.group(1)
            await trio.sleep(0.05)


async def scrape(http: httpx.AsyncClient, url: str) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    response = await http.get(url + "/metrics")
    assert response.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return samples


def value(samples: Samples, metric: str, /, **labels: str) -> float:
    return samples[metric, frozenset(labels.items())]


def check_ledger(ledger: Path) -> dict[str, list[tuple[int, float, float]]]:
    """Reconciles per key, as (pid, start, end); fails if two processes reconciled the
    same key at overlapping times."""
    per_key: dict[str, list[tuple[int, float, float]]] = {}
    for text in ledger.read_text().splitlines():
        pid, key, start, end = text.split()
        per_key.setdefault(key, []).append((int(pid), float(start), float(end)))
    for key, runs in per_key.items():
        for i, (pid_a, start_a, end_a) in enumerate(runs):
            for pid_b, start_b, end_b in runs[i + 1 :]:
                apart = end_a <= start_b or end_b <= start_a
                assert pid_a == pid_b or apart, f"{key} reconciled by two replicas: {runs}"
    return per_key


async def message_is(client: Client, namespace: str, name: str, message: str) -> bool:
    cm = await get_or_none(Api(client, CONFIGMAPS, namespace), f"{name}-config")
    return cm is not None and cm.get("data", {}).get("message") == message


async def test_two_replicas_only_the_leader_reconciles_and_sigterm_hands_over_at_once(
    envtest: EnvInfo, client: Client, namespace: str, tmp_path: Path
) -> None:
    await install_widget_crd(client)
    ledger = tmp_path / "ledger"
    args = replica_args(envtest, namespace, ledger)
    widgets = Api(client, WIDGETS, namespace)
    await widgets.create(widget("fa", "one"))
    async with (
        run_operator(EXAMPLE, *args) as first,
        httpx.AsyncClient(timeout=10) as http,
    ):
        await first.wait_for_stdout(line(namespace, "fa"), within=60)
        async with run_operator(EXAMPLE, *args) as second:
            # Warm standby: the follower syncs its caches, is ready, and does not lead.
            await second.wait_for_stderr("waiting to lead", within=60)
            probes = await served_at(second, "/readyz")
            ready_answer = await http.get(probes + "/readyz")
            assert ready_answer.status_code == 200, ready_answer.text
            follower = await scrape(http, await served_at(second, "/metrics"))
            assert value(follower, "leader_election_master_status", name=LEASE) == 0
            leader = await scrape(http, await served_at(first, "/metrics"))
            assert value(leader, "leader_election_master_status", name=LEASE) == 1
            total = "controller_runtime_reconcile_total"
            assert value(leader, total, controller="widget", result="success") >= 1
            assert value(leader, "workqueue_adds_total", name="widget") >= 1
            assert value(leader, "controller_runtime_active_workers", controller="widget") >= 0

            await widgets.create(widget("fb", "two"))
            await first.wait_for_stdout(line(namespace, "fb"))
            await trio.sleep(3 * RETRY_PERIOD)  # several retries: the follower keeps off
            assert second.stdout == []

            first.process.send_signal(signal.SIGTERM)
            signalled = trio.current_time()
            await widgets.patch("fa", {"spec": {"message": "changed"}})
            await eventually(
                lambda: message_is(client, namespace, "fa", "changed"),
                "the follower to take over",
                within=RETRY_PERIOD + 3,
            )
            took_over = trio.current_time() - signalled
            assert await first.wait() == 0
            # (the line comes after the reconcile's last write, the ConfigMap's before it)
            await second.wait_for_stdout(line(namespace, "fa"), within=10)
            after = await scrape(http, await served_at(second, "/metrics"))
            assert value(after, "leader_election_master_status", name=LEASE) == 1
            assert await second.terminate() == 0
    assert took_over <= RETRY_PERIOD + 3
    check_output(first)
    check_output(second)
    runs = check_ledger(ledger)
    assert {pid for pid, _, _ in runs[f"{namespace}/fa"]} == {
        first.process.pid,
        second.process.pid,
    }


async def test_a_killed_leader_is_replaced_once_its_lease_expires(
    envtest: EnvInfo, client: Client, namespace: str, tmp_path: Path
) -> None:
    await install_widget_crd(client)
    ledger = tmp_path / "ledger"
    args = replica_args(envtest, namespace, ledger)
    widgets = Api(client, WIDGETS, namespace)
    for name in ("ka", "kb", "kc"):
        await widgets.create(widget(name, "one"))
    async with run_operator(EXAMPLE, *args) as first:
        for name in ("ka", "kb", "kc"):
            await first.wait_for_stdout(line(namespace, name), within=60)
        async with run_operator(EXAMPLE, *args) as second:
            await second.wait_for_stderr("waiting to lead", within=60)
            await trio.sleep(2 * RETRY_PERIOD)
            assert second.stdout == []
            first.process.kill()
            killed = trio.current_time()
            for name in ("ka", "kb", "kc"):
                await widgets.patch(name, {"spec": {"message": "after the crash"}})
            for name in ("ka", "kb", "kc"):
                await eventually(
                    lambda name=name: message_is(client, namespace, name, "after the crash"),
                    f"the follower to reconcile {name}",
                    within=LEASE_DURATION + RETRY_PERIOD + 5,
                )
            assert trio.current_time() - killed <= LEASE_DURATION + RETRY_PERIOD + 5
            assert await second.terminate() == 0
    check_output(second)
    check_ledger(ledger)
