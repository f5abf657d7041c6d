"""Issue 16's contract with the real example, end to end: `trio-controller-sharder
--namespace NS` (two replicas) and `python examples/widget_operator.py --all-namespaces
--controller-ring widget-operator --shard-name rN --shard-lease-namespace NS` as child
processes, on a control plane of the test's own (the ring takes every Widget of the
cluster, so no other test's Widgets may be there).

One control plane, one sharder pair and one set of shards go through the contract's
bullets in order, as a cluster would: 60 Widgets shared by r1-r3, a Widget made in the
steady state, kill -9 of r1, r4 joining, kill -9 of the active sharder. Each shard's
`--ledger` gets `<pid> <key> <start> <end>` per reconcile: no Widget may be reconciled by
two shards at overlapping times, and a Widget's reconciles must come from the shard its
label names. (Without `--controller-ring` the example's own e2e tests apply:
test_widget_operator_e2e.py.)"""

from __future__ import annotations

import sys
import time
import uuid
from collections import Counter
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

import trio
from test_widget_operator_e2e import install_widget_crd

from trio_controller import (
    CONFIGMAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    NAMESPACES,
    Api,
    Client,
    NotFound,
    Resource,
    load_config,
)
from trio_controller.programs.sharder.crd import CONTROLLER_RINGS
from trio_controller.runtime.sharding import drain_label, shard_label
from trio_controller.testing import EnvInfo, OperatorProcess, open_envtest, run_operator
from trio_controller.testing import eventually as poll

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "widget_operator.py"
SHARDER = Path(sys.executable).with_name("trio-controller-sharder")
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
RING = "widget-operator"
LABEL = shard_label(RING)  # shard.alpha.sharding.timebertt.dev/widget-operator
DRAIN = drain_label(RING)
LEASE_NAMESPACE = "sharding"
WIDGET_NAMESPACES = ("team-a", "team-b")  # --all-namespaces: Widgets in two of them
LEASE_DURATION = 15.0  # the sharder's leader election, its default


eventually = partial(poll, within=30.0)


