"""Sharding end to end on the real apiserver: `trio-controller-sharder` (child process)
and shards built from runtime/sharding.py around a plain Controller
(tests/e2e/sharded_widgets.py, child processes) over the example's Widget CRD.

Each test has a ControllerRing of its own (resources: example.com widgets, controlled:
core configmaps) and a namespace of its own, where the shard Leases live and the Widgets
are made. A ledger file gets one line per reconcile (shard, key, start, end): no Widget
may be reconciled by two shards at overlapping times."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, suppress
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import yaml

from trio_controller import (
    CONFIGMAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    LEASES,
    Api,
    Client,
    Conflict,
    Resource,
    load_config,
)
from trio_controller.programs.sharder.crd import CONTROLLER_RINGS
from trio_controller.runtime.sharding import LABEL_STATE, drain_label, shard_label
from trio_controller.testing import EnvInfo, OperatorProcess, run_operator
from trio_controller.testing import eventually as poll

HERE = Path(__file__).resolve().parent
SHARD_PROGRAM = HERE / "sharded_widgets.py"
CRD_FILE = HERE.parents[1] / "examples" / "widget-crd.yaml"
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
eventually = partial(poll, every=0.2)  # (these checks list the ring's Widgets)


# -- processes -----------------------------------------------------------------------------


class Cluster:
    """One test's ring, namespace, ledger, sharders and shards."""

    def __init__(self, envtest: EnvInfo, client: Client, namespace: str, tmp: Path) -> None:
        self.envtest = envtest
        self.client = client
        self.namespace = namespace
        self.ring = f"ring-{uuid.uuid4().hex[:8]}"
        self.ledger = tmp / "ledger.jsonl"
        self.ledger.touch()
        self.stack = AsyncExitStack()
        self.shards: dict[str, OperatorProcess] = {}
        self.sharders: list[OperatorProcess] = []
        self.widgets = Api(client, WIDGETS, namespace)
        self.label = shard_label(self.ring)

    async def __aenter__(self) -> Cluster:
        """The processes started inside `async with cluster:` are killed at its end (in
        the test's own task: their nurseries must close where they opened)."""
        await self.stack.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stack.__aexit__(*exc_info)

    async def sharder(self, *extra: str, kubeconfig: Path | None = None) -> OperatorProcess:
        proc = await self.stack.enter_async_context(
            run_operator(
                "trio_controller.programs.sharder",
                "--kubeconfig", kubeconfig or self.envtest.admin_kubeconfig,
                "--namespace", self.namespace,
                "--leader-elect-resource-name", f"sharder-{self.ring}",
                *extra,
            )
        )  # fmt: skip
        self.sharders.append(proc)
        return proc

    async def shard(self, name: str, *extra: str) -> OperatorProcess:
        proc = await self.stack.enter_async_context(
            run_operator(
                SHARD_PROGRAM,
                "--kubeconfig", self.envtest.admin_kubeconfig,
                "--namespace", self.namespace,
                "--ledger", self.ledger,
                "--controller-ring", self.ring,
                "--shard-name", name,
                "--shard-lease-namespace", self.namespace,
                *extra,
            )
        )  # fmt: skip
        self.shards[name] = proc
        return proc

    async def make_ring(self) -> None:
        await eventually(self._crd_established, "the ControllerRing CRD", within=30)
        ring = {
            "metadata": {"name": self.ring},
            "spec": {
                "resources": [
                    {
                        "group": "example.com",
                        "resource": "widgets",
                        "controlledResources": [{"group": "", "resource": "configmaps"}],
                    }
                ]
            },
        }
        await Api(self.client, CONTROLLER_RINGS).create(ring)

    async def _crd_established(self) -> bool:
        try:
            crd = await Api(self.client, CUSTOM_RESOURCE_DEFINITIONS).get(
                "controllerrings.sharding.timebertt.dev"
            )
        except Exception:
            return False
        conditions = (crd.get("status") or {}).get("conditions") or ()
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    async def create_widgets(self, names: list[str]) -> None:
        async with trio.open_nursery() as nursery:
            limiter = trio.CapacityLimiter(10)
            for name in names:

                async def create(name: str = name) -> None:
                    async with limiter:
                        await self.widgets.create({"metadata": {"name": name}, "spec": {}})

                nursery.start_soon(create)

    async def placement(self) -> dict[str, str]:
        """Widget name → the shard its label names ("" if none)."""
        listed = await self.widgets.list()
        return {
            w["metadata"]["name"]: (w["metadata"].get("labels") or {}).get(self.label, "")
            for w in listed
        }

    async def configmap_shards(self) -> dict[str, str]:
        listed = await Api(self.client, CONFIGMAPS, self.namespace).list()
        return {
            c["metadata"]["name"]: (c["metadata"].get("labels") or {}).get(self.label, "")
            for c in listed
            if c["metadata"]["name"].endswith("-config")
        }

    def reconciles(self) -> list[dict[str, Any]]:
        lines = self.ledger.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def by_key(self) -> dict[str, list[dict[str, Any]]]:
        found: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for entry in self.reconciles():
            found[entry["key"].split("/", 1)[1]].append(entry)
        return found

    def assert_no_overlapping_reconciles(self) -> None:
        """No Widget reconciled by two shards at overlapping times."""
        for key, entries in self.by_key().items():
            for i, a in enumerate(entries):
                for b in entries[i + 1 :]:
                    if a["shard"] != b["shard"]:
                        disjoint = a["end"] <= b["start"] or b["end"] <= a["start"]
                        assert disjoint, f"{key}: {a} overlaps {b}"


