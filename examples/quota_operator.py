"""A ResourceQuota `default-quota` for every Namespace labelled quota.example.com/enabled=true.

    python examples/quota_operator.py --kubeconfig KC [-v N] [--leader-elect ...]

The quota is owned by its Namespace (an ownerReference with `controller: true`), so the
garbage collector deletes it with the Namespace. An edited quota is put back and a
deleted one created again (the controller owns ResourceQuotas); each write records a
`Normal` Event about the Namespace (`QuotaCreated` when there was none, a deleted one
included; `QuotaRestored` when an edit was put back) and prints `Set quota of
<namespace>` on stdout. Removing the label leaves the quota alone. Events about a
Namespace (cluster-scoped) are in the `default` namespace; a repeated one is one Event
whose `series.count` grows.

The same operator written with kopf is examples/quota_kopf.py. This one is a `Manager`
program (docs/guide.md): flags, logging, signals (SIGTERM: exit 0) and errors are the
Manager's.
"""

from __future__ import annotations

import sys
from typing import Any

from trio_controller import NAMESPACES, RESOURCE_QUOTAS, Api, Manager, set_controller_reference

LABEL = "quota.example.com/enabled"
QUOTA = "default-quota"
HARD = {"pods": "10", "requests.cpu": "4", "requests.memory": "8Gi"}
FIELD_MANAGER = "quota-operator"


async def setup(manager: Manager) -> None:
    """One controller over the labelled Namespaces, owning their quotas."""
    recorder = manager.event_recorder("example.com/quota-operator")
    controller = manager.controller(NAMESPACES, name="quota", label_selector=f"{LABEL}=true")
    controller.owns(RESOURCE_QUOTAS)
    namespaces = controller.store  # only the labelled Namespaces (the controller's selector)
    quotas = controller.store_of(RESOURCE_QUOTAS)  # every namespace's, as owns() watches

    @controller.reconciler
    async def reconcile(key: str) -> None:
        namespace = namespaces.get(key)  # cluster-scoped: the key is the name
        if namespace is None:
            return  # deleted, or no longer labelled
        quota = quotas.get(f"{key}/{QUOTA}")  # namespaced: namespace/name
        if quota is not None and (quota.get("spec") or {}).get("hard") == HARD:
            return  # nothing to do
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": QUOTA, "namespace": key},
            "spec": {"hard": HARD},
        }
        set_controller_reference(body, namespace, NAMESPACES)  # listed objects lack a kind
        await Api(manager.client, RESOURCE_QUOTAS, key).apply(
            body, field_manager=FIELD_MANAGER, force=True
        )
        reason = "QuotaCreated" if quota is None else "QuotaRestored"
        note = f"ResourceQuota {QUOTA}: {', '.join(f'{k}={v}' for k, v in HARD.items())}"
        recorder.event(namespace, "Normal", reason, note, action="Reconcile", resource=NAMESPACES)
        print(f"Set quota of {key}", flush=True)


if __name__ == "__main__":
    sys.exit(Manager.main(setup, prog="quota-operator"))