class Cluster:
    """The sharders, the shards, their ledger, and what the apiserver shows."""

    def __init__(self, client: Client, kubeconfig: Path, ledger: Path) -> None:
        self.client = client
        self.kubeconfig = kubeconfig
        self.ledger = ledger
        self.stack = AsyncExitStack()
        self.shards: dict[str, OperatorProcess] = {}
        self.sharders: list[OperatorProcess] = []

    async def sharder(self) -> OperatorProcess:
        proc = await self.stack.enter_async_context(
            run_operator(SHARDER, "--namespace", LEASE_NAMESPACE, kubeconfig=self.kubeconfig)
        )
        self.sharders.append(proc)
        return proc

    async def shard(self, name: str) -> OperatorProcess:
        proc = await self.stack.enter_async_context(
            run_operator(
                EXAMPLE, "--kubeconfig", self.kubeconfig, "--all-namespaces",
                "--controller-ring", RING, "--shard-name", name,
                "--shard-lease-namespace", LEASE_NAMESPACE, "--ledger", self.ledger,
            )
        )  # fmt: skip
        self.shards[name] = proc
        return proc

    def live(self) -> set[str]:
        return {name for name, proc in self.shards.items() if proc.returncode is None}

    def shard_of_pid(self) -> dict[int, str]:
        return {proc.process.pid: name for name, proc in self.shards.items()}

    def reconciles(self) -> dict[str, list[tuple[str, float, float]]]:
        """key -> [(shard, start, end)] from the ledger, in the order written."""
        names = self.shard_of_pid()
        found: dict[str, list[tuple[str, float, float]]] = {}
        for text in self.ledger.read_text().splitlines():
            pid, key, start, end = text.split()
            found.setdefault(key, []).append((names[int(pid)], float(start), float(end)))
        return found

    async def placement(self, resource: Resource = WIDGETS) -> dict[str, str]:
        """`namespace/name` -> the shard its label names ("" if none)."""
        placed = {}
        for namespace in WIDGET_NAMESPACES:
            for obj in await Api(self.client, resource, namespace).list():
                meta = obj["metadata"]
                key = f"{meta['namespace']}/{meta['name']}"
                placed[key] = (meta.get("labels") or {}).get(LABEL, "")
        return placed

    async def configmap_placement(self) -> dict[str, str]:
        """Widget key -> the shard its ConfigMap's label names (only existing ones)."""
        placed = await self.placement(CONFIGMAPS)
        return {k.removesuffix("-config"): s for k, s in placed.items() if k.endswith("-config")}

    async def create(self, keys: list[str], message: str = "hello") -> None:
        limiter = trio.CapacityLimiter(10)
        async with trio.open_nursery() as nursery:
            for key in keys:

                async def one(key: str = key) -> None:
                    namespace, name = key.split("/")
                    async with limiter:
                        await Api(self.client, WIDGETS, namespace).create(
                            {"metadata": {"name": name}, "spec": {"message": message}}
                        )

                nursery.start_soon(one)

    async def widget(self, key: str) -> dict[str, Any]:
        namespace, name = key.split("/")
        return await Api(self.client, WIDGETS, namespace).get(name)

    async def configmap_message(self, key: str) -> str | None:
        namespace, name = key.split("/")
        try:
            cm = await Api(self.client, CONFIGMAPS, namespace).get(f"{name}-config")
        except NotFound:
            return None
        return str((cm.get("data") or {}).get("message"))

    async def report(self, path: Path) -> None:
        """What the processes said and the apiserver shows, in a file (its path printed)."""
        with trio.move_on_after(10):
            text = [f"widgets: {await self.placement()}",
                    f"configmaps: {await self.configmap_placement()}"]  # fmt: skip
        text.append(f"reconciles: {self.reconciles()}")
        for name, proc in [*self.shards.items(), *enumerate(self.sharders)]:
            text.append(f"== {name} (exit {proc.returncode}){proc}")
        await trio.Path(path).write_text("\n".join(text))
        print(f"report: {path}")

    def assert_no_overlapping_reconciles(self) -> None:
        for key, runs in self.reconciles().items():
            for i, (a, start_a, end_a) in enumerate(runs):
                for b, start_b, end_b in runs[i + 1 :]:
                    if a != b:
                        apart = end_a <= start_b or end_b <= start_a
                        assert apart, f"{key} reconciled by {a} and {b} at once: {runs}"

    def assert_clean_output(self) -> None:
        """Only `Reconciled Widget` lines on the shards' stdout; no traceback anywhere."""
        for name, proc in self.shards.items():
            assert all(line.startswith("Reconciled Widget ") for line in proc.stdout), (name, proc)
        for proc in [*self.shards.values(), *self.sharders]:
            assert "Traceback" not in "\n".join(proc.stderr), proc


def fails_over(sharder: OperatorProcess) -> bool:
    return any("Sharder running" in line for line in sharder.stderr)


async def test_the_widget_example_sharded_by_the_sharder_keeps_the_contract(
    tmp_path: Path,
) -> None:
    measured: dict[str, float] = {}
    with trio.fail_after(300):
        async with open_envtest(work_dir=tmp_path / "envtest") as env:
            kubeconfig = env.admin_kubeconfig
            async with (
                Client(load_config(str(kubeconfig))) as client,
                AsyncExitStack() as stack,
            ):
                namespaces = Api(client, NAMESPACES)
                for ns in (LEASE_NAMESPACE, *WIDGET_NAMESPACES):
                    await namespaces.create({"metadata": {"name": ns}})
                cluster = Cluster(client, kubeconfig, tmp_path / "ledger")
                cluster.ledger.touch()
                await stack.enter_async_context(cluster.stack)
                try:
                    await run_the_contract(cluster, measured)
                finally:
                    await cluster.report(tmp_path / "report.txt")
    print("; ".join(f"{k}: {v:.1f}s" for k, v in measured.items()))