@pytest.fixture
async def client(envtest: EnvInfo) -> AsyncIterator[Client]:
    async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
        crds = Api(client, CUSTOM_RESOURCE_DEFINITIONS)
        with suppress(Conflict):
            await crds.create(yaml.safe_load(CRD_FILE.read_text()))

        async def established() -> bool:
            crd = await crds.get("widgets.example.com")
            conditions = (crd.get("status") or {}).get("conditions") or []
            return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

        await eventually(established, "widgets.example.com to be established")
        yield client


@pytest.fixture
async def cluster(
    envtest: EnvInfo, client: Client, namespace: str, tmp_path: Path
) -> AsyncIterator[Cluster]:
    made = Cluster(envtest, client, namespace, tmp_path)
    try:
        yield made
    finally:
        with suppress(Exception):
            await Api(client, CONTROLLER_RINGS).delete(made.ring)
        # Widgets of this test stay labelled with its ring: harmless to others.


def live(cluster: Cluster) -> set[str]:
    return {name for name, proc in cluster.shards.items() if proc.returncode is None}


# -- the tests -----------------------------------------------------------------------------


async def test_three_shards_share_sixty_widgets_then_one_dies_and_a_fourth_joins(
    cluster: Cluster,
) -> None:
    with trio.fail_after(240):
        async with cluster:
            await cluster.sharder("--sync-period", "30")
            await cluster.make_ring()
            for name in ("r1", "r2", "r3"):
                await cluster.shard(name)
            names = [f"w-{i:02d}" for i in range(60)]
            started = trio.current_time()
            await cluster.create_widgets(names)

            # Every Widget and its ConfigMap on a live shard, reconciled by it, within 30 s.
            async def all_assigned_and_reconciled() -> dict[str, str] | None:
                placed = await cluster.placement()
                if len(placed) < 60 or not set(placed.values()) <= {"r1", "r2", "r3"}:
                    return None
                configmaps = await cluster.configmap_shards()
                if any(configmaps.get(f"{n}-config") != shard for n, shard in placed.items()):
                    return None
                seen = cluster.by_key()
                if any(not seen.get(n) for n in names):
                    return None
                return placed

            placed = await eventually(all_assigned_and_reconciled, "assignment", within=30)
            assert trio.current_time() - started < 30
            measured = {"60 Widgets assigned and reconciled": trio.current_time() - started}
            for name, entries in cluster.by_key().items():
                assert {e["shard"] for e in entries} == {placed[name]}, name
            counts = Counter(placed.values())
            assert max(counts.values()) <= 2 * 60 / 3, counts

            # A Widget made in the steady state: assigned and reconciled within 3 s.
            made = trio.current_time()
            await cluster.create_widgets(["late"])

            async def late_reconciled() -> bool:
                return bool(cluster.by_key().get("late"))

            await eventually(late_reconciled, "the late Widget's reconcile", within=3)
            assert trio.current_time() - made < 3
            measured["a new Widget assigned and reconciled"] = trio.current_time() - made

            # kill -9 of r1: within 25 s its Widgets carry r2 or r3.
            r1_widgets = [n for n, s in (await cluster.placement()).items() if s == "r1"]
            assert r1_widgets
            cluster.shards["r1"].process.kill()
            killed = trio.current_time()

            async def r1_moved() -> bool:
                placed = await cluster.placement()
                return all(placed[n] in {"r2", "r3"} for n in r1_widgets)

            await eventually(r1_moved, "r1's Widgets to move", within=25)
            assert trio.current_time() - killed < 25
            measured["r1's Widgets moved after kill -9"] = trio.current_time() - killed
            lease = await Api(cluster.client, LEASES, cluster.namespace).get("r1")
            assert lease["metadata"]["labels"][LABEL_STATE] == "dead"
            assert lease["spec"]["holderIdentity"] == "shardlease-controller"

            # A spec change after the kill is reconciled by the new shard.
            moved = r1_widgets[0]
            new_shard = (await cluster.placement())[moved]
            await cluster.widgets.patch(moved, {"spec": {"message": "after the kill"}})

            async def changed_reconciled_by_new_shard() -> bool:
                return any(
                    e["shard"] == new_shard and e["generation"] == 2
                    for e in cluster.by_key().get(moved, [])
                )

            await eventually(changed_reconciled_by_new_shard, "the new shard's reconcile")

            # r4 joins: Widgets move to it through the drain label.
            before = await cluster.placement()
            joined = trio.current_time()
            await cluster.shard("r4")

            async def settled_with_r4() -> dict[str, str] | None:
                placed = await cluster.placement()
                on_r4 = [n for n, s in placed.items() if s == "r4"]
                if not on_r4 or any(not s for s in placed.values()):
                    return None
                if any(
                    not any(e["shard"] == "r4" for e in cluster.by_key().get(n, [])) for n in on_r4
                ):
                    return None
                return placed

            after = await eventually(settled_with_r4, "Widgets to move to r4", within=40)
            settled = trio.current_time()
            moved_to_r4 = [n for n in after if after[n] == "r4" and before.get(n) not in ("", "r4")]
            assert 0 < len(moved_to_r4) < len(after)
            assert all(before[n] == after[n] for n in after if after[n] != "r4")  # nothing else
            for name in moved_to_r4:
                entries = cluster.by_key()[name]
                old = [e for e in entries if e["shard"] == before[name]]
                new = [e for e in entries if e["shard"] == "r4"]
                assert max(e["end"] for e in old) <= min(e["start"] for e in new), name
            drains = "\n".join(cluster.shards["r2"].stderr + cluster.shards["r3"].stderr)
            assert "drained Widget" in drains
            cluster.assert_no_overlapping_reconciles()
            assert "Traceback" not in "\n".join(cluster.sharders[0].stderr)
            measured["r4 started until settled"] = settled - joined
            moves = f"{len(moved_to_r4)} of {len(after)} Widgets moved to r4"
            print("; ".join(f"{k}: {v:.1f}s" for k, v in measured.items()), moves)


