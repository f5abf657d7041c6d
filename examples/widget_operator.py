"""A Widget operator: a custom resource, an owned ConfigMap, status, a finalizer, events.

    python examples/widget_operator.py --kubeconfig KC [--namespace NS | --all-namespaces]
                                       [--workers N] [-v N] [--leader-elect ...]
                                       [--metrics-bind-address HOST:PORT] [--ledger PATH]
                                       [--controller-ring NAME --shard-name rN
                                        --shard-lease-namespace NS]

It is a `Manager` program: the flags (the `trio-controller` CLI's: kubeconfig, namespace,
workers, logging, metrics and probes, leader election, timeouts), signals, logging and
exit codes are the Manager's; this file is only what the operator does.

On start it creates the CRD `widgets.example.com` from widget-crd.yaml (next to this
file) when the cluster lacks it, and waits until it is Established. Then, for every
Widget (`spec.message`, `spec.replicas`):

- it keeps a ConfigMap `<widget>-config` in the Widget's namespace whose `data.message`
  is the Widget's `spec.message`, controlled by the Widget (an ownerReference with
  `controller: true`, so the garbage collector deletes it with its Widget). A deleted
  ConfigMap is created again and an edited one restored: the controller watches the
  ConfigMaps it owns (`owns(CONFIGMAPS)`);
- it writes `status.observedGeneration` and a `Ready` condition (`"True"` once the
  ConfigMap matches) with server-side apply (field manager `widget-operator`, force);
- it holds the finalizer `example.com/cleanup`: a deleted Widget gets a `Normal`
  `Cleanup` event, then the finalizer is removed and the delete completes;
- it records a `Normal` `Reconciled` event whenever a reconcile changed something (the
  ConfigMap or the status), and none when there was nothing to do.

Output: stdout gets exactly one line per reconcile of a Widget that exists (deleting
ones included), `Reconciled Widget <namespace>/<name>`, printed once that reconcile has
finished, so when the line appears the cluster shows what it did. A key whose Widget is
already gone from the cache (after its delete completed) has nothing to reconcile and
prints nothing. Logs go to stderr in klog's format. SIGINT/SIGTERM stops the watches,
lets workers finish the keys they hold, sends the events still waiting, releases the
Lease (with `--leader-elect`) and exits 0. A broken set-up (kubeconfig, TLS, 401/403, a
CRD that never gets established) prints one `error: ...` line and exits 1.

Replicas: with `--leader-elect --leader-elect-resource-name widget-operator` only the
replica holding the Lease reconciles (and prints); the others keep their caches synced
and take over when it stops (at once: it releases the Lease) or dies (after the lease
duration). `--ledger PATH` appends `<pid> <key> <start> <end>` (wall-clock seconds) to
PATH after every reconcile, so a test can check that no Widget was reconciled by two
replicas at once.

Namespaces: `--namespace NS` limits the informers and every write to NS;
`--all-namespaces` watches them all; with neither, the kubeconfig context's namespace is
used, else `default` (the same rule as the `trio-controller` pod program). The CRD is
cluster-scoped and is created either way.

Only what matters starts a reconcile: the Widget controller has the generation
predicate (`generation_changed`), so a Widget's own status writes, labels and
annotations do not reconcile it (its spec, its deletion and its owned ConfigMaps do).
After this operator writes a Widget or its ConfigMap, the next reconcile of that Widget
waits until the caches hold the write (the controller's read-your-own-writes), so it
never acts on its own stale data. Writes still never clobber another writer: the
ConfigMap update and the status apply carry the resourceVersion read from the cache, and
a 409 is looked at again (`Requeue()`). A ConfigMap the cache does not hold but the
apiserver has (its create answers 409 AlreadyExists) is read once from the apiserver and
dealt with as if cached: a shard's cache holds only the ConfigMaps labelled for it, and
the sharder labels a new or moving ConfigMap a moment after the fact.

Sharding (`--controller-ring NAME --shard-name rN --shard-lease-namespace NS`, with
`trio-controller-sharder` running): this replica is one shard of the ring and reconciles
only the Widgets (and watches only the ConfigMaps) the sharder labelled for it; see
docs/sharding.md.

Webhooks (`--webhook-bind-address HOST:PORT`, certificates from `--webhook-cert-dir`):
validation of `spec.message` and `spec.replicas`, `spec.replicas: 1` by default on
create, and conversion between example.com/v1alpha1 and v1 (widget_webhooks.py, next to
this file), at /validate-example-com-v1-widget, /mutate-example-com-v1-widget and
/convert.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import trio
import yaml
from widget_webhooks import add_widget_webhooks  # next to this file

from trio_controller import (
    CONFIGMAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    Api,
    Client,
    Conflict,
    EventRecorder,
    Manager,
    NotFound,
    Requeue,
    Resource,
    TrioControllerError,
    finalizer,
    find_condition,
    generation_changed,
    set_condition,
)

log = logging.getLogger("trio_controller.examples.widget_operator")

# -- what this operator is ---------------------------------------------------------------

WIDGETS = Resource("example.com", "v1", "widgets", "Widget")
CRD_FILE = Path(__file__).with_name("widget-crd.yaml")
CRD_NAME = "widgets.example.com"
FIELD_MANAGER = "widget-operator"  # our name in managedFields (server-side apply)
REPORTING_CONTROLLER = "example.com/widget-operator"  # our name on Events
FINALIZER = "example.com/cleanup"
ESTABLISH_TIMEOUT = 60.0  # seconds to wait for the CRD to be Established


def configmap_name(widget: dict[str, Any]) -> str:
    return f"{widget['metadata']['name']}-config"


def owner_reference(widget: dict[str, Any]) -> dict[str, Any]:
    """The ownerReference that makes the Widget the ConfigMap's controller."""
    return {
        "apiVersion": WIDGETS.api_version,
        "kind": WIDGETS.kind,
        "name": widget["metadata"]["name"],
        "uid": widget["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def same_widget_name(ref: dict[str, Any], ours: dict[str, Any]) -> bool:
    """An ownerReference to a Widget of our name (another uid: a Widget deleted before)."""
    same_group = str(ref.get("apiVersion", "")).startswith(f"{WIDGETS.group}/")
    return same_group and ref.get("kind") == ours["kind"] and ref.get("name") == ours["name"]


# -- start-up: the CRD -------------------------------------------------------------------


async def ensure_crd(client: Client) -> None:
    """Create the CRD unless the cluster has it, then wait until it is Established."""
    crds = Api(client, CUSTOM_RESOURCE_DEFINITIONS)
    try:
        await crds.get(CRD_NAME)
    except NotFound:
        crd = yaml.safe_load(CRD_FILE.read_text())
        try:
            await crds.create(crd, field_manager=FIELD_MANAGER)
            log.info("Created CustomResourceDefinition %s", CRD_NAME)
        except Conflict:
            pass  # someone else created it meanwhile: fine
    conditions: dict[str, dict[str, Any]] = {}
    with trio.move_on_after(ESTABLISH_TIMEOUT):
        while True:
            crd = await crds.get(CRD_NAME)
            listed = (crd.get("status") or {}).get("conditions") or ()
            conditions = {c.get("type"): c for c in listed}
            if conditions.get("Established", {}).get("status") == "True":
                log.info("CustomResourceDefinition %s is established", CRD_NAME)
                return
            await trio.sleep(0.2)
    why = "; ".join(
        f"{c.get('type')}: {c.get('message')}"
        for c in conditions.values()
        if c.get("status") == "False"
    )
    raise TrioControllerError(
        f"CustomResourceDefinition {CRD_NAME} not established after {ESTABLISH_TIMEOUT:g}s"
        + (f" ({why})" if why else "")
    )


# -- the reconcile -----------------------------------------------------------------------


class WidgetReconciler:
    """`reconcile(key)` for Widgets, reading Widgets and ConfigMaps from the caches.

    Hand the controller the bound method `reconciler.reconcile`: it tells async from
    plain reconciles by the function, so an object with an async `__call__` would be
    run as a plain one."""

    def __init__(
        self,
        client: Client,
        widgets: Any,  # the Widget informer's store
        configmaps: Any,  # the ConfigMap informer's store
        recorder: EventRecorder,
        ledger: Path | None = None,
    ) -> None:
        self.client = client
        self.widgets = widgets
        self.configmaps = configmaps
        self.recorder = recorder
        self.ledger = ledger

    async def reconcile(self, key: str) -> Requeue | None:
        """One key, `namespace/name`: what the Widget's finalizer state asks for."""
        widget = self.widgets.get(key)  # a dict, parsed now; None once the Widget is gone
        if widget is None:
            return None  # deleted (and its finalizer removed): nothing left to do
        started = time.time()
        # finalizer() adds example.com/cleanup before the first apply, and on deletion
        # runs cleanup and then removes it; a conflicting write is re-read and retried.
        result = await finalizer(
            self.client, WIDGETS, widget, FINALIZER, apply=self.apply, cleanup=self.cleanup
        )
        if self.ledger is not None:
            with self.ledger.open("a") as ledger:  # one short append per reconcile
                ledger.write(f"{os.getpid()} {key} {started:.6f} {time.time():.6f}\n")
        print(f"Reconciled Widget {key}", flush=True)
        return result

    async def apply(self, widget: dict[str, Any]) -> Requeue | None:
        """Bring the ConfigMap and the status in line with the Widget."""
        namespace = widget["metadata"]["namespace"]
        changes: list[str] = []
        try:
            ready, reason, message = await self.sync_configmap(widget, changes)
            await self.sync_status(widget, ready, reason, message, changes)
        except Conflict as exc:
            # Another writer changed it since our cache saw it: look again with fresh data.
            # (Our own writes are waited for before the next reconcile: read-your-own-writes.)
            log.info("Widget %s/%s: %s; requeued", namespace, widget["metadata"]["name"], exc)
            return Requeue()
        finally:
            if changes:  # whatever was written, even if a later step conflicted
                self.recorder.event(
                    widget, "Normal", "Reconciled", "; ".join(changes),
                    action="Reconcile", resource=WIDGETS,
                )  # fmt: skip
        return None

    async def sync_configmap(
        self, widget: dict[str, Any], changes: list[str]
    ) -> tuple[bool, str, str]:
        """Create or fix `<widget>-config`; (ready, reason, message) for the condition."""
        namespace, name = widget["metadata"]["namespace"], configmap_name(widget)
        message = str((widget.get("spec") or {}).get("message") or "")
        ours = owner_reference(widget)
        api = Api(self.client, CONFIGMAPS, namespace)
        cached = self.configmaps.get(f"{namespace}/{name}")
        if cached is None:
            body = {
                "metadata": {"name": name, "namespace": namespace, "ownerReferences": [ours]},
                "data": {"message": message},
            }
            try:
                await api.create(body, field_manager=FIELD_MANAGER)
            except Conflict as exc:
                if exc.reason != "AlreadyExists":
                    raise
                # It exists, but the cache does not hold it: made by another writer just
                # now, or (sharded) on its way into this shard's cache, or moving to
                # another shard with its Widget. Look at it once in the apiserver, rather
                # than creating it again and again until the cache catches up.
                cached = await api.get(name)
            else:
                changes.append(f"created ConfigMap {name}")
                return True, "ConfigMapReady", f"ConfigMap {name} holds spec.message"
        refs = list(cached["metadata"].get("ownerReferences") or ())
        controller = next((r for r in refs if r.get("controller")), None)
        if controller is not None and controller.get("uid") != ours["uid"]:
            if not same_widget_name(controller, ours):  # someone else's: leave it, say so
                text = f"ConfigMap {name} is controlled by {controller.get('kind')} "
                text += f"{controller.get('name')}"
                return False, "ConfigMapNotOwned", text
            # A Widget of this name that was deleted (and whose ConfigMap no garbage
            # collector removed): the new Widget takes the ConfigMap over.
            refs.remove(controller)
            controller = None
        data = cached.get("data") or {}
        if controller is not None and data.get("message") == message:
            return True, "ConfigMapReady", f"ConfigMap {name} holds spec.message"
        if controller is None:
            refs.append(ours)
        # A merge patch guarded by the resourceVersion read: a newer ConfigMap is a 409.
        patch = {
            "metadata": {
                "resourceVersion": cached["metadata"]["resourceVersion"],
                "ownerReferences": refs,
            },
            "data": {"message": message},
        }
        await api.patch(name, patch, type="merge", field_manager=FIELD_MANAGER)
        changes.append(f"updated ConfigMap {name}")
        return True, "ConfigMapReady", f"ConfigMap {name} holds spec.message"

    async def sync_status(
        self,
        widget: dict[str, Any],
        ready: bool,
        reason: str,
        message: str,
        changes: list[str],
    ) -> None:
        """Server-side apply of status.observedGeneration and the Ready condition, only
        when they differ from what the Widget shows (apimachinery's condition rules: the
        transition time moves only when the condition's status does)."""
        metadata = widget["metadata"]
        generation = metadata.get("generation", 0)
        status = {"conditions": [dict(c) for c in (widget.get("status") or {}).get(
            "conditions") or ()]}  # fmt: skip
        changed = set_condition(
            status, "Ready", ready, reason, message, observed_generation=generation
        )
        if (widget.get("status") or {}).get("observedGeneration") != generation:
            changed = True
        if not changed:
            return  # nothing to change
        condition = find_condition(status, "Ready")
        body = {
            "metadata": {
                "name": metadata["name"],
                "namespace": metadata["namespace"],
                # A precondition: a Widget newer than the one read is a 409, not clobbered.
                "resourceVersion": metadata["resourceVersion"],
            },
            "status": {"observedGeneration": generation, "conditions": [condition]},
        }
        api = Api(self.client, WIDGETS, metadata["namespace"])
        await api.apply_status(body, field_manager=FIELD_MANAGER, force=True)
        shown = "True" if ready else "False"
        changes.append(f"status: observedGeneration {generation}, Ready={shown}")

    async def cleanup(self, widget: dict[str, Any]) -> None:
        """The Widget is being deleted. Its ConfigMap goes with it (the garbage collector
        follows the ownerReference); an operator with external state releases it here."""
        self.recorder.event(
            widget, "Normal", "Cleanup", f"Widget {widget['metadata']['name']} deleted",
            action="Cleanup", resource=WIDGETS,
        )  # fmt: skip


# -- running ---------------------------------------------------------------------------


async def setup(manager: Manager) -> None:
    """What this operator adds to the Manager: the CRD, its caches, one controller."""
    await ensure_crd(manager.client)
    args = manager.args
    ledger: Path | None = args.ledger if args is not None else None
    # One factory (the manager's): the controller's informers and our lookups share it.
    namespace = manager.namespace
    widgets = manager.factory.informer(WIDGETS, namespace=namespace).store
    configmaps = manager.factory.informer(CONFIGMAPS, namespace=namespace).store
    recorder = manager.event_recorder(REPORTING_CONTROLLER)
    reconciler = WidgetReconciler(manager.client, widgets, configmaps, recorder, ledger)
    controller = manager.controller(
        WIDGETS,
        reconciler.reconcile,
        predicates=[generation_changed],  # status writes, labels, annotations: no reconcile
    )
    controller.owns(CONFIGMAPS)  # a ConfigMap change reconciles its Widget
    if manager.webhooks is not None:  # --webhook-bind-address
        add_widget_webhooks(manager.webhooks)
    where = f"namespace {namespace}" if namespace else "every namespace"
    log.info("Watching Widgets and their ConfigMaps in %s", where)


def parser() -> argparse.ArgumentParser:
    """This program's own flags; the Manager adds the standard ones."""
    p = argparse.ArgumentParser(
        prog="widget_operator.py",
        description="Keep a ConfigMap, status and finalizer for every Widget (example.com/v1).",
    )
    p.add_argument(
        "--ledger",
        type=Path,
        metavar="PATH",
        help="append `<pid> <key> <start> <end>` to PATH after every reconcile",
    )
    return p


if __name__ == "__main__":
    sys.exit(Manager.main(setup, parser=parser(), leader_elect_resource_name="widget-operator"))
