"""The sharder's assignment webhook through a real kube-apiserver (testenv): a
MutatingWebhookConfiguration as docs/sharding.md gives it (objectSelector: no shard label;
failurePolicy Ignore) points at `trio-controller-sharder --webhook-bind-address ...`
(a child process) with testenv's CA; a shard Lease made by the test is the ring's one
ready shard. A new Widget carries the shard label in its create response itself; with
the webhook down the create still succeeds and the metadata watch assigns the Widget."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
import yaml
from controller_process import ControllerProcess

from trio_controller import CONFIGMAPS, LEASES, Api, Client, Resource, load_config
from trio_controller.programs.sharder.crd import CONTROLLER_RINGS
from trio_controller.programs.sharder.leasekeeper import micro_time
from trio_controller.programs.sharder.webhook import webhook_path
from trio_controller.runtime.sharding import LABEL_CONTROLLER_RING, shard_label
from trio_controller.testing import EnvTest, WebhookInstallOptions, open_envtest

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "examples" / "widget-crd.yaml"
WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
RING = "widget-operator"
LABEL = shard_label(RING)
NAMESPACE = "default"


def documented_configuration() -> dict[str, Any]:
    """docs/sharding.md's MutatingWebhookConfiguration (its service is rewritten to the
    local server by open_envtest)."""
    text = (ROOT / "docs" / "sharding.md").read_text()
    block = text.split("### The assignment webhook", 1)[1].split("```yaml", 1)[1]
    (configuration,) = [o for o in yaml.safe_load_all(block.split("```", 1)[0]) if o]
    assert isinstance(configuration, dict)
    return configuration


@asynccontextmanager
async def sharder_env(*, webhook: bool) -> AsyncIterator[tuple[EnvTest, Client, ControllerProcess]]:
    """testenv with the documented webhook configuration, the ring, and the sharder
    (serving the webhook where the configuration points, or not at all)."""
    options = WebhookInstallOptions(mutating=[documented_configuration()])
    async with open_envtest(
        crds=[yaml.safe_load(CRD_FILE.read_text())], webhook_install_options=options
    ) as env:
        assert options.cert_dir is not None
        served = ("--webhook-bind-address", options.bind_address,
                  "--webhook-cert-dir", str(options.cert_dir)) if webhook else ()  # fmt: skip
        command = [sys.executable, "-m", "trio_controller.programs.sharder",
                   "--kubeconfig", str(env.admin_kubeconfig), "-n", NAMESPACE,
                   "--settle", "0", *served]  # fmt: skip
        process = await trio.lowlevel.open_process(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        proc = ControllerProcess(process)
        config = load_config(kubeconfig=env.admin_kubeconfig)
        async with Client(config) as client, trio.open_nursery() as nursery:
            assert process.stdout is not None and process.stderr is not None
            nursery.start_soon(proc._read, process.stdout, proc.stdout)
            nursery.start_soon(proc._read, process.stderr, proc.stderr)
            nursery.start_soon(proc._wait_exit)
            try:
                await proc.wait_stderr("Sharder running", within=60)
                await make_ring_with_one_shard(client)
                yield env, client, proc
                assert await proc.terminate() == 0, proc
            finally:
                if process.returncode is None:
                    process.kill()
                nursery.cancel_scope.cancel()


async def make_ring_with_one_shard(client: Client) -> None:
    """The ring (widgets, controlled configmaps) and shard r1's Lease, held for 10
    minutes: r1 is ready for the whole test."""
    await Api(client, CONTROLLER_RINGS).create(
        {
            "metadata": {"name": RING},
            "spec": {"resources": [{"group": "example.com", "resource": "widgets",
                                    "controlledResources": [{"group": "",
                                                             "resource": "configmaps"}]}]},
        }
    )  # fmt: skip
    now = micro_time(time.time())
    await Api(client, LEASES, NAMESPACE).create(
        {
            "metadata": {"name": "r1", "labels": {LABEL_CONTROLLER_RING: RING}},
            "spec": {"holderIdentity": "r1", "leaseDurationSeconds": 600,
                     "acquireTime": now, "renewTime": now},
        }
    )  # fmt: skip

    async def available() -> bool:
        ring = await Api(client, CONTROLLER_RINGS).get(RING)
        return (ring.get("status") or {}).get("availableShards") == 1

    await eventually(available, "the ring's one available shard")


async def eventually(check: Callable[[], Awaitable[Any]], what: str, within: float = 30) -> Any:
    with trio.move_on_after(within):
        while True:
            if value := await check():
                return value
            await trio.sleep(0.2)
    raise AssertionError(f"timed out after {within:g}s waiting for {what}")


def label_of(obj: dict[str, Any]) -> str | None:
    labels: dict[str, str] = obj["metadata"].get("labels") or {}
    return labels.get(LABEL)


async def test_a_new_widget_carries_its_shard_label_in_the_create_response() -> None:
    with trio.fail_after(150):
        async with sharder_env(webhook=True) as (_, client, sharder):
            widgets = Api(client, WIDGETS, NAMESPACE)
            await sharder.wait_stderr(webhook_path(RING))

            async def created_labelled() -> dict[str, Any] | None:
                # The apiserver picks up a new webhook endpoint within moments.
                made = await widgets.create(
                    {"metadata": {"name": f"first-{uuid.uuid4().hex[:6]}"}, "spec": {}}
                )
                return made if label_of(made) else None

            await eventually(created_labelled, "a create answered by the webhook", within=20)
            started = trio.current_time()
            for i in range(5):  # from now on, every create
                made = await widgets.create({"metadata": {"name": f"w{i}"}, "spec": {}})
                assert label_of(made) == "r1", made["metadata"]
            print(f"a create through the webhook: {(trio.current_time() - started) / 5 * 1000:.1f} "
                  "ms, assigned in its response")  # fmt: skip
            owner = await widgets.get("w0")
            ref = {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w0",
                   "uid": owner["metadata"]["uid"], "controller": True}  # fmt: skip
            configmap = await Api(client, CONFIGMAPS, NAMESPACE).create(
                {"metadata": {"generateName": "w0-", "ownerReferences": [ref]}}
            )
            assert label_of(configmap) == "r1", configmap["metadata"]
            labelled = await widgets.create(
                {"metadata": {"name": "mine", "labels": {LABEL: "elsewhere"}}, "spec": {}}
            )
            assert label_of(labelled) == "elsewhere"  # never relabelled by the webhook


async def test_with_the_webhook_down_a_new_widget_is_still_assigned_by_the_watch() -> None:
    with trio.fail_after(150):
        async with sharder_env(webhook=False) as (_, client, _sharder):
            widgets = Api(client, WIDGETS, NAMESPACE)
            started = trio.current_time()
            made = await widgets.create({"metadata": {"name": "unanswered"}, "spec": {}})
            created = trio.current_time() - started
            assert label_of(made) is None  # failurePolicy Ignore: created without the label

            async def assigned() -> bool:
                return label_of(await widgets.get("unanswered")) == "r1"

            await eventually(assigned, "the watch to assign the Widget")
            print(f"webhook down: create {created * 1000:.1f} ms, assigned by the watch "
                  f"{trio.current_time() - started:.2f} s after the create began")  # fmt: skip