async def test_widgets_made_while_no_shard_is_ready_are_assigned_once_one_is(
    cluster: Cluster,
) -> None:
    with trio.fail_after(90):
        async with cluster:
            await cluster.sharder()
            await cluster.make_ring()
            await cluster.create_widgets(["early-1", "early-2", "early-3"])
            await trio.sleep(2)
            assert set((await cluster.placement()).values()) == {""}
            await cluster.shard("solo")

            async def assigned() -> bool:
                return set((await cluster.placement()).values()) == {"solo"}

            await eventually(assigned, "assignment to the first ready shard", within=20)
            ring = await Api(cluster.client, CONTROLLER_RINGS).get(cluster.ring)

            async def status() -> bool:
                got = (await Api(cluster.client, CONTROLLER_RINGS).get(cluster.ring))["status"]
                ready = [c for c in got.get("conditions", []) if c["type"] == "Ready"]
                return got.get("availableShards") == 1 and ready and ready[0]["status"] == "True"

            await eventually(status, "the ring's status")
            assert ring["metadata"]["name"] == cluster.ring


async def test_a_shard_that_dies_mid_drain_has_its_widgets_moved_without_it(
    cluster: Cluster,
) -> None:
    with trio.fail_after(150):
        async with cluster:
            await cluster.sharder("--sync-period", "30")
            await cluster.make_ring()
            await cluster.shard("stuck", "--no-drain")
            names = [f"d-{i:02d}" for i in range(20)]
            await cluster.create_widgets(names)

            async def all_on_stuck() -> bool:
                return set((await cluster.placement()).values()) == {"stuck"}

            await eventually(all_on_stuck, "assignment to the only shard")
            await cluster.shard("helper")
            drain = drain_label(cluster.ring)

            async def draining() -> list[str]:
                listed = await cluster.widgets.list()
                return [w["metadata"]["name"] for w in listed
                        if drain in (w["metadata"].get("labels") or {})]  # fmt: skip

            drained = await eventually(draining, "drain labels on the stuck shard's Widgets")
            await trio.sleep(2)
            assert (await cluster.placement())[drained[0]] == "stuck"  # never acknowledged
            cluster.shards["stuck"].process.kill()

            async def moved_without_drain() -> bool:
                listed = await cluster.widgets.list()
                return all(
                    (w["metadata"].get("labels") or {}).get(cluster.label) == "helper"
                    and drain not in (w["metadata"].get("labels") or {})
                    for w in listed
                )

            await eventually(moved_without_drain, "the drained Widgets to move", within=30)
            cluster.assert_no_overlapping_reconciles()