async def run_the_contract(cluster: Cluster, measured: dict[str, float]) -> None:
    client = cluster.client
    # Two sharder replicas; the ControllerRing as soon as its CRD is there (before the
    # Widget CRD exists: the shards create that one).
    for _ in range(2):
        await cluster.sharder()
    crds = Api(client, CUSTOM_RESOURCE_DEFINITIONS)

    async def crd_established(name: str) -> bool:
        try:
            crd = await crds.get(name)
        except NotFound:
            return False
        conditions = (crd.get("status") or {}).get("conditions") or ()
        return any(c["type"] == "Established" and c["status"] == "True" for c in conditions)

    ring_crd = f"{CONTROLLER_RINGS.plural}.{CONTROLLER_RINGS.group}"
    await eventually(lambda: crd_established(ring_crd), "the ControllerRing CRD")
    await Api(client, CONTROLLER_RINGS).create(
        {
            "apiVersion": "sharding.timebertt.dev/v1alpha1",
            "kind": "ControllerRing",
            "metadata": {"name": RING},
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
    )

    # -- r1, r2, r3 with 60 Widgets --------------------------------------------------------
    started = trio.current_time()
    for name in ("r1", "r2", "r3"):
        await cluster.shard(name)
    await eventually(lambda: crd_established("widgets.example.com"), "the Widget CRD", within=60)
    keys = [f"{WIDGET_NAMESPACES[i % 2]}/w-{i:02d}" for i in range(60)]
    made = trio.current_time()
    await cluster.create(keys)

    async def all_assigned_and_reconciled() -> dict[str, str] | None:
        placed = await cluster.placement()
        if set(placed) != set(keys) or not set(placed.values()) <= {"r1", "r2", "r3"}:
            return None
        measured.setdefault("60 Widgets labelled", trio.current_time() - made)
        seen = cluster.reconciles()
        if any(not seen.get(key) for key in keys):
            return None
        measured.setdefault("60 Widgets reconciled", trio.current_time() - made)
        if await cluster.configmap_placement() != placed:
            return None
        return placed

    placed = await eventually(all_assigned_and_reconciled, "60 Widgets on r1-r3", within=30)
    measured["60 Widgets and ConfigMaps labelled and reconciled"] = trio.current_time() - made
    measured["... counted from the shards' start"] = trio.current_time() - started
    for key, runs in cluster.reconciles().items():
        assert {shard for shard, _, _ in runs} == {placed[key]}, (key, runs)
    for key in keys:  # the "Reconciled Widget" line, from that shard
        assert f"Reconciled Widget {key}" in cluster.shards[placed[key]].stdout, key
    counts = Counter(placed.values())
    assert set(counts) == {"r1", "r2", "r3"} and max(counts.values()) <= 2 * 60 / 3, counts
    for key in keys[:5]:
        assert await cluster.configmap_message(key) == "hello"

    # -- a Widget made in the steady state: assigned and reconciled within 3 s --------------
    await steady_state_widget(cluster, "team-a/late-1", measured)

    # -- kill -9 of r1: within 25 s its Widgets carry r2 or r3 ------------------------------
    on_r1 = sorted(k for k, s in (await cluster.placement()).items() if s == "r1")
    assert on_r1
    cluster.shards["r1"].process.kill()
    killed = trio.current_time()
    killed_wall = time.time()
    # A spec change right after the kill, and one once the Widgets moved.
    early, late = on_r1[0], on_r1[-1]
    await patch_message(cluster, early, "changed right after the kill")

    async def r1_moved() -> dict[str, str] | None:
        placed = await cluster.placement()
        return placed if all(placed[k] in {"r2", "r3"} for k in on_r1) else None

    placed = await eventually(r1_moved, "r1's Widgets to move to r2 or r3", within=25)
    measured["r1's Widgets moved after kill -9"] = trio.current_time() - killed
    await patch_message(cluster, late, "changed after the move")
    for key, message in ((early, "changed right after the kill"), (late, "changed after the move")):
        new_shard = placed[key]

        async def reconciled_by_new_shard(key: str = key, message: str = message) -> bool:
            widget = await cluster.widget(key)
            generation = widget["metadata"]["generation"]
            observed = (widget.get("status") or {}).get("observedGeneration")
            return observed == generation and await cluster.configmap_message(key) == message

        await eventually(reconciled_by_new_shard, f"{key}'s change to be reconciled", within=20)
        runs = cluster.reconciles()[key]
        after = [shard for shard, start, _ in runs if start > killed_wall]
        assert after and set(after) == {new_shard}, (key, runs)

    # Their ConfigMaps moved with them.
    async def configmaps_follow() -> bool:
        cms = await cluster.configmap_placement()
        placed = await cluster.placement()
        return all(cms.get(k) == placed[k] for k in placed)

    await eventually(configmaps_follow, "the ConfigMaps to follow their Widgets", within=10)

    # -- r4 joins: Widgets move to it through the drain label --------------------------------
    before = await cluster.placement()
    joined = trio.current_time()
    await cluster.shard("r4")

    async def settled_with_r4() -> dict[str, str] | None:
        placed = await cluster.placement()
        on_r4 = [k for k, s in placed.items() if s == "r4"]
        if not on_r4 or any(s not in {"r2", "r3", "r4"} for s in placed.values()):
            return None
        seen = cluster.reconciles()
        if any(not any(s == "r4" for s, _, _ in seen.get(k, ())) for k in on_r4):
            return None
        return placed

    after = await eventually(settled_with_r4, "Widgets to move to r4", within=40)
    measured["r4 started until its Widgets were reconciled"] = trio.current_time() - joined
    moved = [k for k, s in after.items() if s == "r4"]
    assert 0 < len(moved) < len(after)
    assert all(before[k] == after[k] for k in after if after[k] != "r4")  # nothing else moved
    runs = cluster.reconciles()
    for key in moved:
        old = before[key]
        old_runs = [r for r in runs[key] if r[0] == old]
        new_runs = [r for r in runs[key] if r[0] == "r4"]
        assert max(end for _, _, end in old_runs) <= min(start for _, start, _ in new_runs), (
            key,
            runs[key],
        )
        # The old shard handed it back: it acknowledged the drain label.
        assert any(f"drained Widget {key}" in line for line in cluster.shards[old].stderr), key
        widget = await cluster.widget(key)
        assert DRAIN not in (widget["metadata"].get("labels") or {})
    await eventually(configmaps_follow, "the ConfigMaps to follow to r4", within=10)

    # -- the steady state again, with four shards --------------------------------------------
    await steady_state_widget(cluster, "team-b/late-2", measured)

    # -- kill -9 of the active sharder: the other takes over -------------------------------
    active = [s for s in cluster.sharders if fails_over(s)]
    assert len(active) == 1, [str(s) for s in cluster.sharders]
    (standby,) = [s for s in cluster.sharders if s is not active[0]]
    active[0].process.kill()
    killed = trio.current_time()
    await cluster.create(["team-a/after-sharder"])

    async def assigned() -> str:
        return (await cluster.placement()).get("team-a/after-sharder", "")

    shard = await eventually(assigned, "a Widget's assignment by the other sharder",
                             within=LEASE_DURATION + 10)  # fmt: skip
    measured["a new Widget assigned after kill -9 of the active sharder"] = (
        trio.current_time() - killed
    )
    assert fails_over(standby)
    await cluster.shards[shard].wait_for_stdout("Reconciled Widget team-a/after-sharder", within=10)

    cluster.assert_no_overlapping_reconciles()
    cluster.assert_clean_output()
    assert cluster.live() == {"r2", "r3", "r4"}


async def patch_message(cluster: Cluster, key: str, message: str) -> None:
    namespace, name = key.split("/")
    await Api(cluster.client, WIDGETS, namespace).patch(name, {"spec": {"message": message}})


async def steady_state_widget(cluster: Cluster, key: str, measured: dict[str, float]) -> None:
    """A new Widget is assigned and reconciled (by its shard) within 3 s."""
    made = trio.current_time()
    await cluster.create([key])

    async def reconciled() -> str | None:
        shard = (await cluster.placement()).get(key)
        runs = cluster.reconciles().get(key)
        if not shard or not runs:
            return None
        assert {s for s, _, _ in runs} == {shard}, (key, runs)
        return shard

    shard = await eventually(reconciled, f"{key} to be assigned and reconciled", within=3)
    measured[f"{key} assigned and reconciled"] = trio.current_time() - made
    assert f"Reconciled Widget {key}" in cluster.shards[shard].stdout


# -- a shard and the ConfigMaps its cache does not hold ------------------------------------


async def test_a_shard_takes_up_configmaps_its_cache_does_not_hold_without_a_retry_loop(
    envtest: EnvInfo, namespace: str, tmp_path: Path
) -> None:
    """A shard caches only ConfigMaps labelled for it; the sharder labels a new or moving
    one a moment later. A Widget whose ConfigMap exists unlabelled (here: no sharder at
    all, the Widgets labelled by hand) is dealt with from the apiserver's copy at once,
    not by creating it again until the cache catches up."""
    ring = f"ring-{uuid.uuid4().hex[:8]}"
    label = shard_label(ring)
    with trio.fail_after(90):
        async with Client(load_config(str(envtest.admin_kubeconfig))) as client:
            await install_widget_crd(client)
            configmaps = Api(client, CONFIGMAPS, namespace)
            await configmaps.create({"metadata": {"name": "a-config"}, "data": {"message": "x"}})
            foreign = {"apiVersion": "apps/v1", "kind": "Deployment", "name": "d", "uid": "d1",
                       "controller": True}  # fmt: skip
            await configmaps.create(
                {
                    "metadata": {"name": "b-config", "ownerReferences": [foreign]},
                    "data": {"message": "theirs"},
                }
            )
            widgets = Api(client, WIDGETS, namespace)
            for name in ("a", "b"):
                await widgets.create(
                    {"metadata": {"name": name, "labels": {label: "r1"}},
                     "spec": {"message": "hello"}}
                )  # fmt: skip
            async with run_operator(
                EXAMPLE, "--kubeconfig", envtest.admin_kubeconfig,
                "--namespace", namespace, "--controller-ring", ring, "--shard-name", "r1",
                "--shard-lease-namespace", namespace,
            ) as shard:  # fmt: skip

                def ready_condition(widget: dict[str, Any]) -> dict[str, Any]:
                    conditions = (widget.get("status") or {}).get("conditions") or ()
                    return next((c for c in conditions if c["type"] == "Ready"), {})

                async def settled() -> bool:
                    a, b = await widgets.get("a"), await widgets.get("b")
                    return (
                        ready_condition(a).get("status") == "True"
                        and ready_condition(b).get("reason") == "ConfigMapNotOwned"
                    )

                await eventually(settled, "a Ready and b ConfigMapNotOwned", within=30)
                taken = await configmaps.get("a-config")
                assert taken["data"] == {"message": "hello"}
                (ref,) = taken["metadata"]["ownerReferences"]
                assert (ref["kind"], ref["name"], ref["controller"]) == ("Widget", "a", True)
                assert (await configmaps.get("b-config"))["data"] == {"message": "theirs"}
                await trio.sleep(2)  # nothing left to do: no create retried meanwhile
                assert not any("requeued" in line for line in shard.stderr), shard
                for name in ("a", "b"):
                    lines = shard.stdout.count(f"Reconciled Widget {namespace}/{name}")
                    assert 1 <= lines <= 3, shard