async def test_when_the_active_sharder_is_killed_the_other_replica_takes_over(
    cluster: Cluster,
) -> None:
    with trio.fail_after(120):
        async with cluster:
            probes = ("--health-probe-bind-address", "127.0.0.1:0")
            metrics = ("--metrics-bind-address", "127.0.0.1:0")
            first = await cluster.sharder(*probes, *metrics)
            await cluster.make_ring()
            await first.wait_for_stderr("Sharder running", within=30)
            second = await cluster.sharder(*probes)
            await second.wait_for_stderr("/healthz")
            for replica in (first, second):  # the leader and its standby: live and ready
                (line,) = [x for x in replica.stderr if "Serving" in x and "/healthz" in x]
                url = line.rsplit(" on ", 1)[1]
                async with httpx.AsyncClient(base_url=url) as http:
                    assert (await http.get("/healthz")).status_code == 200
                    assert (await http.get("/readyz")).status_code == 200
            await cluster.shard("r1")
            await cluster.create_widgets(["before"])

            async def assigned(name: str) -> bool:
                return (await cluster.placement()).get(name) == "r1"

            await eventually(lambda: assigned("before"), "the first Widget's assignment")
            (line,) = [x for x in first.stderr if "Serving" in x and "/metrics" in x]
            async with httpx.AsyncClient(base_url=line.rsplit(" on ", 1)[1]) as http:
                scraped = (await http.get("/metrics")).text
            ring = f'controllerring="{cluster.ring}"'
            widgets = f'{{{ring},group="example.com",resource="widgets"}} '
            written = sum(
                float(line.rsplit(" ", 1)[1])
                for line in scraped.splitlines()
                if line.startswith(("controller_sharding_assignments_total",
                                    "controller_sharding_movements_total"))
                and widgets in line
            )  # fmt: skip
            # By the watch or by the first resync; the ring takes every Widget of the
            # cluster, earlier tests' too.
            assert written >= 1.0, scraped
            assert f'controller_sharding_shard_state{{{ring},shard="r1",state="ready"}} 1.0' in (
                scraped
            )
            first.process.kill()
            killed = trio.current_time()
            await cluster.create_widgets(["after"])
            await eventually(
                lambda: assigned("after"), "assignment by the other sharder", within=25
            )
            assert trio.current_time() - killed < 15 + 10
            print(f"a new Widget assigned {trio.current_time() - killed:.1f}s after kill -9 "
                  "of the active sharder")  # fmt: skip
            assert any("Sharder running" in line for line in second.stderr)


# -- the sharder with only the RBAC docs/sharding.md gives it ------------------------------

DOCS = HERE.parents[1] / "docs" / "sharding.md"


def documented_rbac(namespace: str, suffix: str) -> list[dict[str, Any]]:
    """The RBAC objects of docs/sharding.md's yaml block, in `namespace`, names suffixed."""
    text = DOCS.read_text()
    block = text.split("### The RBAC the sharder needs", 1)[1].split("```yaml", 1)[1]
    objects = [o for o in yaml.safe_load_all(block.split("```", 1)[0]) if o]
    for obj in objects:
        obj["metadata"]["name"] += f"-{suffix}"
        if "namespace" in obj["metadata"]:
            obj["metadata"]["namespace"] = namespace
    return objects


async def test_the_sharder_works_with_only_the_rbac_the_docs_give_it(
    cluster: Cluster, tmp_path: Path
) -> None:
    from trio_controller.testing.info import kubeconfig

    client, ns = cluster.client, cluster.namespace
    suffix = uuid.uuid4().hex[:6]
    account = f"sharder-{suffix}"
    rbac = documented_rbac(ns, suffix)
    assert {o["kind"] for o in rbac} == {"ClusterRole", "Role"}
    with trio.fail_after(120):
        await client.request_json(
            "POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": account}}
        )
        subject = {"kind": "ServiceAccount", "name": account, "namespace": ns}
        for obj in rbac:
            kind = obj["kind"]
            where = f"/namespaces/{ns}" if kind == "Role" else ""
            base = f"/apis/rbac.authorization.k8s.io/v1{where}"
            await client.request_json("POST", f"{base}/{kind.lower()}s", obj)
            binding = {
                "metadata": {"name": obj["metadata"]["name"]},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind,
                            "name": obj["metadata"]["name"]},
                "subjects": [subject],
            }  # fmt: skip
            await client.request_json("POST", f"{base}/{kind.lower()}bindings", binding)
        token = await client.request_json(
            "POST",
            f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": 600}},
        )  # fmt: skip
        path = tmp_path / "sharder.kubeconfig"
        path.write_text(
            kubeconfig(
                cluster.envtest.server,
                cluster.envtest.ca_file,
                account,
                {"token": token["status"]["token"]},
            )
        )
        async with cluster:
            sharder = await cluster.sharder(kubeconfig=path)
            await cluster.make_ring()
            await cluster.shard("r1")
            await cluster.shard("r2")
            names = [f"x-{i}" for i in range(10)]
            await cluster.create_widgets(names)

            async def assigned() -> dict[str, str] | None:
                placed = await cluster.placement()
                ok = len(placed) == 10 and set(placed.values()) <= {"r1", "r2"}
                return placed if ok else None

            placed = await eventually(assigned, "assignment by the limited sharder", within=40)
            cluster.shards["r1"].process.kill()

            async def moved() -> bool:
                return set((await cluster.placement()).values()) == {"r2"}

            if "r1" in placed.values():
                await eventually(moved, "r1's Widgets to move", within=30)
            assert sharder.returncode is None, sharder
            assert "Forbidden" not in "\n".join(sharder.stderr), sharder

            # A ring whose resources the sharder may not watch: its status says so, the
            # sharder goes on with the other ring.
            rings = Api(client, CONTROLLER_RINGS)
            other = f"{cluster.ring}-secrets"
            await rings.create(
                {"metadata": {"name": other},
                 "spec": {"resources": [{"group": "", "resource": "secrets"}]}}
            )  # fmt: skip
            try:

                async def failed() -> str | None:
                    status = (await rings.get(other)).get("status") or {}
                    for c in status.get("conditions") or ():
                        if c["type"] == "Ready" and c["status"] == "False":
                            return str(c["reason"]) + ": " + str(c["message"])
                    return None

                why = await eventually(failed, "the other ring's Ready=False", within=40)
                reason, _, message = why.partition(": ")
                assert reason in ("AssignmentFailed", "ResyncFailed"), why
                assert "Forbidden" in message, why
                await cluster.create_widgets(["y-1"])

                async def assigned_y() -> bool:
                    return (await cluster.placement()).get("y-1") == "r2"

                await eventually(assigned_y, "a new Widget's assignment", within=10)
                assert sharder.returncode is None, sharder
            finally:
                await rings.delete(other)


async def test_a_shard_that_loses_its_lease_stops_reconciling(cluster: Cluster) -> None:
    from trio_controller.programs.sharder.leasekeeper import micro_time

    with trio.fail_after(90):
        async with cluster:
            shard = await cluster.shard("r1")
            leases = Api(cluster.client, LEASES, cluster.namespace)

            async def holding() -> dict[str, Any] | None:
                with suppress(Exception):
                    lease = await leases.get("r1")
                    if lease["spec"].get("holderIdentity") == "r1":
                        return lease
                return None

            lease = await eventually(holding, "the shard's lease")
            assert lease["metadata"]["labels"] == {"alpha.sharding.timebertt.dev/controllerring":
                                                   cluster.ring}  # fmt: skip
            assert lease["spec"]["leaseDurationSeconds"] == 15
            await cluster.widgets.create(
                {"metadata": {"name": "mine", "labels": {cluster.label: "r1"}}, "spec": {}}
            )

            async def reconciled() -> bool:
                return bool(cluster.by_key().get("mine"))

            await eventually(reconciled, "the shard's first reconcile")
            # Someone else holds the Lease now: the shard cannot renew it.
            stolen = await leases.get("r1")
            stolen["spec"].update(
                holderIdentity="thief", leaseDurationSeconds=60, renewTime=micro_time(time.time())
            )
            await leases.replace(stolen)
            stolen_at = time.time()
            assert await shard.wait(within=20) != 0
            assert any("failed to renew lease" in line for line in shard.stderr), shard
            await cluster.widgets.patch("mine", {"spec": {"message": "after the loss"}})
            await trio.sleep(1)
            assert all(e["start"] < stolen_at + 12 for e in cluster.by_key()["mine"])


async def test_shards_started_together_share_existing_widgets_without_passing_them_on(
    cluster: Cluster,
) -> None:
    with trio.fail_after(90):
        async with cluster:
            await cluster.sharder()
            await cluster.make_ring()
            names = [f"s-{i:02d}" for i in range(30)]
            await cluster.create_widgets(names)
            for name in ("r1", "r2", "r3"):
                await cluster.shard(name)

            async def all_reconciled() -> dict[str, str] | None:
                placed = await cluster.placement()
                if not all(placed.values()) or any(not cluster.by_key().get(n) for n in names):
                    return None
                return placed

            placed = await eventually(all_reconciled, "the Widgets' reconciles", within=30)
            assert set(placed.values()) == {"r1", "r2", "r3"}
            for name, entries in cluster.by_key().items():
                assert {e["shard"] for e in entries} == {placed[name]}, name
